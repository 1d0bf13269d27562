"""The shared-directory store: cluster nodes share one store on NFS or Lustre, without locks.

A store whose path ends in ``.stetdir`` is a folder, made on first use::

    runs.stetdir/
        records/<host>-<pid>-<token>.csv         finished runs, one file per writer process
        records/<host>-<pid>-<token>.sealed.csv  the same, once its writer has exited
        records/compacted-<token>.csv            many writers' files folded into one
        claims/<digest>.claim                    runs in progress (``Once(claim=True)``)
        tmp/                                     files being written, before they appear
        compaction.claim                         while `compact`, `delete` or `clear` runs

No file is ever written by two processes, so nothing needs ``flock`` or
appends that land whole across NFS clients. Each writer process appends
to a file of its own (a forked child starts another), every record
flushed and fsynced before the call returns; files are created with
modes 0o666 and 0o777 less the umask, so a group can share the store.
The files under ``records/`` are CSV files with the CSV store's columns
and quoting, so ``records/*.csv`` reads as one table with pandas, pyarrow
or DuckDB; everything else lives outside ``records/``.

Readers read every writer's file incrementally: per file its inode, how
far it was read, and the bytes before that point; only new bytes are
read, a half-written last line is left for later, and a file that shrank
or was replaced is read again. A lookup that misses looks for new records
at O(1) amortized cost: while the store has at most `SMALL` writer files
each miss lists ``records/`` and reads what grew; with more, that is done
at most once per `LISTING_INTERVAL` seconds. So without claims a record
another node wrote is seen within that interval (plus the NFS attribute
cache); with claims every key runs once, because a worker that wins a
claim reads every file before running it (a finisher writes its record
before it drops its claim).

The host in file names is ``STET_HOST`` when set (tests simulate several
machines with it), else the machine's name.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Final

import attrs

from ..exceptions import StoreError
from . import _fs
from ._backend import StoreBackend
from ._claims import Claim, ClaimId, ClaimState, heartbeat
from ._claims import owner as process_owner
from ._clock import SYSTEM_CLOCK, Clock
from ._columns import NO_LIMITS, ColumnLimits, check_key_columns
from ._csv import format_rows, header_for
from ._index import KeyIndex, Packed, pack
from ._process import track, written
from ._records import Batch, Record
from ._schema import HOST, new_records
from ._shared_claims import ClaimFiles, FolderLock, make_folder, write_file
from ._shared_files import (
    COMPACTED,
    SEALED,
    Replaced,
    Seen,
    columns_once_each,
    is_records_file,
    is_settled,
    once_each,
    pid_gone,
    process_tag,
    read_all,
    read_new,
    sweep_leftovers,
    sync_folder,
    this_host,
    writer_of,
)

__all__ = [
    "LISTING_INTERVAL",
    "NETWORK_MIN_LEASE",
    "SMALL",
    "SharedDirBackend",
    "SharedDirStore",
    "open_shared_dir",
]

logger: Final = logging.getLogger("stet")

#: With more writer files than this, a miss lists ``records/`` at most once
#: per `LISTING_INTERVAL` seconds.
SMALL: Final = 32
LISTING_INTERVAL: Final = 1.0
#: The shortest lease that is safe on a network filesystem: NFS clients
#: cache attributes (a claim's renewal time) for up to 60 s, and a claim is
#: renewed every third of its lease, so lease > 60 + lease / 3.
NETWORK_MIN_LEASE: Final = 90.0
#: How long ``compaction.claim`` holds before another process may break it.
COMPACT_LEASE: Final = 300.0

_O_NOFOLLOW: Final = getattr(os, "O_NOFOLLOW", 0)
_warned_lease: set[str] = set()


@attrs.define
class _Writer:
    """This process's file in ``records/``."""

    path: str
    fd: int
    header: tuple[str, ...]
    pid: int


class SharedDirStore:
    """A `stet.typing.ClaimingStore` in a folder shared by many machines (see the module docs)."""

    def __init__(self, path: str, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.path = path
        self.location = path
        self.limits: ColumnLimits = NO_LIMITS
        self.clock = clock
        self.records_dir = os.path.join(path, "records")
        self.tmp_dir = os.path.join(path, "tmp")
        self._claims = ClaimFiles(os.path.join(path, "claims"), clock, path)
        self._host = this_host()
        self._index = KeyIndex(path)
        self._seen: dict[str, Seen] = {}
        self._last_pass = -float("inf")
        self._writer: _Writer | None = None
        self._order: dict[tuple[str, ...], tuple[str, ...]] = {}
        self._mutex = threading.RLock()
        self._network: bool | None = None
        track(self)

    def __repr__(self) -> str:
        return f"SharedDirStore({self.location!r})"

    def exists(self) -> bool:
        if os.path.isdir(self.records_dir):
            return True
        # A client's cache may say "no such file" a while after another
        # client made it (NFS, FUSE negative lookups): the listing is fresh.
        try:
            return "records" in os.listdir(self.path)
        except OSError:
            return False

    # -- processes ------------------------------------------------------------

    def pause_for_fork(self) -> bool:
        return self._mutex.acquire(timeout=5)

    def resume_after_fork(self) -> None:
        self._mutex.release()

    def reset_in_child(self) -> None:
        self._mutex = threading.RLock()
        if self._writer is not None:
            with contextlib.suppress(OSError):
                os.close(self._writer.fd)  # the parent's file stays the parent's
            self._writer = None

    # -- reading --------------------------------------------------------------

    def _check_folder(self) -> None:
        try:
            names = os.listdir(self.path)
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            raise StoreError(self.path, f"cannot be listed: {exc.strerror or exc}") from None
        if "records" not in names:
            names = [n for n in names if n not in ("claims", "tmp", "compaction.claim")]
            if names:
                raise StoreError(
                    self.path,
                    f"is a folder holding {sorted(names)[:3]!r} but no records/ folder, so it "
                    "is not a shared-directory store; it is left untouched (give another path)",
                )

    def _list(self) -> list[str]:
        try:
            with os.scandir(self.records_dir) as entries:
                return sorted(e.name for e in entries if is_records_file(e.name))
        except FileNotFoundError:
            self._check_folder()
            return []
        except OSError as exc:
            raise StoreError(self.records_dir, f"cannot be listed: {exc.strerror or exc}") from None

    def _pass(self, *, rebuild: bool = False) -> None:
        """List ``records/`` and read what is new; index everything anew if ``rebuild``."""
        for _ in range(20):  # a file compacted away between listing and reading: list again
            names = self._list()
            anew = rebuild or not set(self._seen) <= set(names)
            seen = {} if anew else dict(self._seen)
            batches: list[Batch] = []
            own = os.path.basename(self._writer.path) if self._writer is not None else None
            try:
                for name in names:
                    before = seen.get(name)
                    if before is not None and (is_settled(name) or name == own):
                        continue  # never changes once it is there; or this process's own
                    batch, seen[name] = read_new(os.path.join(self.records_dir, name), before)
                    batches.append(batch)
            except (FileNotFoundError, Replaced):
                rebuild = True  # records may be gone: index every file anew
                continue
            if anew:
                index = KeyIndex(self.location)
                for batch in batches:
                    index.ingest(batch)
                self._index.groups = index.groups  # readers keep a whole one meanwhile
            else:
                for batch in batches:
                    self._index.ingest(batch)
            self._seen = seen
            self._last_pass = time.monotonic()
            return
        raise StoreError(
            self.records_dir, "keeps changing while it is read (compactions in a loop?)"
        )

    def refresh(self) -> None:
        with self._mutex:
            self._pass()

    def _catch_up(self) -> None:
        """What a miss does: a pass, unless one ran lately and the store has many files."""
        if len(self._seen) <= SMALL or time.monotonic() - self._last_pass >= LISTING_INTERVAL:
            self._pass()

    def knows(self, function: str, cols: tuple[str, ...], key: Packed) -> bool:
        return self._index.knows(function, cols, key)

    def is_done(self, function: str, cols: tuple[str, ...], key: Packed) -> bool:
        if self._index.knows(function, cols, key):
            return True
        with self._mutex:
            self._catch_up()
        return self._index.knows(function, cols, key)

    def matches(self, function: str | None, cols: tuple[str, ...], values: tuple[str, ...]) -> bool:
        self.refresh()
        return self._index.matches(function, cols, values)

    def check_can_hold(self, cols: Sequence[str]) -> None:
        pass  # column names keep their case in CSV

    def prefer_order(self, names: Sequence[str]) -> None:
        order = tuple(names)
        self._order.setdefault(tuple(sorted(order)), order)

    # -- writing --------------------------------------------------------------

    def _make_dirs(self) -> None:
        self._check_folder()
        try:
            for folder in (self.path, self.records_dir, self.tmp_dir, self._claims.folder):
                make_folder(folder)
        except OSError as exc:
            raise StoreError(self.path, f"cannot be created: {exc.strerror or exc}") from None

    def _append(self, records: Sequence[Record]) -> None:
        """Write records to this process's file, fsynced (mutex held).

        If the file was deleted or moved meanwhile (the store removed by
        hand, or compacted by a process that took this one for dead), the
        records go again into a new file: nothing is written where no reader
        looks.
        """
        for _ in range(3):
            writer = self._writer
            if writer is not None and writer.pid != os.getpid():
                writer = self._writer = None  # a forked child: a file of its own
            header = header_for(records, writer.header if writer is not None else ())
            if writer is not None and header != writer.header:
                self._seal()
                writer = None
            try:
                if writer is None:
                    writer = self._writer = self._new_file(header)
                data = memoryview(format_rows(records, writer.header))
                while data:
                    data = data[os.write(writer.fd, data) :]
                os.fsync(writer.fd)
                if _in_place(writer):
                    written(self)
                    return
            except OSError as exc:
                # A record may be half-written: no other is ever put after it
                # (the file is sealed, and the next record starts another).
                with contextlib.suppress(OSError):
                    self._seal()
                raise StoreError(
                    writer.path if writer is not None else self.records_dir,
                    f"cannot be written: {exc.strerror or exc}",
                ) from None
            with contextlib.suppress(OSError):
                os.close(writer.fd)
            self._writer = None
        raise StoreError(self.records_dir, "its files keep vanishing while records are written")

    def _new_file(self, header: tuple[str, ...]) -> _Writer:
        self._make_dirs()
        name = f"{process_tag()}-{secrets.token_hex(6)}.csv"
        staged = os.path.join(self.tmp_dir, name)
        try:  # an OSError is named by _append
            write_file(staged, ",".join(header).encode() + b"\n")
            fd = os.open(staged, os.O_WRONLY | os.O_APPEND | _O_NOFOLLOW)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(staged)
            raise
        path = os.path.join(self.records_dir, name)
        try:
            os.rename(staged, path)  # it appears with its header
            sync_folder(self.records_dir)
        except OSError:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(staged)
            raise
        return _Writer(path, fd, header, os.getpid())

    def _seal(self) -> None:
        """Close this process's file and rename it ``*.sealed.csv``: compaction may fold it."""
        writer, self._writer = self._writer, None
        if writer is None or writer.pid != os.getpid():
            return
        with contextlib.suppress(OSError):
            os.close(writer.fd)
        sealed = writer.path[: -len(".csv")] + SEALED
        try:
            os.rename(writer.path, sealed)
        except OSError:
            return  # compacted or cleared meanwhile: nothing to seal
        name = os.path.basename(writer.path)
        if name in self._seen:
            self._seen[os.path.basename(sealed)] = self._seen.pop(name)

    def add(
        self,
        function: str,
        cols: tuple[str, ...],
        keys: Iterable[tuple[str, ...]],
        *,
        duration: float | None = None,
        code: str | None = None,
    ) -> int:
        with self._mutex:
            self._catch_up()
            fresh = self._index.fresh(function, cols, keys)
            if not fresh:
                return 0
            records = new_records(
                function,
                cols,
                fresh.values(),
                order=self._order.get(cols),
                duration=duration,
                code=code,
            )
            for record in records:
                record[HOST] = self._host
            self._append(records)
            self._index.add(function, cols, fresh)
            return len(records)

    def merge(self, records: Iterable[Record]) -> int:
        with self._mutex:
            self._pass()
            added, new = self._index.unseen(
                records, lambda cols: check_key_columns(cols, self.limits, store=self.location)
            )
            if added:
                self._append(added)
                for (function, cols), keys in new.items():
                    self._index.add(function, cols, keys)
            return len(added)

    def flush(self, timeout: float | None = None) -> None:
        """Seal this process's file (at exit, and when asked); the next record starts another."""
        with self._mutex:
            self._seal()

    # -- whole-store operations ------------------------------------------------

    def _all(self, names: Iterable[str]) -> list[Record]:
        out: list[Record] = []
        for name in names:
            out.extend(read_all(os.path.join(self.records_dir, name)))
        return out

    def columns(self) -> Batch:
        """Every record, one per run, as columns (for whole-store tools)."""
        with self._mutex:
            for _ in range(20):
                try:
                    names = [os.path.join(self.records_dir, n) for n in self._list()]
                    return columns_once_each(names, self.location)
                except FileNotFoundError:
                    continue  # compacted away meanwhile
            raise StoreError(self.records_dir, "keeps changing while it is read")

    def records(self) -> list[Record]:
        with self._mutex:
            for _ in range(20):
                try:
                    return once_each(self._all(self._list()), self.location)
                except FileNotFoundError:
                    continue  # compacted away meanwhile
            raise StoreError(self.records_dir, "keeps changing while it is read")

    def _foldable(self, name: str) -> bool:
        """True for a file no writer appends to any more."""
        if is_settled(name):
            return True
        writer = writer_of(name)
        if writer is None or writer[0] != self._host:
            return False  # another machine's writer: only it can tell
        if writer[1] == os.getpid():
            return self._writer is None or os.path.basename(self._writer.path) != name
        return pid_gone(writer[1])

    def compact(self) -> int:
        """Fold the files of writers that are gone into one; return how many files were folded."""
        return self._rewrite(lambda record: False)[1]

    def delete(self, doomed: Callable[[Record], bool]) -> int:
        return self._rewrite(doomed)[0]

    def clear(self, *, in_place: bool = False) -> int:
        return self._rewrite(lambda record: True)[0] if self.exists() else 0

    def _rewrite(self, doomed: Callable[[Record], bool]) -> tuple[int, int]:
        """Fold the foldable files into one without doomed records: (removed, files folded)."""
        if not self.exists():
            return 0, 0
        lock = FolderLock(os.path.join(self.path, "compaction.claim"), self.clock, COMPACT_LEASE)
        with self._mutex, lock:
            self._seal()
            sweep_leftovers([self.tmp_dir, self._claims.folder], self._host)
            names = self._list()
            fold = [n for n in names if self._foldable(n)]
            live = [n for n in names if n not in fold]
            still = [n for n in live if any(doomed(r) for r in self._all([n]))]
            if still:
                raise StoreError(
                    self.location,
                    f"records to remove are in {len(still)} file(s) of writers that may still "
                    f"be appending to them ({', '.join(still[:3])}): processes alive on this "
                    "machine, or on another machine, where stet cannot tell; once they have "
                    "exited (they seal their files), or run this on their machine, try again",
                )
            records = once_each(self._all(fold), self.location)
            kept = [r for r in records if not doomed(r)]
            if (
                len(fold) > 1
                or len(kept) < len(records)
                or (fold and not fold[0].startswith(COMPACTED))
            ):
                if kept:
                    self._write_compacted(kept)
                for name in fold:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(os.path.join(self.records_dir, name))
            else:
                fold = []
            self._pass(rebuild=True)
            return len(records) - len(kept), len(fold)

    def _write_compacted(self, records: list[Record]) -> None:
        header = header_for(records, ())
        name = f"{COMPACTED}{secrets.token_hex(8)}.csv"
        staged = os.path.join(self.tmp_dir, name)
        try:
            make_folder(self.tmp_dir)
            write_file(staged, ",".join(header).encode() + b"\n" + format_rows(records, header))
            os.rename(staged, os.path.join(self.records_dir, name))
            sync_folder(self.records_dir)  # in place before the folded files go
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(staged)
            raise StoreError(
                staged,
                f"cannot be written: {exc.strerror or exc}; nothing was removed, the "
                "store is as it was",
            ) from None

    # -- claims ---------------------------------------------------------------

    def _check_lease(self, lease: float) -> None:
        if self._network is None:
            self._network = _fs.is_network(_fs.filesystem_of(self.path))
        if self._network and lease < NETWORK_MIN_LEASE and self.path not in _warned_lease:
            _warned_lease.add(self.path)
            logger.warning(
                "[stet] claims in %s have a lease of %g s, but on a network filesystem a "
                "renewal may reach other nodes only after their attribute cache (up to 60 s) "
                "expires, and renewals come every lease / 3: a live worker's claim could be "
                "taken over. Use Once(lease=%g) or more.",
                self.path,
                lease,
                NETWORK_MIN_LEASE,
            )

    def claim(
        self,
        function: str,
        cols: tuple[str, ...],
        values: tuple[str, ...],
        lease: float,
        *,
        owner: str | None = None,
    ) -> tuple[ClaimState, Claim | None]:
        if self.is_done(function, cols, pack(values)):
            return "done", None
        self._check_lease(lease)
        self._make_dirs()
        path = self._claims.path_of((function, cols, values))
        who = process_owner() if owner is None else owner
        current: Claim | None = None
        for _ in range(10):
            now = self.clock.now()
            mine = Claim(function, cols, values, who, 1, now.wall + lease, lease, now.wall)
            if self._claims.create(path, mine):
                return self._won(mine, owner)
            found = self._claims.read(path)
            if found is None:
                continue  # finished or released meanwhile
            current = self._claims.judge(*found, self._claims.server.now_ns(), now.wall)
            if current.live(now.wall):
                return "busy", current
            mine = attrs.evolve(mine, epoch=current.epoch + 1)
            if self._claims.take_over(path, current, mine):
                return self._won(mine, owner)
            return "busy", current
        return "busy", current

    def _won(self, claim: Claim, owner: str | None) -> tuple[ClaimState, Claim | None]:
        # The claim file is the authority: whoever finished the key wrote its
        # record before removing its claim, so it is read now if it exists.
        with self._mutex:
            self._pass()
        if self.knows(claim.function, claim.cols, pack(claim.values)):
            self._claims.remove(claim)
            return "done", None
        if owner is None:
            heartbeat.hold(self, claim)
        return "claimed", claim

    def renew(self, claims: Sequence[Claim]) -> list[Claim]:
        renewed = []
        for claim in claims:
            self._claims.renew(claim)
            renewed.append(attrs.evolve(claim, expires=self.clock.now().wall + claim.lease))
        return renewed

    def complete(
        self, claim: Claim, *, duration: float | None = None, code: str | None = None
    ) -> bool:
        heartbeat.drop(self, claim)
        if not self._claims.holds(claim):
            return False
        self.add(claim.function, claim.cols, [claim.values], duration=duration, code=code)
        self._claims.remove(claim)
        return True

    def release(self, claim: Claim) -> None:
        heartbeat.drop(self, claim)
        self._claims.remove(claim)

    def claims(self) -> dict[ClaimId, Claim]:
        self.refresh()
        out: dict[ClaimId, Claim] = {}
        paths = list(self._claims.listed())
        if not paths:
            return out
        server = self._claims.server.now_ns()
        wall = self.clock.now().wall
        for path in paths:
            found = self._claims.read(path)
            if found is None:
                continue
            claim = self._claims.judge(*found, server, wall)
            if self.knows(claim.function, claim.cols, pack(claim.values)):
                self._claims.remove(claim, anyone=True)  # its worker died after the record
                continue
            out[claim.id] = claim
        return out


def _in_place(writer: _Writer) -> bool:
    """True if the writer's file is still where readers look for it."""
    try:
        return os.stat(writer.path).st_ino == os.fstat(writer.fd).st_ino
    except FileNotFoundError:
        return False


def open_shared_dir(path: str, *, clock: Clock = SYSTEM_CLOCK) -> SharedDirStore:
    """The shared-directory store at ``path`` (absolute)."""
    return SharedDirStore(path, clock=clock)


class SharedDirBackend(StoreBackend):
    """A shared-directory store (a folder ``*.stetdir``) for cluster nodes on NFS or Lustre.

    Each writer process appends to a file of its own in ``records/``, so
    machines sharing a network filesystem never write one file, and claims
    are files made atomically there and timed by the file server's clock.
    ``records/*.csv`` reads as one table with pandas, pyarrow or DuckDB.

    Example:
        >>> import tempfile, os
        >>> store = SharedDirBackend(os.path.join(tempfile.mkdtemp(), "runs.stetdir"))
        >>> store.record({"alpha": 0.1, "seed": 3})
        True
        >>> store.has({"alpha": 0.1, "seed": 3}), sorted(os.listdir(store.path))
        (True, ['claims', 'records', 'tmp'])
    """

    opener = staticmethod(open_shared_dir)

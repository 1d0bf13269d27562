"""The shared-directory store: cluster nodes share one store on NFS or Lustre, without locks.

A store whose path ends in ``.stetdir`` is a folder, made on first use::

    runs.stetdir/
        records/<host>-<pid>-<token>.csv         finished runs, one file per writer process
        records/<host>-<pid>-<token>.sealed.csv  the same, once its writer has exited
        records/compacted-<token>.csv            many writers' files folded into one
        claims/<digest>.claim                    runs in progress (``Once(claim=True)``)
        failures/<host>-<pid>-<token>.jsonl      failed runs, one file per writer process
                                                 (sealed and compacted as records are)
        tmp/                                     files being written, before they appear
        compaction.claim                         while `compact`, `delete` or `clear` runs

No file is ever written by two processes, so nothing needs ``flock`` or
appends that land whole across NFS clients. Each writer process appends
to a file of its own (`._shared_writer`; a forked child starts another),
every record flushed and fsynced before the call returns; files are created with
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
import os
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Final

import attrs

from .._lazy import np
from ..exceptions import StoreError
from . import _fs
from ._claims import Claim, ClaimId, ClaimState, heartbeat
from ._claims import owner as process_owner
from ._clock import SYSTEM_CLOCK, Clock
from ._columns import NO_LIMITS, ColumnLimits, check_key_columns
from ._failures import Failure, FailureLog, LoggedFailures
from ._index import Packed, pack
from ._process import written
from ._reader import IndexedReader
from ._records import Batch, Record
from ._schema import HOST
from ._shared_claims import NETWORK_MIN_LEASE, ClaimFiles, FolderLock, make_folder, warn_if_short
from ._shared_failures import FailureFiles
from ._shared_files import (
    COMPACTED,
    FilesRead,
    Replaced,
    Seen,
    foldable,
    is_records_file,
    is_settled,
    once_each,
    read_all,
    read_new,
    read_once_each,
    sweep_leftovers,
    this_host,
)
from ._shared_kept import FoldedRecords
from ._shared_writer import OwnFile, write_compacted
from ._table import Selection, WholeStore, arrow_of

__all__ = [
    "LISTING_INTERVAL",
    "NETWORK_MIN_LEASE",
    "SMALL",
    "SharedDirStore",
    "open_shared_dir",
]

#: With more writer files than this, a miss lists ``records/`` at most once
#: per `LISTING_INTERVAL` seconds.
SMALL: Final = 32
LISTING_INTERVAL: Final = 1.0
#: How long ``compaction.claim`` holds before another process may break it.
COMPACT_LEASE: Final = 300.0


class SharedDirStore(LoggedFailures):
    """A `stet.typing.ClaimingStore` in a folder shared by many machines (see the module docs)."""

    def __init__(self, path: str, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.path = path
        self.location = path
        self.limits: ColumnLimits = NO_LIMITS
        self.clock = clock
        self.records_dir = os.path.join(path, "records")
        self.tmp_dir = os.path.join(path, "tmp")
        self._claims = ClaimFiles(os.path.join(path, "claims"), clock, path)
        self._failure_files = FailureFiles(os.path.join(path, "failures"), self.tmp_dir)
        self._failure_log = FailureLog(
            path, self._failure_files.path, folder=self._failure_files.folder
        )
        self._host = this_host()
        self._last_pass = -float("inf")
        self._own = OwnFile(self.records_dir, self.tmp_dir, self._make_dirs, self._sealed)
        self._network: bool | None = None
        self._reader: IndexedReader[dict[str, Seen]] = IndexedReader(
            path, self._scan, in_child=self._own.forget_in_child, source=self.records
        )

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

    # -- reading --------------------------------------------------------------

    def _check_folder(self) -> None:
        try:
            names = os.listdir(self.path)
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            raise StoreError(self.path, f"cannot be listed: {exc.strerror or exc}") from None
        if "records" not in names:
            names = [n for n in names if n not in ("claims", "failures", "tmp", "compaction.claim")]
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

    def _scan(
        self, cursor: dict[str, Seen] | None
    ) -> tuple[list[Batch], dict[str, Seen] | None, bool]:
        """List ``records/`` and read what is new since ``cursor`` (every file if None)."""
        for _ in range(20):  # a file compacted away between listing and reading: list again
            names = self._list()
            anew = cursor is None or not set(cursor) <= set(names)
            seen = {} if anew or cursor is None else dict(cursor)
            batches: list[Batch] = []
            own = self._own.name
            try:
                for name in names:
                    before = seen.get(name)
                    if before is not None and (is_settled(name) or name == own):
                        continue  # never changes once it is there; or this process's own
                    batch, seen[name] = read_new(os.path.join(self.records_dir, name), before)
                    batches.append(batch)
            except (FileNotFoundError, Replaced):
                cursor = None  # records may be gone: index every file anew
                continue
            self._last_pass = time.monotonic()
            return batches, seen, anew
        raise StoreError(
            self.records_dir, "keeps changing while it is read (compactions in a loop?)"
        )

    def refresh(self) -> None:
        self._reader.refresh()

    def _catch_up(self) -> None:
        """What a miss does: a pass, unless one ran lately and the store has many files."""
        files = len(self._reader.cursor or ())
        if files <= SMALL or time.monotonic() - self._last_pass >= LISTING_INTERVAL:
            self._reader.refresh()

    def knows(self, function: str, cols: tuple[str, ...], key: Packed) -> bool:
        return self._reader.index.knows(function, cols, key)

    def is_done(self, function: str, cols: tuple[str, ...], key: Packed) -> bool:
        if self.knows(function, cols, key):
            return True
        with self._reader.mutex:
            self._catch_up()
            if self.knows(function, cols, key):
                return True
            self._own.check_writable(self.path)
        return False

    def matches(self, function: str | None, cols: tuple[str, ...], values: tuple[str, ...]) -> bool:
        return self._reader.matches(function, cols, values)

    def check_can_hold(self, cols: Sequence[str]) -> None:
        pass  # column names keep their case in CSV

    def prefer_order(self, names: Sequence[str]) -> None:
        self._reader.prefer_order(names)

    # -- writing --------------------------------------------------------------

    def _make_dirs(self) -> None:
        self._check_folder()
        try:
            for folder in (self.path, self.records_dir, self.tmp_dir, self._claims.folder):
                make_folder(folder)
        except OSError as exc:
            raise StoreError(self.path, f"cannot be created: {exc.strerror or exc}") from None

    def _append(self, records: Sequence[Record]) -> int:
        """Write records to this process's file, fsynced (mutex held); how many."""
        self._own.append(records)
        written(self)
        return len(records)

    def _sealed(self, name: str, sealed: str) -> None:
        """This process's file was sealed: it is read as far as before."""
        seen = self._reader.cursor
        if seen is not None and name in seen:
            seen[sealed] = seen.pop(name)

    def add(
        self,
        function: str,
        cols: tuple[str, ...],
        keys: Iterable[tuple[str, ...]],
        *,
        duration: float | None = None,
        code: str | None = None,
    ) -> int:
        with self._reader.mutex:
            self._catch_up()
            return self._reader.add(
                function, cols, keys, self._append_own, duration=duration, code=code
            )

    def _append_own(self, records: list[Record]) -> int:
        for record in records:
            record[HOST] = self._host
        return self._append(records)

    def merge(self, records: Iterable[Record]) -> int:
        with self._reader.mutex:
            return self._reader.merge(records, self._check_new_group, self._append)

    def _check_new_group(self, cols: tuple[str, ...]) -> None:
        check_key_columns(cols, self.limits, store=self.location)

    def flush(self, timeout: float | None = None) -> None:
        """Seal this process's file (at exit, and when asked); the next record starts another."""
        with self._reader.mutex:
            self._own.seal()

    # -- whole-store operations ------------------------------------------------

    def _all(self, names: Iterable[str]) -> list[Record]:
        out: list[Record] = []
        for name in names:
            out.extend(read_all(os.path.join(self.records_dir, name)))
        return out

    def columns(self) -> Batch:
        """Every record, one per run, as columns (for whole-store tools)."""
        return self.scanned()[0]

    def scanned(self) -> tuple[Batch, FilesRead]:
        """`columns`, and what lets `delete_rows` use this read if no file changes."""
        with self._reader.mutex:
            for _ in range(20):
                try:
                    paths = [os.path.join(self.records_dir, n) for n in self._list()]
                    return (read := read_once_each(paths, self.location)).batch, read
                except FileNotFoundError:
                    continue  # compacted away meanwhile
            raise StoreError(self.records_dir, "keeps changing while it is read")

    def records(self) -> list[Record]:
        with self._reader.mutex:
            for _ in range(20):
                try:
                    return once_each(self._all(self._list()), self.location)
                except FileNotFoundError:
                    continue  # compacted away meanwhile
            raise StoreError(self.records_dir, "keeps changing while it is read")

    def _compaction_lock(self) -> FolderLock:
        return FolderLock(os.path.join(self.path, "compaction.claim"), self.clock, COMPACT_LEASE)

    def forget_failures(self, doomed: Callable[[Failure], bool] | None = None) -> int:
        """`LoggedFailures.forget_failures`, between compactions (one that read a
        failure before it was forgotten would fold it back in)."""
        if not os.path.isdir(self._failure_files.folder):
            return 0
        with self._compaction_lock():
            return super().forget_failures(doomed)

    def compact(self) -> int:
        """Fold the files of writers that are gone into one (failures apart); how many records'."""
        return self._rewrite_records(lambda record: False, failures=True)[1]

    def delete(self, doomed: Callable[[Record], bool]) -> int:
        return self._rewrite_records(doomed)[0]

    def clear(self, *, in_place: bool = False) -> int:
        return self._rewrite_records(lambda record: True)[0] if self.exists() else 0

    def delete_rows(self, select: Selection, seen: FilesRead | None = None) -> int:
        """`delete` of the records ``select`` picks, column by column (``seen``, a
        read by `scanned`, is used again for files each still as it read them)."""

        def split(names: list[str]) -> tuple[Sequence[Record], int]:
            paths = [os.path.join(self.records_dir, n) for n in names]
            again = seen is not None and seen.still(paths)
            read = seen if again and seen is not None else read_once_each(paths, self.location)
            table = arrow_of(read.batch)
            doomed = np.asarray(select(WholeStore(self.location, table)), dtype=bool)
            return FoldedRecords(table, doomed, read), table.num_rows

        def doomed_in(names: list[str]) -> bool:
            kept, held = split(names)
            return len(kept) < held

        return self._rewrite(doomed_in, split)[0]

    def _rewrite_records(
        self, doomed: Callable[[Record], bool], *, failures: bool = False
    ) -> tuple[int, int]:
        """`_rewrite`, asking ``doomed`` of each record."""

        def split(names: list[str]) -> tuple[Sequence[Record], int]:
            records = once_each(self._all(names), self.location)
            return [r for r in records if not doomed(r)], len(records)

        doomed_in = lambda names: any(doomed(r) for r in self._all(names))  # noqa: E731
        return self._rewrite(doomed_in, split, failures)

    def _rewrite(
        self,
        doomed_in: Callable[[list[str]], bool],
        split: Callable[[list[str]], tuple[Sequence[Record], int]],
        failures: bool = False,
    ) -> tuple[int, int]:
        """Fold the foldable files into one without doomed records: (removed, files folded).

        ``doomed_in(names)`` tells whether these files hold a doomed record;
        ``split(names)`` gives their records (one per run) but the doomed, and
        how many records they held. ``failures``: fold the failure files too.
        """
        if not self.exists():
            return 0, 0
        with self._reader.mutex, self._compaction_lock():
            self._own.seal()
            sweep_leftovers([self.tmp_dir, self._claims.folder], self._host)
            names = self._list()
            fold = [n for n in names if foldable(n, self._host, self._own.name)]
            live = [n for n in names if n not in fold]
            still = [n for n in live if doomed_in([n])]
            if still:
                raise StoreError(
                    self.location,
                    f"records to remove are in {len(still)} file(s) of writers that may still "
                    f"be appending to them ({', '.join(still[:3])}): processes alive on this "
                    "machine, or on another machine, where stet cannot tell; once they have "
                    "exited (they seal their files), or run this on their machine, try again",
                )
            kept, held = split(fold)
            if len(fold) > 1 or len(kept) < held or (fold and not fold[0].startswith(COMPACTED)):
                if kept:
                    write_compacted(kept, self.tmp_dir, self.records_dir)
                for name in fold:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(os.path.join(self.records_dir, name))
            else:
                fold = []
            if failures:
                self._failure_files.seal()
                self._failure_files.fold(self._host)
            self._reader.reread_later()
            return held - len(kept), len(fold)

    # -- claims ---------------------------------------------------------------

    def _check_lease(self, lease: float) -> None:
        if self._network is None:
            self._network = _fs.is_network(_fs.filesystem_of(self.path))
        warn_if_short(self.path, lease, network=self._network)

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
        self.refresh()
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
        out: dict[ClaimId, Claim] = {}
        paths = list(self._claims.listed())
        if not paths:
            return out  # (without reading the records: `stet status` of a big store)
        self.refresh()
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


def open_shared_dir(path: str, *, clock: Clock = SYSTEM_CLOCK) -> SharedDirStore:
    """The shared-directory store at ``path`` (absolute)."""
    return SharedDirStore(path, clock=clock)

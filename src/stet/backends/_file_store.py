"""A store kept in files on one machine: a format, a lock, an index, claims.

`FileStore` is the `stet.typing.Store` of the CSV, JSON, SQLite and Parquet
stores. It is put together from parts, each with one job:

- a `FileFormat` reads records (all, or those added since a cursor it
  returned) and writes them (append, atomic rewrite; Parquet also folds
  its journal in);
- a `StoreLock` serializes writers across processes (``flock`` on a kept
  descriptor), and a mutex the threads of this process;
- an `IndexedReader` answers lookups from memory (a `KeyIndex`, caught up
  by the format's scan);
- `ClaimRecords` (``STORE.claims.json``, or SQLite's table) and
  `LeaseFiles` (``STORE.claims.d/``) hold claims and their leases.

Writers append only under the lock and only right after reading what other
writers appended, so a record is written once however many processes race.
Readers take no lock. So that writers in other processes wait for little
more than the write itself, a writer reads what others appended and
formats its records before it takes the lock; under the lock a look at
the file (usually a ``stat`` finding nothing new) and the write remain.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Final

import attrs

from .._lazy import np, pa
from ..exceptions import StoreError
from . import _fs
from ._claims import Claim, ClaimId, ClaimsFile, ClaimState, LeaseFiles, heartbeat, remaining
from ._claims import owner as process_owner
from ._clock import SYSTEM_CLOCK, Clock, Instant
from ._columns import NO_LIMITS, ColumnLimits, check_key_columns
from ._failures import FailureLog, LoggedFailures
from ._file_format import ClaimRecords, FileFormat
from ._index import Packed, pack
from ._lock import LockTimeout, StoreLock, lock_timeout
from ._process import written
from ._reader import IndexedReader
from ._records import Batch, Columns, Cursor, Record, as_records
from ._schema import HOST, THIS_HOST
from ._table import Selection, WholeStore, arrow_of

__all__ = ["ClaimRecords", "FileFormat", "FileStore", "Seen"]


@attrs.frozen(eq=False)
class Seen:
    """A whole read of a store (`FileStore.scanned`): its records and the format's cursor."""

    store: FileStore
    batch: Batch
    cursor: Cursor | None


class FileStore(LoggedFailures):
    """A `stet.typing.Store` in files on one machine (see the module docs).

    Failed runs go to ``STORE.failures.jsonl`` (see `._failures`).

    Args:
        path: The store's file as given (absolute; a symbolic link stays one).
        format: Reads and writes the file.
        claim_records: Where claims live; default ``STORE.claims.json``.
        limits: What the format cannot hold in column names.
        record_files: The files holding the records, as suffixes of the
            store's real path, that `clear` deletes in this order (the first
            is the store: once it is gone the others are never read). Empty:
            `clear` empties the store in place.
        clock: What times claims' leases (tests pass a fake one).
    """

    def __init__(
        self,
        path: str,
        format: FileFormat,
        *,
        claim_records: ClaimRecords | None = None,
        limits: ColumnLimits = NO_LIMITS,
        record_files: tuple[str, ...] = (),
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.path = path
        self.limits = limits
        self.clock = clock
        self._format = format
        self._claim_records = (
            claim_records if claim_records is not None else ClaimsFile(format.path)
        )
        self._leases = LeaseFiles(path)
        failures = format.path + ".failures.jsonl"
        self._failure_log = FailureLog(format.location, lambda: failures)
        self._record_files = record_files
        self._lock = StoreLock(format.path + ".lock")
        self._lock_tried = False
        self._looked = -1e9  # time.monotonic() of the last scan
        self._filesystem: str | None = None  # the filesystem's type, once looked up
        self._hosts: set[str] = set()  # machines seen in records, on a network filesystem
        self._reader: IndexedReader[Cursor] = IndexedReader(
            format.location,
            self._scan,
            before_fork=format.before_fork,
            in_child=self._in_child,
            source=self.records,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r})"

    @property
    def location(self) -> str:
        return self._format.location

    def exists(self) -> bool:
        return os.path.exists(self.path)

    def _in_child(self) -> None:
        self._lock.after_fork()
        self._format.after_fork()

    @contextmanager
    def _locked(self, timeout: float | None = None) -> Iterator[None]:
        if timeout is None:
            timeout = lock_timeout()
        with self._reader.mutex:
            try:
                self._lock.acquire(timeout=timeout)
            except LockTimeout:
                raise StoreError(
                    self.location,
                    f"could not take the lock {self._lock.path} within "
                    f"{timeout:g} s: another process holds it, or this "
                    "filesystem does not support locks (set STET_LOCK_TIMEOUT "
                    "to wait longer; stet's file stores need every process on one machine)",
                ) from None
            except OSError as exc:
                if exc.errno in _NO_LOCKS:
                    raise StoreError(
                        self.location,
                        f"the filesystem of {self._lock.path} does not support file locks "
                        f"({exc.strerror or exc}), which this store needs to keep writers "
                        "apart; put the store on a local disk, or use a PostgreSQL store",
                    ) from None
                if exc.errno in _READ_ONLY:
                    raise StoreError(
                        self.location,
                        f"cannot be written: {exc.strerror or exc} (making the lock file "
                        f"{self._lock.path}); a store that can only be read still answers "
                        "stet.read, stet status and the calls it holds, but a call it does "
                        "not hold cannot be recorded; copy the store somewhere writable, "
                        "or give a store there",
                    ) from None
                raise StoreError(
                    self.location,
                    f"cannot create the store's folder or lock file: {exc.strerror or exc}",
                ) from None
            try:
                yield
            finally:
                self._lock.release()

    # -- lookups --------------------------------------------------------------

    def refresh(self) -> None:
        self._reader.refresh()

    def _scan(self, cursor: Cursor | None) -> tuple[list[Batch], Cursor | None, bool]:
        if self._filesystem is None:
            self._filesystem = _fs.filesystem_of(self._format.path)
        network = _fs.is_network(self._filesystem)
        # On a network filesystem the machines that wrote are read too
        # (every column), to warn when more than one shares the store.
        batch, cursor, complete = self._format.scan(cursor, every_column=network)
        self._looked = time.monotonic()
        if network:
            self._hosts.update(_hosts_of(batch))
            _fs.warn_many_hosts(self.location, self._hosts, self._filesystem)
        return [batch], cursor, complete

    def knows(self, function: str, cols: tuple[str, ...], key: Packed) -> bool:
        return self._reader.index.knows(function, cols, key)

    def is_done(self, function: str, cols: tuple[str, ...], key: Packed) -> bool:
        if self.knows(function, cols, key):
            return True
        self.refresh()
        if self.knows(function, cols, key):
            return True
        if not self._lock_tried:
            # A run is about to start, and its record will need the lock: a
            # filesystem without locks, or one mounted read-only, fails now,
            # before the run, not after. (Only then: a recorded key is
            # skipped without the lock, so a store that can only be read,
            # an archived sweep, still skips what it holds.)
            with self._locked():
                self._lock_tried = True
            self.refresh()
            return self.knows(function, cols, key)
        return False

    def matches(self, function: str | None, cols: tuple[str, ...], values: tuple[str, ...]) -> bool:
        return self._reader.matches(function, cols, values)

    def check_can_hold(self, cols: Sequence[str]) -> None:
        # Only a store whose column names ignore case (SQLite) can refuse: a
        # key column ``Alpha`` in a store that has ``alpha`` would be written
        # into the other function's column.
        if not self.limits.case_insensitive:
            return
        self.refresh()
        known = {c.lower(): c for c in self._reader.index.columns()}
        for col in cols:
            other = known.get(col.lower())
            if other is not None and other != col:
                raise ValueError(
                    f"key name {col!r} and the column {other!r} of {self.location} differ "
                    "only in case, which this store cannot tell apart (SQLite column names "
                    "ignore case); rename the parameter, or use another store"
                )

    def prefer_order(self, names: Sequence[str]) -> None:
        self._reader.prefer_order(names)

    # -- writing --------------------------------------------------------------

    def add(
        self,
        function: str,
        cols: tuple[str, ...],
        keys: Iterable[tuple[str, ...]],
        *,
        duration: float | None = None,
        code: str | None = None,
    ) -> int:
        reader = self._reader
        with reader.mutex:
            # Ahead of the lock: read what others appended (readers need no
            # lock), pick the keys still new and format their records.
            # Rows of texts, not a dict per record: mark_done writes a million.
            if time.monotonic() - self._looked > _LOOKED_LATELY:
                self.refresh()
            read = reader.cursor
            rows, fresh = reader.fresh_rows(function, cols, keys, duration, code)
            if not rows:
                return 0  # recorded already (records are only removed by rewrites)
            encoded = self._format.encode(rows, read)
            with self._locked():
                if not self._format.unchanged(read):
                    self.refresh()  # what others appended meanwhile
                if reader.cursor is not read:
                    known = reader.index.knows
                    if any(known(function, cols, packed) for packed in fresh):
                        rows, fresh = reader.fresh_rows(
                            function, cols, list(fresh.values()), duration, code
                        )
                        if not rows:
                            return 0
                        encoded = None
                reader.cursor = self._format.append(rows, reader.cursor, encoded)
            # Other processes read the file, not this index: it is caught up
            # after the lock (this process's threads still wait, on the mutex).
            reader.index.add(function, cols, fresh)
            self._written()
            return len(rows)

    def _append(self, records: Sequence[Record]) -> int:
        """Write records (lock held, store just read); how many."""
        self._reader.cursor = self._format.append(records, self._reader.cursor)
        self._written()
        return len(records)

    def _written(self) -> None:
        self._hosts.add(THIS_HOST)
        written(self)

    def merge(self, records: Iterable[Record]) -> int:
        with self._locked():
            return self._reader.merge(records, self._check_new_group, self._append)

    def _check_new_group(self, cols: tuple[str, ...]) -> None:
        check_key_columns(cols, self.limits, store=self.location)
        self.check_can_hold(cols)

    def flush(self, timeout: float | None = None) -> None:
        with self._locked(timeout):
            self.refresh()
            self._reader.cursor = self._format.fold(self._reader.cursor)

    # -- whole-store operations ------------------------------------------------

    def records(self) -> list[Record]:
        return as_records(self.columns())

    def columns(self) -> Batch:
        """Every record as the format read it (columns for a big store), for whole-store tools."""
        return self.scanned()[0]

    def scanned(self) -> tuple[Batch, Seen]:
        """`columns`, and what lets `delete_rows` use this read if the store stays as it is."""
        with self._reader.mutex:
            batch, cursor, _ = self._format.scan(None, every_column=True)
            return batch, Seen(self, batch, cursor)

    def delete_rows(self, select: Selection, seen: Seen | None = None) -> int:
        """`delete` of the records ``select`` picks, column by column (see `delete_selected`).

        ``seen``, a read by `scanned` before the lock, is used again if one look
        under it (`FileFormat.unchanged`) finds the store as that read left it.
        """
        with self._locked():
            if seen is not None and seen.store is self and self._format.unchanged(seen.cursor):
                batch, cursor = seen.batch, seen.cursor
            else:
                batch, cursor, _ = self._format.scan(None, every_column=True)
            table = arrow_of(batch)
            doomed = np.asarray(select(WholeStore(self.location, table)), dtype=bool)
            removed, after = int(doomed.sum()), self._reader.cursor
            kept: Batch | Callable[[], Batch] = batch
            if removed and isinstance(batch, Columns):
                after = self._format.remove(table, doomed, cursor)
                kept = lambda: Columns.of_arrow(table.filter(pa.array(~doomed)))  # noqa: E731
            elif removed:  # a few records, each in its own order of columns (JSON)
                records = as_records(batch)
                kept = [r for r, d in zip(records, doomed.tolist(), strict=True) if not d]
                after = self._format.rewrite(kept, cursor)
            self._reader.reset(kept, after)
            return removed

    def delete(self, doomed: Callable[[Record], bool]) -> int:
        with self._locked():
            batch, cursor, _ = self._format.scan(None, every_column=True)
            records = as_records(batch)
            kept = [record for record in records if not doomed(record)]
            removed = len(records) - len(kept)
            after = self._format.rewrite(kept, cursor) if removed else self._reader.cursor
            self._reader.reset(kept, after)
            return removed

    def clear(self, *, in_place: bool = False) -> int:
        paths = [self._format.path + suffix for suffix in self._record_files]
        if not paths or in_place or os.path.islink(self.path):
            return self.delete(lambda record: True) if self.exists() else 0
        if not any(os.path.lexists(p) for p in paths):
            return 0
        with self._locked():
            batch, _, _ = self._format.scan(None, every_column=True)  # refuses a damaged store
            removed = len(batch)
            for path in paths:
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    raise StoreError(path, f"cannot be removed: {exc.strerror or exc}") from None
            self._reader.reset([], None)
            return removed

    # -- claims (Once(claim=True)) ----------------------------------------------
    #
    # Claim records change under the store's lock; leases are renewed by
    # their owner alone, without it (see _claims). A claim whose key is
    # recorded is finished: it is neither listed nor in anyone's way.

    def _judged(self, now: Instant) -> dict[ClaimId, Claim]:
        """The claim records, each with its expiry as of ``now``."""
        judged = {}
        for claim_id, claim in self._claim_records.load().items():
            left = remaining(claim, self._leases.read(claim), now)
            judged[claim_id] = attrs.evolve(claim, expires=now.wall + left)
        return judged

    def _finished(self, claim: Claim) -> bool:
        return self.knows(claim.function, claim.cols, pack(claim.values))

    def _save_claims(
        self, claims: dict[ClaimId, Claim], put: Sequence[Claim], drop: Sequence[ClaimId]
    ) -> None:
        """Write claim records (lock held, index fresh), dropping finished ones."""
        drop = [*drop, *(i for i, c in claims.items() if self._finished(c))]
        self._claim_records.save(put, drop)
        kept = {i: c for i, c in claims.items() if i not in drop}
        kept.update((c.id, c) for c in put)
        self._leases.sweep(kept.values())

    def claims(self) -> dict[ClaimId, Claim]:
        with self._reader.mutex:
            if not self._claim_records.load():
                return {}  # no claims: no need to read the records (stet status of a big store)
            self.refresh()
            now = self.clock.now()
            return {i: c for i, c in self._judged(now).items() if not self._finished(c)}

    def claim(
        self,
        function: str,
        cols: tuple[str, ...],
        values: tuple[str, ...],
        lease: float,
        *,
        owner: str | None = None,
    ) -> tuple[ClaimState, Claim | None]:
        with self._locked():
            self.refresh()
            if self.knows(function, cols, pack(values)):
                return "done", None
            now = self.clock.now()
            claims = self._judged(now)
            current = claims.get((function, cols, values))
            if current is not None and current.live(now.wall):
                return "busy", current
            epoch = current.epoch + 1 if current is not None else 1
            who = process_owner() if owner is None else owner
            claim = Claim(function, cols, values, who, epoch, now.wall + lease, lease, now.wall)
            self._leases.write(claim, now)  # before the record: a claim always has its lease
            self._save_claims(claims, [claim], [])
        if owner is None:
            heartbeat.hold(self, claim)
        return "claimed", claim

    def renew(self, claims: Sequence[Claim]) -> list[Claim]:
        # Without the store's lock. A claim that was taken over meanwhile
        # gains nothing: its lease file is its own (owner and epoch), and the
        # new claim has another.
        now = self.clock.now()
        renewed = []
        for claim in claims:
            self._leases.write(claim, now)
            renewed.append(attrs.evolve(claim, expires=now.wall + claim.lease))
        return renewed

    def complete(
        self, claim: Claim, *, duration: float | None = None, code: str | None = None
    ) -> bool:
        # A claim is lost when it expired and another worker took the key
        # over (or finished it): then nothing is written, so a key is never
        # completed twice. The record is written before the claim is dropped,
        # so a kill in between leaves a finished claim, never a lost record.
        heartbeat.drop(self, claim)
        try:
            with self._locked():
                self.refresh()
                claims = self._claim_records.load()
                if not claim.same(claims.get(claim.id)):
                    return False
                self._reader.add(
                    claim.function,
                    claim.cols,
                    [claim.values],
                    self._append,
                    duration=duration,
                    code=code,
                )
                self._save_claims(claims, [], [claim.id])
                return True
        finally:
            self._leases.delete(claim)

    def release(self, claim: Claim) -> None:
        heartbeat.drop(self, claim)
        try:
            with self._locked():
                self.refresh()
                claims = self._claim_records.load()
                if claim.same(claims.get(claim.id)):
                    self._save_claims(claims, [], [claim.id])
        finally:
            self._leases.delete(claim)


#: Seconds since the last look at the store within which a writer does
#: not look again before taking the lock (the run just checked its key; a
#: longer run gives others time to append, which is then read unlocked).
_LOOKED_LATELY: Final = 0.001

#: What ``flock`` fails with where a filesystem has no locks (NFS without
#: lockd, Lustre without ``-o flock``, some FUSE filesystems).
_NO_LOCKS: Final = frozenset({errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL})
#: A folder that can be read but not written to (a read-only mount, no permission).
_READ_ONLY: Final = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})


def _hosts_of(batch: Batch) -> set[str]:
    """The machines (``_stet_host``) that wrote these records."""
    if isinstance(batch, Columns):
        return {h for h in batch.distinct(HOST) if h} if HOST in batch.names else set()
    return {r[HOST] for r in batch if r.get(HOST)}


def given_path(path: str | os.PathLike[str]) -> str:
    """The store's path as given, made absolute (a symbolic link stays one)."""
    return os.path.abspath(Path(path))

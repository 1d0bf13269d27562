"""The store engine shared by every backend.

A store is a table of records. Each record is a row of texts: one column per
key parameter (the codec's canonical text), plus metadata columns whose names
start with ``_stet_``. An empty cell means "this record has no such column",
which is how records of several functions with different keys share a table.

Each backend is a small `RecordFormat`: it reads rows (all of them, or only
those added since a cursor it returned earlier), appends rows and rewrites
the whole table atomically. `Table` builds the rest on top: an in-memory
index so that a skip costs a set lookup, cheap change detection so that
records added by other processes are seen before a run, idempotent recording
under a cross-process lock, and the public ``has/record/load/remove/clear``.
"""

from __future__ import annotations

import atexit
import multiprocessing
import multiprocessing.util
import os
import re
import socket
import sys
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Final, Protocol

import attrs
import pyarrow as pa
import pyarrow.compute as pc

from .._codec import CODEC_VERSION, V1_CHANGED, KeyCodec, canonical_from_legacy, canonical_from_v1
from ..exceptions import KeyEncodingError, StoreError
from ._claims import Claim, ClaimId, LeaseFiles, heartbeat, remaining
from ._claims import owner as process_owner
from ._clock import SYSTEM_CLOCK, Clock, Instant
from ._columns import NO_LIMITS, ColumnLimits, check_column_name, check_key_columns
from ._lock import LockTimeout, StoreLock

__all__ = [
    "CODEC",
    "DURATION",
    "FUNCTION",
    "HOST",
    "META_COLUMNS",
    "TIMESTAMP",
    "Cursor",
    "RecordFormat",
    "Row",
    "Table",
    "check_column_name",
]

#: One record: column name to text. Absent columns are missing from the dict.
Row = dict[str, str]


class Columns:
    """Records held column by column, as a big store is read.

    The index is built from the few columns it needs, without a dict per
    record or a Python string per cell of the other columns: that is what
    keeps opening a store of a million records fast and small. Columns are
    loaded on first use and kept.

    Args:
        names: The column names.
        length: The number of records.
        load: Returns one column as a list, None where a record lacks it.
    """

    def __init__(
        self,
        names: Sequence[str],
        length: int,
        load: Callable[[str], list[str | None]],
        arrow: pa.Table | None = None,
    ) -> None:
        self.names = list(names)
        self.length = length
        self._load = load
        self._loaded: dict[str, list[str | None]] = {}
        self._arrow = arrow

    @classmethod
    def of_arrow(cls, table: pa.Table) -> Columns:
        """Columns of an Arrow table of strings."""
        return cls(table.column_names, table.num_rows, lambda n: table.column(n).to_pylist(), table)

    def distinct(self, name: str) -> set[str | None]:
        """The distinct values of a column (without loading it, for Arrow)."""
        if self._arrow is not None and name not in self._loaded:
            return set(pc.unique(self._arrow.column(name)).to_pylist())
        return set(self.column(name))

    def has_null(self, name: str) -> bool:
        """True if some record lacks the column."""
        if self._arrow is not None:
            return bool(self._arrow.column(name).null_count)
        return None in self.column(name)

    def contains(self, name: str, text: str) -> bool:
        """True if some cell of the column contains ``text``."""
        if self._arrow is not None:
            column = self._arrow.column(name)
            return bool(pc.any(pc.match_substring(column, text)).as_py())
        return any(text in cell for cell in self.column(name) if cell is not None)

    def matches(self, name: str, pattern: str) -> bool:
        """True if some cell of the column matches the (RE2) regular expression."""
        if self._arrow is not None:
            column = self._arrow.column(name)
            return bool(pc.any(pc.match_substring_regex(column, pattern)).as_py())
        compiled = re.compile(pattern)
        return any(compiled.search(cell) for cell in self.column(name) if cell is not None)

    def column(self, name: str) -> list[str | None]:
        loaded = self._loaded.get(name)
        if loaded is None:
            loaded = self._loaded[name] = self._load(name)
        return loaded

    def __len__(self) -> int:
        return self.length

    def release(self) -> None:
        """Drop the loaded columns and give Arrow's unused memory back."""
        self._loaded.clear()
        if self._arrow is not None:
            self._arrow = None
            pa.default_memory_pool().release_unused()

    def to_rows(self) -> list[Row]:
        """The records as row dicts (for whole-store operations)."""
        data = [self.column(n) for n in self.names]
        return [
            {n: v for n, v in zip(self.names, values, strict=True) if v is not None}
            for values in zip(*data, strict=True)
        ]


#: What a scan returns: rows, or columns when a whole store is read at once.
Records = Sequence[Row] | Columns


def as_rows(records: Records) -> list[Row]:
    """Row dicts whichever form ``records`` came in."""
    return records.to_rows() if isinstance(records, Columns) else list(records)


#: Whatever a format needs to read only what is new; None means "nothing read".
Cursor = object

TIMESTAMP: Final = "_stet_timestamp"
FUNCTION: Final = "_stet_function"
DURATION: Final = "_stet_duration"
HOST: Final = "_stet_host"
CODEC: Final = "_stet_codec"
CODE: Final = "_stet_code"
META_COLUMNS: Final = (FUNCTION, TIMESTAMP, DURATION, HOST, CODE, CODEC)


def lock_timeout() -> float:
    """Seconds a writer waits for a store's lock (``STET_LOCK_TIMEOUT``, default 120)."""
    try:
        return float(os.environ.get("STET_LOCK_TIMEOUT", "120"))
    except ValueError:
        return 120.0


_HOST: Final = socket.gethostname()
_CURRENT: Final = str(CODEC_VERSION)

IndexKey = tuple[str, tuple[str, ...]]
#: A key as the index holds it: see `pack`.
Packed = str | tuple[str, ...]
Index = dict[IndexKey, set[Packed]]
_SEP: Final = "\x1f"


def pack(values: tuple[str, ...]) -> Packed:
    """One key's texts as a single hashable, as small as possible.

    One text stays itself; several are joined with the unit separator, which
    is unambiguous for a fixed number of columns unless a text contains it,
    in which case the tuple is kept. A million keys then cost about one
    string each in memory.
    """
    if len(values) == 1:
        return values[0]
    for text in values:
        if _SEP in text:
            return values
    return _SEP.join(values)


def unpack(packed: Packed, width: int) -> tuple[str, ...]:
    """The texts `pack` made ``packed`` of, for a key of ``width`` columns."""
    if isinstance(packed, tuple):
        return packed
    return (packed,) if width == 1 else tuple(packed.split(_SEP))


class RecordFormat(Protocol):
    """How one kind of file (or database) holds the records table.

    Implementations are small and hold no records themselves; `Table` calls
    `append` and `rewrite` only while holding `lock`, and only right after a
    `scan` brought its cursor up to date.
    """

    location: str

    def scan(
        self, cursor: Cursor | None, *, every_column: bool = False
    ) -> tuple[Records, Cursor | None, bool]:
        """Read rows.

        Returns ``(rows, cursor, complete)``: with ``complete`` true the rows
        are the whole table (the store was new, replaced or rewritten);
        otherwise they are the rows added since ``cursor``. A missing store
        gives ``([], None, True)``. A format may leave out metadata
        columns the index does not need unless ``every_column`` is true.
        """
        ...

    def append(self, rows: Sequence[Row], cursor: Cursor | None) -> Cursor:
        """Add rows (creating the store if ``cursor`` is None); return the cursor."""
        ...

    def rewrite(self, rows: Sequence[Row], cursor: Cursor | None) -> Cursor:
        """Replace the whole table atomically; return the new cursor."""
        ...

    def lock_path(self) -> str:
        """The lock file that serializes writers of this store."""
        ...

    def before_fork(self) -> None:
        """Close what a forked child must not inherit (database connections)."""
        ...

    def after_fork(self) -> None:
        """Drop process-bound resources (connections) in a forked child."""
        ...

    def flush(self, cursor: Cursor | None) -> Cursor | None:
        """Move buffered records into the main file (lock held); return the cursor."""
        ...

    def load_claims(self) -> dict[ClaimId, Claim]:
        """The claims in progress."""
        ...

    def save_claims(self, put: Sequence[Claim], drop: Sequence[ClaimId]) -> None:
        """Add or replace claims and remove others (lock held)."""
        ...


_LIVE_TABLES: weakref.WeakSet[Table] = weakref.WeakSet()
_WRITTEN_TABLES: weakref.WeakSet[Table] = weakref.WeakSet()


_HELD_FOR_FORK: list[Table] = []


def _before_fork() -> None:
    # No store is in use while the process forks, and no database connection
    # is open: a child that inherits one (even only to close it) can corrupt
    # SQLite's shared WAL index, so that committed records vanish.
    for table in list(_LIVE_TABLES):
        if table._mutex.acquire(timeout=5):
            _HELD_FOR_FORK.append(table)
            table._format.before_fork()


def _release_after_fork() -> None:
    while _HELD_FOR_FORK:
        _HELD_FOR_FORK.pop()._mutex.release()


def _reinit_after_fork() -> None:
    _HELD_FOR_FORK.clear()  # the child makes new mutexes
    for table in list(_LIVE_TABLES):
        table._after_fork()


#: Arrow reads stores without its thread pools. A pool thread still holding
#: a Python object when the interpreter exits is torn down mid-C++ and aborts
#: the process ("terminate called without an active exception", exit 134;
#: apache/arrow#34314), which a cluster job reports as a failure. Measured on
#: a million-record store, the pools did not make opening faster.
ARROW_THREADS: Final = False


def _flush_at_exit() -> None:
    if not _WRITTEN_TABLES:
        return
    for table in list(_WRITTEN_TABLES):
        try:
            table.flush(timeout=5)
        except Exception as exc:  # exiting: report, never raise
            print(
                f"[stet] Could not fold buffered records into {table.location}: {exc}",
                file=sys.stderr,
            )


os.register_at_fork(
    before=_before_fork,
    after_in_parent=_release_after_fork,
    after_in_child=_reinit_after_fork,
)
atexit.register(_flush_at_exit)


def _flush_in_worker() -> None:
    # Worker processes of multiprocessing leave through os._exit, which skips
    # atexit; multiprocessing's finalizers still run when a worker finishes
    # normally. (In the main process they run after Arrow has shut down, so
    # there atexit does the work.)
    if multiprocessing.parent_process() is not None:
        _flush_at_exit()


multiprocessing.util.Finalize(None, _flush_in_worker, exitpriority=1)


def now_text() -> str:
    """The current UTC time as ISO 8601 text with microseconds."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


class Table:
    """A store: the shared engine behind every backend class.

    Subclasses only name their `RecordFormat`. Methods taking ordinary Python
    values (`has`, `record`, `remove`) encode them with the backend's codec;
    the decorator uses the ``*_texts`` methods with keys it already encoded.

    Args:
        path: The store's file.
        codec: The codec used to encode and decode key values.
        clock: What times claims' leases (the machine's clocks by default;
            tests pass a fake one).
    """

    format_class: ClassVar[type[Any]]
    extensions: ClassVar[tuple[str, ...]] = ()
    #: What this store cannot hold in column names, beyond the shared rule.
    column_limits: ClassVar[ColumnLimits] = NO_LIMITS
    #: The files holding the records, as suffixes of the store's path, that
    #: `clear` deletes in this order. The first is the store: once it is gone
    #: the others are never read. Empty: `clear` empties the store in place.
    record_files: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        codec: KeyCodec | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ):
        self._path = os.fspath(path)
        self.codec = codec if codec is not None else KeyCodec()
        self.clock = clock
        self._format: RecordFormat = self._open_format()
        self._index: Index = {}
        self._order: dict[tuple[str, ...], tuple[str, ...]] = {}
        self._cursor: Cursor | None = None
        self._mutex = threading.RLock()
        self._lock = self._make_lock()
        _LIVE_TABLES.add(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r})"

    @property
    def path(self) -> Path:
        """The store's file."""
        return Path(self._path)

    @property
    def location(self) -> str:
        """Where the store is, as shown in messages."""
        return self._format.location

    def _open_format(self) -> RecordFormat:
        format_: RecordFormat = self.format_class(self._path)
        return format_

    def _make_lock(self) -> StoreLock:
        return StoreLock(self._format.lock_path())

    def _after_fork(self) -> None:
        self._mutex = threading.RLock()
        self._lock.after_fork()
        self._format.after_fork()

    @contextmanager
    def _locked(self, timeout: float | None = None) -> Iterator[None]:
        if timeout is None:
            timeout = lock_timeout()
        with self._mutex:
            try:
                self._lock.acquire(timeout=timeout)
            except LockTimeout:
                raise StoreError(
                    self.location,
                    f"could not take the lock {self._format.lock_path()} within "
                    f"{timeout:g} s: another process holds it, or this "
                    "filesystem does not support locks (set STET_LOCK_TIMEOUT "
                    "to wait longer; stet's file stores need every process on one machine)",
                ) from None
            except OSError as exc:
                raise StoreError(
                    self.location,
                    f"cannot create the store's folder or lock file: {exc.strerror or exc}",
                ) from None
            try:
                yield
            finally:
                self._lock.release()

    # -- index maintenance ------------------------------------------------

    def sync(self) -> None:
        """Bring the index up to date with what other processes wrote."""
        with self._mutex:
            records, cursor, complete = self._format.scan(self._cursor)
            if complete:
                self._rebuild(records)  # readers in other threads keep the old index meanwhile
            else:
                self._ingest(records, self._index)
            self._cursor = cursor

    def _index_row(self, row: Row, index: Index | None = None) -> None:
        function, cols, values = self.identity(row)
        target = self._index if index is None else index
        target.setdefault((function, cols), set()).add(pack(values))

    def identity(self, row: Row) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
        """The (function, key columns, key texts) a row records.

        Rows without a ``_stet_codec`` (stet 0.0.x, hand-written) hold
        ``str(value)`` texts, and rows of key rules version 1 a few texts
        that changed since: both are canonicalized here.
        """
        version = row.get(CODEC)
        if version == _CURRENT:
            keys = {c: t for c, t in row.items() if c[:6] != "_stet_"}
        elif version is None:
            keys = {c: canonical_from_legacy(t) for c, t in row.items() if c[:6] != "_stet_"}
        elif version == "1":
            keys = {c: canonical_from_v1(t) for c, t in row.items() if c[:6] != "_stet_"}
        else:
            self._bad_codec_version(version)
        cols = tuple(sorted(keys))
        return row.get(FUNCTION, ""), cols, tuple(keys[c] for c in cols)

    def _bad_codec_version(self, version: str) -> None:
        if version.isdigit() and int(version) > CODEC_VERSION:
            raise StoreError(
                self.location,
                f"a record was written with key rules version {version}, newer "
                f"than this stet's ({CODEC_VERSION}); upgrade stet to use this store",
            )
        raise StoreError(self.location, f"_stet_codec holds {version!r}, not a version")

    # -- the decorator's interface (texts already encoded) ------------------

    def has_texts(self, function: str, cols: tuple[str, ...], key: Packed) -> bool:
        """True if the cached index already holds this (packed) key (no I/O)."""
        index = self._index
        done = index.get((function, cols))
        if done is not None and key in done:
            return True
        done = index.get(("", cols))
        return done is not None and key in done

    def is_done(self, function: str, cols: tuple[str, ...], key: Packed) -> bool:
        """True if the (packed) key is recorded, looking for new records when not cached."""
        if self.has_texts(function, cols, key):
            return True
        self.sync()
        return self.has_texts(function, cols, key)

    def add_texts(
        self,
        function: str,
        cols: tuple[str, ...],
        keys: Iterable[tuple[str, ...]],
        duration: float | None = None,
        code: str | None = None,
    ) -> int:
        """Record keys (sorted-column order) not yet recorded; return how many were new.

        ``code`` is the short hash of the function's source, when known.
        """
        with self._locked():
            self.sync()
            return self._add_locked(function, cols, keys, duration, code)

    def _add_locked(
        self,
        function: str,
        cols: tuple[str, ...],
        keys: Iterable[tuple[str, ...]],
        duration: float | None,
        code: str | None,
    ) -> int:
        rows, seen = self._new_rows(function, cols, keys, duration, code)
        if rows:
            self._cursor = self._format.append(rows, self._cursor)
            self._index.setdefault((function, cols), set()).update(seen)
            _WRITTEN_TABLES.add(self)
        return len(rows)

    def _new_rows(
        self,
        function: str,
        cols: tuple[str, ...],
        keys: Iterable[tuple[str, ...]],
        duration: float | None,
        code: str | None,
    ) -> tuple[list[Row], set[Packed]]:
        """The rows recording ``keys`` that the index does not hold yet, and their packed keys."""
        timestamp = now_text()
        order = self._order.get(cols)
        seen: set[Packed] = set()
        rows: list[Row] = []
        for values in keys:
            packed = pack(values)
            if packed in seen or self.has_texts(function, cols, packed):
                continue
            seen.add(packed)
            row = dict(zip(cols, values, strict=True))
            if order is not None:
                row = {c: row[c] for c in order}
            if function:
                row[FUNCTION] = function
            row[TIMESTAMP] = timestamp
            if duration is not None:
                row[DURATION] = f"{duration:.6f}"
            row[HOST] = _HOST
            if code:
                row[CODE] = code
            row[CODEC] = _CURRENT
            rows.append(row)
        return rows, seen

    def check_can_hold(self, cols: Sequence[str]) -> None:
        """Raise `ValueError` if the store's columns cannot hold this key beside theirs.

        Only a store whose column names ignore case (SQLite) can refuse: a
        key column ``Alpha`` in a store that has ``alpha`` would be written
        into the other function's column.
        """
        if not self.column_limits.case_insensitive:
            return
        self.sync()
        known = {c.lower(): c for (_, group) in self._index for c in group}
        for col in cols:
            other = known.get(col.lower())
            if other is not None and other != col:
                raise ValueError(
                    f"key name {col!r} and the column {other!r} of {self.location} differ "
                    "only in case, which this store cannot tell apart (SQLite column names "
                    "ignore case); rename the parameter, or use another store"
                )

    def prefer_order(self, names: Sequence[str]) -> None:
        """Write these key columns in this order (the function's parameter order).

        A key is sorted by column name everywhere else; only a new store's
        columns (a CSV header, say) take this order, so they read as the
        function is written.
        """
        order = tuple(names)
        self._order.setdefault(tuple(sorted(order)), order)

    # -- claims (Once(claim=True)) ------------------------------------------
    #
    # Claim records change under the store's lock; leases are renewed by
    # their owner alone, without it (see _claims). A claim whose key is
    # recorded is finished: it is neither listed nor in anyone's way.

    @property
    def _leases(self) -> LeaseFiles:
        return LeaseFiles(self._path)

    def _judged(self, now: Instant) -> dict[ClaimId, Claim]:
        """The claim records, each with its expiry as of ``now``."""
        judged = {}
        for claim_id, claim in self._format.load_claims().items():
            left = remaining(claim, self._leases.read(claim), now)
            judged[claim_id] = attrs.evolve(claim, expires=now.wall + left)
        return judged

    def _finished(self, claim: Claim) -> bool:
        return self.has_texts(claim.function, claim.cols, pack(claim.values))

    def _save_claims(
        self, claims: dict[ClaimId, Claim], put: Sequence[Claim], drop: Sequence[ClaimId]
    ) -> None:
        """Write claim records (lock held, index synced), dropping finished ones."""
        drop = [*drop, *(i for i, c in claims.items() if self._finished(c))]
        self._format.save_claims(put, drop)
        kept = {i: c for i, c in claims.items() if i not in drop}
        kept.update((c.id, c) for c in put)
        self._leases.sweep(kept.values())

    def claims(self) -> dict[ClaimId, Claim]:
        """The claims in progress (live or expired), with their expiry as of now."""
        with self._mutex:
            self.sync()
            now = self.clock.now()
            return {i: c for i, c in self._judged(now).items() if not self._finished(c)}

    def claim_texts(
        self,
        function: str,
        cols: tuple[str, ...],
        values: tuple[str, ...],
        lease: float,
        *,
        owner: str | None = None,
    ) -> tuple[str, Claim | None]:
        """Claim a key, atomically.

        Returns ``("done", None)`` if the key is recorded, ``("busy", claim)``
        with another live claim, or ``("claimed", claim)`` with the new
        claim. A claim for this process (``owner`` None) is then kept alive
        by its heartbeat; one made for another ``owner`` (tools, tests) is
        renewed only by `renew_claims`.
        """
        with self._locked():
            self.sync()
            if self.has_texts(function, cols, pack(values)):
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

    def renew_claims(self, claims: Sequence[Claim]) -> list[Claim]:
        """Renew claims by writing their leases, without the store's lock.

        A claim that was taken over meanwhile gains nothing: its lease file
        is its own (owner and epoch), and the new claim has another.
        """
        now = self.clock.now()
        renewed = []
        for claim in claims:
            self._leases.write(claim, now)
            renewed.append(attrs.evolve(claim, expires=now.wall + claim.lease))
        return renewed

    def complete_claim(
        self, claim: Claim, duration: float | None = None, code: str | None = None
    ) -> bool:
        """Record a claimed key and drop the claim; False if the claim was lost.

        A claim is lost when it expired and another worker took the key
        over (or finished it): then nothing is written, so a key is never
        completed twice. The record is written before the claim is dropped,
        so a kill in between leaves a finished claim, never a lost record.
        """
        heartbeat.drop(self, claim)
        try:
            with self._locked():
                self.sync()
                claims = self._format.load_claims()
                if not claim.same(claims.get(claim.id)):
                    return False
                self._add_locked(claim.function, claim.cols, [claim.values], duration, code)
                self._save_claims(claims, [], [claim.id])
                return True
        finally:
            self._leases.delete(claim)

    def release_claim(self, claim: Claim) -> None:
        """Give a claim up (the run failed): the key may run again at once."""
        heartbeat.drop(self, claim)
        try:
            with self._locked():
                self.sync()
                claims = self._format.load_claims()
                if claim.same(claims.get(claim.id)):
                    self._save_claims(claims, [], [claim.id])
        finally:
            self._leases.delete(claim)

    def merge_rows(self, rows: Iterable[Row]) -> int:
        """Add another store's rows, keeping one row per key; return how many were added.

        Rows keep their metadata (function, time, host...). Rows of stet
        0.0.x are written with canonical texts.
        """
        with self._locked():
            self.sync()
            added: list[Row] = []
            new: Index = {}
            for row in rows:
                function, cols, values = self.identity(row)
                packed = pack(values)
                done = self._index.get((function, cols))
                group = new.setdefault((function, cols), set())
                if (done is not None and packed in done) or packed in group:
                    continue
                if not group:  # a group seen for the first time
                    check_key_columns(cols, self.column_limits, store=self.location)
                    self.check_can_hold(cols)
                if function and not function.isprintable():
                    raise StoreError(
                        self.location,
                        f"a record to merge names the function {function!r}, which holds a "
                        "control character no store line may hold; fix it in the source",
                    )
                clean = {c: t for c, t in row.items() if c[:6] == "_stet_"}
                clean.update(zip(cols, values, strict=True))
                clean[CODEC] = _CURRENT
                added.append(clean)
                group.add(packed)
            if added:
                self._cursor = self._format.append(added, self._cursor)
                _WRITTEN_TABLES.add(self)
                for group_key, keys in new.items():  # only once they are written
                    self._index.setdefault(group_key, set()).update(keys)
            return len(added)

    def flush(self, timeout: float | None = None) -> None:
        """Move records a store buffers into its main file.

        Only the Parquet store buffers (in ``STORE.journal.csv``); stet does
        this by itself in batches and when the process exits. Call it to
        make `pandas.read_parquet` see every record right now.
        """
        with self._locked(timeout):
            self.sync()
            self._cursor = self._format.flush(self._cursor)

    # -- whole-table operations -------------------------------------------

    def rows(self) -> list[Row]:
        """Every row in the store, as stored (a fresh read)."""
        with self._mutex:
            records, _, _ = self._format.scan(None, every_column=True)
            return as_rows(records)

    def exists(self) -> bool:
        """True if the store has been created."""
        return os.path.exists(self._path)

    def remove_where(self, keep: Any) -> int:
        """Rewrite the store without rows for which ``keep(row)`` is false."""
        with self._locked():
            records, cursor, _ = self._format.scan(None, every_column=True)
            rows = as_rows(records)
            kept = [row for row in rows if keep(row)]
            removed = len(rows) - len(kept)
            if removed:
                self._cursor = self._format.rewrite(kept, cursor)
            self._rebuild(kept)
            return removed

    def _rebuild(self, records: Records) -> None:
        index: Index = {}
        self._ingest(records, index)
        self._index = index

    def _ingest(self, records: Records, index: Index) -> None:
        if isinstance(records, Columns):
            done = self._ingest_columns(records, index)
            if not done:
                for row in as_rows(records):
                    self._index_row(row, index)
            # A big read leaves Arrow's allocator holding the columns' memory.
            records.release()
            return
        for row in as_rows(records):
            self._index_row(row, index)

    def _ingest_columns(self, columns: Columns, index: Index) -> bool:
        """Index uniform columns without a dict per record; False if not uniform.

        Uniform: every record has every key column and texts of today's key
        rules (version 1 texts count when none of them changed since), which
        is what a store with one function (or one key) looks like.
        """
        names = columns.names
        if CODEC not in names:
            return False
        versions = columns.distinct(CODEC)
        keys = sorted(n for n in names if n[:6] != "_stet_")
        if not versions <= {_CURRENT, "1"}:
            return False
        if "1" in versions and any(columns.matches(k, V1_CHANGED) for k in keys):
            return False
        if any(columns.has_null(k) for k in keys):
            return False
        cols = tuple(keys)
        distinct = columns.distinct(FUNCTION) if FUNCTION in names else {None}
        separated = len(keys) > 1 and any(columns.contains(k, _SEP) for k in keys)
        values = [columns.column(k) for k in keys]
        if len(values) == 1:
            packed: Iterable[Packed] = values[0]  # type: ignore[assignment]  # no None: checked
        elif separated:
            packed = [pack(v) for v in zip(*values, strict=True)]
        else:
            packed = map(_SEP.join, zip(*values, strict=True))
        if len(distinct) == 1:
            (function,) = distinct
            index.setdefault((function or "", cols), set()).update(packed)
            return True
        functions = columns.column(FUNCTION)
        for function, key in zip(functions, packed, strict=True):
            index.setdefault((function or "", cols), set()).add(key)
        return True

    # -- public API with ordinary values ------------------------------------

    def _encode_key(self, key: Mapping[str, object]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        if not isinstance(key, Mapping):
            raise TypeError(f"a key must be a mapping of parameter names to values, got {key!r}")
        names = list(key)
        check_key_columns(names, self.column_limits, store=self.location)
        cols = tuple(sorted(names))
        values: list[str] = []
        for col in cols:
            try:
                values.append(self.codec.encode(key[col]))
            except KeyEncodingError as exc:
                raise exc.for_parameter(col) from None
        return cols, tuple(values)

    def has(self, key: Mapping[str, object], *, function: str | None = None) -> bool:
        """True if a record matches ``key``.

        A record matches when it holds each given column with the given
        value: all its key columns, or some of them, as in stet 0.0.x (a
        record of ``x=2, y=3`` makes ``has({"x": 2})`` true). A decorated
        function's own lookups are exact.

        Args:
            key: Parameter names and values.
            function: Only records of this function (and records without a
                function); None looks at every function.
        """
        cols, values = self._encode_key(key)
        self.sync()
        packed = pack(values)
        for (fn, c), done in list(self._index.items()):
            if function is not None and fn not in (function, ""):
                continue
            if c == cols:
                if packed in done:
                    return True
            elif cols and set(cols) < set(c):
                where = [c.index(col) for col in cols]
                for other in done:
                    texts = unpack(other, len(c))
                    if all(texts[i] == t for i, t in zip(where, values, strict=True)):
                        return True
        return False

    def record(self, key: Mapping[str, object], *, function: str | None = None) -> bool:
        """Record ``key`` as done; return False if it already was.

        Args:
            key: Parameter names and values.
            function: The function the record belongs to; None records it
                for every function whose key columns match.
        """
        cols, values = self._encode_key(key)
        return self.add_texts(function or "", cols, [values]) == 1

    def remove(self, key: Mapping[str, object], *, function: str | None = None) -> int:
        """Remove every record matching ``key`` (see `has`); return how many.

        A string that matches nothing where a record holds the number (or
        bool, or None) it spells, as stet 0.0.x stored values, is refused
        with the call to write instead.

        Args:
            key: Parameter names and values, all or some of a record's key columns.
            function: Only this function's records; None removes the key for
                every function.

        Raises:
            KeyEncodingError: ``key`` holds such a string.
        """
        return self.remove_matching(key, function, type(self).__name__ + ".remove({key})")

    def remove_matching(self, key: Mapping[str, object], function: str | None, call: str) -> int:
        """`remove`, naming ``call`` (with ``{key}`` for the key) in its hint."""
        cols, values = self._encode_key(key)
        legacy = [
            canonical_from_legacy(v) if isinstance(v, str) else None for v in map(key.get, cols)
        ]
        meant = tuple(t if t is not None else v for t, v in zip(legacy, values, strict=True))
        spelt = 0  # records that ``meant`` matches

        def keep(row: Row) -> bool:
            nonlocal spelt
            fn, c, v = self.identity(row)
            if function is not None and fn != function:
                return True
            if meant != values and _matches(c, v, cols, meant):
                spelt += 1
            return not _matches(c, v, cols, values)

        removed = self.remove_where(keep)
        if removed or not spelt:
            return removed
        typed = dict(key)
        changed = [c for c, m, v in zip(cols, meant, values, strict=True) if m != v]
        for col in changed:
            typed[col] = self._decode(meant[cols.index(col)])
        given = ", ".join(f"{c}={key[c]!r}" for c in changed)
        holds = ", ".join(f"{c}={typed[c]!r}" for c in changed)
        raise KeyEncodingError(
            "str",
            changed[0],
            reason=f"no record has {given}, but {spelt} record(s) have {holds}; key values "
            "keep their type now (stet 0.0.x compared them as text), so write "
            + call.replace("{key}", repr(typed)),
        )

    def clear(self) -> None:
        """Remove every record.

        The store's file is deleted (a Parquet store's journal too), as
        stet 0.0.x did; a SQLite or PostgreSQL store, and a store reached
        through a symbolic link, are emptied in place instead. The lock file
        and the claims of running workers stay, so a sweep running meanwhile
        loses nothing it records afterwards.
        """
        self.clear_counted()

    def clear_counted(self, *, in_place: bool = False) -> int:
        """`clear`, returning how many records were removed.

        ``in_place`` empties the file instead of deleting it: the store was
        named through a symbolic link, which must keep pointing at a store.
        """
        real = os.path.realpath(self._path)  # where the format keeps the files
        paths = [real + suffix for suffix in self.record_files]
        if not paths or in_place or os.path.islink(self._path):
            return self.remove_where(lambda row: False) if self.exists() else 0
        if not any(os.path.lexists(p) for p in paths):
            return 0
        with self._locked():
            records, _, _ = self._format.scan(None, every_column=True)  # refuses a damaged store
            removed = len(records)
            for path in paths:
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    raise StoreError(path, f"cannot be removed: {exc.strerror or exc}") from None
            self._cursor = None
            self._rebuild([])
            return removed

    def load(self) -> list[dict[str, object]]:
        """Every record, with key values decoded to Python values.

        Metadata comes as ``_stet_timestamp`` (aware datetime),
        ``_stet_duration`` (float), and texts for the other ``_stet_`` columns.
        """
        out: list[dict[str, object]] = []
        for row in self.rows():
            _, cols, values = self.identity(row)
            record: dict[str, object] = {
                c: self._decode(t) for c, t in zip(cols, values, strict=True)
            }
            for col, text in row.items():
                if col[:6] == "_stet_":
                    record[col] = _meta_value(col, text)
            out.append(record)
        return out

    def _decode(self, text: str) -> object:
        try:
            return self.codec.decode(text)
        except ValueError as exc:
            raise StoreError(self.location, f"a key cell cannot be read: {exc}") from None


def _matches(
    cols: tuple[str, ...], texts: tuple[str, ...], wanted: tuple[str, ...], values: tuple[str, ...]
) -> bool:
    """True if a record of ``cols``/``texts`` holds each ``wanted`` column's value.

    An empty key matches only records with no key columns (a function
    without parameters), never every record.
    """
    if not wanted:
        return not cols
    held = dict(zip(cols, texts, strict=True))
    return all(held.get(c) == v for c, v in zip(wanted, values, strict=True))


def _meta_value(col: str, text: str) -> object:
    if col == TIMESTAMP:
        try:
            stamp = datetime.fromisoformat(text)
        except ValueError:
            return text
        return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)
    if col in (DURATION, CODEC):
        try:
            return float(text) if col == DURATION else int(text)
        except ValueError:
            return text
    return text

"""What a store keeps in memory to answer lookups: `IndexedReader`.

Every built-in store reads its records the same way: a `KeyIndex` of the
keys recorded, a cursor saying how far the store has been read, and a
scan that reads what is new since that cursor (or everything, when the
store was replaced or rewritten). `IndexedReader` is that part, over any
scan function, together with the mutex that keeps a process's threads
apart and the order a new store's key columns are written in. A store
is composed of one, its own scan and its own writes; it overrides
nothing, and a store of your own may use it the same way.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from ._index import Group, KeyIndex, Packed
from ._key_columns import KeyColumns
from ._new_records import NewRecords
from ._process import track
from ._records import Batch, Record
from ._schema import new_record_rows

__all__ = ["IndexedReader", "Scan"]

C = TypeVar("C")

#: Reads records: ``scan(cursor) -> (batches, cursor, complete)``. With
#: ``complete`` true the batches are the whole store (it was new, replaced or
#: rewritten, or ``cursor`` was None); otherwise what was added since
#: ``cursor``. A store with nothing in it gives ``([], None, True)``.
Scan = Callable[[C | None], tuple[Sequence[Batch], C | None, bool]]


def _nothing() -> None:
    pass


class IndexedReader(Generic[C]):
    """The keys a store holds, kept in memory and caught up by reading only what is new.

    Args:
        location: The store as messages name it.
        scan: Reads the store's records from a cursor (see `Scan`).
        before_fork: Called before this process forks, once operations in
            flight have finished (close a database connection).
        in_child: Called in a forked child (drop inherited connections,
            locks and files unused).
        source: Reads all of the store's records, for the rare lookup the
            index's digests cannot answer alone (see `KeyIndex`).

    Attributes:
        index: The keys recorded. Reading the store anew replaces it whole,
            so a lookup in another thread sees the old one or the new one.
        cursor: How far the store has been read (what `scan` returned last).
        mutex: Held while the store is read or written; a forked child gets
            a new one.

    Example:
        >>> records = [{"x": "1", "_stet_function": "run"}]
        >>> reader = IndexedReader("demo", lambda cursor: ([records], None, True))
        >>> reader.refresh()
        >>> reader.index.knows("run", ("x",), "1"), reader.index.knows("run", ("x",), "2")
        (True, False)
    """

    def __init__(
        self,
        location: str,
        scan: Scan[C],
        *,
        before_fork: Callable[[], None] = _nothing,
        in_child: Callable[[], None] = _nothing,
        source: Callable[[], Iterable[Record]] | None = None,
    ) -> None:
        self.location = location
        self._source = source
        self.index = KeyIndex(location, source)
        self.cursor: C | None = None
        self.mutex = threading.RLock()
        self._scan = scan
        self._before_fork = before_fork
        self._in_child = in_child
        self._order: dict[tuple[str, ...], tuple[str, ...]] = {}
        track(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r})"

    # -- reading --------------------------------------------------------------

    def refresh(self) -> None:
        """Read what other writers added since the last look."""
        with self.mutex:
            batches, cursor, complete = self._scan(self.cursor)
            if complete:
                index = KeyIndex(self.location, self._source)
                for batch in batches:
                    index.ingest(batch)
                self.index = index
            else:
                for batch in batches:
                    self.index.ingest(batch)
            self.cursor = cursor

    def reread(self) -> None:
        """Read the whole store anew (after a change not read incrementally)."""
        with self.mutex:
            self.cursor = None
            self.refresh()

    def reset(self, records: Batch | Callable[[], Batch], cursor: C | None) -> None:
        """Hold exactly these records: the whole store, read up to ``cursor`` (a rewrite).

        ``records`` may be a function giving them. The index is built on the
        first lookup, not here: for a store of a million records it takes
        most of a second, and a process that rewrote its store and exits
        (``stet reset --where``) never asks it.
        """
        with self.mutex:
            self.index = _Deferred(self, records)  # type: ignore[assignment]  # a KeyIndex on use
            self.cursor = cursor

    def reread_later(self) -> None:
        """`reread` on the first lookup (after a rewrite by a process that may exit now)."""
        with self.mutex:
            self.index = _Deferred(self, None)  # type: ignore[assignment]  # a KeyIndex on use
            self.cursor = None

    def built(self) -> KeyIndex:
        """The index, built now if `reset` or `reread_later` deferred it."""
        with self.mutex:
            deferred = self.index
            if isinstance(deferred, _Deferred):
                records = deferred.records
                index = KeyIndex(self.location, self._source)
                if records is None:  # the whole store, read anew (an error leaves this in place)
                    batches, cursor, _ = self._scan(None)
                    for batch in batches:
                        index.ingest(batch)
                    self.index, self.cursor = index, cursor
                    return index
                index.ingest(records() if callable(records) else records)
                self.index = index
            return self.index

    def matches(self, function: str | None, cols: tuple[str, ...], values: tuple[str, ...]) -> bool:
        """True if a record holds each of ``cols`` with these texts (see `KeyIndex.matches`)."""
        self.refresh()
        return self.index.matches(function, cols, values)

    # -- writing --------------------------------------------------------------

    def prefer_order(self, names: Sequence[str]) -> None:
        """Write a new store's key columns ``names`` in this order (see `Store.prefer_order`)."""
        # A key is sorted by column name everywhere else; only a new store's
        # columns (a CSV header, say) take this order, so they read as the
        # function is written.
        order = tuple(names)
        self._order.setdefault(tuple(sorted(order)), order)

    def new_records(
        self,
        function: str,
        cols: tuple[str, ...],
        keys: Iterable[tuple[str, ...]],
        duration: float | None,
        code: str | None,
    ) -> tuple[list[Record], Mapping[Packed, tuple[str, ...]]]:
        """The records of the keys not held yet, each once, and those keys by packed form.

        Add the keys to `index` once their records are written.
        """
        rows, fresh = self.fresh_rows(function, cols, keys, duration, code)
        return list(rows), fresh

    def fresh_rows(
        self,
        function: str,
        cols: tuple[str, ...],
        keys: Iterable[tuple[str, ...]],
        duration: float | None,
        code: str | None,
    ) -> tuple[NewRecords, Mapping[Packed, tuple[str, ...]]]:
        """`new_records` as rows of texts (see `NewRecords`), for a write of many.

        Keys given as `KeyColumns` (a big import) stay column by column.
        """
        fresh: Mapping[Packed, tuple[str, ...]]
        texts: Sequence[tuple[str, ...]]
        if isinstance(keys, KeyColumns):
            columns = self.index.fresh_columns(function, cols, keys)
            fresh, texts = columns, columns.rows
        else:
            fresh = self.index.fresh(function, cols, keys)
            texts = list(fresh.values())
        order = self._order.get(cols)
        rows = new_record_rows(function, cols, texts, order=order, duration=duration, code=code)
        return rows, fresh

    def add(
        self,
        function: str,
        cols: tuple[str, ...],
        keys: Iterable[tuple[str, ...]],
        write: Callable[[list[Record]], int],
        *,
        duration: float | None = None,
        code: str | None = None,
    ) -> int:
        """Record the keys not held yet; ``write`` writes their records, saying how many are new."""
        records, fresh = self.new_records(function, cols, keys, duration, code)
        if not records:
            return 0
        added = write(records)
        self.index.add(function, cols, fresh)
        return added

    def merge(
        self,
        records: Iterable[Record],
        check: Callable[[tuple[str, ...]], None],
        write: Callable[[list[Record]], object],
    ) -> int:
        """Add other stores' records of runs not held here (see `KeyIndex.unseen`); how many.

        ``check`` sees each new group's key columns first (and may refuse
        them); ``write`` writes the records.
        """
        self.refresh()
        added, new = self.index.unseen(records, check)
        if added:
            write(added)
            self._hold(new)
        return len(added)

    def _hold(self, new: dict[Group, set[Packed]]) -> None:
        for (function, cols), keys in new.items():  # only once they are written
            self.index.add(function, cols, keys)

    # -- processes (see ._process) ---------------------------------------------

    def pause_for_fork(self) -> bool:
        if not self.mutex.acquire(timeout=5):
            return False
        self._before_fork()
        return True

    def resume_after_fork(self) -> None:
        self.mutex.release()

    def reset_in_child(self) -> None:
        self.mutex = threading.RLock()
        self._in_child()


class _Deferred:
    """Stands for the `KeyIndex` `IndexedReader.reset` deferred: builds it on first use.

    Any attribute asked of it builds the index, puts it in the reader's
    place and answers from it, so later lookups go to the index directly.
    """

    def __init__(
        self, reader: IndexedReader[Any], records: Batch | Callable[[], Batch] | None
    ) -> None:
        self._reader = reader
        self.records = records

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_reader", "records"):
            raise AttributeError(name)  # (copy and pickle ask before __init__ ran)
        return getattr(self._reader.built(), name)

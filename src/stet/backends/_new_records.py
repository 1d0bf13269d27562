"""The records of runs finished together, held as rows of texts: `NewRecords`.

`stet.mark_done` writes a million records at once. They share their
metadata (function, time, host, codec) and differ only in their key texts,
so they are held as one tuple of texts per run: a format writes them
straight from there (`rows`), and anything else sees an ordinary sequence
of records, each built when asked for.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from operator import itemgetter
from typing import overload

from ._key_columns import KeyColumns
from ._records import Record

__all__ = ["NewRecords"]


class NewRecords(Sequence[Record]):
    """Records of key texts under ``key_names`` plus the same metadata each.

    Args:
        key_names: The key columns, in the order they are written.
        keys: Each run's key texts, in the order of ``key_names``.
        meta: The metadata columns every record holds.

    Example:
        >>> records = NewRecords(("x",), [("1",), ("2",)], {"_stet_function": "run"})
        >>> records[1], records.names
        ({'x': '2', '_stet_function': 'run'}, ('x', '_stet_function'))
    """

    __slots__ = ("key_names", "keys", "meta", "names")

    def __init__(
        self, key_names: tuple[str, ...], keys: Sequence[tuple[str, ...]], meta: Record
    ) -> None:
        self.key_names = key_names
        self.keys = keys
        self.meta = meta
        #: The columns of every record, in order.
        self.names: tuple[str, ...] = (*key_names, *meta)

    @classmethod
    def ordered(
        cls,
        cols: tuple[str, ...],
        keys: Sequence[tuple[str, ...]],
        meta: Record,
        order: Sequence[str] | None,
    ) -> NewRecords:
        """Records of keys in the order of ``cols``, their columns written in ``order``."""
        if order is None or tuple(order) == cols or len(cols) < 2:
            return cls(cols, keys, meta)
        places = [cols.index(c) for c in order]
        if isinstance(keys, KeyColumns):
            return cls(tuple(order), keys.reordered(places), meta)
        return cls(tuple(order), list(map(itemgetter(*places), keys)), meta)

    def rows(self, header: Sequence[str]) -> list[tuple[str, ...]]:
        """Each record's cells under ``header`` ("" where it has no such column)."""
        width = len(self.key_names)
        if tuple(header[:width]) == self.key_names and not set(header[width:]) & set(
            self.key_names
        ):
            tail = tuple(self.meta.get(c, "") for c in header[width:])
            return [key + tail for key in self.keys]
        return [tuple(record.get(c, "") for c in header) for record in self]

    def column(self, name: str) -> list[str | None]:
        """Every record's text of column ``name`` (None where a record has no such column)."""
        if name in self.key_names:
            return list(self.key_texts(name))
        return [self.meta.get(name)] * len(self.keys)

    def key_texts(self, name: str) -> list[str]:
        """Every record's text of the key column ``name`` (a list not to be changed)."""
        place = self.key_names.index(name)
        if isinstance(self.keys, KeyColumns):
            return self.keys.columns[place]
        return list(map(itemgetter(place), self.keys))

    def _record(self, key: tuple[str, ...]) -> Record:
        record = dict(zip(self.key_names, key, strict=True))
        record.update(self.meta)
        return record

    def __len__(self) -> int:
        return len(self.keys)

    @overload
    def __getitem__(self, index: int) -> Record: ...
    @overload
    def __getitem__(self, index: slice) -> list[Record]: ...
    def __getitem__(self, index: int | slice) -> Record | list[Record]:
        if isinstance(index, slice):
            return [self._record(key) for key in self.keys[index]]
        return self._record(self.keys[index])

    def __iter__(self) -> Iterator[Record]:
        return map(self._record, self.keys)

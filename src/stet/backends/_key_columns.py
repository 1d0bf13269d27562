"""The keys of many runs held column by column: `KeyColumns`.

`stet.mark_done` hands a store a million keys at once. Encoded column by
column, they arrive as one list of texts per key column; zipping them into
a tuple per run, then packing, de-duplicating and unzipping them again for
the format's write cost more than the write. `KeyColumns` keeps the lists:
it is an ordinary sequence of key tuples to whoever iterates it, and the
index (`fresh_columns`) and the formats read its columns whole.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Mapping, Sequence
from operator import itemgetter
from typing import Generic, TypeVar, overload

__all__ = ["FreshKeys", "KeyColumns", "picked"]

P = TypeVar("P", bound=Hashable)


class KeyColumns(Sequence[tuple[str, ...]]):
    """Runs' key texts as one list per key column, all of one length.

    Args:
        columns: The texts of each key column (at least one column).

    Example:
        >>> keys = KeyColumns([["1", "2"], ["a", "b"]])
        >>> list(keys), keys[1], len(keys)
        ([('1', 'a'), ('2', 'b')], ('2', 'b'), 2)
    """

    __slots__ = ("columns",)

    def __init__(self, columns: Sequence[list[str]]) -> None:
        if not columns or len({len(c) for c in columns}) != 1:
            raise ValueError("KeyColumns needs one or more columns of one length")
        self.columns: tuple[list[str], ...] = tuple(columns)

    def __len__(self) -> int:
        return len(self.columns[0])

    @overload
    def __getitem__(self, index: int) -> tuple[str, ...]: ...
    @overload
    def __getitem__(self, index: slice) -> KeyColumns: ...
    def __getitem__(self, index: int | slice) -> tuple[str, ...] | KeyColumns:
        if isinstance(index, slice):
            return KeyColumns([c[index] for c in self.columns])
        return tuple(c[index] for c in self.columns)

    def __iter__(self) -> Iterator[tuple[str, ...]]:
        return zip(*self.columns, strict=True)

    def take(self, rows: list[int]) -> KeyColumns:
        """The keys of these rows, in this order."""
        return KeyColumns([picked(c, rows) for c in self.columns])

    def reordered(self, order: Sequence[int]) -> KeyColumns:
        """The same keys with their columns in this order (by position)."""
        return KeyColumns([self.columns[i] for i in order])


def picked(texts: list[str], rows: list[int]) -> list[str]:
    """``[texts[i] for i in rows]``, in C."""
    if not rows:
        return []
    if len(rows) == 1:
        return [texts[rows[0]]]
    return list(itemgetter(*rows)(texts))


class FreshKeys(Mapping[P, tuple[str, ...]], Generic[P]):
    """New keys by their packed forms (what `KeyIndex.fresh` gives), kept as two lists.

    Iterating gives the packed forms in order, as the dict would; `rows` the
    keys themselves, column by column; `unique` (if not None) their set. A
    lookup by packed form builds the dict on first use (only a writer that
    lost a race asks).
    """

    __slots__ = ("_by_packed", "packed", "rows", "unique")

    def __init__(self, packed: list[P], rows: KeyColumns, unique: set[P] | None = None) -> None:
        self.packed = packed
        self.rows = rows
        #: The packed forms as a set, when one was made (no two keys are equal).
        self.unique = unique
        self._by_packed: dict[P, tuple[str, ...]] | None = None

    def __len__(self) -> int:
        return len(self.packed)

    def __iter__(self) -> Iterator[P]:
        return iter(self.packed)

    def __getitem__(self, packed: P) -> tuple[str, ...]:
        if self._by_packed is None:
            self._by_packed = dict(zip(self.packed, self.rows, strict=True))
        return self._by_packed[packed]

"""Records as a store holds them, in rows or in columns.

A *record* is one finished run as a store holds it: column name to text,
one column per key parameter (the codec's canonical text) and the
``_stet_`` metadata columns (see `._schema`). A column a record does not
have is missing from its dict, which is how records of several functions
with different keys share one table.

A format reads a small change as a list of records and a whole big store
as `Columns`, so that opening a store of a million records builds no dict
per record.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Final, overload

from .._lazy import np, pa, pc

__all__ = [
    "ARROW_THREADS",
    "Batch",
    "Columns",
    "Cursor",
    "Record",
    "TableRecords",
    "as_records",
    "repeated",
    "strings",
]

#: One record: column name to text. Absent columns are missing from the dict.
Record = dict[str, str]

#: Arrow reads stores without its thread pools. A pool thread still holding
#: a Python object when the interpreter exits is torn down mid-C++ and aborts
#: the process ("terminate called without an active exception", exit 134;
#: apache/arrow#34314), which a cluster job reports as a failure. Measured on
#: a million-record store, the pools did not make opening faster.
ARROW_THREADS: Final = False


def strings(texts: Iterable[str | None]) -> pa.StringArray:
    """``texts`` as an Arrow string array (None: null), without importing pandas.

    ``pa.array`` asks pandas whether its argument is a Series, which imports
    pandas where nothing else has. When a Parquet journal is folded at exit,
    that import fails ("can't register atexit after shutdown"): pandas loads
    `concurrent.futures.thread`, which cannot start after the interpreter
    began to shut down, and the fold was left to the next run. Arrow's
    builder takes the texts directly, in about a third of the time.
    """
    listed = texts if isinstance(texts, list) else list(texts)
    if len(listed) >= _LAID_OUT:
        laid = _ascii_strings(listed)
        if laid is not None:
            return laid
    builder = pa.lib.StringBuilder()
    builder.append_values(listed)
    array: pa.StringArray = builder.finish()
    return array


#: Lists of at least this many texts are tried by `_ascii_strings`.
_LAID_OUT: Final = 64


def _ascii_strings(texts: list[str | None]) -> pa.StringArray | None:
    """`strings` of ASCII texts, none None, laid out in two buffers at once (a
    quarter of the builder's time); None for any other list."""
    try:
        joined = "".join(texts)  # type: ignore[arg-type]  # a None is a TypeError: the builder
    except TypeError:
        return None
    if not joined.isascii() or len(joined) >= 2**31:
        return None
    offsets = np.zeros(len(texts) + 1, dtype=np.int32)
    np.cumsum(np.fromiter(map(len, texts), dtype=np.int32, count=len(texts)), out=offsets[1:])  # type: ignore[arg-type]
    buffers = [None, pa.py_buffer(offsets.tobytes()), pa.py_buffer(joined.encode("ascii"))]
    array = pa.Array.from_buffers(pa.string(), len(texts), buffers)
    assert isinstance(array, pa.StringArray)
    return array


def repeated(text: str | None, count: int) -> pa.StringArray:
    """An Arrow string array of ``count`` copies of ``text`` (None: nulls), made whole.

    The metadata of a million records written together (their time, host,
    codec) is one text each: its copies are laid out in one buffer, not
    appended one by one (`strings` of such a column took a quarter of a
    Parquet `mark_done`). Without pandas, as `strings`.
    """
    data = None if text is None else text.encode("utf-8")
    if data is None or count == 0 or len(data) * count >= 2**31:
        return strings([text] * count)  # nulls, nothing, or past 32-bit offsets
    offsets = np.arange(count + 1, dtype=np.int32) * np.int32(len(data))
    buffers = [None, pa.py_buffer(offsets.tobytes()), pa.py_buffer(data * count)]
    array = pa.Array.from_buffers(pa.string(), count, buffers)
    assert isinstance(array, pa.StringArray)
    return array


#: Whatever a format needs to read only what is new; None means "nothing read".
Cursor = object


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

    @property
    def arrow(self) -> pa.Table | None:
        """The Arrow table the columns are read from, if they came as one."""
        return self._arrow

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
            if len(text) == 1 and ord(text) < 0x80:
                return any(_has_byte(chunk, ord(text)) for chunk in column.chunks)
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

    def chunks(self, names: Sequence[str], size: int) -> Iterator[list[list[str | None]]]:
        """These columns ``size`` records at a time, without loading them whole."""
        arrow = self._arrow
        for start in range(0, self.length, size):
            if arrow is not None and not any(n in self._loaded for n in names):
                part = arrow.slice(start, size)
                yield [part.column(n).to_pylist() for n in names]
            else:
                yield [self.column(n)[start : start + size] for n in names]

    def joined(self, names: Sequence[str], sep: str, size: int) -> Iterator[list[str]]:
        """Each record's texts of these columns joined by ``sep``, ``size`` records at
        a time (joined in C, for Arrow). The columns must have no nulls."""
        arrow = self._arrow
        if arrow is None or any(n in self._loaded for n in names):
            for chunk in self.chunks(names, size):
                texts: list[list[str]] = chunk  # type: ignore[assignment]  # no nulls: checked
                yield texts[0] if len(texts) == 1 else list(map(sep.join, zip(*texts, strict=True)))
            return
        for start in range(0, self.length, size):
            part = arrow.slice(start, size)
            columns: list[Any] = [part.column(n) for n in names]
            joined = columns[0] if len(columns) == 1 else pc.binary_join_element_wise(*columns, sep)
            yield joined.to_pylist()

    def key_parts(
        self, names: Sequence[str], sep: str, size: int
    ) -> Iterator[tuple[pa.ChunkedArray[Any], ...] | list[str]]:
        """These columns ``size`` records at a time: as Arrow columns where they
        came as Arrow (no Python string per cell), else joined as `joined`."""
        arrow = self._arrow
        if arrow is None or any(n in self._loaded for n in names):
            yield from self.joined(names, sep, size)
            return
        for start in range(0, self.length, size):
            part = arrow.slice(start, size)
            yield tuple(part.column(n) for n in names)

    def __len__(self) -> int:
        return self.length

    def release(self) -> None:
        """Drop the loaded columns and give Arrow's unused memory back."""
        self._loaded.clear()
        if self._arrow is not None:
            # The loader holds the table too (see `of_arrow`).
            self._arrow, self._load = None, _released
            pa.default_memory_pool().release_unused()

    def to_records(self) -> list[Record]:
        """The records as dicts (for whole-store operations)."""
        data = [self.column(n) for n in self.names]
        return [
            {n: v for n, v in zip(self.names, values, strict=True) if v is not None}
            for values in zip(*data, strict=True)
        ]


def _has_byte(chunk: pa.Array[Any], byte: int) -> bool:
    """True if some cell of a string array may hold the ASCII character ``byte``.

    One pass over the bytes the cells use (a C loop), where
    `pc.match_substring` looks at each cell in turn: ten times faster on a
    store of ten million records. A UTF-8 byte below 0x80 is only ever that
    character, so no cell holding it is missed; the bytes of null cells are
    looked at too, which can only say True when the cells do not (the caller
    then takes its slower, exact path).
    """
    if chunk.type not in (pa.string(), pa.large_string()):
        return bool(pc.any(pc.match_substring(chunk, chr(byte))).as_py())
    _, offsets, data = chunk.buffers()
    if not len(chunk) or data is None or offsets is None:
        return False
    width = 4 if chunk.type == pa.string() else 8
    bounds = np.frombuffer(
        memoryview(offsets)[chunk.offset * width : (chunk.offset + len(chunk) + 1) * width],
        dtype=np.int32 if width == 4 else np.int64,
    )
    used = np.frombuffer(memoryview(data), dtype=np.uint8)[int(bounds[0]) : int(bounds[-1])]
    return bool((used == byte).any())


def _released(name: str) -> list[str | None]:
    raise RuntimeError(f"column {name!r} asked for after the columns were released")


class TableRecords(Sequence[Record]):
    """The records of an Arrow table of nullable strings, as a sequence of records.

    What is left of a store after ``stet reset --where`` removed some
    records: a format writes it from the columns where it can (CSV, JSON and
    Parquet do, SQLite deletes the others instead), and anything else sees
    an ordinary sequence of records, built a chunk at a time when asked for.

    Args:
        table: The records (null: the record lacks the column).

    Example:
        >>> kept = TableRecords(pa.table({"x": ["1", None], "y": [None, None]}))
        >>> list(kept), kept.names
        ([{'x': '1'}, {}], ('x',))
    """

    __slots__ = ("names", "table")

    def __init__(self, table: pa.Table) -> None:
        self.table = table
        firsts = []
        for position, name in enumerate(table.column_names):
            first = pc.index(pc.is_valid(table.column(name)), True).as_py()
            if first >= 0:
                firsts.append((first, position, name))
        #: The columns some record holds, in the order the records have them
        #: (as first met going through the records, each in the table's order).
        self.names: tuple[str, ...] = tuple(name for _, _, name in sorted(firsts))

    def __len__(self) -> int:
        return int(self.table.num_rows)

    @overload
    def __getitem__(self, index: int) -> Record: ...
    @overload
    def __getitem__(self, index: slice) -> list[Record]: ...
    def __getitem__(self, index: int | slice) -> Record | list[Record]:
        if isinstance(index, slice):
            return [self[i] for i in range(len(self))[index]]
        position = range(len(self))[index]
        return _dicts(self.table.select(list(self.names)).slice(position, 1))[0]

    def __iter__(self) -> Iterator[Record]:
        table = self.table.select(list(self.names))
        for start in range(0, len(self), 65_536):
            yield from _dicts(table.slice(start, 65_536))


def _dicts(table: pa.Table) -> list[Record]:
    return [{k: v for k, v in r.items() if v is not None} for r in table.to_pylist()]


#: What a scan returns: records, or columns when a whole store is read at once.
Batch = Sequence[Record] | Columns


def as_records(batch: Batch) -> list[Record]:
    """Record dicts whichever form ``batch`` came in."""
    return batch.to_records() if isinstance(batch, Columns) else list(batch)

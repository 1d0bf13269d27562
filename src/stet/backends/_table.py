"""A whole store as one Arrow table, for the tools that read all of it.

`stet.status`, `stet.progress`, `stet.read`, ``stet show``, ``why`` and
``export`` read every record. A dict per record made them cost seconds per
hundred thousand records; here the store is one Arrow table of strings and
each step works on whole columns:

- key texts of older key rules (stet 0.0.x, rules version 1) are brought to
  today's once per distinct text of a column (a sweep has few), as
  `._schema.identity` does record by record;
- the runs a store holds are told apart by numbers, each column hashed once;
- timestamps and durations in the form stet writes them are parsed in C,
  anything else cell by cell as `._schema.meta_value` does.

`WholeStore` gives the same answers as the record-by-record path (the
tests check it differentially on arbitrary stores).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from .._codec_legacy import canonical_from_legacy, canonical_from_v1
from .._lazy import np, pa
from .._lazy import pc as _pc
from ._records import ARROW_THREADS, Batch, Columns, Record, strings
from ._schema import CODEC, CURRENT, FUNCTION, TIMESTAMP, _bad_version, is_meta

#: pyarrow.compute, untyped here: its stubs' overloads do not cover the mix of
#: chunked arrays, arrays and Python scalars these whole-column steps pass.
pc: Any = _pc

__all__ = [
    "Selection",
    "WholeStore",
    "arrow_of",
    "canonical_ints",
    "cast_stamps",
    "delete_selected",
    "parse_stamps",
    "run_numbers",
    "stamp_of",
    "whole_store",
]

#: A timestamp as stet writes it (and 0.0.x, without the offset): parsed in C.
STAMP_FORM: Final = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(\+00:00)?$"
)
#: A duration as stet writes it (``f"{seconds:.6f}"``).
DURATION_FORM: Final = r"^[0-9]{1,15}(\.[0-9]{1,9})?$"


def arrow_of(batch: Batch) -> pa.Table:
    """The records of a scan as one table of nullable strings (null: absent)."""
    if isinstance(batch, Columns):
        arrow = batch.arrow
        if arrow is not None:
            return arrow
        return pa.table({n: strings(batch.column(n)) for n in batch.names})
    names: dict[str, None] = {}
    for record in batch:
        names.update(dict.fromkeys(record))
    return pa.table({n: strings([r.get(n) for r in batch]) for n in names})


def _canonical(table: pa.Table, location: str) -> pa.Table:
    """Key cells of older key rules rewritten to today's texts (as `identity` does)."""
    names = table.column_names
    if CODEC in names:
        version = table.column(CODEC)
        read = pa.array([CURRENT, "2", "1"])
        known = pc.or_(pc.is_null(version), pc.is_in(version, value_set=read))
        if pc.all(known).as_py() is False:  # (None: no rows, in no chunks)
            first = pc.index(known, False).as_py()
            raise _bad_version(version[first].as_py(), location)
        legacy = pc.is_null(version)
        v1 = pc.fill_null(pc.equal(version, "1"), False)
    else:
        legacy = pa.chunked_array([np.ones(table.num_rows, dtype=bool)])
        v1 = None
    for mask, convert in ((legacy, canonical_from_legacy), (v1, canonical_from_v1)):
        if mask is None or not pc.any(mask).as_py():
            continue
        for name in [n for n in table.column_names if not is_meta(n)]:
            column = table.column(name)
            distinct = pc.drop_null(pc.unique(pc.filter(column, mask)))
            texts = pa.array([convert(t) for t in distinct.to_pylist()], pa.string())
            mapped = pc.take(texts, pc.index_in(column, value_set=distinct))
            fixed = pc.if_else(mask, mapped, column)
            table = table.set_column(table.column_names.index(name), name, fixed)
    return table


def parse_stamps(column: Any) -> Any:
    """UTC instants of ISO texts as µs since 1970 (an int64 numpy array), as
    `datetime.fromisoformat` reads them (naive: UTC); ``INT64_MIN`` where a cell
    is absent or not a time. The forms stet writes are parsed by Arrow in C."""
    out = np.full(len(column), np.iinfo(np.int64).min, dtype=np.int64)
    if column.null_count == len(column):
        return out
    fast = cast_stamps(column)
    if fast is not None:
        return fast
    done = np.zeros(len(column), dtype=bool)
    for form, kind in ((_ZONED, pa.timestamp("us", "UTC")), (_NAIVE, pa.timestamp("us"))):
        mask = pc.fill_null(pc.match_substring_regex(column, form), False)
        picked = mask.to_numpy(zero_copy_only=False)
        if picked.any():
            try:
                stamps = pc.cast(pc.filter(column, mask), kind)
            except pa.ArrowInvalid:  # a form Arrow reads, a time it does not (25:00)
                continue
            out[picked] = pc.cast(stamps, pa.int64()).to_numpy()
            done |= picked
    slow = ~done & column.is_valid().to_numpy(zero_copy_only=False)
    for i in np.flatnonzero(slow):
        stamp = stamp_of(column[int(i)].as_py())
        if stamp is not None:
            out[i] = (stamp - _EPOCH) // _MICROSECOND
    return out


def cast_stamps(column: Any) -> Any:
    """`parse_stamps` in one Arrow cast, or None if some cell is absent or refused.

    Arrow's ISO 8601 forms (with an offset) are ones `datetime.fromisoformat`
    reads as the same instant; a cell it refuses sends the column the slow way.
    """
    if column.null_count:
        return None
    try:
        stamps = pc.cast(column, pa.timestamp("us", "UTC"))
    except pa.ArrowInvalid:
        return None
    return pc.cast(stamps, pa.int64()).to_numpy(zero_copy_only=False)


_SECONDS: Final = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?"
_ZONED: Final = _SECONDS + r"\+00:00$"
_NAIVE: Final = _SECONDS + "$"


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = datetime.resolution


def stamp_of(text: str) -> datetime | None:
    """A timestamp text as a UTC time (a naive one taken as UTC), None if it is none."""
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


class WholeStore:
    """Every record of a store, column by column, key texts canonical.

    Args:
        location: The store, as messages name it.
        table: The records as nullable strings (null: the record lacks the column).
    """

    def __init__(self, location: str, table: pa.Table) -> None:
        self.location = location
        self.table = _canonical(table, location)
        names = self.table.column_names
        #: Key column names, as in the table.
        self.keys: tuple[str, ...] = tuple(n for n in names if not is_meta(n))
        n = self.table.num_rows
        functions = (
            pc.fill_null(self.table.column(FUNCTION), "")
            if FUNCTION in names
            else pa.chunked_array([pa.array([""] * n, pa.string())])
        )
        #: Each record's function ("" for none).
        self.functions: Any = functions
        self._stamps: Any = None
        #: What the store that made this read hands back to use it again (see `delete_selected`).
        self.seen: object = None

    def __len__(self) -> int:
        return int(self.table.num_rows)

    def column(self, name: str) -> Any:
        """A column (all null where the store has none by that name)."""
        if name in self.table.column_names:
            return self.table.column(name)
        return pa.chunked_array([pa.nulls(len(self), pa.string())])

    @property
    def stamps(self) -> Any:
        """Each record's `_stet_timestamp` as µs since 1970 (`MISSING` where none)."""
        if self._stamps is None:
            self._stamps = parse_stamps(self.column(TIMESTAMP))
        return self._stamps

    def grouped(self, rows: Any = None) -> pa.Table:
        """One row per distinct run (function and key texts), with its first record's row.

        In no particular order. Each column is hashed once into numbers
        (`dictionary_encode`), and the runs are told apart by those: at a
        million records, a third of the time Arrow's grouping by the texts took.
        """
        picked = np.arange(len(self))
        if rows is not None:
            picked = np.flatnonzero(np.asarray(_numpy(rows), dtype=bool))
        key = run_numbers([self.functions, *(self.table.column(k) for k in self.keys)])
        _, first = np.unique(key[picked], return_index=True)
        firsts = pa.array(picked[first], pa.int64())
        out = {"__function": pc.take(self.functions, firsts)}
        out.update({k: pc.take(self.table.column(k), firsts) for k in self.keys})
        return pa.table({**out, "__row_min": firsts})

    def patterns(self, table: pa.Table | None = None) -> list[tuple[str, tuple[str, ...]]]:
        """(function, key columns held) of the records, each once, in order of first record."""
        source = self.table if table is None else table
        functions: Any = self.functions if table is None else table.column("__function")
        held: Any = pa.table(
            {
                "__function": functions,
                **{f"k{i}": pc.is_valid(source.column(k)) for i, k in enumerate(self.keys)},
            }
        )
        names = held.column_names
        held = held.append_column("__row", pa.array(np.arange(held.num_rows), pa.int64()))
        # Hash grouping keeps no order: the first record of each pattern gives it.
        distinct = held.group_by(names, use_threads=ARROW_THREADS).aggregate([("__row", "min")])
        distinct = distinct.sort_by("__row_min")
        out = []
        for row in distinct.to_pylist():
            cols = tuple(sorted(k for i, k in enumerate(self.keys) if row[f"k{i}"]))
            out.append((row["__function"], cols))
        return out

    def rows_of(self, functions: Sequence[str]) -> Any:
        """A boolean mask of the records of these functions."""
        return pc.is_in(self.functions, value_set=pa.array(list(functions), pa.string()))

    def records(self, rows: Any) -> list[Record]:
        """The records at these row numbers, as dicts (key texts canonical)."""
        picked = self.table.take(pa.array(rows, pa.int64())).to_pylist()
        return [{k: v for k, v in r.items() if v is not None} for r in picked]


def run_numbers(columns: Sequence[Any]) -> Any:
    """One int64 a row, equal exactly when the row's texts in every column are equal.

    Each column is numbered once (`_numbered`), and a row's numbers are
    combined into one, renumbered densely whenever the product of the
    columns' widths would pass 2**62.
    """
    key = np.zeros(len(columns[0]) if columns else 0, dtype=np.int64)
    bound = 1
    for column in columns:
        width, codes = _numbered(column)
        if bound * width >= 2**62:  # renumber the runs so far densely first
            key = np.unique(key, return_inverse=True)[1].reshape(-1).astype(np.int64)
            bound = int(key.max()) + 1 if len(key) else 1
        key = key * width + codes
        bound *= width
    return key


def canonical_ints(column: Any) -> Any:
    """The column as int64 numpy if every cell is a canonical int text that fits, else None.

    Canonical: the text ``str`` gives the int. The column's bytes are
    looked at first (digits and ``-`` only; none starting ``0`` but ``"0"``
    itself, none starting ``-0``), then Arrow's cast reads the numbers and
    refuses what does not fit (or a ``-`` inside): no regular expression
    and no round trip of the numbers back to texts, and a column of other
    texts is turned away without the cast (slow to fail).
    """
    if column.null_count:
        return None
    cells: Any = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if len(cells) == 0:
        return np.zeros(0, dtype=np.int64)
    if cells.type not in (pa.string(), pa.large_string()):
        return None
    width = np.int64 if cells.type == pa.large_string() else np.int32
    buffers: Any = cells.buffers()
    bounds = np.frombuffer(buffers[1], dtype=width)[cells.offset : cells.offset + len(cells) + 1]
    if buffers[2] is None or np.any(bounds[1:] == bounds[:-1]):
        return None  # an empty text
    data = np.frombuffer(buffers[2], dtype=np.uint8)
    zero, nine, minus = ord("0"), ord("9"), ord("-")
    used = data[int(bounds[0]) : int(bounds[-1])]
    if not (((used >= zero) & (used <= nine)) | (used == minus)).all():
        return None
    starts = bounds[:-1].astype(np.int64)
    first = data[starts]
    second = data[np.minimum(starts + 1, len(data) - 1)]
    if (((first == zero) & (np.diff(bounds) > 1)) | ((first == minus) & (second == zero))).any():
        return None
    try:
        numbers = pc.cast(cells, pa.int64())
    except pa.ArrowInvalid:
        return None
    return numbers.to_numpy(zero_copy_only=False)


def _numbered(column: Any) -> tuple[int, Any]:
    """Each cell's number (equal texts, equal numbers; null too) and how many there may be.

    A numpy array of int64 stands for the ints' texts (numbered by value)."""
    values = column if isinstance(column, np.ndarray) else canonical_ints(column)
    if values is not None:
        # Canonical ints, one text each: numbered by value (no hashing of texts),
        # as offsets from the least when they span few more numbers than cells.
        if len(values):
            low, high = int(values.min()), int(values.max())
            if high - low < 4 * len(values) + 16:
                return high - low + 1, values - low
        encoded = pc.dictionary_encode(pa.array(values, pa.int64()))
        return len(encoded.dictionary), encoded.indices.to_numpy(zero_copy_only=False)
    encoded = pc.dictionary_encode(column.combine_chunks())
    width = len(encoded.dictionary) + 1  # and one for null
    return width, pc.fill_null(encoded.indices, width - 1).to_numpy(zero_copy_only=False)


def _numpy(mask: Any) -> Any:
    """A boolean mask as numpy, whether it came as numpy or Arrow."""
    if isinstance(mask, pa.Array | pa.ChunkedArray):
        return mask.to_numpy(zero_copy_only=False)
    return mask


def whole_store(store: Any) -> WholeStore:
    """Read every record of ``store`` (a `stet.typing.Store`) column by column.

    A store with a ``columns()`` method (the file stores) hands over its
    scan as it is; any other is read through `Store.records`.
    """
    scanned = getattr(store, "scanned", None)
    if callable(scanned):  # a file store: its read, and what lets delete_rows use it again
        batch, seen = scanned()
        whole = WholeStore(store.location, arrow_of(batch))
        whole.seen = seen
        return whole
    reader = getattr(store, "columns", None)
    batch = reader() if callable(reader) else store.records()
    return WholeStore(store.location, arrow_of(batch))


#: Picks records of a whole store: a boolean numpy mask over its rows.
Selection = Callable[[WholeStore], Any]


def delete_selected(
    store: Any,
    select: Selection,
    doomed: Callable[[Record], bool],
    whole: WholeStore | None = None,
) -> int:
    """Remove the records ``select`` picks from ``store`` (a `stet.typing.Store`); how many.

    A store with a ``delete_rows(select)`` method (the built-in stores) picks
    them column by column and removes them in one pass; any other removes
    them record by record through `Store.delete`, asking ``doomed``, which
    must pick the same records. ``whole``, the store as `whole_store` read it
    just before, spares a file store reading it again under its lock when
    nothing changed it since.
    """
    by_rows = getattr(store, "delete_rows", None)
    if callable(by_rows):
        if whole is not None and whole.seen is not None:
            return int(by_rows(select, seen=whole.seen))
        return int(by_rows(select))
    return int(store.delete(doomed))

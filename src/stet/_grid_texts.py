"""A sweep's grid against its store, column by column (what `stet.progress` counts).

A grid given as a DataFrame of numbers, booleans and strings has its key
texts made once per distinct value of each column (by the function's own
encoder, so they are the texts its calls write), and is matched against the
store's records by an Arrow join instead of a lookup per row. Anything else
(rows as mappings or tuples, missing columns taking defaults, values of
other types, a codec with registered encoders) takes the row-by-row path,
which names the row of any problem.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from typing import Any, Final

from ._lazy import is_dataframe, np, pa, pd
from ._lazy import pc as _pc
from ._runner import Runner
from .backends._index import SEP, Packed
from .backends._table import WholeStore, canonical_ints, run_numbers
from .backends._table_text import holds_any
from .exceptions import KeyEncodingError

#: pyarrow.compute, untyped here: its stubs' overloads do not cover the mix of
#: chunked arrays, arrays and Python scalars these whole-column steps pass.
pc: Any = _pc

__all__ = ["GridMatch", "grid_texts", "match_grid"]

_SEP_BYTE: Final = SEP.encode()


def grid_texts(runner: Runner, rows: object) -> pa.Table | None:
    """The grid's key texts as a table (columns ``runner.cols``), or None for the row path.

    A column of ints is kept as ints (its texts are their decimal digits, as
    Arrow casts them): it is matched against the records by value.
    """
    if not is_dataframe(rows) or runner.config.codec._encoders:
        return None
    frame: Any = rows
    columns = {}
    for name in runner.cols:
        if name not in frame.columns:
            return None
        series = frame[name]
        if not isinstance(series, pd.Series) or not _plain(series):
            return None
        if series.dtype.kind in "iu":  # kept as ints: an int's text is its decimal digits
            columns[name] = pa.array(series.to_numpy())
            continue
        codes, uniques = pd.factorize(series, use_na_sentinel=False)
        try:
            texts = [runner._encode(value) for value in uniques.tolist()]
        except KeyEncodingError:
            return None
        columns[name] = pc.take(pa.array(texts, pa.string()), pa.array(codes))
    return pa.table(columns) if columns else None


def _plain(series: pd.Series[Any]) -> bool:
    """True for a column whose distinct values are its values: numbers, booleans or strings."""
    if isinstance(series.dtype, np.dtype) and series.dtype.kind in "iufb":
        return True
    return pd.api.types.infer_dtype(series, skipna=False) == "string"


class _Lazy(Collection[Packed]):
    """A set of packed keys built on first use (only drawing a grid needs it)."""

    def __init__(self, build: Callable[[], set[Packed]]) -> None:
        self._build = build
        self._set: set[Packed] | None = None

    def _keys(self) -> set[Packed]:
        if self._set is None:
            self._set = self._build()
        return self._set

    def __contains__(self, key: object) -> bool:
        return key in self._keys()

    def __iter__(self) -> Iterator[Packed]:
        return iter(self._keys())

    def __len__(self) -> int:
        return len(self._keys())


def _packed(texts: pa.Table, cols: list[str], rows: Any) -> set[Packed]:
    """The keys at these rows of the grid's texts, packed as `pack` packs them."""
    picked = texts.take(pa.array(rows, pa.int64()))
    columns = [pc.cast(picked.column(c), pa.string()) for c in cols]
    joined: Any = columns[0]
    if len(cols) > 1:
        joined = pc.binary_join_element_wise(*columns, SEP)
    return set(joined.to_pylist())


def _holds_sep(table: pa.Table, cols: list[str]) -> bool:
    """True if a text holds `SEP` (`pack` keeps such a key as a tuple: the row path)."""
    texts = [table.column(c) for c in cols if not pa.types.is_integer(table.schema.field(c).type)]
    return any(holds_any(column, _SEP_BYTE, controls=False) for column in texts)


def _ints(grid: Any, recorded: Any) -> Any:
    """A grid's int column and the recorded texts of it as one int64 numpy array,
    or None unless each recorded text is an int's own (`canonical_ints`)."""
    if not pa.types.is_integer(grid.type):
        return None
    values = grid.to_numpy()
    if values.dtype.kind == "u" and len(values) and int(values.max()) >= 2**63:
        return None  # past int64: compared as texts
    theirs = np.zeros(0, dtype=np.int64) if recorded is None else canonical_ints(recorded)
    if theirs is None:
        return None
    return np.concatenate([values.astype(np.int64), theirs])


class GridMatch:
    """The grid's distinct keys, and those not recorded, as `stet.progress` uses them.

    Held as row numbers of the grid's texts; the packed keys are made only
    when asked for (drawing the grid).
    """

    def __init__(self, texts: pa.Table, cols: list[str], keys: Any, pending: Any) -> None:
        self.total = len(keys)
        self.pending_count = len(pending)
        self.keys: Collection[Packed] = _Lazy(lambda: _packed(texts, cols, keys))
        self.pending: Collection[Packed] = _Lazy(lambda: _packed(texts, cols, pending))


def match_grid(texts: pa.Table, whole: WholeStore | None, runner: Runner) -> GridMatch | None:
    """Which of the grid's keys the store records for ``runner``'s function (or for every one).

    A record counts when it has exactly the function's key columns, as the
    store's lookups count it. None: a text holds `SEP` (the row-by-row path).
    Keys are told apart by numbers (`run_numbers` over the grid's and the
    records' columns together), not by joined texts.
    """
    cols = list(runner.cols)
    if _holds_sep(texts, cols):
        return None
    done = None
    if whole is not None and len(whole) and set(cols) <= set(whole.keys):
        rows = whole.rows_of([runner.name, ""])
        for name in whole.keys:
            held = pc.is_valid(whole.column(name))
            rows = pc.and_(rows, held if name in runner.cols else pc.invert(held))
        done = whole.table.select(cols).filter(rows)
        if _holds_sep(done, cols):
            return None
    n = texts.num_rows
    columns = []
    for name in cols:
        ints = _ints(texts.column(name), None if done is None else done.column(name))
        if ints is not None:  # numbered by value, as `run_numbers` numbers int texts
            columns.append(ints)
            continue
        chunks = [pc.cast(c, pa.string()) for c in texts.column(name).chunks]
        if done is not None:
            chunks += [pc.cast(c, pa.string()) for c in done.column(name).chunks]
        columns.append(pa.chunked_array(chunks, pa.string()))
    numbers = run_numbers(columns)
    keys, first = np.unique(numbers[:n], return_index=True)  # sorted: the recorded are searched
    if done is None or done.num_rows == 0:
        return GridMatch(texts, cols, first, first)
    recorded = np.sort(numbers[n:])  # (np.unique of numbers alone hashes them: slower)
    at = np.minimum(np.searchsorted(recorded, keys), len(recorded) - 1)
    return GridMatch(texts, cols, first, first[recorded[at] != keys])

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
from typing import Any

from ._lazy import is_dataframe, np, pa, pd
from ._lazy import pc as _pc
from ._runner import Runner
from .backends._index import SEP, Packed
from .backends._table import WholeStore
from .exceptions import KeyEncodingError

#: pyarrow.compute, untyped here: its stubs' overloads do not cover the mix of
#: chunked arrays, arrays and Python scalars these whole-column steps pass.
pc: Any = _pc

__all__ = ["GridMatch", "grid_texts", "match_grid"]


def grid_texts(runner: Runner, rows: object) -> pa.Table | None:
    """The grid's key texts as a table (columns ``runner.cols``), or None for the row path."""
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
        if series.dtype.kind in "iu":  # an int's text is its decimal digits, as Arrow writes them
            columns[name] = pc.cast(pa.array(series.to_numpy()), pa.string())
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


def _packed(column: Any) -> set[Packed]:
    return set(column.to_pylist())


def _joined(table: pa.Table, cols: list[str]) -> Any:
    """Each row's key texts as `pack` makes them (one string), or None if a text holds `SEP`."""
    for col in cols:
        if pc.any(pc.match_substring(table.column(col), SEP)).as_py():
            return None
    if len(cols) == 1:
        return table.column(cols[0]).combine_chunks()
    return pc.binary_join_element_wise(*(table.column(c) for c in cols), SEP).combine_chunks()


class GridMatch:
    """The grid's distinct keys, and those not recorded, as `stet.progress` uses them."""

    def __init__(self, keys: Any, pending: Any) -> None:
        self.total = len(keys)
        self.pending_count = len(pending)
        self.keys: Collection[Packed] = _Lazy(lambda: _packed(keys))
        self.pending: Collection[Packed] = _Lazy(lambda: _packed(pending))


def match_grid(texts: pa.Table, whole: WholeStore | None, runner: Runner) -> GridMatch | None:
    """Which of the grid's keys the store records for ``runner``'s function (or for every one).

    A record counts when it has exactly the function's key columns, as the
    store's lookups count it. None: a text holds `SEP` (the row-by-row path).
    """
    cols = list(runner.cols)
    grid = _joined(texts, cols)
    if grid is None:
        return None
    keys = pc.unique(grid)
    if whole is None or len(whole) == 0 or not set(cols) <= set(whole.keys):
        return GridMatch(keys, keys)
    rows = whole.rows_of([runner.name, ""])
    for name in whole.keys:
        held = pc.is_valid(whole.column(name))
        rows = pc.and_(rows, held if name in runner.cols else pc.invert(held))
    done = _joined(whole.table.select(cols).filter(rows), cols)
    if done is None:
        return None
    pending = pc.filter(keys, pc.invert(pc.is_in(keys, value_set=done)))
    return GridMatch(keys, pending)

"""The key texts of many rows at once, encoded column by column.

`stet._rows` reads rows one by one, which names the row of any problem but
builds a dict per row and looks up an encoder per cell. Importing a million
finished runs with `stet.mark_done` spends most of its time there, so a
DataFrame or a list of plain dicts is first tried here: each key column is
taken whole and encoded with one encoder (numpy's numbers converted in one
call). The texts are exactly the row-by-row ones (a differential property
test checks it); anything unusual (key paths, tuples as rows, a missing
column, a value that does not encode) gives None, and the row-by-row path
then does the work and names the row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ._codec_text import float_fast, str_fast
from ._lazy import is_dataframe, np, pd
from ._runner import Runner
from .backends._key_columns import KeyColumns

__all__ = ["bulk_keys"]

#: Exact built-in types whose texts never depend on registered encoders.
_BUILTIN: dict[type[Any], Callable[[Any], str]] = {int: str, float: float_fast, str: str_fast}
_MISSING = object()
#: Float columns at least this long are written by `_float_texts`.
_FLOATS_AT_ONCE = 64


def bulk_keys(runner: Runner, rows: pd.DataFrame | Sequence[Any]) -> KeyColumns | None:
    """Each row's key texts (defaults applied), column by column, or None to take the
    row-by-row path."""
    if runner.paths or not runner.cols:
        return None
    defaults = {
        name: p.default
        for name, p in runner.signature.parameters.items()
        if p.default is not p.empty
    }
    if is_dataframe(rows):
        columns = _frame_columns(runner.cols, rows, defaults)
    elif isinstance(rows, Sequence):
        columns = _dict_columns(runner.cols, rows, defaults)
    else:
        return None
    if columns is None:
        return None
    encode = runner.config.codec.encode
    try:
        texts = [_encoded(column, encode) for column in columns]
    except Exception:  # the row-by-row path raises the error, naming the row
        return None
    return KeyColumns(texts)


def _encoded(values: list[Any], encode: Callable[[Any], str]) -> list[str]:
    kinds = set(map(type, values))
    kind = kinds.pop() if len(kinds) == 1 else None
    if kind is float and len(values) >= _FLOATS_AT_ONCE:
        return _float_texts(values)
    fast = _BUILTIN.get(kind) if kind is not None else None
    return list(map(fast or encode, values))


def _float_texts(values: list[float]) -> list[str]:
    """`float_fast` of each value: ``repr`` in one C loop, then the whole
    numbers (found by numpy, usually few) written as integers."""
    texts = list(map(repr, values))
    column = np.array(values, dtype=np.float64)
    with np.errstate(invalid="ignore"):  # NaN is not whole, without a warning
        whole = np.flatnonzero(np.isfinite(column) & (np.trunc(column) == column))
    for i in whole.tolist():
        texts[i] = str(int(values[i]))
    return texts


def _frame_columns(
    cols: tuple[str, ...], frame: pd.DataFrame, defaults: dict[str, Any]
) -> list[list[Any]] | None:
    """Each key column's values as ``frame.to_dict("records")`` gives them."""
    if not frame.columns.is_unique:
        return None
    try:
        # What to_dict("records") applies to object columns (not in pandas-stubs).
        from pandas.core.dtypes.cast import maybe_box_native  # type: ignore[attr-defined]
    except ImportError:  # a pandas that moved it: the row-by-row path
        return None
    object_dtype = pd.api.types.pandas_dtype(object)
    out: list[list[Any]] = []
    for col in cols:
        if col not in frame.columns:
            if col not in defaults:
                return None
            out.append([defaults[col]] * len(frame))
            continue
        series = frame[col]
        dtype = series.dtype
        if dtype == object_dtype or isinstance(dtype, pd.api.extensions.ExtensionDtype):
            # to_dict boxes numpy scalars in such columns as Python ones
            out.append(list(map(maybe_box_native, series)))
        elif dtype.kind in "iufb" and dtype.itemsize <= 8:
            out.append(series.to_numpy().tolist())  # Python numbers, as iteration gives
        else:
            out.append(list(series))
    return out


def _dict_columns(
    cols: tuple[str, ...], rows: Sequence[Any], defaults: dict[str, Any]
) -> list[list[Any]] | None:
    """Each key column's values of rows that are all plain dicts."""
    if not all(type(row) is dict for row in rows):
        return None
    out: list[list[Any]] = []
    for col in cols:
        try:
            out.append([row[col] for row in rows])
        except KeyError:
            default = defaults.get(col, _MISSING)
            if default is _MISSING:
                return None
            out.append([row.get(col, default) for row in rows])
    return out

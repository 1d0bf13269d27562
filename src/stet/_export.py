"""``stet export STORE FILE.csv``: the frame `stet.read` gives, as CSV, column by column.

The file is the one ``frame.to_csv(file, index=False)`` writes, byte for
byte (the tests check it differentially), but pandas formats each cell in
Python (its timestamps most slowly). Here each column becomes Arrow texts
as pandas spells them: numbers through numpy's ``astype(str)`` as pandas
does, timestamps by Arrow at the precision pandas picks for the column,
other values by ``str`` once per distinct object; cells the csv module
would quote are quoted in Arrow, and the lines are joined in C. A column of
another kind (or a frame of one column, which the csv module writes its
own way) is left to pandas.
"""

from __future__ import annotations

import re
from typing import Any, Final

from ._lazy import np, pa, pd
from ._lazy import pc as _pc
from .backends._table_text import holds_any, join_lines

#: pyarrow.compute, untyped here (its stubs do not cover scalars mixed with arrays).
pc: Any = _pc

__all__ = ["csv_of"]

#: A cell the csv module quotes when it writes lines ended by ``\n``.
_NEEDS_QUOTES: Final = '[,"\n]'
_QUOTED_BYTES: Final = b',"\n'
_MICROS: Final = 1_000_000


def csv_of(frame: pd.DataFrame) -> bytes | None:
    """``frame.to_csv(index=False)`` as bytes, or None where pandas must write it."""
    names = [str(name) for name in frame.columns]
    if len(names) < 2 or any(re.search(_NEEDS_QUOTES, name) for name in names):
        return None
    pieces: list[Any] = []
    for name in frame.columns:
        texts = _texts(frame[name])
        if texts is None:
            return None
        pieces += [_quoted(texts), ","]
    pieces[-1] = "\n"
    return (",".join(names) + "\n").encode() + join_lines(pieces)


def _quoted(texts: Any) -> Any:
    if not holds_any(texts, _QUOTED_BYTES, controls=False):  # a byte lookup, no regex per cell
        return texts
    needs = pc.match_substring_regex(texts, _NEEDS_QUOTES)
    quoted = pc.binary_join_element_wise('"', pc.replace_substring(texts, '"', '""'), '"', "")
    return pc.if_else(needs, quoted, texts)


def _texts(column: pd.Series[Any]) -> Any:
    """The column's cells as ``to_csv`` spells them (missing: ""), or None."""
    dtype = column.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        return _stamps(column, dtype)
    if isinstance(dtype, pd.StringDtype):
        return pc.fill_null(pa.array(column.array, pa.string()), "")
    if isinstance(dtype, np.dtype) and dtype.kind == "O":
        return _objects(column.to_numpy())
    if isinstance(dtype, np.dtype) and dtype.kind in "iu":
        return pc.cast(pa.array(column.to_numpy()), pa.string())  # the digits str() gives
    if isinstance(dtype, np.dtype) and (dtype.kind == "b" or dtype == np.float64):
        values = column.to_numpy()
        # What pandas writes them with, numpy's astype(str), once per distinct
        # value: distinct by bits (0.0 and -0.0 are spelt apart).
        bits = values.view(np.int64 if dtype.kind == "f" else np.uint8)
        _, first, inverse = np.unique(bits, return_index=True, return_inverse=True)
        distinct = values[first]
        texts = distinct.astype(str)
        if dtype.kind == "f":
            texts[np.isnan(distinct)] = ""
        return pc.take(pa.array(texts, pa.string()), pa.array(inverse.reshape(-1)))
    return None


def _stamps(column: pd.Series[Any], dtype: pd.DatetimeTZDtype) -> Any:
    """UTC times at µs as pandas writes them: to the finest precision any cell needs."""
    if str(dtype.tz) != "UTC" or dtype.unit != "us":
        return None
    naive = column.dt.tz_localize(None).to_numpy()
    micros, missing = naive.view("i8"), np.isnat(naive)
    part = np.where(missing, 0, micros % _MICROS)
    seconds = pa.array(np.where(missing, 0, micros - part), pa.timestamp("us"))
    texts = pc.cast(pc.cast(seconds, pa.timestamp("s")), pa.string())  # 2026-12-01 10:00:00
    if np.any(part % 1000):
        fraction = pc.utf8_lpad(pc.cast(pa.array(part), pa.string()), 6, "0")
        texts = pc.binary_join_element_wise(texts, ".", fraction, "")
    elif np.any(part):
        fraction = pc.utf8_lpad(pc.cast(pa.array(part // 1000), pa.string()), 3, "0")
        texts = pc.binary_join_element_wise(texts, ".", fraction, "")
    texts = pc.binary_join_element_wise(texts, "+00:00", "")
    return pc.if_else(pa.array(missing), "", texts)


def _objects(values: Any) -> Any:
    """``str`` of each distinct object ("" where pandas sees a missing value).

    Distinct by identity: `stet.read` shares one object among the cells of
    one text, and ``1``, ``1.0`` and ``True`` are equal but spelt apart.
    """
    ids = np.fromiter(map(id, values), dtype=np.uint64, count=len(values))
    _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    distinct = values[first]
    missing = pd.isna(distinct)
    texts = ["" if gone else str(value) for value, gone in zip(distinct, missing, strict=True)]
    return pc.take(pa.array(texts, pa.string()), pa.array(inverse.reshape(-1)))

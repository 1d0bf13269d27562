"""``stet export STORE FILE.csv``: the frame `stet.read` gives, as CSV, column by column.

The file is the one ``stet.read(store).to_csv(file, index=False)`` writes,
byte for byte (the tests check it differentially), but pandas formats each
cell in Python (its timestamps most slowly). `csv_of_store` spells the
store's columns directly, without the frame: a column of canonical integer
texts is written as it is stored (pandas spells an int64 by the same
digits), timestamps in the fixed forms stet writes are respelt byte-wise
in numpy (``T`` to a space, the fraction cut to the precision pandas
picks), and any other column is decoded once per distinct text into the
values `stet.read` holds, typed as it types them, and those few values
spelt. `csv_of` spells a frame's columns: numbers through numpy's
``astype(str)`` as pandas does, timestamps by Arrow at the precision
pandas picks for the column, other values by ``str`` once per distinct
object. Cells the csv module would quote are quoted in Arrow, and the
lines are joined in C. A column of another kind (or a frame of one
column, which the csv module writes its own way) is left to pandas.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final

from ._inspect import _SHAREABLE, _meta_series, _series, frame_columns
from ._lazy import np, pa, pa_csv, pd
from ._lazy import pc as _pc
from .backends._schema import DURATION, TIMESTAMP, meta_value
from .backends._table import WholeStore, canonical_ints, cast_stamps
from .backends._table_text import holds_any, join_lines
from .exceptions import StoreError

#: pyarrow.compute, untyped here (its stubs do not cover scalars mixed with arrays).
pc: Any = _pc

__all__ = ["csv_of", "csv_of_store"]

#: A cell the csv module quotes when it writes lines ended by ``\n``.
_NEEDS_QUOTES: Final = '[,"\n]'
_QUOTED_BYTES: Final = b',"\n'
_MICROS: Final = 1_000_000


def csv_of(frame: pd.DataFrame) -> bytes | None:
    """``frame.to_csv(index=False)`` as bytes, or None where pandas must write it."""
    names = [str(name) for name in frame.columns]
    if not _plain_header(names):
        return None
    columns = []
    for name in frame.columns:
        texts = _texts(frame[name])
        if texts is None:
            return None
        columns.append(texts)
    return _lines(names, columns)


def csv_of_store(whole: WholeStore, decode: Callable[[str], object]) -> memoryview | None:
    """``frame_of(whole, decode).to_csv(index=False)`` as bytes, without the frame.

    None where pandas must write it (then build the frame and ask `csv_of`).

    Raises:
        StoreError: A key cell cannot be decoded (as `stet.read` raises).
    """
    keys, meta = frame_columns(whole)
    names = [*keys, *meta]
    if not _plain_header(names):
        return None
    columns = []
    for name in keys:
        texts = _key_texts(whole.table.column(name), decode, whole.location)
        if texts is None:
            return None
        columns.append(texts)
    for name in meta:
        texts = _meta_texts(name, whole.table.column(name))
        if texts is None:
            return None
        columns.append(texts)
    return _written(names, columns)


def _plain_header(names: list[str]) -> bool:
    return len(names) >= 2 and not any(re.search(_NEEDS_QUOTES, name) for name in names)


def _lines(names: list[str], columns: list[Any]) -> bytes:
    pieces: list[Any] = []
    for texts in columns:
        pieces += [_quoted(texts), ","]
    pieces[-1] = "\n"
    return (",".join(names) + "\n").encode() + join_lines(pieces)


def _written(names: list[str], columns: list[Any]) -> memoryview:
    """`_lines`, written by Arrow's CSV writer when no cell needs quotes (a third of the time).

    Unquoted, its lines are the csv module's: cells joined by ``,``, each
    line ended by ``\n``. It refuses a cell that holds a carriage return
    (the csv module writes it bare), which goes the way of `_lines`.
    """
    if not any(holds_any(texts, _QUOTED_BYTES, controls=False) for texts in columns):
        sink = pa.BufferOutputStream()
        sink.write((",".join(names) + "\n").encode())
        options = pa_csv.WriteOptions(
            include_header=False, quoting_style="none", batch_size=1 << 16
        )
        try:
            pa_csv.write_csv(pa.table(dict(zip(names, columns, strict=True))), sink, options)
        except pa.ArrowInvalid:
            pass
        else:
            return memoryview(sink.getvalue())
    return memoryview(_lines(names, columns))


def _key_texts(column: Any, decode: Callable[[str], object], location: str) -> Any:
    """A key column's cells as ``to_csv`` spells the values `stet.read` decodes."""
    if canonical_ints(column) is not None:
        return column  # an int64 column, which pandas spells by these digits

    def checked(text: str) -> object:
        try:
            return decode(text)
        except ValueError as exc:
            raise StoreError(location, f"a key cell cannot be read: {exc}") from None

    return _by_distinct(column, checked)


def _meta_texts(name: str, column: Any) -> Any:
    """A meta column's cells as ``to_csv`` spells what `stet.read` makes of them."""
    if name == TIMESTAMP:
        texts = _stamp_texts(column)
        if texts is not None:
            return texts
        stamps = _meta_series(name, column)
        if not isinstance(stamps.dtype, pd.DatetimeTZDtype):  # as frame_of does
            stamps = pd.to_datetime(stamps, utc=True, format="ISO8601")
        return _texts(stamps)
    if name == DURATION and not column.null_count:
        distinct, index = _dictionary(column)
        try:  # as _meta_series reads them, each distinct text once
            seconds = pd.Series(pc.cast(distinct, pa.float64()).to_numpy())
        except pa.ArrowInvalid:
            pass
        else:
            texts = _texts(seconds)
            return None if texts is None else pc.take(texts, index)
    return _by_distinct(column, lambda text: meta_value(name, text))


def _dictionary(column: Any) -> tuple[Any, Any]:
    encoded = pc.dictionary_encode(column.combine_chunks())
    return encoded.dictionary, encoded.indices


def _by_distinct(column: Any, convert: Callable[[str], object]) -> Any:
    """The cells spelt as ``to_csv`` spells ``convert`` of each in `stet.read`'s column.

    Each distinct text is converted once into a small column typed as
    `stet.read` types the whole one (`_series`: by the kinds of the values
    and whether a cell is absent), that is spelt, and the cells take their
    text by index. Values stet.read would not share among cells (a list, a
    dict) are spelt by ``str`` all the same: ``str`` of equal decodings is
    one text.
    """
    distinct, index = _dictionary(column)
    values = [convert(text) for text in distinct.to_pylist()]
    absent = column.null_count > 0
    positions = pa.array([*range(len(values)), *([None] if absent else [])], pa.int64())
    if all(isinstance(v, (*_SHAREABLE, np.generic)) for v in values):
        small = _series(values, positions, absent)
    else:
        small = pd.Series([*values, *([None] if absent else [])], dtype=object)
    texts = _texts(small)
    if texts is None:
        return None
    return pc.take(texts, pc.fill_null(index, len(values)))


_ZONE: Final = b"+00:00"
#: The timestamps stet writes, by width: each ``0`` stands for a digit.
_FORMS: Final = {
    25: b"0000-00-00T00:00:00" + _ZONE,
    32: b"0000-00-00T00:00:00.000000" + _ZONE,
}


def _stamp_texts(column: Any) -> Any:
    """Timestamps in stet's fixed forms as pandas writes them, byte-wise, or None.

    Every cell must be ``YYYY-MM-DDTHH:MM:SS[.ffffff]+00:00`` of one width,
    and a time Arrow reads (it refuses 24:00, February 30, second 60): then
    `stet.read` holds µs times (`cast_stamps`), which pandas writes with a
    space for the ``T`` and the fraction to the finest precision a cell needs
    (6 digits, 3, or none), as `_stamps` spells them.
    """
    if column.null_count or len(column) == 0:
        return None
    cells: Any = column.combine_chunks()
    if cells.type != pa.string():
        return None
    buffers: Any = cells.buffers()
    bounds = np.frombuffer(buffers[1], dtype=np.int32)[cells.offset : cells.offset + len(cells) + 1]
    width = int(bounds[1] - bounds[0])
    if width not in (25, 32) or np.any(np.diff(bounds) != width):
        return None
    data = np.frombuffer(buffers[2], dtype=np.uint8)[int(bounds[0]) : int(bounds[-1])]
    grid = data.reshape(len(cells), width)
    form = np.frombuffer(_FORMS[width], dtype=np.uint8)
    span = np.where(form == ord("0"), 9, 0).astype(np.uint8)
    span[-len(_ZONE) :] = 0  # the offset is +00:00 itself
    # A byte below its form's wraps around above the span: one pass for every cell.
    if np.any((grid - form) > span):
        return None
    if cast_stamps(cells) is None or _stamp_kind(cells) != "datetime64[us, UTC]":
        return None
    keep = 19
    if width == 32 and np.any(grid[:, 23:26] != ord("0")):
        keep = 26
    elif width == 32 and np.any(grid[:, 20:23] != ord("0")):
        keep = 23
    if keep + len(_ZONE) == width:  # every digit kept: the bytes as they are, but the T
        out = data.copy()
        out[10::width] = ord(" ")
        return _fixed_width(out, width)
    out = np.empty((len(cells), keep + len(_ZONE)), dtype=np.uint8)
    out[:, :keep] = grid[:, :keep]
    out[:, 10] = ord(" ")
    out[:, keep:] = np.frombuffer(_ZONE, dtype=np.uint8)
    return _fixed_width(out.reshape(-1), keep + len(_ZONE))


def _fixed_width(data: Any, width: int) -> Any:
    """Texts of ``width`` bytes each, laid end to end in ``data``, as an Arrow array."""
    count = len(data) // width
    offsets = np.arange(count + 1, dtype=np.int32) * width
    return pa.StringArray.from_buffers(count, pa.py_buffer(offsets.data), pa.py_buffer(data.data))


def _stamp_kind(cells: Any) -> str:
    """The dtype `stet._inspect._meta_series` gives the column (from its first cell)."""
    sample = meta_value(TIMESTAMP, cells[0].as_py())
    kind = pd.to_datetime(pd.Series([sample], dtype=object), utc=True, format="ISO8601").dtype
    return str(kind)


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

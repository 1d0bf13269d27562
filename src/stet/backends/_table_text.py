"""Records of an Arrow table as the lines of a CSV or JSON store, joined in C.

``stet reset --where`` rewrites a store of a million records without the
ones it removes. Formatting each kept record in Python (a dict, then the
csv module or `json.dumps`) was most of its time; here the lines are joined
column-wise by Arrow. Only cells that need no quoting or escaping take this
way, so the bytes are the ones the record-by-record writer makes: a table
holding any other cell gets None, and the caller formats it record by record.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

from .._lazy import np, pa
from .._lazy import pc as _pc

#: pyarrow.compute, untyped here (its stubs do not cover scalars mixed with arrays).
pc: Any = _pc

__all__ = ["csv_lines", "holds_any", "join_lines", "json_lines"]

#: A cell the csv module would quote (or one holding any control character).
_CSV_SPECIAL: Final = b',"'
#: A cell `json.dumps` would escape (or one holding any control character).
_JSON_SPECIAL: Final = b'"\\'


def _plain(column: Any, special: bytes) -> bool:
    """True if no cell holds a byte of ``special`` or an ASCII control character."""
    return not holds_any(column, special)


def holds_any(column: Any, special: bytes, *, controls: bool = True) -> bool:
    """True if a cell of a string column holds a byte of ``special`` (or,
    with ``controls``, an ASCII control character).

    Looked up byte by byte in the columns' data buffers (a regular
    expression over each cell took twice as long as joining the lines); in
    UTF-8 a byte below 128 is always that ASCII character.
    """
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    for chunk in chunks:
        if len(chunk) == 0:
            continue
        if chunk.type not in (pa.string(), pa.large_string()):
            chunk = pc.cast(chunk, pa.large_string())
        width = np.int64 if chunk.type == pa.large_string() else np.int32
        buffers: Any = chunk.buffers()
        _, offsets, data = buffers
        if data is None:
            continue
        bounds = np.frombuffer(offsets, dtype=width)[chunk.offset : chunk.offset + len(chunk) + 1]
        cells = np.frombuffer(data, dtype=np.uint8)[int(bounds[0]) : int(bounds[-1])]
        if controls and ((cells < 32).any() or (cells == 127).any()):
            return True
        if any((cells == byte).any() for byte in special):
            return True
    return False


def join_lines(pieces: Sequence[Any]) -> bytes:
    """Each row's pieces (columns, or texts the same on every row) joined, all rows as bytes."""
    wide = [
        pa.scalar(p, pa.large_string()) if isinstance(p, str) else pc.cast(p, pa.large_string())
        for p in pieces
    ]
    lines = pc.binary_join_element_wise(*wide, pa.scalar("", pa.large_string()))
    if isinstance(lines, pa.ChunkedArray):
        lines = lines.combine_chunks()
    if len(lines) == 0:
        return b""
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)
    start, end = int(offsets[lines.offset]), int(offsets[lines.offset + len(lines)])
    data: bytes = lines.buffers()[2].slice(start, end - start).to_pybytes()
    return data


def csv_lines(table: pa.Table, header: Sequence[str]) -> bytes | None:
    """The table's records as CSV lines under ``header``, or None if a cell needs quotes."""
    columns = []
    for name in header:
        if name in table.column_names:
            column = pc.fill_null(table.column(name), "")
            if not _plain(column, _CSV_SPECIAL):
                return None
            columns.append(column)
        else:
            columns.append("")
    if not columns:
        return None
    pieces: list[Any] = []
    for column in columns:
        pieces += [column, ","]
    pieces[-1] = "\n"
    return join_lines(pieces)


def json_lines(table: pa.Table, names: Sequence[str]) -> bytes | None:
    """The table's records as JSON objects of ``names``, one a line, joined by ``,\\n``.

    None if a record lacks one of the columns or a cell needs escaping.
    """
    if not names or len(table) == 0:
        return None
    pieces: list[Any] = []
    for number, name in enumerate(names):
        column = table.column(name)
        if column.null_count or not _plain(column, _JSON_SPECIAL):
            return None
        lead = "{" if number == 0 else '", '
        pieces += [f"{lead}{json.dumps(name)}: " + '"', column]
    pieces.append('"},\n')
    return join_lines(pieces)[:-2]

"""JSON store: an array of record objects, one per line, appended in place.

The file is always a JSON array that `json.load` and `pandas.read_json`
read. Every cell is a JSON string holding the codec's canonical text (as in
the CSV store: ``"0.1"``, ``"3"``, ``"adam"``, ``"'007"``), so a record never
depends on how a JSON reader treats numbers, and a big store is read by
Arrow's JSON reader. (Numbers, booleans and null written by hand are read
too.) Appending replaces the closing bracket with the new records and a new
closing bracket; a writer killed half-way leaves a prefix that is recovered
by dropping the torn tail.
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Sequence
from itertools import starmap
from operator import itemgetter
from typing import Any, Final

from .._codec_text import float_text
from .._lazy import pa, pa_json
from ._appended import AppendCursor, AppendedFile
from ._clock import SYSTEM_CLOCK, Clock
from ._columns import check_column_name
from ._file_store import FileStore
from ._files import TAIL, atomic_write, file_state, read_from, tail_before
from ._new_records import NewRecords
from ._records import ARROW_THREADS, Batch, Columns, Cursor, Record, TableRecords
from ._schema import CODEC, FUNCTION, TIMESTAMP, is_meta
from ._table_text import json_lines

__all__ = ["open_json"]

_WS: Final = re.compile(r"\s*")


#: Files at least this big are read by Arrow in chunks of _CHUNK bytes.
_BULK_BYTES: Final = 1 << 20
_CHUNK: Final = 8 << 20
#: The metadata the index needs (the timestamp only to check the store).
_INDEX_META: Final = (FUNCTION, CODEC, TIMESTAMP)
_ABSENT: Final = object()
_SURROGATE: Final = re.compile("[\udc80-\udcff]")
#: What `json.dumps` escapes in a string (ensure_ascii=False): quotes, backslashes, controls.
_ESCAPED: Final = re.compile(r'["\\\x00-\x1f]')
#: What follows the last record: appends write over it (see `AppendCursor.closed`).
_CLOSING: Final = b"\n]\n"


def _no_constants(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


# Numbers are parsed by the C scanner as int and float: only numbers whose
# text is exactly what int/float give back are written as JSON numbers.
_DECODER: Final = json.JSONDecoder(parse_constant=_no_constants)


def _cell_json(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _cell_text(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if value is True:
        return "True"
    if value is False:
        return "False"
    if value is None:
        return "None"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return float_text(value)
    return None


def _format_row(row: Record) -> str:
    cells = ", ".join(f"{json.dumps(k)}: {_cell_json(v)}" for k, v in row.items())
    return "{" + cells + "}"


def _format_body(rows: Sequence[Record]) -> bytes:
    """The records' objects joined by ``,\\n``, as `_format_row` writes each."""
    if isinstance(rows, NewRecords) and rows.key_names and len(rows) > 1:
        plain = _plain_body(rows)
        if plain is not None:
            return plain.encode("utf-8")
    return ",\n".join(_format_rows(rows)).encode("utf-8")


def _plain_body(rows: NewRecords) -> str | None:
    """`_format_body` of new records whose key texts need no escaping, in C.

    Each record is the same pieces around its key texts: the pieces of all
    records are laid out in one list by slice assignments and joined once,
    instead of a format call per record (a million in `stet.mark_done`).
    None if a text needs escaping (`json.dumps` would change it).
    """
    columns = [rows.key_texts(name) for name in rows.key_names]
    for column in columns:
        if _ESCAPED.search("".join(column)):
            return None
    names = [json.dumps(k) for k in rows.key_names]
    meta = "".join(f", {json.dumps(k)}: {_cell_json(v)}" for k, v in rows.meta.items())
    around = ["{" + names[0] + ': "', *(f'", {n}: "' for n in names[1:]), '"' + meta + "},\n"]
    width, count = len(around) + len(columns), len(rows)
    pieces: list[str] = [""] * (width * count)
    for i, column in enumerate(columns):
        pieces[2 * i :: width] = [around[i]] * count
        pieces[2 * i + 1 :: width] = column
    pieces[width - 1 :: width] = [around[-1]] * count
    return "".join(pieces)[:-2]


def _format_rows(rows: Sequence[Record]) -> list[str]:
    """`_format_row` of each record; of `NewRecords`, without building the records."""
    if not isinstance(rows, NewRecords):
        return list(map(_format_row, rows))
    # One format string per batch, '{"a": {}, "b": {}, "_stet_host": "h", ...}' with
    # format()'s braces doubled in the fixed parts, filled with each key column's
    # cells quoted whole (what json.dumps(text, ensure_ascii=False) calls for a str).
    fixed = [f"{json.dumps(k)}: " for k in rows.key_names]
    meta = [f"{json.dumps(k)}: {_cell_json(v)}" for k, v in rows.meta.items()]
    template = "{{" + ", ".join([*(f"{_braces(h)}{{}}" for h in fixed), *map(_braces, meta)]) + "}}"
    cell = json.encoder.encode_basestring
    columns = [list(map(cell, map(itemgetter(i), rows.keys))) for i in range(len(fixed))]
    if not columns:  # a function of no key parameters
        return [template.format()] * len(rows)
    return list(starmap(template.format, zip(*columns, strict=True)))


def _braces(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


class _JsonFormat(AppendedFile):
    """Cursor context: how many records precede the cursor."""

    closing = _CLOSING

    def parse_after(self, data: bytes, cursor: AppendCursor) -> tuple[list[Record], int, Any]:
        rows, used = self._parse(data, cursor.end, cursor.context > 0)
        return rows, used, cursor.context + len(rows)

    def scan_all(self, every_column: bool = True) -> tuple[Batch, AppendCursor, bool]:
        state = file_state(self.path)
        if state is not None and state[2] >= _BULK_BYTES:
            big = self._scan_big(every_column)
            if big is not None:
                return big
        data, state = read_from(self.path, 0)
        text_start = 3 if data.startswith(b"\xef\xbb\xbf") else 0
        m = re.match(rb"\s*\[", data[text_start:])
        if m is None:
            what = "is empty (0 bytes)" if not data else "does not start with '['"
            raise self._error(
                f"{what}, so it is not a JSON store written by stet; it is left "
                "untouched (move it away to start a new store)"
            )
        start = text_start + m.end()
        if len(data) >= _BULK_BYTES:
            whole = self._parse_whole(data, start - 1)
            if whole is not None:
                end = data.rindex(b"}") + 1
                return whole, AppendCursor(state, end, tail_before(data, end), len(whole)), True
        rows, used = self._parse(data[start:], start, False)
        end = start + used
        return rows, AppendCursor(state, end, tail_before(data, end), len(rows)), True

    def _scan_big(self, every_column: bool) -> tuple[Columns, AppendCursor, bool] | None:
        """A big, complete file of string cells, read by Arrow a chunk at a time.

        Only the columns the index needs are kept (unless asked for all), so
        neither the whole file nor every cell is ever held. None when the
        file is not that (a torn tail, hand-written numbers, another layout):
        the careful reader then decides.
        """
        with open(self.path, "rb") as f:
            st = os.fstat(f.fileno())
            size = st.st_size
            head = f.read(64)
            m = re.match(rb"(?:\xef\xbb\xbf)?\s*\[", head)
            f.seek(max(0, size - 64))
            last = f.read()
            body_end = len(last.rstrip())
            if m is None or not last[:body_end].endswith(b"]"):
                return None  # not a JSON array, or no closing bracket: a torn tail
            close = size - len(last) + body_end - 1  # the closing bracket
            f.seek(m.end())
            tables, carry, remaining = [], b"", close - m.end()
            while remaining > 0:
                chunk = f.read(min(_CHUNK, remaining))
                if not chunk:
                    return None
                remaining -= len(chunk)
                buffer = carry + chunk
                cut = len(buffer) if remaining <= 0 else buffer.rfind(b"\n") + 1
                lines, carry = buffer[:cut], buffer[cut:]
                if not lines.strip():
                    continue
                table = self._arrow_lines(lines.replace(b"},\n", b"}\n"), every_column)
                if table is None:
                    return None
                tables.append(table)
            f.seek(max(0, close - 64))
            before_close = f.read(close - max(0, close - 64))
        if not tables or carry.strip():
            return None
        table = pa.concat_tables(tables, promote_options="default")
        if TIMESTAMP not in table.column_names or table.column(TIMESTAMP).null_count:
            return None
        for name in table.column_names:
            check_column_name(name, self.path)
        end = close - (len(before_close) - len(before_close.rstrip()))
        f_tail = before_close.rstrip()[-TAIL:]
        state = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        return Columns.of_arrow(table), AppendCursor(state, end, f_tail, table.num_rows), True

    @staticmethod
    def _arrow_lines(lines: bytes, every_column: bool) -> pa.Table | None:
        try:
            table = pa_json.read_json(
                io.BytesIO(lines), read_options=pa_json.ReadOptions(use_threads=ARROW_THREADS)
            )
        except pa.ArrowException:
            return None
        if not all(pa.types.is_string(t) for t in table.schema.types):
            return None
        if every_column:
            return table
        keep = [n for n in table.column_names if not is_meta(n) or n in _INDEX_META]
        return table.select(keep)

    def _parse_whole(self, data: bytes, bracket: int) -> Columns | None:
        """A big, complete file in one pass of the C parser; None if it is not."""
        try:
            records = json.loads(data[bracket:], parse_constant=_no_constants)
        except (ValueError, UnicodeDecodeError):
            return None  # a torn tail, or damage: the careful reader decides
        if not records or not all(type(r) is dict for r in records):
            return None
        every = set().union(*records)
        names = [n for n in records[0] if n in every] + sorted(every.difference(records[0]))
        for name in names:
            check_column_name(name, self.path)
        if TIMESTAMP not in names or any(TIMESTAMP not in r for r in records):
            return None
        data_by_column: dict[str, list[str | None]] = {}
        for name in names:
            cells = [r.get(name, _ABSENT) for r in records]
            kinds = set(map(type, cells))
            if kinds == {str}:
                data_by_column[name] = cells
                continue
            if kinds == {int}:
                data_by_column[name] = list(map(str, cells))
                continue
            if kinds <= {int, float}:  # JSON numbers are finite: no NaN or infinity
                data_by_column[name] = [
                    str(v) if type(v) is int else str(int(v)) if v.is_integer() else repr(v)
                    for v in cells
                ]
                continue
            texts: list[str | None] = []
            for value in cells:
                if value is _ABSENT:
                    texts.append(None)
                    continue
                text = value if type(value) is str else _cell_text(value)
                if text is None:
                    return None  # a cell of a type stet never writes: the careful reader reports it
                texts.append(text)
            data_by_column[name] = texts
        return Columns(names, len(records), data_by_column.__getitem__)

    def _parse(self, data: bytes, offset: int, expect_comma: bool) -> tuple[list[Record], int]:
        """Parse records from just after '[' or after a complete record.

        Returns the rows and how many bytes they span. Stops at the closing
        bracket or at a half-written record (only ever the last line).
        """
        text = data.decode("utf-8", errors="surrogateescape")
        bad = _SURROGATE.search(text)
        if bad is not None and "\n" in text[bad.start() :].rstrip("\n"):  # not just a torn tail
            where = offset + len(text[: bad.start()].encode("utf-8", errors="surrogateescape"))
            raise self._error(f"byte {where} is not UTF-8 text; the file is left untouched")
        known: set[str] = set()
        rows: list[Record] = []
        pos = 0  # just past the last complete record
        i = _WS.match(text, 0).end()  # type: ignore[union-attr]  # \s* always matches
        need_comma = expect_comma
        while i < len(text):
            if text[i] == "]":
                rest = text[i + 1 :]
                if rest.strip():
                    raise self._error(f"unexpected data after the closing ']': {rest[:40]!r}")
                return rows, len(text[:pos].encode("utf-8", errors="surrogateescape"))
            if need_comma:
                if text[i] != ",":
                    return self._torn(text, i, rows, pos, offset)
                i = _WS.match(text, i + 1).end()  # type: ignore[union-attr]
                if i == len(text):
                    break
            try:
                obj, end = _DECODER.raw_decode(text, i)
            except ValueError:
                return self._torn(text, i, rows, pos, offset)
            rows.append(self._row(obj, offset, i, known))
            pos = end
            need_comma = True
            i = _WS.match(text, end).end()  # type: ignore[union-attr]
        return rows, len(text[:pos].encode("utf-8", errors="surrogateescape"))

    def _torn(
        self, text: str, i: int, rows: list[Record], pos: int, offset: int
    ) -> tuple[list[Record], int]:
        if "\n" in text[i:].rstrip("\n"):
            where = offset + len(text[:i].encode("utf-8", errors="surrogateescape"))
            raise self._error(
                f"not valid JSON at byte {where}: {text[i : i + 40]!r}; the file is left untouched"
            )
        return rows, len(text[:pos].encode("utf-8", errors="surrogateescape"))

    def _row(self, obj: object, offset: int, i: int, known: set[str]) -> Record:
        if not isinstance(obj, dict):
            raise self._error(f"record near byte {offset + i} is not a JSON object")
        row: Record = {}
        for col, value in obj.items():
            text = value if type(value) is str else _cell_text(value)
            if text is None:
                raise self._error(
                    f"column {col!r} of the record near byte {offset + i} holds "
                    f"{type(value).__name__}, not a stet cell"
                )
            if col not in known:
                known.add(check_column_name(col, self.path))
            row[col] = text
        if TIMESTAMP not in row:
            raise self._error(
                f"the record near byte {offset + i} has no {TIMESTAMP}, so this is "
                "not a stet store; it is left untouched"
            )
        return row

    def encode(self, rows: Sequence[Record], cursor: Cursor | None) -> object:
        return _format_body(rows)

    def append(
        self, rows: Sequence[Record], cursor: Cursor | None, encoded: object = None
    ) -> Cursor:
        # The rows' objects, made ahead for these rows (see `encode`), or now.
        body = encoded if isinstance(encoded, bytes) else None
        if not isinstance(cursor, AppendCursor):
            return self.rewrite(rows, None, body)
        if body is None:
            body = _format_body(rows)
        data = (b",\n" if cursor.context else b"\n") + body
        return self.write_at_end(cursor, data, cursor.context + len(rows), closing=_CLOSING)

    def rewrite(
        self, rows: Sequence[Record], cursor: Cursor | None, body: bytes | None = None
    ) -> Cursor:
        lines = json_lines(rows.table, rows.names) if isinstance(rows, TableRecords) else body
        if lines is None:
            lines = _format_body(rows)
        # One copy of a big body (a first mark_done), not one a concatenation.
        data = b"".join([b"[\n", lines, _CLOSING]) if rows else b"[" + _CLOSING
        end = len(data) - len(_CLOSING)
        state = atomic_write(self.path, data)
        return AppendCursor(state, end, tail_before(data, end), len(rows), True)


def open_json(path: str, *, clock: Clock = SYSTEM_CLOCK) -> FileStore:
    """The JSON store at ``path`` (absolute)."""
    return FileStore(path, _JsonFormat(path), record_files=("",), clock=clock)

"""JSON store: an array of record objects, one per line, appended in place.

The file is always a JSON array that `json.load` and `pandas.read_json`
read. Numbers, booleans and null are written as JSON values, everything else
as the codec's canonical text in a JSON string. Appending replaces the
closing bracket with the new records and a new closing bracket; a writer
killed half-way leaves a prefix that is recovered by dropping the torn tail.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, Final

from ._base import TIMESTAMP, Cursor, Row, Table, check_column_name
from ._files import AppendCursor, AppendedFile, atomic_write, read_from, tail_before

__all__ = ["JsonBackend"]

_NUMBER: Final = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:e[+-][0-9]+)?\Z")
_WS: Final = re.compile(r"\s*")


class _Number(str):
    """The exact text of a JSON number, as written."""

    __slots__ = ()


def _no_constants(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


_DECODER: Final = json.JSONDecoder(
    parse_float=_Number, parse_int=_Number, parse_constant=_no_constants
)


def _cell_json(text: str) -> str:
    if _NUMBER.match(text):
        return text
    if text == "True":
        return "true"
    if text == "False":
        return "false"
    if text == "None":
        return "null"
    return json.dumps(text, ensure_ascii=False)


def _cell_text(value: object) -> str | None:
    if isinstance(value, str):  # _Number included: its text is kept exactly
        return value
    if value is True:
        return "True"
    if value is False:
        return "False"
    if value is None:
        return "None"
    return None


def _format_row(row: Row) -> str:
    cells = ", ".join(f"{json.dumps(k)}: {_cell_json(v)}" for k, v in row.items())
    return "{" + cells + "}"


class _JsonFormat(AppendedFile):
    """Cursor context: how many records precede the cursor."""

    def parse_after(self, data: bytes, cursor: AppendCursor) -> tuple[list[Row], int, Any]:
        rows, used = self._parse(data, cursor.end, cursor.context > 0)
        return rows, used, cursor.context + len(rows)

    def scan_all(self) -> tuple[list[Row], AppendCursor, bool]:
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
        rows, used = self._parse(data[start:], start, False)
        end = start + used
        return rows, AppendCursor(state, end, tail_before(data, end), len(rows)), True

    def _parse(self, data: bytes, offset: int, expect_comma: bool) -> tuple[list[Row], int]:
        """Parse records from just after '[' or after a complete record.

        Returns the rows and how many bytes they span. Stops at the closing
        bracket or at a half-written record (only ever the last line).
        """
        text = data.decode("utf-8", errors="surrogateescape")
        rows: list[Row] = []
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
            rows.append(self._row(obj, offset, i))
            pos = end
            need_comma = True
            i = _WS.match(text, end).end()  # type: ignore[union-attr]
        return rows, len(text[:pos].encode("utf-8", errors="surrogateescape"))

    def _torn(
        self, text: str, i: int, rows: list[Row], pos: int, offset: int
    ) -> tuple[list[Row], int]:
        if "\n" in text[i:].rstrip("\n"):
            where = offset + len(text[:i].encode("utf-8", errors="surrogateescape"))
            raise self._error(
                f"not valid JSON at byte {where}: {text[i : i + 40]!r}; the file is left untouched"
            )
        return rows, len(text[:pos].encode("utf-8", errors="surrogateescape"))

    def _row(self, obj: object, offset: int, i: int) -> Row:
        if not isinstance(obj, dict):
            raise self._error(f"record near byte {offset + i} is not a JSON object")
        row: Row = {}
        for col, value in obj.items():
            text = _cell_text(value)
            if text is None:
                raise self._error(
                    f"column {col!r} of the record near byte {offset + i} holds "
                    f"{type(value).__name__}, not a stet cell"
                )
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise self._error(f"the record near byte {offset + i} is not UTF-8 text") from None
            row[check_column_name(col, self.path)] = text
        if TIMESTAMP not in row:
            raise self._error(
                f"the record near byte {offset + i} has no {TIMESTAMP}, so this is "
                "not a stet store; it is left untouched"
            )
        return row

    def append(self, rows: Sequence[Row], cursor: Cursor | None) -> Cursor:
        if not isinstance(cursor, AppendCursor):
            return self.rewrite(rows, None)
        body = ",\n".join(_format_row(r) for r in rows)
        lead = ",\n" if cursor.context else "\n"
        data = (lead + body).encode("utf-8")
        return self.write_at_end(cursor, data, cursor.context + len(rows), closing=b"\n]\n")

    def rewrite(self, rows: Sequence[Row], cursor: Cursor | None) -> Cursor:
        body = ",\n".join(_format_row(r) for r in rows)
        head = "[\n" + body if rows else "["
        data = head.encode("utf-8")
        state = atomic_write(self.path, data + b"\n]\n")
        return AppendCursor(state, len(data), tail_before(data, len(data)), len(rows))


class JsonBackend(Table):
    """A store in a JSON file (``.json``): an array of record objects.

    Needs nothing beyond the standard library to read: `json.load` gives a
    list of dicts, `pandas.read_json` a DataFrame.
    """

    format_class = _JsonFormat
    extensions = (".json",)

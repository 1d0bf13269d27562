"""JSON store: an array of record objects, one per line, appended in place.

The file is always a JSON array that `json.load` and `pandas.read_json`
read. Numbers, booleans and null are written as JSON values, everything else
as the codec's canonical text in a JSON string. Appending replaces the
closing bracket with the new records and a new closing bracket; a writer
killed half-way leaves a prefix that is recovered by dropping the torn tail.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from typing import Final

import attrs

from ..exceptions import StoreError
from ._base import TIMESTAMP, Cursor, Row, Table, check_column_name
from ._files import (
    FileState,
    atomic_write,
    file_state,
    read_after,
    read_from,
    tail_before,
    write_all,
)

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


@attrs.frozen
class _JsonCursor:
    state: FileState
    end: int  # byte offset just past the last complete record
    count: int  # records so far (a comma is needed before the next one)
    tail: bytes  # the bytes just before end, to recognize the same file


class _JsonFormat:
    def __init__(self, path: str) -> None:
        self.path = path
        self.location = path

    def lock_path(self) -> str:
        return self.path + ".lock"

    def after_fork(self) -> None:
        pass

    def _error(self, problem: str) -> StoreError:
        return StoreError(self.path, problem)

    def scan(self, cursor: Cursor | None) -> tuple[list[Row], Cursor | None, bool]:
        state = file_state(self.path)
        if state is None:
            return [], None, True
        if isinstance(cursor, _JsonCursor) and state[:2] == cursor.state[:2]:
            if state[2:] == cursor.state[2:]:
                return [], cursor, False
            after = read_after(self.path, cursor.end, cursor.tail)
            if after is not None:
                data, state = after
                rows, used = self._parse(data, cursor.end, cursor.count > 0)
                tail = tail_before(cursor.tail + data, len(cursor.tail) + used)
                new = _JsonCursor(state, cursor.end + used, cursor.count + len(rows), tail)
                return rows, new, False
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
        return rows, _JsonCursor(state, end, len(rows), tail_before(data, end)), True

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
        if not isinstance(cursor, _JsonCursor):
            return self.rewrite(rows, None)
        body = ",\n".join(_format_row(r) for r in rows)
        lead = ",\n" if cursor.count else "\n"
        data = (lead + body).encode("utf-8")
        tail = tail_before(cursor.tail + data, len(cursor.tail) + len(data))
        try:
            fd = os.open(self.path, os.O_WRONLY)
            try:
                os.ftruncate(fd, cursor.end)
                os.lseek(fd, cursor.end, os.SEEK_SET)
                write_all(fd, data + b"\n]\n")
                st = os.fstat(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise self._error(f"cannot be written: {exc.strerror or exc}") from None
        state = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        return _JsonCursor(state, cursor.end + len(data), cursor.count + len(rows), tail)

    def rewrite(self, rows: Sequence[Row], cursor: Cursor | None) -> Cursor:
        body = ",\n".join(_format_row(r) for r in rows)
        head = "[\n" + body if rows else "["
        data = head.encode("utf-8")
        state = atomic_write(self.path, data + b"\n]\n")
        return _JsonCursor(state, len(data), len(rows), tail_before(data, len(data)))


class JsonBackend(Table):
    """A store in a JSON file (``.json``): an array of record objects.

    Needs nothing beyond the standard library to read: `json.load` gives a
    list of dicts, `pandas.read_json` a DataFrame.
    """

    format_class = _JsonFormat
    extensions = (".json",)

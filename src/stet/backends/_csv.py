"""CSV store: a header line, then one line per record, appended in place.

Cells are the codec's canonical texts, so numbers and plain words read as
themselves in a spreadsheet or ``pandas.read_csv``. An empty cell means the
record has no such column. New records are appended with one ``write``; a
new column (a function with other key parameters) rewrites the file
atomically with the wider header.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from typing import Final

import attrs

from ..exceptions import StoreError
from ._base import META_COLUMNS, TIMESTAMP, Cursor, Row, Table, check_column_name
from ._files import (
    FileState,
    atomic_write,
    file_state,
    read_after,
    read_from,
    tail_before,
    write_all,
)

__all__ = ["CsvBackend"]

_BOM: Final = b"\xef\xbb\xbf"


@attrs.frozen
class _CsvCursor:
    state: FileState  # of the file as last read
    end: int  # byte offset just past the last complete record
    header: tuple[str, ...]
    tail: bytes  # the bytes just before end, to recognize the same file


def _complete_length(data: bytes) -> int:
    """Length of the prefix of ``data`` made of whole records.

    Quotes come in pairs inside a record, so a newline ends a record exactly
    when an even number of quote characters precede it.
    """
    end = data.rfind(b"\n")
    while end >= 0:
        if data.count(b'"', 0, end) % 2 == 0:
            return end + 1
        end = data.rfind(b"\n", 0, end)
    return 0


def _format_rows(rows: Sequence[Row], header: Sequence[str]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for row in rows:
        writer.writerow([row.get(col, "") for col in header])
    return out.getvalue().encode("utf-8")


class _CsvFormat:
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
        if isinstance(cursor, _CsvCursor) and state[:2] == cursor.state[:2]:
            if state[2] == cursor.state[2] and state[3] == cursor.state[3]:
                return [], cursor, False
            after = read_after(self.path, cursor.end, cursor.tail)
            if after is not None:
                data, state = after
                rows, used = self._parse_records(data, cursor.header, cursor.end)
                tail = tail_before(cursor.tail + data, len(cursor.tail) + used)
                return rows, _CsvCursor(state, cursor.end + used, cursor.header, tail), False
        return self._scan_all()

    def _scan_all(self) -> tuple[list[Row], Cursor, bool]:
        data, state = read_from(self.path, 0)
        start = len(_BOM) if data.startswith(_BOM) else 0
        header_end = data.find(b"\n", start)
        if header_end < 0:
            what = "is empty (0 bytes)" if not data else "has no complete header line"
            raise self._error(
                f"{what}, so it is not a CSV store written by stet; "
                "it is left untouched (move it away to start a new store)"
            )
        header = self._parse_header(data[start : header_end + 1])
        body_start = header_end + 1
        rows, used = self._parse_records(data[body_start:], header, body_start)
        end = body_start + used
        return rows, _CsvCursor(state, end, header, tail_before(data, end)), True

    def _parse_header(self, line: bytes) -> tuple[str, ...]:
        try:
            names = next(csv.reader([line.decode("utf-8").rstrip("\r\n")]))
        except (UnicodeDecodeError, csv.Error, StopIteration):
            raise self._error("the header line is not UTF-8 CSV") from None
        if TIMESTAMP not in names:
            raise self._error(
                f"the header {names!r} has no {TIMESTAMP} column, so this is not a "
                "stet store; it is left untouched"
            )
        if len(set(names)) != len(names):
            raise self._error(f"the header {names!r} repeats a column")
        for name in names:
            check_column_name(name, self.path)
        return tuple(names)

    def _parse_records(
        self, data: bytes, header: tuple[str, ...], offset: int
    ) -> tuple[list[Row], int]:
        used = _complete_length(data)
        try:
            text = data[:used].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self._error(
                f"bytes {offset + exc.start}-{offset + exc.end} are not UTF-8 text"
            ) from None
        self._check_tail(data[used:], header, offset + used)
        rows: list[Row] = []
        width = len(header)
        try:
            for cells in csv.reader(io.StringIO(text, newline=""), strict=True):
                if not cells:
                    continue
                if len(cells) != width:
                    raise self._error(
                        f"a record has {len(cells)} cells but the header has {width}: {cells!r}"
                    )
                rows.append({c: v for c, v in zip(header, cells, strict=True) if v})
        except csv.Error as exc:
            raise self._error(f"not valid CSV ({exc})") from None
        return rows, used

    def _check_tail(self, tail: bytes, header: tuple[str, ...], offset: int) -> None:
        """Accept a half-written last record; refuse anything else."""
        if not tail:
            return
        text = tail.decode("utf-8", errors="ignore")
        try:
            cells = next(csv.reader(io.StringIO(text, newline="")), [])
        except csv.Error:
            cells = []
        if len(cells) > len(header):
            raise self._error(
                f"unreadable data at byte {offset}: not a record nor a half-written one"
            )

    def append(self, rows: Sequence[Row], cursor: Cursor | None) -> Cursor:
        if not isinstance(cursor, _CsvCursor):
            return self.rewrite(rows, None)
        header = self._header_for(rows, cursor.header)
        if header != cursor.header:
            old, _, _ = self._scan_all()
            return self.rewrite([*old, *rows], None, header)
        data = _format_rows(rows, header)
        tail = tail_before(cursor.tail + data, len(cursor.tail) + len(data))
        try:
            fd = os.open(self.path, os.O_WRONLY)
            try:
                # Drop a half-written record a killed writer left behind.
                if os.fstat(fd).st_size != cursor.end:
                    os.ftruncate(fd, cursor.end)
                os.lseek(fd, cursor.end, os.SEEK_SET)
                write_all(fd, data)
                st = os.fstat(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise self._error(f"cannot be written: {exc.strerror or exc}") from None
        state = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        return _CsvCursor(state, cursor.end + len(data), header, tail)

    @staticmethod
    def _header_for(rows: Sequence[Row], header: tuple[str, ...]) -> tuple[str, ...]:
        known = set(header)
        new_keys: list[str] = []
        for row in rows:
            for col in row:
                if col not in known:
                    known.add(col)
                    new_keys.append(col)
        if not header:
            keys = [c for c in new_keys if c not in META_COLUMNS]
            return (*keys, *META_COLUMNS)
        return (*header, *new_keys)

    def rewrite(
        self,
        rows: Sequence[Row],
        cursor: Cursor | None,
        header: tuple[str, ...] | None = None,
    ) -> Cursor:
        if header is None:
            base = cursor.header if isinstance(cursor, _CsvCursor) else ()
            header = self._header_for(rows, base)
        data = ",".join(header).encode() + b"\n" + _format_rows(rows, header)
        state = atomic_write(self.path, data)
        return _CsvCursor(state, len(data), header, tail_before(data, len(data)))


class CsvBackend(Table):
    """A store in a CSV file (``.csv``), the default.

    Opens in a spreadsheet and in `pandas.read_csv`: one column per key
    parameter holding the value's canonical text, then the ``_stet_``
    metadata columns.

    Example:
        >>> import tempfile, os
        >>> store = CsvBackend(os.path.join(tempfile.mkdtemp(), "runs.csv"))
        >>> store.record({"alpha": 0.1, "seed": 3})
        True
        >>> store.has({"alpha": 0.1, "seed": 3})
        True
    """

    format_class = _CsvFormat
    extensions = (".csv",)

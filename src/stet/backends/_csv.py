"""CSV store: a header line, then one line per record, appended in place.

Cells are the codec's canonical texts, so numbers and plain words read as
themselves in a spreadsheet or ``pandas.read_csv``. An empty cell means the
record has no such column. New records are appended with one ``write``; a
new column (a function with other key parameters) rewrites the file
atomically with the wider header.

Key texts never hold a raw line break (the codec writes such strings
JSON-quoted), so every record stet writes is one line. That is what tells a
torn last record (a killed writer's, which never ends in a line break) from
damage (an unclosed quote followed by more lines), which is an error at open.
"""

from __future__ import annotations

import contextlib
import csv
import io
import threading
from collections.abc import Sequence
from typing import Any, Final

from .._lazy import pa, pa_csv
from ._appended import AppendCursor, AppendedFile
from ._clock import SYSTEM_CLOCK, Clock
from ._columns import check_column_name
from ._csv_kept import kept_body, line_lengths
from ._csv_rows import allow_fields_of, complete_length, format_rows
from ._file_store import FileStore
from ._files import atomic_write, read_from, tail_before
from ._new_records import NewRecords
from ._records import ARROW_THREADS, Batch, Columns, Cursor, Record, TableRecords, as_records
from ._schema import CODEC, FUNCTION, META_COLUMNS, TIMESTAMP, is_meta

__all__ = ["CsvChunks", "format_rows", "header_for", "open_csv"]

_BOM: Final = b"\xef\xbb\xbf"
#: Bodies at least this big are parsed by Arrow into columns.
_BULK_BYTES: Final = 1 << 20
#: Bodies at least this big are parsed in two halves at once, each by a
#: thread of ours: the parse is most of a big store's open, and two cores
#: halve it (measured at 10**7 records: 1.4-2.7 s alone, 0.7-1.3 s in two).
_HALVES_BYTES: Final = 16 << 20


class _CsvFormat(AppendedFile):
    """Cursor context: the header."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self._tail = (b"", 0)  # bytes after the last complete record, as last read
        #: A tail that ends in a line break and was taken for a torn record
        #: of stet 0.0.x or key rules 1 (see `_torn_after_line_break`).
        self._torn_old = (b"", -1)

    def scan(
        self, cursor: object | None, *, every_column: bool = False
    ) -> tuple[Any, AppendCursor | None, bool]:
        if cursor is None:
            self._tail = (b"", 0)  # a new read: forget the last file's tail
        return super().scan(cursor, every_column=every_column)

    def parse_after(self, data: bytes, cursor: AppendCursor) -> tuple[list[Record], int, Any]:
        rows, used = self._parse_records(data, cursor.context, cursor.end)
        return rows, used, cursor.context

    def scan_all(self, every_column: bool = True) -> tuple[Batch, AppendCursor, bool]:
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
        records: Batch
        if len(data) - body_start >= _BULK_BYTES:
            # The body is parsed where it lies in ``data`` (a big file's bytes
            # are not copied twice more).
            used = complete_length(data, body_start) - body_start
            self._check_tail(data[body_start + used :], header, body_start + used)
            records = self._parse_bulk(data, header, every_column, body_start, body_start + used)
        else:
            records, used = self._parse_records(data[body_start:], header, body_start)
        end = body_start + used
        return records, AppendCursor(state, end, tail_before(data, end), header), True

    def _parse_bulk(
        self,
        data: bytes,
        header: tuple[str, ...],
        every_column: bool = True,
        start: int = 0,
        stop: int | None = None,
    ) -> Columns:
        """Whole records of a big file (``data[start:stop]``), parsed in C by
        Arrow into columns (only the index's, unless asked: the others' cells
        are never built), where they lie in ``data``."""
        stop = len(data) if stop is None else stop
        body = memoryview(data)[start:stop]
        include = None
        if not every_column:
            include = [n for n in header if not is_meta(n) or n in (FUNCTION, CODEC)]
        cut = complete_length(data, start, (start + stop) // 2) - start
        if len(body) >= _HALVES_BYTES and 0 < cut < len(body):
            halves = self._parse_halves(body, cut, header, include)
            if halves is not None:
                return Columns.of_arrow(halves)
        try:
            table = self._arrow_csv(body, header, 1 << 20, include)
        except pa.ArrowInvalid as exc:
            if "straddling" not in str(exc):
                raise self._error(f"not valid CSV ({exc})") from None
            # A cell longer than Arrow's block: read the file as one block.
            try:
                table = self._arrow_csv(body, header, min(len(body) + 1, (1 << 31) - 1), include)
            except pa.ArrowInvalid as exc2:
                raise self._error(f"not valid CSV ({exc2})") from None
        return Columns.of_arrow(table)

    def _parse_halves(
        self, body: memoryview, cut: int, header: tuple[str, ...], include: list[str] | None
    ) -> pa.Table | None:
        """The body's records before and after ``cut`` (a record's end), parsed
        at once by two threads; None if that cannot be done (then the caller
        parses it whole, and says what is wrong with it, if anything)."""
        tables: list[pa.Table | None] = [None, None]

        def parse(half: int) -> None:
            part = body[:cut] if half == 0 else body[cut:]
            # Arrow's serial reader in each (its own pools stay off: see
            # ARROW_THREADS); it lets go of the GIL while it parses.
            with contextlib.suppress(pa.ArrowInvalid):
                tables[half] = self._arrow_csv(part, header, 1 << 20, include)

        second = threading.Thread(target=parse, args=(1,), name="stet-csv-half")
        try:
            second.start()
        except RuntimeError:  # no new thread at interpreter shutdown
            return None
        try:
            parse(0)
        finally:
            second.join()
        first, last = tables
        if first is None or last is None:
            return None
        return pa.concat_tables([first, last])

    @staticmethod
    def _arrow_csv(
        body: bytes | memoryview,
        header: tuple[str, ...],
        block_size: int,
        include: list[str] | None = None,
    ) -> pa.Table:
        strings = {name: pa.string() for name in header}
        return pa_csv.read_csv(
            # Read in place (BytesIO copies a view); the stubs know only IO.
            pa.BufferReader(pa.py_buffer(body)),  # type: ignore[arg-type]
            read_options=pa_csv.ReadOptions(
                column_names=list(header), use_threads=ARROW_THREADS, block_size=block_size
            ),
            parse_options=pa_csv.ParseOptions(newlines_in_values=True),
            convert_options=pa_csv.ConvertOptions(
                column_types=strings,
                include_columns=include or [],
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
                null_values=[""],
            ),
        )

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
    ) -> tuple[list[Record], int]:
        used = complete_length(data)
        try:
            text = data[:used].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self._error(
                f"bytes {offset + exc.start}-{offset + exc.end} are not UTF-8 text"
            ) from None
        self._check_tail(data[used:], header, offset + used)
        self._tail = (data[used:], offset + used)  # checked again before it is cut off
        rows: list[Record] = []
        width = len(header)
        allow_fields_of(len(text))
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
        """Accept a half-written last record; refuse anything else.

        A killed writer leaves a prefix of its records, cut anywhere but just
        after a line break, which would have completed the record (stet
        writes each record on one line). Bytes after the last complete record
        that end in a line break are an unclosed quote that swallowed later
        lines: damage, reported before anything runs.
        """
        if not tail:
            return
        if tail.endswith(b"\n") and self._torn_after_line_break(tail, header, offset):
            self._torn_old = (tail, offset)
            return
        if tail.endswith(b"\n"):
            line = self._line_at(offset)
            raise self._error(
                f"the record on line {line} (byte {offset}) opens a quote that is never "
                "closed, so every line after it would read as one cell; it is not a record "
                "a killed writer left half-written, so stet neither reads past it nor cuts "
                "it off (fix the quote by hand, e.g. in a text editor)"
            )
        text = tail.decode("utf-8", errors="ignore")
        allow_fields_of(len(text))
        try:
            cells = next(csv.reader(io.StringIO(text, newline="")), [])
        except csv.Error:
            cells = []
        if len(cells) > len(header):
            raise self._error(
                f"unreadable data at byte {offset}: not a record nor a half-written one"
            )

    def _torn_after_line_break(self, tail: bytes, header: tuple[str, ...], offset: int) -> bool:
        """True if ``tail`` is the record an older stet was writing when it was
        killed, just after a line break inside a quoted cell.

        stet 0.0.x and key rules 1 wrote a string's line breaks raw (quoted),
        so their torn record may end in one. Such a tail is told from damage
        (a quote left open that swallowed the lines after it) by three
        things: it holds no more cells than the header, no line inside it
        reads as a whole record, and the record before it was written by
        such a stet (``_stet_codec`` none or 1). Anything else stays an error.
        """
        text = tail.decode("utf-8", errors="ignore")
        allow_fields_of(len(text))
        width = len(header)
        try:
            cells = next(csv.reader(io.StringIO(text, newline="")), [])
            lines = [next(csv.reader([line]), []) for line in text.split("\n")[1:]]
        except csv.Error:
            return False
        if not cells or len(cells) > width or any(len(line) >= width for line in lines):
            return False
        return self._codec_before(header, offset) in ("", "1")

    def _codec_before(self, header: tuple[str, ...], offset: int) -> str | None:
        """The ``_stet_codec`` ("" for none) of the record that ends at byte ``offset``.

        None if there is no such record or it cannot be read. Read from the
        file again: only a torn tail that ends in a line break asks.
        """
        try:
            with open(self.path, "rb") as f:
                data = f.read(offset)
        except OSError:
            return None
        body = data.find(b"\n") + 1
        if len(data) != offset or not body or offset <= body or not data.endswith(b"\n"):
            return None
        start = complete_length(data, body, offset - 1)
        try:
            text = data[start:offset].decode("utf-8")
            cells = next(csv.reader(io.StringIO(text, newline=""), strict=True), [])
        except (UnicodeDecodeError, csv.Error):
            return None
        if len(cells) != len(header):
            return None
        return dict(zip(header, cells, strict=True)).get(CODEC, "")

    def _line_at(self, offset: int) -> int:
        """The line number (from 1) of byte ``offset``, for messages."""
        try:
            with open(self.path, "rb") as f:
                return f.read(offset).count(b"\n") + 1
        except OSError:
            return 0

    def check_cut(self, cut: bytes, offset: int) -> None:
        # A killed writer leaves a prefix of its records: it never ends with a
        # line break, which would have completed the record. Lines that do are
        # someone's edit with an unclosed quote: never cut them off.
        if cut.endswith(b"\n") and (cut, offset) != self._torn_old:
            raise self._error(
                f"the record at byte {offset} opens a quote that is never closed, so "
                "everything after it reads as one cell; it is not a record a killed "
                "writer left half-written, so stet does not cut it off (fix the quote "
                "by hand)"
            )

    def encode(self, rows: Sequence[Record], cursor: Cursor | None) -> object:
        if not isinstance(cursor, AppendCursor):
            return None
        header = self._header_for(rows, cursor.context)
        return (header, format_rows(rows, header)) if header == cursor.context else None

    def append(
        self, rows: Sequence[Record], cursor: Cursor | None, encoded: object = None
    ) -> Cursor:
        if not isinstance(cursor, AppendCursor):
            return self.rewrite(rows, None)
        if isinstance(encoded, tuple) and encoded[0] == cursor.context:
            # Made for these rows under this very header (see `encode`).
            return self.write_at_end(cursor, encoded[1], cursor.context)
        header = self._header_for(rows, cursor.context)
        if header != cursor.context:
            old, _, _ = self.scan_all()
            return self.rewrite([*as_records(old), *rows], None, header)
        return self.write_at_end(cursor, format_rows(rows, header), header)

    @staticmethod
    def _header_for(rows: Sequence[Record], header: tuple[str, ...]) -> tuple[str, ...]:
        known = set(header)
        new_keys: list[str] = []
        whole = rows if isinstance(rows, NewRecords | TableRecords) else None
        for row in rows if whole is None else [dict.fromkeys(whole.names)]:
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
        rows: Sequence[Record],
        cursor: Cursor | None,
        header: tuple[str, ...] | None = None,
    ) -> Cursor:
        if self._tail[0]:
            self.check_cut(*self._tail)  # a rewrite drops what follows the last record
        if header is None:
            base = cursor.context if isinstance(cursor, AppendCursor) else ()
            header = self._header_for(rows, base)
        data = ",".join(header).encode() + b"\n" + format_rows(rows, header)
        state = atomic_write(self.path, data)
        return AppendCursor(state, len(data), tail_before(data, len(data)), header)

    def remove(self, table: pa.Table, doomed: Any, cursor: Cursor | None) -> Cursor:
        """The store without the ``doomed`` rows of ``table`` (its whole read, as ``cursor``
        left it), kept lines copied from the file where that gives `rewrite`'s bytes."""
        header = cursor.context if isinstance(cursor, AppendCursor) else ()
        body = None
        if header and set(table.column_names) <= set(header):  # no new column
            assert isinstance(cursor, AppendCursor)
            data, state = read_from(self.path, 0)
            if state == cursor.state:  # the very file that was read (the lock is held)
                start = len(_BOM) if data.startswith(_BOM) else 0
                start = data.find(b"\n", start) + 1

                def spell(rows: Any) -> bytes:
                    return format_rows(TableRecords(table.take(pa.array(rows))), header)

                body = kept_body(
                    data, start, cursor.end, doomed, lambda: line_lengths(table, len(header)), spell
                )
        if body is None:
            return self.rewrite(TableRecords(table.filter(pa.array(~doomed))), cursor)
        if self._tail[0]:
            self.check_cut(*self._tail)  # as `rewrite` does
        data = b"".join([",".join(header).encode(), b"\n", *body])
        state = atomic_write(self.path, data)
        return AppendCursor(state, len(data), tail_before(data, len(data)), header)


def header_for(rows: Sequence[Record], header: tuple[str, ...]) -> tuple[str, ...]:
    """``header`` widened by the columns of ``rows`` it lacks (key columns first when new)."""
    return _CsvFormat._header_for(rows, header)


class CsvChunks:
    """Parses CSV text as this store does, for a store made of many CSV files.

    The shared-directory store reads each writer's file in pieces as it
    grows; this gives it the CSV store's header checks, its tolerance of a
    half-written last record and its errors, which name ``path``.
    """

    def __init__(self, path: str) -> None:
        self._format = _CsvFormat(path)

    def header(self, line: bytes) -> tuple[str, ...]:
        """The column names of a header line (refused unless it is a stet header)."""
        return self._format._parse_header(line)

    def records(self, data: bytes, header: tuple[str, ...], offset: int) -> tuple[Batch, int]:
        """The whole records at the start of ``data`` (from byte ``offset``), and their length.

        A megabyte or more is parsed by Arrow into columns, as a big CSV store is.
        """
        if len(data) < _BULK_BYTES:
            return self._format._parse_records(data, header, offset)
        used = complete_length(data)
        self._format._check_tail(data[used:], header, offset + used)
        return self._format._parse_bulk(data, header, True, 0, used), used


def open_csv(path: str, *, clock: Clock = SYSTEM_CLOCK) -> FileStore:
    """The CSV store at ``path`` (absolute)."""
    return FileStore(path, _CsvFormat(path), record_files=("",), clock=clock)

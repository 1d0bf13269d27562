"""The CSV store's lines: where whole records end, and records spelt as lines.

Shared by the CSV store, a Parquet store's journal and a shared directory's
writer files, which all hold the same CSV format.
"""

from __future__ import annotations

import csv
import io
import sys
import threading
from collections.abc import Sequence

from ._new_records import NewRecords
from ._records import Record, TableRecords
from ._table_text import csv_lines

__all__ = ["allow_fields_of", "complete_length", "format_rows"]


def complete_length(data: bytes, start: int = 0, stop: int | None = None) -> int:
    """Length of the prefix of ``data[:stop]`` made of whole records (those
    from ``start`` on, and what comes before them).

    Quotes come in pairs inside a record, so a newline ends a record exactly
    when an even number of quote characters precede it.
    """
    end = data.rfind(b"\n", start, stop)
    if end >= 0 and data.find(b'"', start, end) < 0:
        return end + 1  # no quote at all (most stores): one scan, not a count
    if end < 0:
        return start
    quotes = data.count(b'"', start, end)  # counted once; then only what lies between
    while quotes % 2:
        earlier = data.rfind(b"\n", start, end)
        if earlier < 0:
            return start
        quotes -= data.count(b'"', earlier, end)
        end = earlier
    return end + 1


def format_rows(rows: Sequence[Record], header: Sequence[str]) -> bytes:
    """Records as CSV lines under ``header`` (one line each), as the CSV store writes them."""
    if isinstance(rows, TableRecords):
        lines = csv_lines(rows.table, header)
        if lines is not None:
            return lines
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if isinstance(rows, NewRecords):
        writer.writerows(rows.rows(header))
    else:
        writer.writerows([row.get(col, "") for col in header] for row in rows)
    text = out.getvalue()
    if "\r" in text:
        # The csv module quotes a cell holding a line feed, but not one
        # holding a lone carriage return, which readers then take for a line
        # break. (Key texts never hold one; a row from elsewhere might.)
        out = io.StringIO()
        plain = csv.writer(out, lineterminator="\n")
        quoted = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)
        for row in rows:
            cells = [row.get(col, "") for col in header]
            (quoted if any("\r" in cell for cell in cells) else plain).writerow(cells)
        text = out.getvalue()
    return text.encode("utf-8")


_limit_lock = threading.Lock()


def allow_fields_of(length: int) -> None:
    """Let the csv module read cells of up to ``length`` characters.

    Its default limit (131,072) is far below the longest key a store may
    hold; the limit is process-wide, so it is only ever raised.
    """
    if length > csv.field_size_limit():
        with _limit_lock:
            if length > csv.field_size_limit():
                csv.field_size_limit(min(length, sys.maxsize))

"""The lines a CSV store keeps after ``stet reset --where``, cut from its own bytes.

Rewriting a store of a million records without the ones removed used to
spell every kept record again (its cells joined into lines by Arrow), which
was most of the command's time. A line whose bytes hold no quote and no
carriage return is exactly what the writer would spell for the record read
from it (its cells, as parsed, joined by commas, then a line feed), so here
runs of such lines are copied from the file as they lie and only the other
kept records are spelled, each run of them by the writer itself. The result
is the very bytes the record-by-record rewrite makes
(``tests/test_reset_where.py`` checks it differentially); whenever this
cannot be sure of that (a carriage return or a blank line anywhere, lines
that do not match the records one to one, too many runs to spell), it
answers None and the caller spells everything as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from .._lazy import np, pa
from .._lazy import pc as _pc

#: pyarrow.compute, untyped here (its stubs do not cover chunked arrays mixed with scalars).
pc: Any = _pc

__all__ = ["kept_body", "line_lengths"]

#: More runs of records to spell than this, and spelling all kept records at once is cheaper.
_MOST_SPELLED_RUNS: Final = 256

_LF: Final = 10
_QUOTE: Final = 34
_COMMA: Final = 44


def kept_body(
    data: bytes,
    start: int,
    stop: int,
    doomed: Any,
    lengths: Callable[[], Any],
    spell: Callable[[Any], bytes],
) -> list[Any] | None:
    """The kept records' lines of ``data[start:stop]`` (whole records), as pieces to join.

    Args:
        data: The store's bytes.
        start: Where its first record starts (after the header line).
        stop: Just past its last complete record.
        doomed: A boolean numpy array, one per record of the body, in order.
        lengths: Each record's line length were none of its cells quoted
            (a numpy array; see `line_lengths`).
        spell: Spells the records at these row numbers (a sorted numpy array)
            as the writer does.

    Returns:
        Bytes and memoryviews whose join is the body without the doomed
        records, or None when the records must all be spelled anew.
    """
    rows = len(doomed)
    if stop <= start or rows == 0 or data[stop - 1] != _LF or data.find(b"\r", start, stop) >= 0:
        return None
    quoted: Any = None
    if data.find(b'"', start, stop) < 0:
        # No quote: one line a record (as many line breaks as records leaves
        # no room for a blank line), each its cells and commas as read.
        if data.count(b"\n", start, stop) != rows:
            return None
        ends = np.cumsum(lengths())
        if int(ends[-1]) != stop - start:
            return None
        breaks = ends - 1
    else:
        # A line break ends a record exactly when an even number of quotes precede it.
        body = np.frombuffer(data, dtype=np.uint8, count=stop - start, offset=start)
        quotes = np.flatnonzero(body == _QUOTE)
        if not _quoted_as_written(body, quotes):
            return None
        breaks = np.flatnonzero(body == _LF)
        before = np.searchsorted(quotes, breaks)
        ends_record = before % 2 == 0
        breaks, before = breaks[ends_record], before[ends_record]
        if len(breaks) != rows:
            return None
        quoted = np.diff(before, prepend=0) > 0
    firsts = np.concatenate(([0], breaks[:-1] + 1))
    if (breaks == firsts).any():
        return None  # a blank line, which is no record: spelled anew, it is gone
    # Each row: 0 removed, 1 copied as it lies, 2 spelled by the writer.
    kind = np.where(doomed, 0, 1).astype(np.int8)
    if quoted is not None:
        kind[quoted & ~doomed] = 2
    cuts = np.flatnonzero(np.diff(kind)) + 1
    heads = np.concatenate(([0], cuts))
    lasts = np.concatenate((cuts - 1, [rows - 1]))
    kinds = kind[heads]
    if int((kinds == 2).sum()) > _MOST_SPELLED_RUNS:
        return None
    view = memoryview(data)
    pieces: list[Any] = []
    for head, last, what in zip(heads.tolist(), lasts.tolist(), kinds.tolist(), strict=True):
        if what == 1:
            pieces.append(view[start + int(firsts[head]) : start + int(breaks[last]) + 1])
        elif what == 2:
            pieces.append(spell(np.arange(head, last + 1)))
    return pieces


def _quoted_as_written(body: Any, quotes: Any) -> bool:
    """True if every quote opens a cell, closes one or is half of a doubled quote.

    Only then does a line break end a record exactly when an even number of
    quotes precede it: a stray quote inside an unquoted cell (``x"y``, which
    Arrow reads as it is) would shift that count.
    """
    edge = np.array([_LF, _COMMA, _QUOTE], dtype=np.uint8)
    padded = np.concatenate(([_LF], body, [_LF]))  # the body starts and ends a line
    opening = np.arange(len(quotes)) % 2 == 0  # by count: the others close (or double)
    before, after = padded[quotes], padded[quotes + 2]
    fits = np.where(opening, np.isin(before, edge), np.isin(after, edge))
    return bool(fits.all())


def line_lengths(table: pa.Table, width: int) -> Any:
    """Each record's line length were none of its cells quoted: its cells' bytes,
    a comma between each two of the ``width`` cells, a line feed."""
    total = np.full(table.num_rows, width, dtype=np.int64)
    for column in table.columns:
        total += pc.fill_null(pc.binary_length(column), 0).to_numpy().astype(np.int64)
    return total

"""A big CSV store is parsed in two halves at once, and reads as it would whole.

The sizes that choose Arrow's parse and the two halves are lowered here, so
that a few records take the path a store of ten million takes. Cells are
hostile: quotes, commas, line breaks inside quotes (a hand edit), unicode,
empty cells; the files are sometimes damaged.
"""

from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path
from unittest import mock

from hypothesis import given
from hypothesis import strategies as st

import stet
from stet.backends import _csv
from stet.backends._records import Columns

cells = st.text(alphabet=st.sampled_from('a1",\n\r é\x1f'), max_size=6)
rows = st.lists(st.tuples(cells, cells), min_size=1, max_size=30)
damages = st.sampled_from(["", '"', "x,y,z,w\n", "\n,\n", '"\n"a'])


def _file(records: list[tuple[str, str]], damage: str, where: int) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["a", "b", "_stet_timestamp"])
    lines = [out.getvalue()]
    for a, b in records:
        line = io.StringIO(newline="")
        csv.writer(line, lineterminator="\n").writerow([a, b, "2026-01-01T00:00:00+00:00"])
        lines.append(line.getvalue())
    lines.insert(1 + where % len(lines), damage)
    return "".join(lines).encode()


def _read(path: Path, halves: int) -> list[dict[str, str]] | str:
    """The records of the file as parsed in bulk (halves at this size), or the error."""
    with (
        mock.patch.object(_csv, "_BULK_BYTES", 1),
        mock.patch.object(_csv, "_HALVES_BYTES", halves),
    ):
        try:
            records, _, _ = _csv._CsvFormat(str(path)).scan_all(every_column=True)
        except stet.StoreError as exc:
            return str(exc)
    if not isinstance(records, Columns):  # no record at all: nothing to parse in bulk
        assert not records
        return []
    return records.to_records()


@given(records=rows, damage=damages, where=st.integers(0, 40))
def test_a_csv_store_parsed_in_two_halves_reads_as_parsed_whole(
    records: list[tuple[str, str]], damage: str, where: int
) -> None:
    """Differential: the same records (the halves cut at a record's end,
    never inside a quoted line break), or the same error for a damaged file."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "runs.csv"
        path.write_bytes(_file(records, damage, where))
        assert _read(path, halves=1) == _read(path, halves=1 << 62)


@given(body=st.text(alphabet=st.sampled_from('a1",\n\r'), max_size=80))
def test_any_bytes_after_the_header_read_the_same_in_two_halves(body: str) -> None:
    """Differential over raw bodies, not csv-written rows: quotes in the
    middle of a cell, unclosed quotes, bare carriage returns. The cut is
    found by counting quotes, so a quote Arrow reads differently from that
    count must still give the whole parse's records or its error."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "runs.csv"
        path.write_bytes(("a,b,_stet_timestamp\n" + body).encode())
        assert _read(path, halves=1) == _read(path, halves=1 << 62)


def test_a_big_store_of_quoted_line_breaks_is_cut_between_records(tmp_path: Path) -> None:
    """A cell whose line breaks (some of them lines that would read as
    records) lie around the middle of the file stays one cell, and the
    file is still read in two halves."""
    records = [("x" * 50, str(i)) for i in range(20)]
    records[10] = ("first\n" + "fake,1,t\n" * 30, '"quoted"\n,')
    path = tmp_path / "runs.csv"
    path.write_bytes(_file(records, "", 0))
    lowered = mock.patch.object(_csv, "_BULK_BYTES", 1)
    with lowered, mock.patch.object(_csv, "_HALVES_BYTES", 1):
        read, _, _ = _csv._CsvFormat(str(path)).scan_all(every_column=True)
    assert isinstance(read, Columns)
    assert read.arrow is not None
    assert read.arrow.column("a").num_chunks == 2  # one a half
    assert [(r["a"], r["b"]) for r in read.to_records()] == records

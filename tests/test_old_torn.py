"""A CSV record an older stet was writing when killed is set aside, wherever it was cut.

stet 0.0.x and key rules 1 wrote a string's line breaks raw inside a quoted
cell, so their torn last record may end just after one: that is the same
half-written record as any other, never damage. (CSV files only: a CSV
store and a Parquet store's journal. The JSON store always escaped line
breaks; SQLite and Parquet files have no torn records.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import stet
from stet.backends import forget_open, open_store

from .test_hostile_keys import fresh

STAMP = "2026-01-01T00:00:00+00:00"

#: Each older stet's header, and a record of s="done\nrun" and one being written.
OLD = {
    "0.0.x": (
        b"s,n,_stet_timestamp\n",
        b'"done\nrun",1,' + STAMP.encode() + b"\n",
        b'"two\nline\nbreaks, and a comma",2,' + STAMP.encode() + b"\n",
    ),
    "rules 1": (
        b"s,n,_stet_function,_stet_timestamp,_stet_duration,_stet_host,_stet_code,_stet_codec\n",
        b'"done\nrun",1,run,' + STAMP.encode() + b",,,,1\n",
        b'"two\nline\nbreaks, and a comma",2,run,' + STAMP.encode() + b",,,,1\n",
    ),
}


def sweep(store: str, ran: list[tuple[str, int]]) -> Any:
    @stet.once(store=store, name="run", quiet=True)
    def run(s: str, n: int) -> None:
        ran.append((s, n))

    return run


@pytest.mark.parametrize("writer", list(OLD))
@pytest.mark.parametrize("big", [False, True], ids=["small", "bulk-read"])
def test_an_older_stets_record_torn_after_a_raw_line_break_is_set_aside(
    tmp_path: Path, writer: str, big: bool
) -> None:
    header, done, torn = OLD[writer]
    # Past a megabyte, the store's columns are read by Arrow: the same rule.
    filler = b"".join(
        done.replace(b"done\nrun", f"filler {i}".encode()) for i in range(25_000 if big else 0)
    )
    before = header + filler + done
    assert (len(before) > 1 << 20) == big
    breaks = [i + 1 for i in range(len(torn)) if torn[i : i + 1] == b"\n"][:-1]
    assert len(breaks) == 2  # each raw line break inside the cell
    for cut in breaks:
        store = tmp_path / f"cut{cut}.csv"
        store.write_bytes(before + torn[:cut])
        forget_open()
        ran: list[tuple[str, int]] = []
        run = sweep(str(store), ran)
        run("done\nrun", 1)  # finished before the crash: skipped
        run("two\nline\nbreaks, and a comma", 2)  # torn: it never finished, so it runs
        assert ran == [("two\nline\nbreaks, and a comma", 2)]
        assert torn[:cut] not in store.read_bytes()  # cut off, not left inside a cell
        forget_open()
        count = 25_000 if big else 0
        assert len(open_store(str(store)).records()) == count + 2  # nothing lost, nothing more
        again = fresh(str(store))
        assert again.has({"s": "done\nrun", "n": 1})
        assert again.has({"s": "two\nline\nbreaks, and a comma", "n": 2})


def test_an_unclosed_quote_that_swallowed_whole_records_stays_an_error(tmp_path: Path) -> None:
    """Damage, not a torn record: lines after the quote read as records."""
    header, done, _ = OLD["rules 1"]
    store = tmp_path / "runs.csv"
    swallowed = done.replace(b'"done\nrun"', b"x") + done.replace(b'"done\nrun"', b"y")
    store.write_bytes(header + done + b'"broken,1,run,' + STAMP.encode() + b",,,,1\n" + swallowed)
    ran: list[tuple[str, int]] = []
    with pytest.raises(stet.StoreError, match="quote that is never closed"):
        sweep(str(store), ran)("x", 1)
    assert ran == []


def test_a_tail_ending_in_a_line_break_after_todays_record_stays_an_error(tmp_path: Path) -> None:
    """Today's stet writes no raw line break, so after its record that is damage."""
    header, done, torn = OLD["rules 1"]
    store = tmp_path / "runs.csv"
    today = done.replace(b",,,,1\n", b",,,,3\n").replace(b'"done\nrun"', b'"""done\\nrun"""')
    store.write_bytes(header + today + torn[: torn.index(b"\n") + 1])
    ran: list[tuple[str, int]] = []
    with pytest.raises(stet.StoreError, match="quote that is never closed"):
        sweep(str(store), ran)("x", 1)
    assert ran == []


def test_a_parquet_stores_journal_torn_by_an_older_stet_is_set_aside(tmp_path: Path) -> None:
    """The journal is a CSV file of the same format: the same rule."""
    store = str(tmp_path / "runs.parquet")
    first = stet.backends.get_backend(store)
    first.record({"s": "first", "n": 0}, function="run")
    first.store.flush()  # into the Parquet file: the journal is gone
    header, done, torn = OLD["rules 1"]
    journal = Path(store + ".journal.csv")
    journal.write_bytes(header + done + torn[: torn.index(b"\n") + 1])
    forget_open()
    ran: list[tuple[str, int]] = []
    run = sweep(store, ran)
    run("first", 0)
    run("done\nrun", 1)
    run("two\nline\nbreaks, and a comma", 2)
    assert ran == [("two\nline\nbreaks, and a comma", 2)]
    forget_open()
    assert len(open_store(store).records()) == 3

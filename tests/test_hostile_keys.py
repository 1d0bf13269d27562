"""Legal calls a hostile user could make never break a store.

Every string survives every store (SPEC 3.3), every parameter name that
Python allows is written and read back through one column-name rule, and a
key a store cannot hold is refused before the function runs, never after.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import stet
from stet.backends import get_backend
from stet.backends._csv import _CsvFormat
from stet.backends._index import KeyIndex
from stet.backends._records import Columns

from . import strategies as S
from .conftest import kind
from .raw_rows import append_as_written

HOSTILE = [
    "carriage\rreturn",
    "cr\r\nlf",
    "nul\x00byte",
    "line\nbreak",
    "\n",
    "\r",
    "\x00",
    "=1+1",
    "+plus",
    "-minus",
    "@handle",
    '"',
    "'",
    "x" * 140_000,  # longer than the csv module's default field limit
]


def fresh(store: str) -> stet.backends.StoreBackend:
    """The store as another process would open it (nothing cached)."""
    return stet.backends.StoreBackend(stet.backends.new_store(store))


@pytest.mark.parametrize("text", HOSTILE, ids=lambda t: repr(t[:12]))
def test_every_string_key_is_recorded_skipped_and_read_back_on_every_store(
    store: str, text: str
) -> None:
    ran: list[str] = []

    @stet.once(store=store, quiet=True)
    def run(s: str, seed: int) -> str:
        ran.append(s)
        return s

    assert run(text, 1) == text
    assert run("plain", 1) == "plain"
    assert run(text, 1) is None
    assert fresh(store).has({"s": text, "seed": 1})  # another process skips it too
    frame = stet.read(store)
    assert sorted(frame["s"], key=len) == sorted([text, "plain"], key=len)
    assert run(text, 2) == text  # the store still takes records
    assert fresh(store).has({"s": text, "seed": 2})
    assert ran == [text, "plain", text]


@settings(max_examples=30)
@given(text=S.strings)
def test_any_string_survives_a_csv_store(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    store = str(tmp_path_factory.mktemp("csv") / "runs.csv")
    get_backend(store).record({"s": text, "n": 1})
    assert fresh(store).has({"s": text, "n": 1})
    assert fresh(store).load()[0]["s"] == text


@pytest.mark.parametrize("name", ["carriage\rreturn", "nul\x00", "line\nbreak", "lone\ud800"])
def test_a_name_a_store_cannot_hold_is_refused_when_configured(name: str) -> None:
    with pytest.raises(ValueError, match=r"control character|surrogate"):
        stet.Once(name=name)


@pytest.mark.parametrize("value", ["lone \ud800", ["a", "\udfff"]])
def test_a_lone_surrogate_is_refused_before_the_function_runs(store: str, value: object) -> None:
    ran: list[object] = []

    @stet.once(store=store)
    def run(text: object) -> None:
        ran.append(text)

    with pytest.raises(stet.KeyEncodingError, match=r"'text'.*lone surrogate"):
        run(value)
    assert ran == []


def test_a_parameter_named_with_two_underscores_is_written_and_read_back(store: str) -> None:
    ran: list[int] = []

    @stet.once(store=store, quiet=True)
    def run(__x: int, _y: int) -> None:
        ran.append(__x)

    run(1, 2)
    run(1, 2)
    assert ran == [1]
    assert fresh(store).has({"__x": 1, "_y": 2})
    assert list(stet.read(store)["__x"]) == [1]


def test_a_parameter_named_like_stets_columns_is_refused_at_decoration(store: str) -> None:
    with pytest.raises(ValueError, match="'_stet_x' is reserved"):

        @stet.once(store=store)
        def run(_stet_x: int) -> None: ...

    with pytest.raises(ValueError, match="'_stet_x' is reserved"):

        @stet.once(store=store, key=["_stet_x"])
        def run2(_stet_x: int) -> None: ...


def test_parameters_that_differ_only_in_case_are_refused_on_sqlite_before_anything_runs(
    tmp_path: Path,
) -> None:
    with pytest.raises(ValueError, match=r"'Alpha' and 'alpha' differ only in case"):

        @stet.once(store=str(tmp_path / "runs.sqlite"))
        def run(Alpha: int, alpha: int) -> None: ...

    with pytest.raises(ValueError, match="differ only in case"):
        get_backend(tmp_path / "runs.sqlite").record({"Alpha": 1, "alpha": 2})
    assert not (tmp_path / "runs.sqlite").exists()


def test_parameters_that_differ_only_in_case_are_two_columns_or_refused(store: str) -> None:
    ran: list[int] = []

    def run(Alpha: int, alpha: int) -> None:
        ran.append(Alpha)

    if kind(store) == "sqlite":  # its column names ignore case
        with pytest.raises(ValueError, match="differ only in case"):
            stet.once(store=store)(run)
        return
    once = stet.once(store=store, quiet=True)(run)
    once(1, 2)
    once(1, 2)
    once(2, 1)
    assert ran == [1, 2]
    assert fresh(store).has({"Alpha": 1, "alpha": 2})
    assert not fresh(store).has({"Alpha": 2, "alpha": 2})


def test_a_csv_store_reads_in_pandas_and_a_spreadsheet_runs_no_formula(tmp_path: Path) -> None:
    """Negative numbers stay numbers; a string a spreadsheet would evaluate
    (=, +, -, @ first) is written with the apostrophe spreadsheets use."""
    store = tmp_path / "runs.csv"
    backend = get_backend(store)
    for x in (-1, -2.5, 3):
        backend.record({"x": x, "s": "=HYPERLINK(1)"})
    backend.record({"x": 4, "s": "@SUM(A1)"})
    frame = pd.read_csv(store)
    assert frame["x"].tolist() == [-1, -2.5, 3, 4]
    assert frame["x"].dtype.kind == "f"
    with open(store, newline="") as f:
        cells = [row["s"] for row in csv.DictReader(f)]
    assert all(cell.startswith("'") for cell in cells)


# -- stores written under key rules version 1 (stet 0.1) ---------------------

V1_ROWS = [("=x", "=x"), ("-abc", "-abc"), ("line\nbreak", "line\nbreak"), ("adam", "adam")]


def write_v1_rows(store: str, texts: list[str], function: str = "run") -> None:
    """Append rows exactly as stet 0.1 wrote them (key rules version 1)."""
    rows = [
        {"s": t, "_stet_function": function, "_stet_timestamp": "2026-01-01T00:00:00+00:00"}
        | {"_stet_codec": "1"}
        for t in texts
    ]
    append_as_written(store, rows)


def test_a_store_written_under_version_1_keeps_working(store: str) -> None:
    write_v1_rows(store, [t for _, t in V1_ROWS])
    stet.backends.forget_open()  # as a new process would
    ran: list[str] = []

    @stet.once(store=store, quiet=True, name="run")
    def run(s: str) -> None:
        ran.append(s)

    for value, _ in V1_ROWS:
        run(value)  # recorded under version 1: skipped
    run("new")
    assert ran == ["new"]
    assert sorted(stet.read(store)["s"]) == sorted([*(v for v, _ in V1_ROWS), "new"])
    assert fresh(store).has({"s": "=x"}, function="run")


def test_a_big_version_1_store_is_read_the_same_by_the_bulk_path(tmp_path: Path) -> None:
    """Differential: a CSV store past the bulk-read size (columns read by
    Arrow) gives the same index as the row-by-row path."""
    store = str(tmp_path / "runs.csv")
    texts = [f"k{i}" for i in range(40_000)] + ["=x", "-abc", "-1"]
    write_v1_rows(store, texts)
    assert Path(store).stat().st_size > 1 << 20  # the bulk path
    columns, _, _ = _CsvFormat(store).scan(None)
    assert isinstance(columns, Columns)  # the bulk path
    bulk = KeyIndex(store)
    bulk.rebuild(columns)
    small = KeyIndex(store)  # the reference: one record at a time
    small.rebuild(fresh(store).store.records())
    assert bulk.groups == small.groups
    bulk_store = fresh(store)
    assert bulk_store.has({"s": "=x"})
    assert bulk_store.has({"s": "-abc"})


# -- torn and damaged CSV records ---------------------------------------------


@pytest.mark.parametrize("ext", ["csv", "parquet"])
def test_a_record_torn_at_any_byte_is_recovered_by_the_next_writer(
    tmp_path: Path, ext: str
) -> None:
    """A killed writer (or a full disk) leaves any prefix of its records:
    the store loads with every whole record, and the next writer cuts the
    rest off, whatever bytes it ends in (line breaks in keys included)."""
    store = str(tmp_path / f"runs.{ext}")
    backend = get_backend(store)
    backend.record({"s": "first\nline", "n": 1})
    backend.record({"s": "second", "n": 1})  # Parquet: into the journal
    path = Path(store + ".journal.csv") if ext == "parquet" else Path(store)
    before = path.read_bytes()

    @stet.once(store=store, name="bulk")
    def bulk(s: str, n: int) -> None: ...

    stet.mark_done(bulk, [{"s": "torn\nkey\r\x00", "n": 2}, {"s": 'a "quoted"\nkey', "n": 3}])
    whole = path.read_bytes()
    assert len(whole) > len(before)
    for cut in range(len(before), len(whole)):
        path.write_bytes(whole[:cut])
        reader = fresh(store)
        assert reader.has({"s": "first\nline", "n": 1})
        assert reader.record({"s": "after", "n": cut})
        again = fresh(store)
        assert again.has({"s": "after", "n": cut})
        assert again.has({"s": "first\nline", "n": 1})


def test_a_damaged_record_in_the_middle_is_an_error_before_anything_runs(
    tmp_path: Path,
) -> None:
    store = tmp_path / "runs.csv"
    content = b'a,_stet_timestamp\n1,t\n"2,t\n3,t\n4,t\n'
    store.write_bytes(content)
    ran: list[int] = []

    @stet.once(store=str(store))
    def run(a: int) -> None:
        ran.append(a)

    with pytest.raises(stet.StoreError, match=r"line 3.*quote that is never closed"):
        run(3)
    with pytest.raises(stet.StoreError, match="quote that is never closed"):
        stet.status(store=str(store))
    assert ran == []
    assert store.read_bytes() == content


def test_records_read_by_the_csv_module_match_the_store(tmp_path: Path) -> None:
    """The file is plain CSV: each record one line, one cell per column."""
    store = tmp_path / "runs.csv"
    for text in HOSTILE:
        get_backend(store).record({"s": text})
    lines = store.read_bytes().split(b"\n")
    assert len(lines) == len(HOSTILE) + 2  # the header, the records, the last newline
    rows = list(csv.DictReader(io.StringIO(store.read_text(), newline="")))
    assert len(rows) == len(HOSTILE)


@settings(max_examples=20)
@given(text=st.text(st.characters(blacklist_categories=["Cs"]), min_size=1))
def test_status_and_read_never_fail_on_a_recorded_string(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    store = str(tmp_path_factory.mktemp("s") / "runs.csv")
    get_backend(store).record({"s": text})
    assert stet.read(store)["s"].tolist() == [text]


def test_a_key_column_that_differs_in_case_from_another_functions_is_refused_on_sqlite(
    tmp_path: Path,
) -> None:
    store = str(tmp_path / "runs.sqlite")
    ran: list[str] = []

    @stet.once(store=store, quiet=True)
    def first(alpha: int) -> None:
        ran.append("first")

    @stet.once(store=store, quiet=True)
    def second(Alpha: int) -> None:
        ran.append("second")

    first(1)
    stet.backends.forget_open()  # a new process
    with pytest.raises(ValueError, match=r"'Alpha' and the column 'alpha'.*differ only in case"):
        second(1)
    assert ran == ["first"]


@pytest.mark.parametrize("name", ["rowid", "ROWID", "oid", "_rowid_", "_STET_function"])
def test_a_parameter_named_like_sqlites_own_columns_is_refused_at_decoration(
    tmp_path: Path, name: str
) -> None:
    namespace: dict[str, Any] = {}
    exec(f"def run({name}): ...", namespace)
    with pytest.raises(ValueError, match="own columns"):
        stet.once(store=str(tmp_path / "runs.sqlite"))(namespace["run"])


def test_version_1_rows_are_removed_by_their_values(store: str) -> None:
    """reset/remove find a version 1 row by today's value (PostgreSQL deletes
    it by the texts it was stored with)."""
    write_v1_rows(store, ["-abc", "=x", "plain"])
    stet.backends.forget_open()
    assert stet.reset(store=store, key_dict={"s": "-abc"}) == 1
    assert sorted(stet.read(store)["s"]) == ["=x", "plain"]
    assert fresh(store).has({"s": "=x"})
    assert not fresh(store).has({"s": "-abc"})


def test_a_merge_that_cannot_be_written_leaves_the_index_as_the_store(tmp_path: Path) -> None:
    source = str(tmp_path / "old.csv")
    get_backend(source).record({"alpha": 1}, function="f")
    dest = str(tmp_path / "new.sqlite")
    get_backend(dest).record({"Alpha": 1}, function="g")
    with pytest.raises(ValueError, match="differ only in case"):
        stet.backends.open_store(dest).merge(stet.backends.open_store(source).records())
    assert not get_backend(dest).has({"alpha": 1})

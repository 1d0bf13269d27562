"""What each built-in store holds, and how other tools read it (the contract: test_conformance)."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import stet
from stet.backends import (
    CsvBackend,
    JsonBackend,
    ParquetBackend,
    SharedDirBackend,
    SqliteBackend,
    get_backend,
    registered,
)
from stet.typing import Backend

from . import pg_server as pg
from . import strategies as S
from .conftest import STORE_EXTENSIONS, new_pg_store


def test_every_backend_satisfies_the_protocol(store: str) -> None:
    backend: Backend = get_backend(store)  # mypy checks assignability here
    assert isinstance(backend, Backend)


def test_extensions_pick_the_backend(tmp_path: Path) -> None:
    assert type(get_backend(tmp_path / "a.csv")) is CsvBackend
    assert type(get_backend(tmp_path / "a.json")) is JsonBackend
    assert type(get_backend(tmp_path / "a.sqlite")) is SqliteBackend
    assert type(get_backend(tmp_path / "a.db")) is SqliteBackend
    assert type(get_backend(tmp_path / "a.parquet")) is ParquetBackend
    assert type(get_backend(tmp_path / "a.stetdir")) is SharedDirBackend  # a folder
    assert [n for n in registered() if n.startswith(".")] == [
        ".csv",
        ".json",
        ".sqlite",
        ".db",
        ".parquet",
        ".stetdir",
    ]


def test_an_unknown_extension_lists_the_supported_ones(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\.txt.*\.csv, \.json, \.sqlite, \.db, \.parquet"):
        get_backend(tmp_path / "a.txt")


def test_a_recorded_key_is_found_and_others_are_not(store: str) -> None:
    b = get_backend(store)
    assert not b.has({"alpha": 0.1, "seed": 3})
    assert b.record({"alpha": 0.1, "seed": 3}) is True
    assert b.has({"alpha": 0.1, "seed": 3})
    assert b.has({"seed": 3, "alpha": 0.1})
    assert not b.has({"alpha": 0.1, "seed": 4})
    assert b.has({"alpha": 0.1})  # some of its key columns, as in stet 0.0.x
    assert not b.has({"alpha": 0.1, "seed": 3, "lr": 1})  # more: another run


def test_recording_is_idempotent(store: str) -> None:
    b = get_backend(store)
    assert b.record({"x": 1})
    assert not b.record({"x": 1.0})
    assert len(b.load()) == 1


def test_a_new_instance_sees_the_records(store: str) -> None:
    type(get_backend(store))(store).record({"x": "a"})
    fresh = type(get_backend(store))(store)
    assert fresh.has({"x": "a"})


def test_records_by_another_instance_are_seen_without_reopening(store: str) -> None:
    cls = type(get_backend(store))
    mine, theirs = cls(store), cls(store)
    mine.record({"x": 0})
    assert not mine.has({"x": 1})
    theirs.record({"x": 1})
    assert mine.has({"x": 1})
    theirs.remove({"x": 0})
    assert not mine.has({"x": 0})


def test_functions_do_not_see_each_others_records(store: str) -> None:
    b = get_backend(store)
    b.record({"x": 1}, function="train")
    assert b.has({"x": 1}, function="train")
    assert not b.has({"x": 1}, function="evaluate")
    assert b.has({"x": 1})  # any function


def test_a_record_without_function_counts_for_every_function(store: str) -> None:
    b = get_backend(store)
    b.record({"x": 1})
    assert b.has({"x": 1}, function="train")
    assert b.has({"x": 1}, function="evaluate")


def test_remove_forgets_one_key(store: str) -> None:
    b = get_backend(store)
    b.record({"x": 1})
    b.record({"x": 2})
    assert b.remove({"x": 1}) == 1
    assert not b.has({"x": 1})
    assert b.has({"x": 2})
    assert b.remove({"x": 1}) == 0


def test_remove_can_be_limited_to_one_function(store: str) -> None:
    b = get_backend(store)
    b.record({"x": 1}, function="f")
    b.record({"x": 1}, function="g")
    assert b.remove({"x": 1}, function="f") == 1
    assert b.has({"x": 1}, function="g")
    assert not b.has({"x": 1}, function="f")


def test_clear_removes_every_record_and_the_store_takes_new_ones(store: str) -> None:
    b = get_backend(store)
    b.record({"x": 1})
    b.clear()
    assert b.load() == []
    assert not b.has({"x": 1})
    b.record({"x": 1})
    assert b.has({"x": 1})
    assert type(b)(store).has({"x": 1})


def test_load_returns_decoded_values_and_metadata(store: str) -> None:
    b = get_backend(store)
    b.record({"alpha": 0.5, "name": "007", "cfg": S.TrainConfig(0.1, (2,))}, function="f")
    (record,) = b.load()
    assert record["alpha"] == 0.5
    assert record["name"] == "007"
    assert str(record["cfg"]) == "TrainConfig(lr=0.1, layers=[2])"
    assert record["_stet_function"] == "f"
    assert record["_stet_timestamp"].tzinfo is not None  # type: ignore[attr-defined]


def test_records_with_different_key_columns_share_a_store(store: str) -> None:
    b = get_backend(store)
    b.record({"a": 1}, function="f")
    b.record({"b": "x", "c": None}, function="g")
    b.record({"a": 2}, function="f")
    fresh = type(b)(store)
    assert fresh.has({"a": 1}, function="f")
    assert fresh.has({"a": 2}, function="f")
    assert fresh.has({"b": "x", "c": None}, function="g")
    assert not fresh.has({"b": "x", "c": "None"}, function="g")


TRICKY = [
    "",
    "NA",
    "null",
    "nan",
    "None",
    "007",
    "a,b",
    'q"uote',
    "line\nbreak",
    "cr\r\nlf",
    "ünïcødé ✓",
    "'",
    "  ",
    "\t",
    "[1]",
    "=1+1",
]


@pytest.mark.parametrize("text", TRICKY, ids=[repr(t) for t in TRICKY])
def test_every_tricky_string_survives_the_store(store: str, text: str) -> None:
    get_backend(store).record({"s": text})
    fresh = type(get_backend(store))(store)
    assert fresh.has({"s": text})
    assert [r["s"] for r in fresh.load()] == [text]
    for other in {"", "None", "nan"} - {text}:
        assert not fresh.has({"s": other})
    assert not fresh.has({"s": None})


@settings(max_examples=20)
@given(values=st.lists(S.keyable, min_size=1, max_size=8))
def test_generated_values_round_trip_through_every_store(
    tmp_path_factory: pytest.TempPathFactory, values: list[Any]
) -> None:
    codec = stet.KeyCodec()
    paths = [str(tmp_path_factory.mktemp("rt") / f"s.{ext}") for ext in STORE_EXTENSIONS]
    if pg.available():  # else the file stores alone (pg_server explains the skip elsewhere)
        paths.append(new_pg_store(pg.shared()))
    for path in paths:
        writer = get_backend(path)
        for v in values:
            writer.record({"v": v})
        reader = type(writer)(path)
        for v in values:
            assert reader.has({"v": v})
        stored = sorted(codec.encode(r["v"]) for r in reader.load())
        assert stored == sorted({codec.encode(v) for v in values})


# The stateful test (StoreMachine) runs over every registered store in
# tests/test_conformance.py.


# -- what other tools see ---------------------------------------------------


def test_a_csv_store_of_numbers_and_words_reads_as_numbers_and_words(tmp_path: Path) -> None:
    b = get_backend(tmp_path / "runs.csv")
    for alpha in (0.1, 0.25, 3):
        for seed in (1, 2):
            b.record({"alpha": alpha, "seed": seed, "method": "adam"}, function="run")
    frame = pd.read_csv(tmp_path / "runs.csv")
    assert frame["alpha"].dtype == "float64"
    assert frame["seed"].dtype == "int64"
    assert set(frame["method"]) == {"adam"}
    assert sorted(set(frame["alpha"])) == [0.1, 0.25, 3.0]


def test_a_csv_store_opens_in_the_csv_module(tmp_path: Path) -> None:
    """Commas and quotes are CSV-quoted; a string with a line break (or any
    other control character) is one line too, its text JSON-quoted."""
    backend = get_backend(tmp_path / "runs.csv")
    backend.record({"s": 'a,"b" c'})
    backend.record({"s": "line\nbreak\r\x00"})
    with open(tmp_path / "runs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [row["s"] for row in rows] == ['a,"b" c', '"line\\nbreak\\r\\u0000"']
    assert len((tmp_path / "runs.csv").read_bytes().splitlines()) == 3


def test_a_json_store_is_a_json_array_of_records(tmp_path: Path) -> None:
    b = get_backend(tmp_path / "runs.json")
    b.record({"alpha": 0.1, "seed": 3, "name": "x", "flag": True, "none": None})
    b.record({"alpha": 0.2, "seed": 4, "name": "007", "flag": False, "none": None})
    data = json.loads((tmp_path / "runs.json").read_text())
    # Cells are the canonical texts, as in the CSV store.
    assert [r["alpha"] for r in data] == ["0.1", "0.2"]
    assert [r["seed"] for r in data] == ["3", "4"]
    assert [r["name"] for r in data] == ["x", "'007"]
    assert [r["flag"] for r in data] == ["True", "False"]
    assert data[0]["none"] == "None"
    assert len(pd.read_json(tmp_path / "runs.json", dtype=False)) == 2


def test_a_json_store_edited_by_hand_with_json_numbers_still_reads(tmp_path: Path) -> None:
    path = tmp_path / "runs.json"
    path.write_text(
        '[\n{"alpha": 0.5, "seed": 3, "ok": true, "none": null,'
        ' "_stet_timestamp": "2024-01-01T00:00:00+00:00", "_stet_codec": "1"}\n]\n'
    )
    assert get_backend(path).has({"alpha": 0.5, "seed": 3, "ok": True, "none": None})


def test_a_sqlite_store_is_a_queryable_table(tmp_path: Path) -> None:
    get_backend(tmp_path / "runs.sqlite").record({"alpha": 0.1, "seed": 3}, function="run")
    with sqlite3.connect(tmp_path / "runs.sqlite") as conn:
        rows = conn.execute("SELECT alpha, seed, _stet_function FROM stet_records").fetchall()
    assert rows == [("0.1", "3", "run")]


def test_a_parquet_store_reads_in_pandas(tmp_path: Path) -> None:
    get_backend(tmp_path / "runs.parquet").record({"alpha": 0.1, "seed": 3})
    frame = pd.read_parquet(tmp_path / "runs.parquet")
    assert list(frame["alpha"]) == ["0.1"]


# -- half-written records -------------------------------------------------


@pytest.mark.parametrize("ext", ["csv", "json"])
@pytest.mark.parametrize("cut", [1, 5, 12, 30])
def test_a_half_written_last_record_is_dropped_silently(tmp_path: Path, ext: str, cut: int) -> None:
    path = tmp_path / f"runs.{ext}"
    b = get_backend(path)
    b.record({"x": 1, "s": "first"})
    size = path.stat().st_size
    b.record({"x": 2, "s": 'sécond, "quoted"\nline'})
    whole = path.read_bytes()
    path.write_bytes(whole[: size + cut] if ext == "csv" else whole[: size - 3 + cut])
    fresh = type(b)(path)
    assert fresh.has({"x": 1, "s": "first"})
    assert not fresh.has({"x": 2, "s": 'sécond, "quoted"\nline'})
    fresh.record({"x": 3, "s": "third"})
    again = type(b)(path)
    assert sorted(r["x"] for r in again.load()) == [1, 3]  # type: ignore[type-var]
    if ext == "json":
        assert len(json.loads(path.read_text())) == 2


# -- stores written by stet 0.0.x -----------------------------------------


def test_a_stet_0_0_store_keeps_working(tmp_path: Path) -> None:
    csv_path = tmp_path / "old.csv"
    csv_path.write_text(
        "alpha,seed,method,_stet_timestamp\n"
        "0.1,3,adam,2024-01-01T00:00:00+00:00\n"
        "1.0,4,None,2024-01-01T00:00:01+00:00\n"
    )
    json_path = tmp_path / "old.json"
    json_path.write_text(
        json.dumps(
            [{"alpha": "0.1", "seed": "3", "_stet_timestamp": "2024-01-01T00:00:00+00:00"}],
            indent=2,
        )
    )
    sqlite_path = tmp_path / "old.sqlite"
    with sqlite3.connect(sqlite_path) as conn:
        conn.execute('CREATE TABLE stet_records ("alpha" TEXT, "_stet_timestamp" TEXT)')
        conn.execute("INSERT INTO stet_records VALUES ('0.5', '2024-01-01')")
    old = get_backend(csv_path)
    assert old.has({"alpha": 0.1, "seed": 3, "method": "adam"}, function="run")
    assert old.has({"alpha": 1, "seed": 4, "method": None}, function="run")
    old.record({"alpha": 0.2, "seed": 5, "method": "sgd"}, function="run")
    assert type(old)(csv_path).has({"alpha": 0.2, "seed": 5, "method": "sgd"})
    assert get_backend(json_path).has({"alpha": 0.1, "seed": 3})
    get_backend(json_path).record({"alpha": 0.3, "seed": 1})
    assert len(json.loads(json_path.read_text())) == 2
    assert get_backend(sqlite_path).has({"alpha": 0.5})
    get_backend(sqlite_path).record({"alpha": 0.6})
    assert SqliteBackend(sqlite_path).has({"alpha": 0.6})


def test_a_store_from_a_newer_stet_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.csv"
    path.write_text(f"x,_stet_timestamp,_stet_codec\n1,2024-01-01,{stet.CODEC_VERSION + 1}\n")
    with pytest.raises(stet.StoreError, match="upgrade stet"):
        get_backend(path).has({"x": 1})


@pytest.mark.parametrize("ext", ["csv", "json"])  # the stores appended in place
def test_a_store_rewritten_in_place_is_read_again_from_the_start(tmp_path: Path, ext: str) -> None:
    store = str(tmp_path / f"runs.{ext}")
    b = get_backend(store)
    b.record({"x": 1})
    assert b.has({"x": 1})
    other = type(b)(store + ".other" + Path(store).suffix)
    for x in (2, 3, 4):
        other.record({"x": x})
    with open(store, "r+b") as f:  # same inode, different earlier content
        f.write(Path(other.path).read_bytes())
    assert b.has({"x": 4})
    assert not b.has({"x": 1})


def test_parameter_names_may_be_any_python_identifier(store: str) -> None:
    b = get_backend(store)
    key = {"\N{GREEK SMALL LETTER ALPHA}": 0.1, "order": 2, "select": "x"}
    b.record(key)
    assert type(b)(store).has(key)


def test_the_stores_folder_is_created_when_missing(tmp_path: Path) -> None:
    for ext in STORE_EXTENSIONS:
        path = tmp_path / "results" / ext / f"runs.{ext}"
        get_backend(path).record({"x": 1})
        assert get_backend(path).has({"x": 1})


def test_a_sqlite_reader_after_fork_sees_new_records(tmp_path: Path) -> None:
    import multiprocessing

    path = str(tmp_path / "runs.sqlite")
    b = get_backend(path)
    b.record({"x": 0})
    assert b.has({"x": 0})
    ctx = multiprocessing.get_context("fork")
    writer = ctx.Process(target=_record_in_child, args=(path, 1))
    writer.start()
    writer.join()
    reader = ctx.Process(target=_exit_unless_recorded, args=(b, 1))  # inherits b as it is
    reader.start()
    reader.join()
    assert reader.exitcode == 0, "the forked child saw the record"
    assert b.has({"x": 1})


def _record_in_child(path: str, x: int) -> None:
    SqliteBackend(path).record({"x": x})


def _exit_unless_recorded(b: Backend, x: int) -> None:
    if not b.has({"x": x}):
        raise SystemExit(1)


def test_a_parquet_store_buffers_new_records_in_a_journal(tmp_path: Path) -> None:
    path = tmp_path / "runs.parquet"
    journal = tmp_path / "runs.parquet.journal.csv"
    b = get_backend(path)
    b.record({"x": 0})  # the first record creates the Parquet file
    b.record({"x": 1})
    b.record({"x": 2})
    assert journal.exists()
    assert list(pd.read_parquet(path)["x"]) == ["0"]
    assert ParquetBackend(path).has({"x": 2})  # stet reads both
    b.flush()
    assert not journal.exists()
    assert sorted(pd.read_parquet(path)["x"]) == ["0", "1", "2"]
    assert ParquetBackend(path).has({"x": 2})


def test_a_parquet_journal_is_folded_in_when_it_grows(tmp_path: Path) -> None:
    path = tmp_path / "runs.parquet"
    b = get_backend(path)
    b.record({"x": -1})
    b.store.add("", ("x",), [(str(i),) for i in range(10_200)])
    assert not (tmp_path / "runs.parquet.journal.csv").exists()
    assert len(pd.read_parquet(path)) == 10_201


_EXIT_WRITER = """
import sys
import stet
@stet.once(store=sys.argv[1], quiet=True)
def run(x): return x
for x in range(5):
    run(x)
"""


def test_a_parquet_store_holds_every_record_once_the_writer_exits(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "runs.parquet"
    subprocess.run([sys.executable, "-c", _EXIT_WRITER, str(path)], check=True)
    assert sorted(pd.read_parquet(path)["x"]) == ["0", "1", "2", "3", "4"]
    assert not (tmp_path / "runs.parquet.journal.csv").exists()


def test_a_big_store_reads_like_a_small_one(store: str) -> None:
    """Big files take the bulk (columnar) read path; the results must not differ."""
    codec = stet.KeyCodec()
    values: list[Any] = [*TRICKY, None, 0.1, 7, True, [1, "a"], {"k": None}]
    writer = get_backend(store)
    n = 25_000  # over a megabyte of records
    keys = [(codec.encode(values[i % len(values)]), str(i)) for i in range(n)]
    writer.store.add("f", ("s", "x"), keys)
    writer.store.add("", ("y",), [(codec.encode(v),) for v in values])
    writer.store.add("g", ("s", "x"), keys[:5])
    if store.endswith(".parquet"):
        writer.flush()
    if not store.startswith("postgresql://"):
        size = Path(store).stat().st_size
        assert size > 1 << 20 or store.endswith((".sqlite", ".parquet"))
    fresh = type(writer)(store)
    for i in (0, 1, 7, 11, n - 1):
        assert fresh.has({"s": values[i % len(values)], "x": i}, function="f")
    assert not fresh.has({"s": values[0], "x": n}, function="f")
    for v in values:
        assert fresh.has({"y": v}, function="any function")
    assert fresh.has({"s": values[1], "x": 1}, function="g")
    assert not fresh.has({"s": values[6], "x": 6}, function="g")
    assert len(fresh.load()) == n + len(values) + 5


@pytest.mark.parametrize("ext", ["csv", "json"])
def test_a_big_store_with_a_torn_tail_keeps_its_records(tmp_path: Path, ext: str) -> None:
    path = tmp_path / f"runs.{ext}"
    writer = get_backend(path)
    writer.store.add("f", ("x",), [(str(i),) for i in range(20_000)])
    complete = type(writer)(path)  # one function, every column: the fastest read
    assert complete.has({"x": 19_999}, function="f")
    assert not complete.has({"x": 20_000}, function="f")
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) - 20])  # cut inside the last record
    fresh = type(writer)(path)
    assert fresh.has({"x": 19_998}, function="f")
    assert not fresh.has({"x": 19_999}, function="f")


_HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(30)
"""


@pytest.mark.parametrize("ext", STORE_EXTENSIONS)  # PostgreSQL takes no lock file
def test_a_lock_that_cannot_be_taken_is_a_clear_error_not_a_hang(
    tmp_path: Path, ext: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess
    import sys

    store = str(tmp_path / f"runs.{ext}")

    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, store + ".lock"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        monkeypatch.setenv("STET_LOCK_TIMEOUT", "0.3")
        with pytest.raises(stet.StoreError, match=r"could not take the lock .*within 0\.3 s"):
            get_backend(store).record({"x": 1})
    finally:
        holder.kill()
        holder.communicate()
    get_backend(store).record({"x": 1})  # the kernel freed the dead holder's lock
    assert get_backend(store).has({"x": 1})


def test_a_big_json_store_read_in_many_chunks_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stet.backends import _json

    monkeypatch.setattr(_json, "_CHUNK", 4096 + 17)  # chunk borders fall mid-record
    codec = stet.KeyCodec()
    path = tmp_path / "runs.json"
    writer = get_backend(path)
    texts = [codec.encode(t) for t in TRICKY]
    writer.store.add("f", ("s", "x"), [(texts[i % len(texts)], str(i)) for i in range(20_000)])
    writer.store.add("g", ("y",), [(str(i),) for i in range(50)])
    chunks: list[int] = []
    real = _json._JsonFormat._arrow_lines

    def counted(lines: bytes, every_column: bool) -> Any:
        chunks.append(len(lines))
        return real(lines, every_column)

    monkeypatch.setattr(_json._JsonFormat, "_arrow_lines", staticmethod(counted))
    fresh = JsonBackend(path)
    fresh.store.refresh()
    assert len(chunks) > 100  # the chunked reader did the work
    for i in (0, 4_999, 19_999):
        assert fresh.has({"s": TRICKY[i % len(TRICKY)], "x": i}, function="f")
    assert fresh.has({"y": 49}, function="g")
    assert not fresh.has({"y": 50}, function="g")
    assert len(fresh.load()) == 20_050
    fresh.record({"y": 50}, function="g")  # appends after the cursor the big read left
    assert JsonBackend(path).has({"y": 50}, function="g")


@pytest.mark.parametrize("ext", ["csv", "json"])
def test_a_new_stores_columns_follow_the_functions_parameter_order(
    tmp_path: Path, ext: str
) -> None:
    store = tmp_path / f"runs.{ext}"

    @stet.once(store=str(store), quiet=True)
    def run(zeta: int, alpha: int, mid: int = 1) -> None: ...

    run(1, 2)
    if ext == "csv":
        assert list(pd.read_csv(store).columns[:3]) == ["zeta", "alpha", "mid"]
    else:
        assert list(json.loads(store.read_text())[0])[:3] == ["zeta", "alpha", "mid"]
    assert type(get_backend(store))(store).has({"alpha": 2, "mid": 1, "zeta": 1})


def test_a_store_no_longer_used_closes_its_lock_file(tmp_path: Path) -> None:
    """A long session that opens many stores does not run out of descriptors."""
    import gc
    import os

    def open_files() -> int:
        return len(os.listdir("/proc/self/fd"))

    before = open_files()
    for i in range(50):
        backend = type(get_backend(tmp_path / f"s{i}.csv"))(tmp_path / f"s{i}.csv")
        backend.record({"x": i})
        del backend
    stet.backends.forget_open()
    gc.collect()
    assert open_files() - before < 10


@pytest.mark.parametrize("ext", ["csv", "json"])
def test_a_record_after_the_store_file_was_replaced_goes_into_the_new_file(
    tmp_path: Path, ext: str
) -> None:
    """A writer keeps the store's file open between appends; once a file
    is moved in over it by hand (a restored copy), the next record goes to
    the file at the store's path, never to the one moved away."""
    import os
    import shutil

    path = tmp_path / f"runs.{ext}"
    store = stet.backends.get_backend(path).store
    store.add("f", ("x",), [("1",)])
    store.flush()
    copy = tmp_path / f"copy.{ext}"
    shutil.copy(path, copy)
    store.add("f", ("x",), [("2",)])  # the kept file now has 1 and 2
    os.replace(copy, path)  # the copy holds only 1
    store.add("f", ("x",), [("3",)])
    store.flush()
    fresh = stet.backends.get_backend(path)
    assert [r["x"] for r in fresh.load()] == [1, 3]

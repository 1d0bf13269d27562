"""A script, notebook or store made for stet 0.0.x works unchanged, or is
refused with the line to write instead."""

from __future__ import annotations

import io
import multiprocessing
import os
import signal
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import stet
from stet.backends import CsvBackend, ParquetBackend, SqliteBackend, get_backend, registered
from stet.backends import _parquet as parquet_module

from .conftest import STORE_EXTENSIONS, kind

FILE_STORES = [e for e in STORE_EXTENSIONS if e != "sqlite"]


@pytest.fixture(autouse=True)
def _no_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """A reset does not ask first, as in a batch job."""
    monkeypatch.setattr("sys.stdin", io.StringIO(""))


def _xs(store: str | Path) -> list[object]:
    table = type(get_backend(store))(os.fspath(store))
    return sorted(r["x"] for r in table.load())  # type: ignore[type-var]


# -- the 0.0.x keyword -----------------------------------------------------


def test_status_and_reset_take_the_0_0_x_store_path_keyword(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "runs.csv"

    @stet.once(store=store, quiet=True)
    def run(x: int) -> None: ...

    run(1)
    run(2)
    assert stet.status(store_path=store).records == 2
    assert stet.reset(store_path=store, key_dict={"x": 1}) == 1
    assert _xs(store) == [2]
    assert stet.reset(store_path=store) == 1
    assert not store.exists()
    assert "[stet] Store cleared" in capsys.readouterr().out


def test_naming_two_different_stores_is_refused() -> None:
    with pytest.raises(TypeError, match=r"store_path is the 0\.0\.x name of store"):
        stet.status("a.csv", store_path="b.csv")


# -- a subset of the key columns ----------------------------------------------


def test_has_answers_for_some_of_a_records_key_columns(store: str) -> None:
    b = get_backend(store)
    b.record({"x": 2, "y": 3}, function="f")
    assert b.has({"x": 2})
    assert b.has({"y": 3}, function="f")
    assert not b.has({"x": 2}, function="g")
    assert not b.has({"x": 3})
    assert not b.has({"x": 2, "y": 4})
    assert not b.has({"x": 2, "y": 3, "z": 1})  # more columns than the record has
    assert not b.has({"z": 2})


def test_removing_some_key_columns_removes_every_record_that_matches(store: str) -> None:
    b = get_backend(store)
    for alpha in (0.1, 0.2):
        for seed in range(3):
            b.record({"alpha": alpha, "seed": seed})
    b.record({"alpha": 0.1})  # another function's key: alpha alone
    assert b.remove({"alpha": 0.1}) == 4
    assert sorted((r["alpha"], r["seed"]) for r in b.load()) == [(0.2, 0), (0.2, 1), (0.2, 2)]


def test_reset_of_some_key_columns_makes_every_matching_run_run_again(store: str) -> None:
    calls: list[tuple[float, int]] = []

    @stet.once(store=store, quiet=True)
    def run(alpha: float, seed: int) -> None:
        calls.append((alpha, seed))

    grid = [(a, s) for a in (0.1, 0.2) for s in range(3)]
    for point in grid:
        run(*point)
    assert stet.reset(store, key_dict={"alpha": 0.1}) == 3
    for point in grid:
        run(*point)
    assert calls == [*grid, (0.1, 0), (0.1, 1), (0.1, 2)]


def test_an_empty_key_removes_only_the_run_of_a_function_without_parameters(
    store: str,
) -> None:
    b = get_backend(store)
    b.record({"x": 1})
    b.record({})
    assert b.remove({}) == 1
    assert _xs(store) == [1]


def test_a_decorated_functions_own_lookup_stays_exact(store: str) -> None:
    """A record of alpha alone (another key) does not count as a run of (alpha, seed)."""
    get_backend(store).record({"alpha": 0.1, "seed": 1, "n": 5})
    calls: list[float] = []

    @stet.once(store=store, quiet=True)
    def run(alpha: float, seed: int) -> None:
        calls.append(alpha)

    run(0.1, 1)
    assert calls == [0.1]


# -- 0.0.x's strings ----------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "meant"), [("0.1", 0.1), ("3", 3), ("True", True), ("None", None)]
)
def test_a_0_0_x_string_that_spells_a_recorded_value_is_refused_with_the_call_to_write(
    store: str, given: str, meant: object
) -> None:
    b = get_backend(store)
    b.record({"alpha": meant, "seed": 1})
    with pytest.raises(stet.KeyEncodingError) as info:
        stet.reset(store, key_dict={"alpha": given})
    message = str(info.value)
    assert f"no record has alpha={given!r}, but 1 record(s) have alpha={meant!r}" in message
    assert f"stet.reset({store!r}, key_dict={{'alpha': {meant!r}}})" in message
    assert info.value.parameter == "alpha"
    with pytest.raises(stet.KeyEncodingError, match=r"remove\(\{'alpha': "):
        b.remove({"alpha": given})
    assert len(b.load()) == 1  # nothing was removed
    assert stet.reset(store, key_dict={"alpha": meant}) == 1  # the call it shows works


def test_the_hint_shows_the_default_store_and_function_as_the_call_had_them() -> None:
    @stet.once(quiet=True, name="run")
    def run(alpha: float, seed: int) -> None: ...

    run(0.1, 1)
    with pytest.raises(stet.KeyEncodingError) as info:
        stet.reset(key_dict={"alpha": "0.1", "seed": 1}, function="run")
    assert "write stet.reset(key_dict={'alpha': 0.1, 'seed': 1}, function='run')" in str(info.value)


def test_a_string_recorded_as_a_string_is_removed_without_a_hint(store: str) -> None:
    b = get_backend(store)
    b.record({"name": "1"})
    b.record({"name": 1})
    assert stet.reset(store, key_dict={"name": "1"}) == 1
    assert [r["name"] for r in b.load()] == [1]
    assert stet.reset(store, key_dict={"name": "2"}) == 0  # nothing spells it: a plain 0


# -- reset() and clear() ------------------------------------------------------


@pytest.mark.parametrize("ext", FILE_STORES)
def test_reset_removes_the_store_file_and_keeps_the_lock(
    tmp_path: Path, ext: str, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / f"runs.{ext}"

    @stet.once(store=store, quiet=True)
    def run(x: int) -> None: ...

    for x in range(3):
        run(x)
    assert stet.reset(store) == 3
    assert f"[stet] Store cleared: {store}" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"runs.{ext}.lock"]
    run(7)  # the same function starts a new store
    assert _xs(store) == [7]


def test_reset_removes_the_parquet_journal_with_the_file(tmp_path: Path) -> None:
    store = tmp_path / "runs.parquet"
    table = ParquetBackend(store)
    for x in range(3):
        table.record({"x": x})
    assert Path(f"{store}.journal.csv").exists()
    table.clear()
    assert not store.exists()
    assert not Path(f"{store}.journal.csv").exists()
    assert table.load() == []


def test_a_sqlite_store_is_emptied_in_place_as_0_0_x_did(tmp_path: Path) -> None:
    store = tmp_path / "runs.sqlite"
    table = SqliteBackend(store)
    table.record({"x": 1})
    table.clear()
    assert store.exists()
    assert SqliteBackend(store).load() == []


def test_reset_of_a_store_that_does_not_exist_clears_nothing_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert stet.reset(tmp_path / "runs.csv") == 0
    assert "No store at" in capsys.readouterr().out
    assert not list(tmp_path.iterdir())  # not even a lock file


@pytest.mark.parametrize("opened_first", ["real", "link"])
def test_reset_through_a_symbolic_link_empties_the_store_and_keeps_the_link(
    tmp_path: Path, opened_first: str
) -> None:
    real = tmp_path / "shared" / "runs.csv"
    real.parent.mkdir()
    link = tmp_path / "runs.csv"
    link.symlink_to(real)
    CsvBackend(str(real)).record({"x": 0})  # the store exists
    get_backend(real if opened_first == "real" else link).record({"x": 1})
    assert stet.reset(link) == 2
    assert link.is_symlink()
    assert real.exists()
    assert _xs(real) == []
    get_backend(link).record({"x": 2})  # the link still leads to the store
    assert _xs(real) == [2]


def test_reset_leaves_a_file_that_is_not_a_store_untouched(tmp_path: Path) -> None:
    store = tmp_path / "results.csv"
    store.write_text("alpha,loss\n0.1,3.2\n")
    with pytest.raises(stet.StoreError):
        stet.reset(store)
    assert store.read_text() == "alpha,loss\n0.1,3.2\n"


@pytest.mark.parametrize("ext", STORE_EXTENSIONS)
def test_a_running_workers_claim_survives_a_reset(tmp_path: Path, ext: str) -> None:
    store = tmp_path / f"runs.{ext}"
    inside, finish = threading.Event(), threading.Event()

    @stet.once(store=store, quiet=True, claim=True)
    def run(x: int) -> None:
        if x == 1:
            inside.set()
            assert finish.wait(60)

    run(0)
    worker = threading.Thread(target=run, args=(1,))
    worker.start()
    assert inside.wait(60)
    stet.reset(store)
    assert sum(f.running for f in stet.status(store).functions) == 1
    finish.set()
    worker.join()
    assert _xs(store) == [1]  # its record after the reset is kept


def _sweep_in_child(store: str, pipe_fd: int, reset_done: Any, after: int) -> None:
    """Record keys 0, 1, ... reporting each after its call returned, with
    whether the call began after the reset; stop ``after`` calls past it."""
    stet.backends.forget_open()

    @stet.once(store=store, quiet=True, name="work")
    def work(x: int) -> None: ...

    x = late = 0
    while late < after:
        began_after = reset_done.is_set()
        work(x)
        os.write(pipe_fd, f"{x} {int(began_after)}\n".encode())
        late += began_after
        x += 1


@pytest.mark.parametrize("ext", STORE_EXTENSIONS)
def test_a_sweep_in_another_process_loses_nothing_it_records_after_a_reset(
    tmp_path: Path, ext: str
) -> None:
    store = str(tmp_path / f"runs.{ext}")
    context = multiprocessing.get_context("fork")
    reset_done = context.Event()
    read_fd, write_fd = os.pipe()
    child = context.Process(target=_sweep_in_child, args=(store, write_fd, reset_done, 50))
    child.start()
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        before = {int(pipe.readline().split()[0]) for _ in range(20)}  # returned before
        stet.reset(store)
        reset_done.set()
        lines = [line.split() for line in pipe]
    child.join()
    assert child.exitcode == 0
    late = {int(x) for x, began_after in lines if began_after == "1"}
    recorded = set(_xs(store))
    assert len(late) == 50
    assert late <= recorded, f"{kind(store)}: lost {sorted(late - recorded)[:5]}"
    assert not before & recorded, "a reset record came back"


# -- a reset killed at the interesting instants --------------------------------


def _killed_when(target: object, name: str, when: Callable[..., bool]) -> None:
    """In this (child) process, die by SIGKILL on a call of ``target.name`` that ``when`` picks."""
    real = getattr(target, name)

    def dying(*args: Any, **kwargs: Any) -> Any:
        if when(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)

    setattr(target, name, dying)


def _killed_after(target: object, name: str) -> None:
    """In this (child) process, die by SIGKILL just after ``target.name`` returns."""
    real = getattr(target, name)

    def dying(*args: Any, **kwargs: Any) -> Any:
        real(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)

    setattr(target, name, dying)


def _in_child(work: Callable[[], object]) -> None:
    child = multiprocessing.get_context("fork").Process(target=work)
    child.start()
    child.join()
    assert child.exitcode == -signal.SIGKILL  # it reached the kill point


def _parquet_with_journal(store: str) -> ParquetBackend:
    table = ParquetBackend(store)
    for x in range(5):  # x=0 makes the file, the others go to the journal
        table.record({"x": x}, function="f")
    assert os.path.exists(store + ".journal.csv")
    return table


def test_a_reset_killed_between_the_parquet_file_and_its_journal_brings_nothing_back() -> None:
    store = "runs.parquet"
    _parquet_with_journal(store)

    def reset_killed_before_the_journal() -> None:
        _killed_when(os, "unlink", lambda path, *a, **k: str(path).endswith(".journal.csv"))
        ParquetBackend(store).clear()

    _in_child(reset_killed_before_the_journal)
    assert not os.path.exists(store)
    assert os.path.exists(store + ".journal.csv")  # left behind
    assert _xs(store) == []

    def record_killed_after_the_new_file() -> None:
        _killed_after(parquet_module, "atomic_write")
        ParquetBackend(store).record({"x": 9}, function="f")

    _in_child(record_killed_after_the_new_file)
    assert _xs(store) == [9]
    ParquetBackend(store).record({"x": 10}, function="f")
    assert _xs(store) == [9, 10]


def test_a_removal_killed_before_dropping_the_parquet_journal_brings_nothing_back() -> None:
    store = "runs.parquet"
    _parquet_with_journal(store)

    def remove_killed_after_rewriting() -> None:
        _killed_after(parquet_module, "atomic_write")
        ParquetBackend(store).remove({"x": 3})

    _in_child(remove_killed_after_rewriting)
    assert Counter(_xs(store)) == Counter([0, 1, 2, 4])
    ParquetBackend(store).record({"x": 5}, function="f")
    assert Counter(_xs(store)) == Counter([0, 1, 2, 4, 5])


# -- the backend classes -----------------------------------------------------


@pytest.mark.parametrize("ext", STORE_EXTENSIONS)
def test_a_backends_path_is_a_pathlib_path(tmp_path: Path, ext: str) -> None:
    backend = type(get_backend(f"any.{ext}"))(str(tmp_path / f"runs.{ext}"))
    assert backend.path == tmp_path / f"runs.{ext}"
    assert isinstance(backend.path, Path)
    backend.record({"x": 1})
    backend.clear()
    assert backend.path.exists() == (ext == "sqlite")


def test_a_postgresql_store_has_no_path_and_says_where_it_is(pg_store: str) -> None:
    backend = get_backend(pg_store)
    with pytest.raises(AttributeError, match=r"no file.*\.location"):
        _ = backend.path


def test_an_unknown_extension_is_unsupported_and_lists_the_supported_ones() -> None:
    with pytest.raises(ValueError, match="Unsupported") as info:
        get_backend("store.xyz")
    assert "'.xyz'" in str(info.value)
    assert all(ext in str(info.value) for ext in registered())

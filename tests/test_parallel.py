"""Sweeps run from process pools, joblib and threads."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import pickle
import random
from collections import Counter
from pathlib import Path
from typing import Any

import joblib
import pytest

import stet
from stet.backends import StoreBackend, new_store

from . import workers
from .conftest import STORE_EXTENSIONS, soak


@pytest.fixture(params=STORE_EXTENSIONS)
def ext(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def recorded_keys(ext: str) -> Counter[object]:
    """How many records each key has in the module functions' store."""
    return Counter(r["x"] for r in stet.backends.get_backend(f"pool.{ext}").load())


def test_a_decorated_function_pickles_by_reference() -> None:
    clone = pickle.loads(pickle.dumps(workers.run_csv))
    assert clone is workers.run_csv


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_a_multiprocessing_pool_sweep_records_every_key_once(ext: str, method: str) -> None:
    keys = list(range(40)) * 2  # every key asked for twice
    random.Random(0).shuffle(keys)
    context = multiprocessing.get_context(method)
    with context.Pool(3) as pool:
        results = pool.map(workers.BY_EXTENSION[ext], keys, chunksize=4)
    assert recorded_keys(ext) == Counter(range(40))
    ran = Counter(workers.executions())
    assert set(ran) == {repr(k) for k in range(40)}
    assert sum(r is not None for r in results) == sum(ran.values())
    with context.Pool(3) as pool:  # a second pass runs nothing
        assert pool.map(workers.BY_EXTENSION[ext], range(40)) == [None] * 40
    assert Counter(workers.executions()) == ran


def test_concurrent_futures_sweep(ext: str) -> None:
    with concurrent.futures.ProcessPoolExecutor(3) as pool:
        list(pool.map(workers.BY_EXTENSION[ext], range(30)))
        assert list(pool.map(workers.BY_EXTENSION[ext], range(30))) == [None] * 30
    assert recorded_keys(ext) == Counter(range(30))


@pytest.mark.soak
def test_concurrent_writers_lose_nothing(ext: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Eight processes write overlapping parts of a grid at once, twice."""
    processes, calls, rounds = 8, soak(200, 500), 2  # STET_SOAK multiplies
    grid = list(range(calls * (processes + 1) // 2))
    step = calls // 2
    chunks = [grid[i * step : i * step + calls] for i in range(processes)]  # each half shared
    context = multiprocessing.get_context("fork")
    for _ in range(rounds):
        with context.Pool(processes) as pool:
            pool.starmap(
                workers.sweep,
                [(ext, random.Random(i).sample(c, len(c))) for i, c in enumerate(chunks)],
            )
    assert recorded_keys(ext) == Counter(grid)
    fresh = type(stet.backends.get_backend(f"pool.{ext}"))(f"pool.{ext}")
    assert all(fresh.has({"x": k}, function="run_" + ext) for k in grid)
    ran = len(workers.executions())
    with capsys.disabled():
        print(
            f"\n  {ext}: {processes} processes x {calls} calls x {rounds} rounds over "
            f"{len(grid)} overlapping keys: {ran} executions, each key recorded once"
        )


def test_joblib_sweep_with_a_function_defined_in_the_script(ext: str, tmp_path: Path) -> None:
    # loky ships a function defined here by value (cloudpickle), store included.
    store = str(tmp_path / f"joblib.{ext}")
    log = str(tmp_path / "joblib.log")

    @stet.once(store=store, quiet=True)
    def square(x: int) -> int:
        with open(log, "a") as f:
            f.write(f"{x}\n")
        return x * x

    first = joblib.Parallel(n_jobs=2)(joblib.delayed(square)(x) for x in range(20))
    assert first == [x * x for x in range(20)]
    again = joblib.Parallel(n_jobs=2)(joblib.delayed(square)(x) for x in range(20))
    assert again == [None] * 20
    assert sorted(int(line) for line in Path(log).read_text().split()) == list(range(20))


def test_threads_share_one_store(ext: str) -> None:
    func = workers.BY_EXTENSION[ext]
    keys = list(range(50)) * 3
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(func, keys))
    assert recorded_keys(ext) == Counter(range(50))


def test_a_forked_child_sees_what_the_parent_recorded(ext: str) -> None:
    func = workers.BY_EXTENSION[ext]
    func(1)
    context = multiprocessing.get_context("fork")
    with context.Pool(1) as pool:
        assert pool.map(func, [1, 2]) == [None, 4]
    assert func(2) is None


def _append_records(ext: str, path: str, count: int) -> None:
    table = StoreBackend(new_store(path))
    for x in range(count):
        table.record({"x": x}, function="f")


@pytest.mark.parametrize("ext", ["csv", "json", "parquet"])
def test_a_reader_never_takes_a_store_being_written_for_a_damaged_one(
    ext: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Readers take no lock. Racing a writer that rewrites a file's last
    bytes (JSON's closing bracket), a read can see some of them as NUL for an
    instant; that must not read as damage."""
    path = str(tmp_path / f"runs.{ext}")
    StoreBackend(new_store(path)).record({"x": -1}, function="f")
    context = multiprocessing.get_context("fork")
    writers = [context.Process(target=_append_records, args=(ext, path, 5000)) for _ in range(2)]
    for writer in writers:
        writer.start()
    reads = 0
    while any(w.is_alive() for w in writers):
        new_store(path).records()  # a fresh reader each time: a whole read
        reads += 1
    for writer in writers:
        writer.join()
        assert writer.exitcode == 0
    assert len(StoreBackend(new_store(path)).load()) == 5001
    with capsys.disabled():
        print(f"\n  {ext}: {reads} whole reads while two processes appended, none failed")


def test_a_read_that_fails_while_the_file_changes_is_tried_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lock-free read can see old and new bytes mixed (the old closing
    bracket, then the rest of a record appended meanwhile)."""
    from stet.backends import JsonBackend
    from stet.backends._files import read_from as real_read

    path = str(tmp_path / "runs.json")
    JsonBackend(path).record({"x": 1}, function="f")
    racing: list[int] = []

    def read_during_an_append(file: str, offset: int) -> tuple[bytes, Any]:
        data, state = real_read(file, offset)
        if not racing:
            racing.append(1)
            JsonBackend(path).record({"x": 2}, function="f")  # a writer, meanwhile
            return data + b'"x": "2", "_stet_function": "f"}\n]\n', state
        return data, state

    monkeypatch.setattr("stet.backends._json.read_from", read_during_an_append)
    reader = JsonBackend(path)
    assert reader.has({"x": 2}, function="f")
    assert racing == [1]


def _interleaved_writer(store: str, me: int, rounds: int, start: Any) -> None:
    """Record a key both writers record, then one of this writer's own; the
    second writer also records, now and then, a function with another key
    column (``y``), which widens a CSV store's header: a rewrite."""

    @stet.once(store=store, quiet=True, name="work")
    def work(x: int) -> int:
        return x

    @stet.once(store=store, quiet=True, name="other")
    def other(y: int) -> int:
        return y

    start.wait()  # both writers open the store, then start together
    for i in range(rounds):
        work(i)  # raced for: one record, whoever wins
        work(1_000_000 * (me + 1) + i)
        if me == 1 and i % 50 == 25:
            other(i)


@pytest.mark.parametrize("ext", STORE_EXTENSIONS)
def test_two_writers_interleaving_records_store_each_exactly_once(ext: str, tmp_path: Path) -> None:
    """Two processes recording into one store at once, racing for the same
    keys record by record (while the store's header widens), lose nothing
    and record nothing twice: a writer reads what the other appended and
    formats its record before it takes the lock, and writes it only if
    the key is still new once it holds the lock."""
    store = str(tmp_path / f"runs.{ext}")
    rounds = 300
    context = multiprocessing.get_context("fork")
    start = context.Barrier(2)
    writers = [
        context.Process(target=_interleaved_writer, args=(store, me, rounds, start))
        for me in (0, 1)
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    assert [w.exitcode for w in writers] == [0, 0]
    records = stet.backends.get_backend(store).load()
    work = Counter(r["x"] for r in records if r.get("x") is not None)
    expected = Counter(
        [*range(rounds), *(1_000_000 * m + i for m in (1, 2) for i in range(rounds))]
    )
    assert work == expected
    others = Counter(r["y"] for r in records if r.get("y") is not None)
    assert others == Counter(range(25, rounds, 50))

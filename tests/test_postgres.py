"""The PostgreSQL store: what is particular to it, against a real server.

The conformance suite, the state machine and the claims tests run on it
too (the ``store`` fixture includes PostgreSQL); here are URLs, passwords,
connection failures, the server's clock, many workers on one grid, and a
Dask cluster.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import pytest

import stet
from stet.backends import PostgresBackend, _postgres, get_backend

from . import pg_server as pg
from .conftest import new_pg_store

WORKER = Path(__file__).with_name("claim_worker.py")


def test_a_url_selects_the_postgresql_store(pg_store: str) -> None:
    assert isinstance(get_backend(pg_store), PostgresBackend)
    short = pg_store.replace("postgresql://", "postgres://")
    assert isinstance(get_backend(short), PostgresBackend)
    assert not Path("postgresql:").exists()  # a URL is never taken for a path


def test_the_tables_are_plain_sql_with_a_unique_key(pg_server: pg.Server, pg_store: str) -> None:
    @stet.once(store=pg_store, quiet=True)
    def run(alpha: float, seed: int) -> None: ...

    run(0.5, 1)
    run(0.5, 1)
    table = pg_store.rsplit("=", 1)[1]
    with psycopg.connect(pg_server.url()) as conn:
        rows = conn.execute(
            f'SELECT alpha, seed, _stet_function, _stet_timestamp FROM "{table}"'
        ).fetchall()
        assert [r[:3] for r in rows] == [("0.5", "1", run.__qualname__)]
        assert rows[0][3].tzinfo is not None
        # Recording is idempotent in the database itself, not only in stet.
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(
                f'INSERT INTO "{table}" (_stet_function, _stet_key, _stet_seq) '
                f'SELECT _stet_function, _stet_key, 0 FROM "{table}"'
            )


def test_the_default_table_and_libpq_environment_variables(
    pg_server: pg.Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGHOST", "127.0.0.1")
    monkeypatch.setenv("PGPORT", str(pg_server.port))
    monkeypatch.setenv("PGUSER", "stet")
    monkeypatch.setenv("PGDATABASE", "stet")
    table = get_backend("postgresql://")
    table.record({"x": 1})
    with psycopg.connect(pg_server.url()) as conn:
        assert conn.execute("SELECT count(*) FROM stet_records").fetchone() == (1,)
    table.clear()


def test_a_bad_table_name_fails_when_the_config_is_built(pg_server: pg.Server) -> None:
    with pytest.raises(ValueError, match=r"table='runs; drop' is not a table name"):
        stet.Once(store=pg_server.url("runs; drop"))


def test_without_psycopg_the_message_says_what_to_install(
    pg_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    monkeypatch.setitem(sys.modules, "psycopg.conninfo", None)
    with pytest.raises(ValueError, match=r"pip install 'stet\[postgres\]'"):
        stet.Once(store=pg_store)


def test_passwords_never_show(pg_server: pg.Server, capsys: pytest.CaptureFixture[str]) -> None:
    url = pg_server.url("secret_runs", user="secretive", password=pg.PASSWORD)
    config = stet.Once(store=url, quiet=True)

    @config
    def run(x: int) -> int:
        return x

    assert run(1) == 1
    table = get_backend(url)
    stet.status(store=url)
    shown = [repr(config), repr(table), table.location, str(stet.read(url))]
    shown.append(capsys.readouterr().out)
    wrong = url.replace(pg.PASSWORD, "not-" + pg.PASSWORD + "-either")
    with pytest.raises(stet.StoreError) as info:
        get_backend(wrong).has({"x": 1})
    shown += [str(info.value), repr(info.value), info.value.path]
    for text in shown:
        assert pg.PASSWORD not in text
    assert "secretive:***@" in table.location
    assert "password authentication failed" in str(info.value)
    assert "database stet on host 127.0.0.1" in str(info.value)
    assert info.value.__cause__ is None  # no chained psycopg error to print the URL


def test_an_unreachable_server_is_an_error_after_a_few_tries_and_nothing_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_postgres, "FIRST_PAUSE", 0.05)
    monkeypatch.setenv("STET_RETRY_SECONDS", "1.5")
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1)
    calls: list[int] = []

    @stet.once(store=f"postgresql://stet:Pw-77x@127.0.0.1:{port}/lab?connect_timeout=2")
    def run(x: int) -> None:
        calls.append(x)

    started = time.monotonic()
    with pytest.raises(stet.StoreError) as info:
        run(1)
    waited = time.monotonic() - started
    message = str(info.value)
    assert f"database lab on host 127.0.0.1:{port}" in message
    tries = int(message.split("tried ")[1].split()[0])
    assert tries >= 4  # 0.05, 0.1, 0.2, 0.4 ... s apart, within the 1.5 s budget
    assert 0.3 < waited < 30  # it paused between tries, and gave up
    assert "Pw-77x" not in message
    assert calls == []  # never a silent run


def test_a_dropped_connection_is_reopened(pg_server: pg.Server, pg_store: str) -> None:
    table = get_backend(pg_store)
    table.record({"x": 1})
    with psycopg.connect(pg_server.url(), autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'stet' AND pid <> pg_backend_pid()"
        )
        # Termination is asynchronous: wait until the server has ended them,
        # or the next record could still use the old connection.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and admin.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE application_name = 'stet' AND pid <> pg_backend_pid()"
        ).fetchone() != (0,):
            time.sleep(0.01)
    table.record({"x": 2})  # the broken connection is noticed, a new one made
    assert type(table)(pg_store).has({"x": 2})


@pytest.fixture
def broken(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Each time a store finds its connection broken (and drops it), in order."""
    seen: list[object] = []
    drop = _postgres.PgFormat._drop_broken

    def counted(self: _postgres.PgFormat) -> None:
        seen.append(self)
        drop(self)

    monkeypatch.setattr(_postgres.PgFormat, "_drop_broken", counted)
    return seen


def test_a_sweep_goes_on_through_a_server_restart(
    pg_server: pg.Server, pg_store: str, broken: list[object]
) -> None:
    calls: list[int] = []

    @stet.once(store=pg_store, quiet=True)
    def run(x: int) -> None:
        calls.append(x)

    run(0)
    restart = threading.Thread(target=pg_server.restart)
    restart.start()
    x = 1
    while restart.is_alive() or x < 50:  # calls while the server goes down and comes back
        run(x)
        x += 1
    restart.join()
    assert broken, "the restart never broke the connection: nothing was retried"
    assert calls == list(range(x))
    assert sorted(int(str(r["x"])) for r in PostgresBackend(pg_store).load()) == list(range(x))


def test_readers_and_writers_racing_to_create_a_store_all_succeed(pg_server: pg.Server) -> None:
    errors: list[BaseException] = []

    def use(store: str, i: int, start: threading.Barrier) -> None:
        table = PostgresBackend(store)  # its own connection
        try:
            start.wait()
            if i % 2:
                table.record({"x": i})
            else:
                table.has({"x": i})
                table.load()
        except BaseException as exc:  # reported below
            errors.append(exc)

    for _ in range(40):
        store = new_pg_store(pg_server)
        start = threading.Barrier(8)
        threads = [threading.Thread(target=use, args=(store, i, start)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors[0]
        assert sorted(int(str(r["x"])) for r in PostgresBackend(store).load()) == [1, 3, 5, 7]


def _record_in_child(store: str, first: int) -> None:
    table = get_backend(store)
    for x in range(first, first + 200):
        table.record({"x": x})


def test_forked_children_and_their_parent_each_keep_their_own_connection(
    pg_store: str, broken: list[object]
) -> None:
    import multiprocessing

    table = get_backend(pg_store)
    table.record({"x": 0})
    ctx = multiprocessing.get_context("fork")
    children = [ctx.Process(target=_record_in_child, args=(pg_store, n)) for n in (1000, 2000)]
    for child in children:
        child.start()
    for x in range(1, 200):  # while the children write through the same store object
        table.record({"x": x})
    for child in children:
        child.join()
        assert child.exitcode == 0
    assert broken == []  # no child used or ended the parent's session
    expected = [*range(200), *range(1000, 1200), *range(2000, 2200)]
    assert sorted(int(str(r["x"])) for r in type(table)(pg_store).load()) == expected


def test_a_table_that_is_not_a_stet_store_is_left_alone(
    pg_server: pg.Server, pg_store: str
) -> None:
    name = pg_store.rsplit("=", 1)[1]
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        conn.execute(f'CREATE TABLE "{name}" (id integer, note text)')
        conn.execute(f"INSERT INTO \"{name}\" VALUES (1, 'mine')")
    with pytest.raises(stet.StoreError, match="not a stet store; it is left untouched"):
        get_backend(pg_store).record({"x": 1})
    with pytest.raises(stet.StoreError, match="not a stet store"):
        stet.status(store=pg_store)  # never read as an empty store
    with psycopg.connect(pg_server.url()) as conn:
        assert conn.execute(f'SELECT * FROM "{name}"').fetchall() == [(1, "mine")]


def test_claims_expire_by_the_servers_clock(pg_store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    table = get_backend(pg_store)
    state, mine = table.claim_texts("work", ("key",), ("1",), 30)
    assert state == "claimed"
    assert mine is not None
    # Another worker whose clock runs an hour ahead still sees the claim alive.
    other = type(table)(pg_store)
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 3600)
    monkeypatch.setattr("stet.backends._claims._owner", "ahead:1:cafe")
    state, holder = other.claim_texts("work", ("key",), ("1",), 30)
    assert state == "busy"
    assert holder is not None
    assert holder.owner == mine.owner
    monkeypatch.undo()
    assert table.complete_claim(mine)


def test_mark_done_imports_many_rows_in_bulk(pg_store: str) -> None:
    @stet.once(store=pg_store, quiet=True)
    def run(alpha: int, seed: int) -> None:
        raise AssertionError("imported runs are skipped")

    rows = [{"alpha": a, "seed": s} for a in range(500) for s in range(200)]
    started = time.perf_counter()
    assert stet.mark_done(run, rows) == len(rows)
    assert time.perf_counter() - started < 60  # seconds, not minutes (a loose bound)
    assert run(499, 199) is None
    assert stet.progress(run, rows[:10]).done == 10


# -- many workers -----------------------------------------------------------------


@pytest.mark.slow
def test_eight_worker_processes_split_a_grid_of_a_thousand_keys(
    pg_server: pg.Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = new_pg_store(pg_server)
    workers, keys = 8, 1000
    log = tmp_path / "executions.log"
    args = [sys.executable, str(WORKER), store, str(keys), "10", "0", str(log)]
    procs = [subprocess.Popen(args, stdout=subprocess.DEVNULL) for _ in range(workers)]
    for proc in procs:
        assert proc.wait(timeout=300) == 0
    runs = [line.split() for line in log.read_text().splitlines()]
    ran = Counter(int(key) for _, key, _ in runs)
    assert ran == Counter(range(keys)), "some key ran twice or never"
    fresh = PostgresBackend(store)
    assert Counter(r["key"] for r in fresh.load()) == Counter(range(keys))
    assert fresh.claims() == {}
    busy = len({pid for pid, _, _ in runs})
    with capsys.disabled():
        print(
            f"\n  postgresql: {workers} worker processes x {keys} keys, {busy} of them "
            f"ran keys, executions per key: {set(ran.values())}"
        )


def _dask_task(store: str, log: str, key: int) -> Any:
    @stet.once(store=store, claim=True, quiet=True, name="work", lease=10)
    def work(key: int) -> int:
        with open(log, "a") as f:
            f.write(f"{os.getpid()} {key}\n")
        time.sleep(0.01)
        return key

    return work(key)


@pytest.mark.slow
def test_dask_process_workers_run_each_key_once(pg_server: pg.Server, tmp_path: Path) -> None:
    from distributed import Client, LocalCluster

    store = new_pg_store(pg_server)
    log = str(tmp_path / "executions.log")
    keys = list(range(200))
    with (
        LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=4,
            threads_per_worker=2,
            processes=True,
            dashboard_address=None,
            silence_logs=40,
        ) as cluster,
        Client(cluster) as client,  # type: ignore[no-untyped-call]
    ):
        # Every key is submitted twice: one of the two runs, the other skips.
        futures = client.map(_dask_task, [store] * 400, [log] * 400, keys * 2, pure=False)
        results = client.gather(futures)
        pids = set(client.run(os.getpid).values())
    assert Counter(r for r in results if r is not None) == Counter(keys)
    lines = [line.split() for line in Path(log).read_text().splitlines()]
    assert Counter(int(k) for _, k in lines) == Counter(keys)
    assert {int(p) for p, _ in lines} <= pids
    assert os.getpid() not in {int(p) for p, _ in lines}
    assert Counter(r["key"] for r in PostgresBackend(store).load()) == Counter(keys)


def test_without_server_binaries_the_tests_skip_locally_and_fail_in_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pg, "running", None)
    monkeypatch.setattr(pg, "binaries", lambda: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt install postgresql"):
        pg.shared()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="not installed"):
        pg.shared()

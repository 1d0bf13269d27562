"""The PostgreSQL store: what is particular to it, against a real server.

The conformance suite, the state machine and the claims tests run on it
too (the ``store`` fixture includes PostgreSQL); here are URLs, passwords,
connection failures, the server's clock, many workers on one grid, and a
Dask cluster.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import stet
from stet.backends import PostgresBackend, claims_in, get_backend, new_store
from stet.backends._pg_retry import FIRST_PAUSE, MAX_PAUSE
from stet.typing import ClaimingStore

from . import pg_server as pg
from .conftest import new_pg_store
from .fake_clock import FakeClock
from .test_claims import start_workers


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


def test_import_stet_does_not_import_psycopg() -> None:
    code = "import sys, stet, stet.backends, stet.typing; print('psycopg' in sys.modules)"
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert child.stdout.strip() == "False", child.stderr


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
    pauses: list[float] = []
    monkeypatch.setattr(time, "sleep", pauses.append)  # pauses counted, not waited
    monkeypatch.setenv("STET_RETRY_SECONDS", "3")
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1)
    calls: list[int] = []

    @stet.once(store=f"postgresql://stet:Pw-77x@127.0.0.1:{port}/lab?connect_timeout=2")
    def run(x: int) -> None:
        calls.append(x)

    with pytest.raises(stet.StoreError) as info:
        run(1)
    message = str(info.value)
    assert f"database lab on host 127.0.0.1:{port}" in message
    assert "check that the server runs and the URL is right" in message
    tries = int(message.split("tried ")[1].split()[0])
    assert tries == len(pauses) + 1  # a pause between each two tries
    # Pauses double from a quarter of a second up to MAX_PAUSE (each drawn
    # between half and one and a half times that); none would end past the
    # STET_RETRY_SECONDS budget. time.sleep is replaced, so the budget is spent
    # only by the tries themselves and a lucky draw may reach the cap.
    assert len(pauses) >= 2
    for i, pause in enumerate(pauses):
        base = min(FIRST_PAUSE * 2**i, MAX_PAUSE)
        assert 0.5 * base <= pause <= 1.5 * base
        assert pause <= 3
    assert "Pw-77x" not in message
    assert calls == []  # never a silent run


def test_stet_retry_seconds_zero_gives_up_after_one_try(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "sleep", pytest.fail)  # no pause at all
    monkeypatch.setenv("STET_RETRY_SECONDS", "0")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(stet.StoreError, match="check that the server runs") as info:
        get_backend(f"postgresql://stet@127.0.0.1:{port}/lab").has({"x": 1})
    assert "tried" not in str(info.value)


def test_a_dropped_connection_is_reopened(
    pg_server: pg.Server, pg_store: str, broken: Callable[[], list[str]]
) -> None:
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
    assert broken()
    assert type(table)(pg_store).has({"x": 2})


@pytest.fixture
def broken(caplog: pytest.LogCaptureFixture) -> Callable[[], list[str]]:
    """What was logged each time a store found its connection broken and dropped it."""
    caplog.set_level(logging.INFO, logger="stet")

    def dropped() -> list[str]:
        messages = [r.getMessage() for r in caplog.records if r.name == "stet"]
        return [m for m in messages if "the connection failed" in m]

    return dropped


def test_a_sweep_goes_on_through_a_server_restart(
    pg_server: pg.Server, pg_store: str, broken: Callable[[], list[str]]
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
    assert broken(), "the restart never broke the connection: nothing was retried"
    assert all(m.startswith(f"[stet] {pg_store}: the connection failed") for m in broken())
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
    pg_store: str, broken: Callable[[], list[str]]
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
    assert broken() == []  # no child used or ended the parent's session
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


def test_claims_expire_by_the_servers_clock_whatever_the_workers_clocks_say(
    pg_store: str,
) -> None:
    table = new_store(pg_store)
    assert isinstance(table, ClaimingStore)
    state, mine = table.claim("work", ("key",), ("1",), 30)
    assert state == "claimed"
    assert mine is not None
    # Another worker whose wall clock runs an hour ahead still sees the claim alive.
    ahead = FakeClock(wall=time.time() + 3600)
    other = new_store(pg_store, clock=ahead)
    assert isinstance(other, ClaimingStore)
    state, holder = other.claim("work", ("key",), ("1",), 30, owner="ahead:1:cafe")
    assert state == "busy"
    assert holder is not None
    assert holder.owner == mine.owner
    assert holder.live(ahead.wall)  # shown in its own clock's time, alive
    assert table.complete(mine)


def test_a_test_clock_moved_past_the_lease_expires_a_claim_at_once(pg_store: str) -> None:
    """The store's clock moves the server's time forward (real time passes there too)."""
    clock = FakeClock()
    first = new_store(pg_store, clock=clock)
    second = new_store(pg_store, clock=clock)
    assert isinstance(first, ClaimingStore)
    assert isinstance(second, ClaimingStore)
    state, mine = first.claim("work", ("key",), ("1",), 3600, owner="first:1:aa")
    assert state == "claimed"
    assert mine is not None
    clock.advance(3000)  # ten minutes of the hour's lease left
    assert second.claim("work", ("key",), ("1",), 3600, owner="second:2:bb")[0] == "busy"
    [renewed] = first.renew([mine])  # a heartbeat: another full lease from now
    clock.advance(3000)
    assert second.claim("work", ("key",), ("1",), 3600, owner="second:2:bb")[0] == "busy"
    clock.advance(600)  # the lease since the renewal has passed
    state, taken = second.claim("work", ("key",), ("1",), 3600, owner="second:2:bb")
    assert state == "claimed"
    assert taken is not None
    assert (taken.owner, taken.epoch) == ("second:2:bb", 2)
    assert not first.complete(renewed)  # fenced: the late worker records nothing
    assert second.complete(taken)
    assert [r["key"] for r in new_store(pg_store).records()] == ["1"]


def test_a_clock_that_is_not_a_number_of_seconds_ahead_is_refused(pg_store: str) -> None:
    clock = FakeClock(advanced=math.nan)
    table = new_store(pg_store, clock=clock)
    assert isinstance(table, ClaimingStore)
    with pytest.raises(ValueError, match=r"ahead\(\) is nan"):
        table.claim("work", ("key",), ("1",), 60, owner="x:1:aa")


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
    procs = start_workers(store, workers, keys, lease=10, seconds=0, log=log)
    for proc in procs:
        assert proc.wait(timeout=300) == 0
    runs = [line.split() for line in log.read_text().splitlines()]
    ran = Counter(int(key) for _, key, _ in runs)
    assert ran == Counter(range(keys)), "some key ran twice or never"
    fresh = PostgresBackend(store)
    assert Counter(r["key"] for r in fresh.load()) == Counter(range(keys))
    assert claims_in(fresh.store) == {}
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
            dashboard_address=":0",  # any free port: None still takes 8787 (distributed 2026.8)
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


# -- keys of any size (issue #12, item 5) -------------------------------------

#: The tables of a store as the earlier release made them, statement for
#: statement (``{t}`` is the table's name): unique by the key texts.
OLD_LAYOUT = (
    "CREATE TABLE IF NOT EXISTS {t} ("
    "_stet_function text NOT NULL DEFAULT '', "
    "_stet_timestamp timestamptz, _stet_duration double precision, "
    "_stet_host text, _stet_code text, _stet_codec text, "
    "_stet_key text NOT NULL, _stet_seq bigint NOT NULL, "
    "UNIQUE (_stet_function, _stet_key))",
    "CREATE INDEX IF NOT EXISTS {t}_seq ON {t} (_stet_seq)",
    "CREATE TABLE IF NOT EXISTS {t}_meta (id integer PRIMARY KEY CHECK (id = 1), "
    "format text NOT NULL, generation bigint NOT NULL, version bigint NOT NULL)",
    "INSERT INTO {t}_meta VALUES (1, 'stet 1', 0, 0) ON CONFLICT (id) DO NOTHING",
    "CREATE TABLE IF NOT EXISTS {t}_claims (function text NOT NULL, key text NOT NULL, "
    "owner text NOT NULL, epoch bigint NOT NULL, expires timestamptz NOT NULL, "
    "lease double precision NOT NULL, since timestamptz NOT NULL, "
    "PRIMARY KEY (function, key))",
)


def old_store(server: pg.Server, function: str, xs: range) -> str:
    """A store in the earlier release's layout holding ``x`` records of ``function``."""
    store = new_pg_store(server)
    t = store.rsplit("=", 1)[1]
    with psycopg.connect(server.url(), autocommit=True) as conn, conn.transaction():
        for statement in OLD_LAYOUT:
            conn.execute(statement.format(t=t))
        conn.execute(f"ALTER TABLE {t} ADD COLUMN x text")
        for x in xs:  # as the earlier release wrote a record
            conn.execute(
                f"WITH v AS (UPDATE {t}_meta SET version = version + 1 WHERE id = 1 "
                f"RETURNING version) INSERT INTO {t} (x, _stet_function, _stet_timestamp, "
                "_stet_codec, _stet_key, _stet_seq) SELECT %s, %s, now(), '1', %s, v.version "
                "FROM v",
                (str(x), function, f'{{"x":"{x}"}}'),
            )
        conn.execute(
            f"INSERT INTO {t}_claims VALUES (%s, %s, 'elsewhere', 1, "
            "now() + interval '1 hour', 3600, now())",
            (function, '{"x":"99"}'),
        )
    return store


def layout(server: pg.Server, store: str) -> tuple[list[str], list[str]]:
    """The store's unique constraints and unique indexes (definitions)."""
    t = store.rsplit("=", 1)[1]
    with psycopg.connect(server.url()) as conn:
        constraints = conn.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid IN (to_regclass(%s), to_regclass(%s)) AND contype IN ('u', 'p')",
            (t, t + "_claims"),
        ).fetchall()
        indexes = conn.execute(
            "SELECT indexrelid::regclass::text FROM pg_index "
            "WHERE indrelid IN (to_regclass(%s), to_regclass(%s)) AND indisunique",
            (t, t + "_claims"),
        ).fetchall()
    return sorted(c[0] for c in constraints), sorted(i[0] for i in indexes)


def test_keys_of_many_kilobytes_are_recorded_skipped_and_claimed(pg_store: str) -> None:
    import numpy as np

    calls: list[int] = []

    @stet.once(store=pg_store, quiet=True, name=secrets.token_hex(3000))
    def run(data: object, n: int) -> None:
        calls.append(n)

    @stet.once(store=pg_store, quiet=True, claim=True)
    def claimed(data: object) -> None:
        calls.append(-1)

    # Texts that do not compress (the index compresses what it can).
    vector = np.random.default_rng(12).random(300)  # about 6 KB of key text
    text = "\\x" + "\\".join(secrets.token_urlsafe(8) + "é" for _ in range(600))
    for _ in range(2):
        run(vector, 1)
        run(text, 2)
        claimed(vector)
    assert calls == [1, 2, -1]
    again = PostgresBackend(pg_store)  # a new process's view
    assert again.has({"data": vector, "n": 1})
    assert again.has({"data": text, "n": 2})
    assert not again.has({"data": vector[:-1], "n": 1})
    assert again.remove({"data": text, "n": 2}) == 1
    assert not PostgresBackend(pg_store).has({"data": text, "n": 2})


def test_a_store_of_the_earlier_layout_is_migrated_on_first_use_and_keeps_working(
    pg_server: pg.Server,
) -> None:
    import numpy as np

    calls: list[object] = []

    def run(x: object) -> None:
        calls.append(x)

    store = old_store(pg_server, run.__qualname__, range(3))
    assert layout(pg_server, store)[0] == [
        "PRIMARY KEY (function, key)",
        "UNIQUE (_stet_function, _stet_key)",
    ]
    once = stet.once(store=store, quiet=True)(run)
    assert sorted(int(str(r["x"])) for r in stet.read(store).to_dict("records")) == [0, 1, 2]
    once(1)  # read and skipped
    once(3)  # appended
    big = np.arange(400.0)
    once(big)  # a key the old layout could not index
    once(big)
    assert calls == [3, big]
    constraints, indexes = layout(pg_server, store)
    assert constraints == []
    assert len(indexes) == 2  # the digest indexes of records and claims
    assert len(claims_in(new_store(store))) == 1  # the claim in progress survived
    xs = [r["x"] for r in PostgresBackend(store).load()]
    assert sorted(x for x in xs if isinstance(x, int)) == [0, 1, 2, 3]
    assert [np.asarray(x).tolist() for x in xs if not isinstance(x, int)] == [big.tolist()]


def test_eight_processes_opening_an_old_store_at_once_all_succeed(pg_server: pg.Server) -> None:
    for _ in range(5):
        store = old_store(pg_server, "", range(2))
        start = threading.Barrier(8)
        errors: list[BaseException] = []

        def use(
            i: int,
            store: str = store,
            start: threading.Barrier = start,
            errors: list[BaseException] = errors,
        ) -> None:
            table = PostgresBackend(store)  # a connection of its own, as a process has
            try:
                start.wait()
                table.record({"x": 10 + i})
                assert table.has({"x": 0})
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=use, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors[0]
        assert sorted(int(str(r["x"])) for r in PostgresBackend(store).load()) == [
            0,
            1,
            *range(10, 18),
        ]
        assert layout(pg_server, store)[0] == []


RECORD_SEVEN = """
import sys
from stet.backends import get_backend

get_backend(sys.argv[1]).record({"x": 7})
"""


def _wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 120
    while not condition():
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(0.01)


def test_a_migration_killed_midway_leaves_a_store_that_works_and_migrates_later(
    pg_server: pg.Server,
) -> None:
    store = old_store(pg_server, "", range(2))
    t = store.rsplit("=", 1)[1]
    before = layout(pg_server, store)
    with psycopg.connect(pg_server.url(), autocommit=True) as watch:

        def waiting() -> list[tuple[int]]:
            return watch.execute(
                "SELECT pid FROM pg_locks WHERE relation = to_regclass(%s) AND NOT granted",
                (t + "_claims",),
            ).fetchall()

        with psycopg.connect(pg_server.url()) as admin:  # holds the lock until it commits
            admin.execute(f"LOCK TABLE {t}_claims IN ACCESS EXCLUSIVE MODE")
            child = subprocess.Popen([sys.executable, "-c", RECORD_SEVEN, store])
            # The child's migration waits for the claims table, the last one it
            # migrates: by then it has dropped the records table's old constraint.
            _wait_until(lambda: bool(waiting()), "the migration to reach the claims table")
            [(backend,)] = waiting()
            held = watch.execute(
                "SELECT mode FROM pg_locks WHERE pid = %s AND relation = to_regclass(%s)",
                (backend, t),
            ).fetchall()
            assert ("AccessExclusiveLock",) in held  # its ALTER TABLE ... DROP CONSTRAINT
            child.kill()  # midway: the old constraint dropped, nothing committed
            assert child.wait(timeout=120) == -9
        # Once the lock is free the server finds the client gone, and rolls back.
        _wait_until(
            lambda: (
                watch.execute(
                    "SELECT 1 FROM pg_stat_activity WHERE pid = %s", (backend,)
                ).fetchone()
                is None
            ),
            "the killed migration's session to end",
        )
    assert layout(pg_server, store) == before  # rolled back whole
    table = PostgresBackend(store)
    assert table.has({"x": 1})
    table.record({"x": 7})
    assert sorted(int(str(r["x"])) for r in PostgresBackend(store).load()) == [0, 1, 7]
    assert layout(pg_server, store)[0] == []


def test_an_error_the_server_would_repeat_is_reported_at_once_in_its_words(
    pg_server: pg.Server, pg_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pauses: list[float] = []
    monkeypatch.setattr(time, "sleep", pauses.append)
    table = PostgresBackend(pg_store)
    table.record({"x": "short"})
    name = pg_store.rsplit("=", 1)[1]
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        conn.execute(f"CREATE INDEX {name}_mine ON {name} (x)")  # a user's own btree index
    with pytest.raises(stet.StoreError) as info:
        table.record({"x": secrets.token_urlsafe(8000)})  # too big for that index
    message = str(info.value)
    assert "index row" in message  # what the server said
    assert "check that the server runs" not in message
    assert "tried" not in message
    assert pauses == []  # not retried


# -- parameter names PostgreSQL would cut (issue #12, item 5b) -----------------


def test_a_parameter_name_over_63_bytes_is_refused_when_decorating(pg_store: str) -> None:
    long_name = "learning_rate_of_the_second_optimizer_in_the_fine_tuning_stage_x"
    assert len(long_name.encode()) == 64
    calls: list[int] = []
    namespace: dict[str, Any] = {"calls": calls}
    exec(f"def run({long_name}, seed):\n    calls.append(seed)", namespace)
    run: Callable[[float, int], None] = namespace["run"]
    for claim in (False, True):
        with pytest.raises(ValueError, match=repr(long_name)) as info:
            stet.once(store=pg_store, quiet=True, claim=claim)(run)
        message = str(info.value)
        assert f"is 64 bytes long, but the store {pg_store!r} keeps at most 63 bytes" in message
        assert "would never be skipped" in message  # why it matters
        assert "rename the parameter" in message
    # Left out of the key, it is no column: the function can use that store.
    stet.once(store=pg_store, quiet=True, key=["seed"])(run)(0.1, 0)
    accented = "é" * 32  # 32 characters, 64 bytes
    with pytest.raises(ValueError, match="64 bytes"):
        PostgresBackend(pg_store).record({accented: 1})
    store = new_store(pg_store)  # the text level refuses it too
    with pytest.raises(ValueError, match="64 bytes"):
        store.add("", (accented,), [("1",)])
    with pytest.raises(ValueError, match="64 bytes"):
        store.merge([{accented: "1"}])
    assert calls == [0]
    [record] = store.records()
    assert [c for c in record if not c.startswith("_stet_")] == ["seed"]
    fits = long_name[:63]
    exec(f"def fits({fits}, seed):\n    calls.append(seed)", namespace)
    fitting: Callable[[float, int], None] = namespace["fits"]
    once = stet.once(store=pg_store, quiet=True)(fitting)
    once(0.1, 2)
    once(0.1, 2)
    assert calls == [0, 2]
    assert PostgresBackend(pg_store).has({fits: 0.1, "seed": 2})


# -- passwords in hostile URLs (issue #12, item 12) ---------------------------

#: Pieces of a password: no message, URL or table name holds these letters in a row.
TOKEN = st.text(alphabet="QXZJKVWY", min_size=5, max_size=8)
#: What a careless or hostile password holds between its pieces.
SEPARATOR = st.sampled_from(["@", ":", "/", "?", "#", "%", "&", "=", "+", " ", "[", "]", "%40", ""])
FORMS = (
    "postgresql://secretive:{raw}@{host}/stet",
    "postgresql://secretive:{quoted}@{host}/stet?table=hostile",
    "postgresql://secretive@{host}/stet?password={raw}",
    "postgresql://secretive@{host}/stet?sslmode=disable&password={quoted}",
    "postgresql://secretive:{raw}@{host}/stet?password={raw}",
    "postgresql://secretive:{raw}@{host}",
    "postgresql://secretive@{host}/stet",  # the password in PGPASSWORD
)


@st.composite
def hostile_passwords(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A password, and the pieces of it no output may show."""
    tokens = draw(st.lists(TOKEN, min_size=1, max_size=4))
    seps = draw(st.lists(SEPARATOR, min_size=len(tokens) + 1, max_size=len(tokens) + 1))
    return seps[0] + "".join(t + s for t, s in zip(tokens, seps[1:], strict=True)), tokens


def everything_shown(url: str) -> list[str]:
    """Every text stet shows about ``url``: errors, reprs, the CLI's output."""
    from stet._cli import main

    shown: list[str] = []
    try:
        config = stet.Once(store=url)
    except ValueError as exc:
        return [str(exc), repr(exc)]
    table = get_backend(url)
    shown += [repr(config), repr(table), table.location]
    with pytest.raises(stet.StoreError) as info:
        table.has({"x": 1})
    shown += [str(info.value), repr(info.value), info.value.path]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        assert main(["status", url]) == 1
    return [*shown, out.getvalue(), err.getvalue()]


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(secret=hostile_passwords(), form=st.sampled_from(FORMS), where=st.integers(0, 2))
def test_no_piece_of_a_password_shows_whatever_the_url(
    secret: tuple[str, list[str]], form: str, where: int
) -> None:
    server = pg.shared()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    host = (f"127.0.0.1:{server.port}", f"[::1]:{closed}", f"localhost:{closed}")[where]
    password, tokens = secret
    url = form.format(raw=password, quoted=urllib.parse.quote(password, safe=""), host=host)
    saved = {k: os.environ.get(k) for k in ("PGPASSWORD", "STET_RETRY_SECONDS")}
    os.environ.update(PGPASSWORD=password, STET_RETRY_SECONDS="0")
    try:
        shown = everything_shown(url)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    for text in shown:
        for token in tokens:
            assert token not in text, (url, text)


HOSTILE = "p@ss:w/o?r#d%&=+ [x]é"


@pytest.fixture(scope="module")
def hostile_role(pg_server: pg.Server) -> str:
    """A role whose password holds every character a URL gives a meaning to."""
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        conn.execute(
            psycopg.sql.SQL("CREATE ROLE hostile LOGIN PASSWORD {}").format(
                psycopg.sql.Literal(HOSTILE)
            )
        )
        conn.execute("GRANT ALL ON SCHEMA public TO hostile")
    return "hostile"


@pytest.mark.parametrize(
    "form",
    [
        "postgresql://hostile:{quoted}@127.0.0.1:{port}/stet?table=h1",
        "postgresql://hostile@127.0.0.1:{port}/stet?password={quoted}&table=h2",
        "postgresql://hostile:wrong@127.0.0.1:{port}/stet?table=h3&password={quoted}",
    ],
    ids=["userinfo", "query", "query-overrides-userinfo"],
)
def test_libpq_gets_a_percent_encoded_password_exactly(
    pg_server: pg.Server, hostile_role: str, form: str
) -> None:
    url = form.format(quoted=urllib.parse.quote(HOSTILE, safe=""), port=pg_server.port)
    table = get_backend(url)
    table.record({"x": 1})  # the server accepted the password
    assert PostgresBackend(url).has({"x": 1})
    for text in (repr(table), table.location, repr(stet.Once(store=url))):
        assert "ss:w" not in text
        assert "%40ss" not in text
        assert "***" in text


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://user:QXZJK@YVWQX@{host}/db",  # libpq splits at the first '@'
        "postgresql://us@QXZJK:YVWQX@{host}/db",
        "postgresql://user:QXZJK/YVWQX@{host}/db",  # libpq: host 'user', port 'QXZJK'
        "postgresql://user:QXZJK?YVWQX@{host}/db",
        "postgresql://user:QXZJK#YVWQX@{host}/db",
        "postgresql://user:QXZJKYVWQX/db",  # '@host' forgotten: the password as a port
        "postgresql://user:QXZJK%YVWQX@{host}/db",
        "postgresql://{host}/db?password=QXZJK&YVWQX",
        "postgresql://{host}/db?password=QXZJK&YVWQX=1",
        "postgresql://user:/QXZJK?YVWQX=@{host}/db",  # the password cut at its "/"
    ],
)
def test_an_ambiguous_url_is_refused_before_connecting_and_not_shown(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_connection(*args: object, **kwargs: object) -> None:
        raise AssertionError("connected")

    monkeypatch.setattr(psycopg, "connect", no_connection)
    url = url.format(host="127.0.0.1:5432")
    with pytest.raises(ValueError, match=r"Percent-encode|libpq understands") as info:
        stet.Once(store=url)
    for text in (str(info.value), repr(info.value)):
        assert "QXZJK" not in text
        assert "YVWQX" not in text

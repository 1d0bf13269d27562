"""Cooperative claims: parallel workers over one grid run each key once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

import stet
from stet.backends import get_backend
from stet.backends._base import Table
from stet.backends._claims import Claim, heartbeat

from .conftest import kind

WORKER = Path(__file__).with_name("claim_worker.py")
ELSEWHERE = "elsewhere:4242:feedbeef"
#: Workers and keys of the exactly-once test; STET_SOAK multiplies the keys.
SOAK = int(os.environ.get("STET_SOAK", "1"))


def foreign_claim(table: Table, key: int, *, expires_in: float, function: str = "work") -> Claim:
    now = time.time()
    claim = Claim(function, ("key",), (str(key),), ELSEWHERE, 1, now + expires_in, 30.0, now)
    table._format.save_claims([claim], [])
    return claim


def recorded(store: str) -> Counter[object]:
    fresh = type(get_backend(store))(store)
    return Counter(r["key"] for r in fresh.load())


def test_a_claimed_key_is_busy_for_others_until_completed(
    store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = get_backend(store)
    state, mine = table.claim_texts("work", ("key",), ("1",), 60)
    assert state == "claimed"
    assert mine is not None
    with monkeypatch.context() as m:
        m.setattr("stet.backends._claims._owner", ELSEWHERE)
        state, holder = table.claim_texts("work", ("key",), ("1",), 60)
        assert (state, holder is not None and holder.owner) == ("busy", mine.owner)
    assert table.complete_claim(mine)
    assert table.has({"key": 1}, function="work")
    assert table.claims() == {}
    with monkeypatch.context() as m:
        m.setattr("stet.backends._claims._owner", ELSEWHERE)
        assert table.claim_texts("work", ("key",), ("1",), 60) == ("done", None)


def test_an_expired_claim_is_taken_over_and_its_stale_owner_cannot_complete(
    store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = get_backend(store)
    _, stale = table.claim_texts("work", ("key",), ("7",), 0.05)
    assert stale is not None
    heartbeat.drop(table, stale)  # as if the worker were stopped: no more renewals
    time.sleep(0.1)
    with monkeypatch.context() as m:
        m.setattr("stet.backends._claims._owner", ELSEWHERE)
        state, taken = table.claim_texts("work", ("key",), ("7",), 60)
    assert state == "claimed"
    assert taken is not None
    assert taken.epoch == stale.epoch + 1
    # The stale worker wakes up and finishes: fencing refuses its record.
    assert not table.complete_claim(stale)
    assert not table.has({"key": 7}, function="work")
    assert table.complete_claim(taken)
    assert recorded(store) == Counter({7: 1})


def test_the_heartbeat_keeps_a_long_run_claimed(store: str) -> None:
    started = threading.Event()

    @stet.once(store=store, claim=True, lease=0.6, quiet=True, name="work")
    def work(key: int) -> None:
        started.set()
        time.sleep(2.0)  # over three leases

    thread = threading.Thread(target=work, args=(1,))
    thread.start()
    assert started.wait(10)
    table = get_backend(store)
    seen = 0
    while thread.is_alive():
        claims = [c for c in table.claims().values() if c.owner != ELSEWHERE]
        if claims:
            assert claims[0].expires > time.time(), "the claim expired during the run"
            seen += 1
        time.sleep(0.05)
    thread.join()
    assert seen >= 10
    assert table.claims() == {}
    assert recorded(store) == Counter({1: 1})


def test_a_key_running_elsewhere_is_skipped_with_a_message(
    store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ran: list[int] = []

    @stet.once(store=store, claim=True, name="work")
    def work(key: int) -> int:
        ran.append(key)
        return key

    foreign_claim(get_backend(store), 2, expires_in=30)
    assert work(2) is None
    assert work(3) == 3
    assert ran == [3]
    out = capsys.readouterr().out
    assert "[stet] Skipping work(key=2): running elsewhere (host elsewhere, pid 4242)" in out


def test_an_expired_claim_of_a_dead_worker_runs_again(store: str) -> None:
    ran: list[int] = []

    @stet.once(store=store, claim=True, quiet=True, name="work")
    def work(key: int) -> None:
        ran.append(key)

    foreign_claim(get_backend(store), 2, expires_in=-1)
    work(2)
    assert ran == [2]
    assert recorded(store) == Counter({2: 1})
    assert get_backend(store).claims() == {}


def test_a_failed_run_gives_its_key_back(store: str) -> None:
    calls: list[int] = []

    @stet.once(store=store, claim=True, quiet=True, name="work")
    def work(key: int) -> None:
        calls.append(key)
        if len(calls) == 1:
            raise RuntimeError("diverged")

    with pytest.raises(RuntimeError, match="diverged"):
        work(5)
    assert get_backend(store).claims() == {}
    work(5)
    work(5)
    assert calls == [5, 5]
    assert recorded(store) == Counter({5: 1})


_SIGTERM_WORKER = """
import signal, sys, time
import stet

def stop(signum, frame):
    sys.exit(f"stopped by signal {signum}")

signal.signal(signal.SIGTERM, stop)

@stet.once(store=sys.argv[1], claim=True, quiet=True, name="work")
def work(key):
    print("running", flush=True)
    time.sleep(60)

work(7)
"""


def test_sigterm_turned_into_an_exception_gives_the_key_back_at_once(store: str) -> None:
    # What a SLURM task does at its time limit with the handler the docs show.
    worker = subprocess.Popen(
        [sys.executable, "-c", _SIGTERM_WORKER, store],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert worker.stdout is not None
    assert worker.stdout.readline().strip() == "running"
    assert len(get_backend(store).claims()) == 1
    worker.send_signal(signal.SIGTERM)
    _, err = worker.communicate(timeout=60)
    assert worker.returncode == 1
    assert "stopped by signal" in err
    assert get_backend(store).claims() == {}  # not after the 60 s lease: now
    assert recorded(store) == Counter()


def test_async_functions_claim_too(store: str) -> None:
    calls: list[int] = []

    @stet.once(store=store, claim=True, quiet=True, name="work")
    async def work(key: int) -> int:
        calls.append(key)
        if key < 0:
            raise ValueError(key)
        return key

    async def main() -> list[int | None]:
        with pytest.raises(ValueError, match="-1"):
            await work(-1)
        return [await work(1), await work(1)]

    assert asyncio.run(main()) == [1, None]
    assert calls == [-1, 1]
    assert get_backend(store).claims() == {}


def test_status_and_progress_count_running_and_expired_claims(
    store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    @stet.once(store=store, claim=True, quiet=True, name="work")
    def work(key: int) -> None: ...

    table = get_backend(store)
    foreign_claim(table, 2, expires_in=-5)  # a worker that died
    assert stet.status(store).functions[0].expired_claims == 1  # claims alone: a store
    work(1)
    foreign_claim(table, 3, expires_in=30)
    foreign_claim(table, 4, expires_in=30)
    (status,) = stet.status(store).functions
    assert (status.records, status.running, status.expired_claims) == (1, 2, 1)
    out = capsys.readouterr().out
    assert "[stet] work: 2 running now; 1 claim(s) expired" in out
    progress = stet.progress(work, [{"key": k} for k in range(6)])
    assert (progress.done, progress.running, progress.left) == (1, 2, 3)
    assert "1 of 6 done, 2 running, 3 left" in capsys.readouterr().out


@pytest.mark.parametrize("ext", ["csv", "json", "parquet"])
def test_a_damaged_claims_file_is_an_error_naming_it(ext: str) -> None:
    store = f"runs.{ext}"
    Path(store + ".claims.json").write_text("{not json")

    @stet.once(store=store, claim=True, quiet=True)
    def work(key: int) -> None: ...

    with pytest.raises(stet.StoreError, match=r"runs\.\w+\.claims\.json.*delete it"):
        work(1)
    assert Path(store + ".claims.json").read_text() == "{not json"


# -- many worker processes ------------------------------------------------------


def start_workers(
    store: str, count: int, keys: int, lease: float, seconds: float, log: Path
) -> list[subprocess.Popen[bytes]]:
    args = [sys.executable, str(WORKER), store, str(keys), str(lease), str(seconds), str(log)]
    return [subprocess.Popen(args, stdout=subprocess.DEVNULL) for _ in range(count)]


def executions(log: Path) -> list[tuple[int, int, float]]:
    lines = log.read_text().split("\n") if log.exists() else []
    return [(int(p), int(k), float(t)) for p, k, t in (line.split() for line in lines if line)]


@pytest.mark.slow
def test_identical_workers_split_a_grid_each_key_executed_once(
    store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workers, keys = 8, 500 * SOAK
    log = tmp_path / "executions.log"
    procs = start_workers(store, workers, keys, lease=10, seconds=0, log=log)
    for proc in procs:
        assert proc.wait(timeout=300) == 0
    ran = Counter(key for _, key, _ in executions(log))
    assert ran == Counter(range(keys)), "some key ran twice or never"
    assert recorded(store) == Counter(range(keys))
    assert get_backend(store).claims() == {}
    busy = len({pid for pid, _, _ in executions(log)})
    with capsys.disabled():
        print(
            f"\n  {kind(store)}: {workers} worker processes x {keys} keys, "
            f"{busy} of them ran keys, executions per key: {set(ran.values())}"
        )


@pytest.mark.slow
def test_keys_of_killed_and_stopped_workers_are_reclaimed_and_completed_once(
    store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workers, keys, lease, seconds = 8, 400, 1.0, 0.05  # about 2.5 s of work each
    log = tmp_path / "executions.log"
    procs = start_workers(store, workers, keys, lease, seconds, log)
    killed, stopped = procs[:2], procs[2]
    # Signal them while they run keys: once each has started a few (Python
    # and its imports take a while to start).
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        started = Counter(pid for pid, _, _ in executions(log))
        if all(started[p.pid] >= 3 for p in (*killed, stopped)):
            break
        time.sleep(0.01)
    for proc in killed:
        proc.send_signal(signal.SIGKILL)
    stopped.send_signal(signal.SIGSTOP)
    dead = {p.pid for p in (*killed, stopped)}
    # Within the lease plus one heartbeat, no claim of theirs is alive: their
    # keys are free for the others to take over.
    time.sleep(lease + lease / 3 + 0.5)
    now = time.time()
    held = [c for c in get_backend(store).claims().values() if int(c.pid) in dead]
    assert not [c for c in held if c.live(now)], "a dead worker's claim is still alive"
    time.sleep(lease)
    stopped.send_signal(signal.SIGCONT)  # it wakes up after its key was taken over
    for proc in procs:
        returncode = proc.wait(timeout=300)
        assert returncode == (-signal.SIGKILL if proc in killed else 0)
    runs = executions(log)
    assert recorded(store) == Counter(range(keys)), "a key was recorded twice or never"
    assert get_backend(store).claims() == {}
    ran = Counter(key for _, key, _ in runs)
    assert set(ran) == set(range(keys))
    twice = [k for k, n in ran.items() if n > 1]
    assert twice, "no key of a signalled worker was taken over"
    for key in twice:
        (_, first), *later = sorted((t, pid) for pid, k, t in runs if k == key)
        assert all(pid != first for _, pid in later)  # taken over by another worker
    assert any(
        first in dead for first in (min((t, p) for p, k, t in runs if k == key)[1] for key in twice)
    )
    with capsys.disabled():
        print(
            f"\n  {kind(store)}: {workers} workers x {keys} keys, 2 SIGKILLed and "
            f"1 SIGSTOPped past the lease; {len(twice)} keys reclaimed, "
            f"each key recorded once"
        )

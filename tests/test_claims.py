"""Cooperative claims: parallel workers over one grid run each key once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

import stet
from stet.backends import get_backend, new_store, open_store
from stet.backends._claims import Claim, heartbeat
from stet.typing import ClaimingStore, Store

from .conftest import STORE_EXTENSIONS, kind, soak
from .fake_clock import FakeClock

WORKER = Path(__file__).with_name("claim_worker.py")
ELSEWHERE = "elsewhere:4242:feedbeef"


def foreign_claim(table: Store, key: int, *, expires_in: float, function: str = "work") -> Claim:
    """A claim made by a worker on another machine, expiring ``expires_in`` from now."""
    elsewhere = FakeClock(wall=time.time(), timeline="another-machine")
    store = new_store(table.location, clock=elsewhere)
    assert isinstance(store, ClaimingStore)
    state, claim = store.claim(function, ("key",), (str(key),), expires_in, owner=ELSEWHERE)
    assert state == "claimed"
    assert claim is not None
    return claim


@pytest.fixture(params=STORE_EXTENSIONS)
def file_store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A not-yet-created file store of each kind (the stores timed by this machine)."""
    return str(tmp_path / f"runs.{request.param}")


def opened(store: str) -> ClaimingStore:
    """The store this process's decorated functions use."""
    found = open_store(store)
    assert isinstance(found, ClaimingStore)
    return found


def worker(store: str, clock: FakeClock) -> ClaimingStore:
    """The store as another worker process opens it, on ``clock``."""
    opened = new_store(store, clock=clock)
    assert isinstance(opened, ClaimingStore)
    return opened


def recorded(store: str) -> Counter[object]:
    fresh = type(get_backend(store))(store)
    return Counter(r["key"] for r in fresh.load())


def test_a_claimed_key_is_busy_for_others_until_completed(store: str) -> None:
    table = opened(store)
    state, mine = table.claim("work", ("key",), ("1",), 60)
    assert state == "claimed"
    assert mine is not None
    state, holder = table.claim("work", ("key",), ("1",), 60, owner=ELSEWHERE)
    assert (state, holder is not None and holder.owner) == ("busy", mine.owner)
    assert table.complete(mine)
    assert table.is_done("work", ("key",), "1")
    assert table.claims() == {}
    assert table.claim("work", ("key",), ("1",), 60, owner=ELSEWHERE) == ("done", None)


def test_an_expired_claim_is_taken_over_and_its_stale_owner_cannot_complete(store: str) -> None:
    table = opened(store)
    _, stale = table.claim("work", ("key",), ("7",), 0.05)
    assert stale is not None
    heartbeat.drop(table, stale)  # as if the worker were stopped: no more renewals
    time.sleep(0.1)
    state, taken = table.claim("work", ("key",), ("7",), 60, owner=ELSEWHERE)
    assert state == "claimed"
    assert taken is not None
    assert taken.epoch == stale.epoch + 1
    # The stale worker wakes up and finishes: fencing refuses its record.
    assert not table.complete(stale)
    assert not table.is_done("work", ("key",), "7")
    assert table.complete(taken)
    assert recorded(store) == Counter({7: 1})


def test_the_heartbeat_keeps_a_long_run_claimed(store: str) -> None:
    # The run lasts until its claim was seen renewed three times and more
    # than a lease has passed, however slowly a loaded machine gets there; a
    # lease of seconds leaves the heartbeat (every third of it) room to be late.
    started, enough = threading.Event(), threading.Event()
    lease = 3.0

    @stet.once(store=store, claim=True, lease=lease, quiet=True, name="work")
    def work(key: int) -> None:
        started.set()
        enough.wait(300)

    thread = threading.Thread(target=work, args=(1,))
    thread.start()
    try:
        assert started.wait(60)
        table = opened(store)
        begun = time.monotonic()
        expiries: list[float] = []
        while len(expiries) < 4 or time.monotonic() - begun <= lease:
            assert time.monotonic() - begun < 240, f"renewed only {len(expiries) - 1} times"
            looked = time.time()
            claims = [c for c in table.claims().values() if c.owner != ELSEWHERE]
            assert claims, "the claim is gone during the run"
            assert claims[0].expires > looked, "the claim expired during the run"
            if not expiries or claims[0].expires > expiries[-1]:
                expiries.append(claims[0].expires)
            time.sleep(0.05)
    finally:
        enough.set()
        thread.join()
    assert table.claims() == {}
    assert recorded(store) == Counter({1: 1})


def test_a_run_finishes_on_its_claim_after_the_store_was_let_go_meanwhile(store: str) -> None:
    # `stet.testing.fresh_process` (or anything that makes the next call open
    # the store anew) while a claimed run is in flight in another thread:
    # the run still completes its own claim.
    started, finish = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    @stet.once(store=store, claim=True, quiet=True, name="work")
    def work(key: int) -> None:
        started.set()
        finish.wait(60)
        if key < 0:
            raise ValueError(key)

    def call(key: int) -> None:
        try:
            work(key)
        except BaseException as exc:  # checked below
            errors.append(exc)

    for key in (1, -1):
        started.clear()
        finish.clear()
        thread = threading.Thread(target=call, args=(key,))
        thread.start()
        assert started.wait(60)
        stet.testing.fresh_process()
        finish.set()
        thread.join()
    assert [type(e) for e in errors] == [ValueError]
    assert opened(store).claims() == {}  # given back at once, not after the lease
    assert recorded(store) == Counter({1: 1})


def test_a_key_running_elsewhere_is_skipped_with_a_message(
    store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ran: list[int] = []

    @stet.once(store=store, claim=True, name="work")
    def work(key: int) -> int:
        ran.append(key)
        return key

    foreign_claim(opened(store), 2, expires_in=30)
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

    foreign_claim(opened(store), 2, expires_in=-1)
    work(2)
    assert ran == [2]
    assert recorded(store) == Counter({2: 1})
    assert opened(store).claims() == {}


def test_a_failed_run_gives_its_key_back(store: str) -> None:
    calls: list[int] = []

    @stet.once(store=store, claim=True, quiet=True, name="work")
    def work(key: int) -> None:
        calls.append(key)
        if len(calls) == 1:
            raise RuntimeError("diverged")

    with pytest.raises(RuntimeError, match="diverged"):
        work(5)
    assert opened(store).claims() == {}
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
    assert len(opened(store).claims()) == 1
    worker.send_signal(signal.SIGTERM)
    _, err = worker.communicate(timeout=60)
    assert worker.returncode == 1
    assert "stopped by signal" in err
    assert opened(store).claims() == {}  # not after the 60 s lease: now
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
    assert opened(store).claims() == {}


def test_status_and_progress_count_running_and_expired_claims(
    store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    @stet.once(store=store, claim=True, quiet=True, name="work")
    def work(key: int) -> None: ...

    table = opened(store)
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


@pytest.mark.parametrize("ext", ["csv", "json", "parquet"])
def test_a_fifo_in_place_of_the_claims_file_is_an_error_not_a_hang(ext: str) -> None:
    store = f"runs.{ext}"
    os.mkfifo(store + ".claims.json")
    ran: list[int] = []

    @stet.once(store=store, claim=True, quiet=True)
    def work(key: int) -> None:
        ran.append(key)

    with pytest.raises(stet.StoreError, match=r"runs\.\w+\.claims\.json.*not a regular file"):
        work(1)
    assert ran == []


def test_a_fifo_in_place_of_a_lease_file_counts_as_no_renewal(file_store: str) -> None:
    clock = FakeClock()
    table = worker(file_store, clock)
    _, mine = table.claim("work", ("key",), ("1",), 60, owner="a:1:aa")
    assert mine is not None
    (lease,) = Path(file_store + ".claims.d").iterdir()
    lease.unlink()
    os.mkfifo(lease)
    clock.step_wall(-3600)  # no renewal: the claim's own wall-clock expiry counts
    assert table.claim("work", ("key",), ("1",), 60, owner="b:2:bb")[0] == "busy"
    clock.step_wall(3600 + 61)
    assert table.claim("work", ("key",), ("1",), 60, owner="b:2:bb")[0] == "claimed"


# -- leases: the clock and the lock --------------------------------------------

_HOLD_LOCK = """
import fcntl, sys
with open(sys.argv[1], "a") as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    print("locked", flush=True)
    sys.stdin.read()
"""


def test_a_claim_stays_alive_while_another_process_holds_the_store_lock_past_the_lease(
    file_store: str,
) -> None:
    lease = 1.0
    table = opened(file_store)
    state, mine = table.claim("work", ("key",), ("1",), lease)
    assert state == "claimed"
    assert mine is not None
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, file_store + ".lock"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        locked_at = time.time()
        reader = new_store(file_store)  # another process's view, needing no lock
        assert isinstance(reader, ClaimingStore)

        def renewed_past_a_lease() -> bool:
            (claim,) = reader.claims().values()
            return claim.expires > locked_at + 2 * lease

        # Fails without the fix: the heartbeat waited for the store's lock.
        wait_for(renewed_past_a_lease, "the heartbeat renewed nothing while the lock was held", 30)
    finally:
        holder.communicate(timeout=60)  # closes its stdin: it lets go
    assert reader.claim("work", ("key",), ("1",), lease, owner=ELSEWHERE)[0] == "busy"
    assert table.complete(mine)
    assert recorded(file_store) == Counter({1: 1})


def test_a_wall_clock_step_neither_expires_a_live_claim_nor_revives_a_dead_one(
    file_store: str,
) -> None:
    clock = FakeClock()
    a, b = worker(file_store, clock), worker(file_store, clock)
    state, mine = a.claim("work", ("key",), ("1",), 60, owner="a:1:aa")
    assert state == "claimed"
    assert mine is not None
    clock.step_wall(3600)  # the date is set an hour forward
    state, holder = b.claim("work", ("key",), ("1",), 60, owner="b:2:bb")
    assert (state, holder and holder.owner) == ("busy", "a:1:aa")
    clock.advance(30)
    a.renew([mine])
    clock.step_wall(-7200)  # and an hour back from where it was
    clock.advance(59)
    assert b.claim("work", ("key",), ("1",), 60, owner="b:2:bb")[0] == "busy"
    clock.advance(1)  # 60 s after the last renewal, whatever the wall clock says
    state, taken = b.claim("work", ("key",), ("1",), 60, owner="b:2:bb")
    assert state == "claimed"
    assert taken is not None
    assert taken.epoch == 2
    assert not a.complete(mine)
    assert b.complete(taken)


def test_the_heartbeat_keeps_its_pace_when_the_wall_clock_is_set_back(file_store: str) -> None:
    clock = FakeClock()
    table = worker(file_store, clock)
    _, mine = table.claim("work", ("key",), ("1",), 60)  # held by this process's heartbeat
    assert mine is not None
    clock.step_wall(-3600)
    clock.advance(40)
    heartbeat.beat()  # due by the monotonic clock: 40 s of a 60 s lease passed
    clock.advance(40)
    (claim,) = worker(file_store, clock).claims().values()
    assert claim.live(clock.wall), "the heartbeat paused when the wall clock went back"
    assert table.complete(mine)


def test_a_claim_from_before_a_reboot_expires_by_the_wall_clock(file_store: str) -> None:
    before = FakeClock(timeline="boot-1")
    state, _ = worker(file_store, before).claim("work", ("key",), ("1",), 60, owner="old:1:aa")
    assert state == "claimed"
    after = FakeClock(wall=before.wall + 30, monotonic=5.0, timeline="boot-2")
    table = worker(file_store, after)
    assert table.claim("work", ("key",), ("1",), 60, owner="new:2:bb")[0] == "busy"
    after.advance(30)
    assert table.claim("work", ("key",), ("1",), 60, owner="new:2:bb")[0] == "claimed"


@pytest.mark.parametrize("ext", ["csv", "json", "parquet"])
@pytest.mark.parametrize("left", [30, -1])
def test_a_claims_file_of_the_earlier_release_is_honoured_until_its_expiry(
    ext: str, left: float
) -> None:
    # As the earlier release wrote it: wall-clock times, no lease files.
    store, now = f"runs.{ext}", time.time()
    claim = {
        "function": "work",
        "key": {"key": "2"},
        "owner": ELSEWHERE,
        "epoch": 3,
        "expires": now + left,
        "lease": 60.0,
        "since": now - 100,
    }
    Path(store + ".claims.json").write_text(
        json.dumps({"format": "stet claims 1", "claims": [claim]}, indent=1)
    )
    ran: list[int] = []

    @stet.once(store=store, claim=True, quiet=True, name="work")
    def work(key: int) -> None:
        ran.append(key)

    work(2)
    assert ran == ([] if left > 0 else [2])
    assert len(opened(store).claims()) == (1 if left > 0 else 0)


def test_a_claim_left_on_a_recorded_key_is_finished_not_running(store: str) -> None:
    # What a worker killed between writing its record and dropping its claim leaves.
    @stet.once(store=store, claim=True, quiet=True, name="work")
    def work(key: int) -> None: ...

    table = opened(store)
    foreign_claim(table, 1, expires_in=30)
    foreign_claim(table, 2, expires_in=30)
    get_backend(store).record({"key": 1}, function="work")  # recorded, not through its claim
    assert [c.values for c in table.claims().values()] == [("2",)]
    (status,) = stet.status(store).functions
    assert (status.records, status.running) == (1, 1)
    assert stet.progress(work, [{"key": k} for k in range(3)]).running == 1
    work(0)
    if kind(store) != "postgresql":  # the next claim write drops it
        if kind(store) == "sqlite":
            claims = sqlite3.connect(store).execute("SELECT key FROM stet_claims").fetchall()
        else:
            claims = json.loads(Path(store + ".claims.json").read_text())["claims"]
        assert len(claims) == 1


def test_a_leases_folder_that_is_a_file_stops_the_run_naming_it(file_store: str) -> None:
    Path(file_store + ".claims.d").write_text("not a folder")
    ran: list[int] = []

    @stet.once(store=file_store, claim=True, quiet=True)
    def work(key: int) -> None:
        ran.append(key)

    with pytest.raises(stet.StoreError, match=r"claims\.d.*must be a folder"):
        work(1)
    assert ran == []
    assert opened(file_store).claims() == {}


def test_no_lease_file_is_left_once_every_claim_is_done(file_store: str) -> None:
    @stet.once(store=file_store, claim=True, quiet=True)
    def work(key: int) -> None:
        if key < 0:
            raise ValueError(key)

    for key in (1, 2, -1):
        with contextlib.suppress(ValueError):
            work(key)
    assert not Path(file_store + ".claims.d").exists()
    assert not Path(file_store + ".claims.json").exists()


# -- many worker processes ------------------------------------------------------


class Worker:
    """A worker process started by `start_workers`: signalled and waited for like a Popen."""

    def __init__(self, pid: int, forker: subprocess.Popen[str], siblings: set[int]) -> None:
        self.pid, self._forker, self._unwaited = pid, forker, siblings

    def send_signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def wait(self, timeout: float) -> int:
        """The worker's exit code (negative for a signal), as its parent saw it."""
        stdin, stdout = self._forker.stdin, self._forker.stdout
        assert stdin is not None
        assert stdout is not None
        stdin.write(f"{self.pid}\n")
        stdin.flush()
        ready, _, _ = select.select([stdout], [], [], timeout)
        assert ready, f"worker {self.pid} did not finish within {timeout:g} s"
        pid, code = map(int, stdout.readline().split())
        assert pid == self.pid
        self._unwaited.discard(pid)
        if not self._unwaited:  # the last one: the process that forked them ends
            stdin.close()
            assert self._forker.wait(timeout) == 0
            stdout.close()
        return code


def start_workers(
    store: str,
    count: int,
    keys: int,
    lease: float,
    seconds: float,
    log: Path,
    gate: Path | None = None,
) -> list[Worker]:
    """Start ``count`` claim_worker.py processes at once, forked from one new Python."""
    args = [store, str(keys), str(lease), str(seconds), str(log)]
    if gate is not None:
        args.append(str(gate))
    forker = subprocess.Popen(
        [sys.executable, str(WORKER), "--fork", str(count), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert forker.stdout is not None
    ready, _, _ = select.select([forker.stdout], [], [], 240)
    assert ready, "the workers were not started within 240 s"
    pids = [int(pid) for pid in forker.stdout.readline().split()]
    unwaited = set(pids)
    return [Worker(pid, forker, unwaited) for pid in pids]


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 240) -> None:
    """Wait until ``condition()`` holds (a loaded machine only makes this slower)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {seconds:g} s"
        time.sleep(0.02)


def executions(log: Path) -> list[tuple[int, int, float]]:
    lines = log.read_text().split("\n") if log.exists() else []
    return [(int(p), int(k), float(t)) for p, k, t in (line.split() for line in lines if line)]


@pytest.mark.slow
def test_identical_workers_split_a_grid_each_key_executed_once(
    store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workers, keys = 8, soak(200, 500)  # STET_SOAK multiplies the keys
    log = tmp_path / "executions.log"
    procs = start_workers(store, workers, keys, lease=10, seconds=0, log=log)
    for proc in procs:
        assert proc.wait(timeout=300) == 0
    ran = Counter(key for _, key, _ in executions(log))
    assert ran == Counter(range(keys)), "some key ran twice or never"
    assert recorded(store) == Counter(range(keys))
    assert opened(store).claims() == {}
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
    workers, keys, lease, seconds = 8, 200, 1.0, 0.05  # about 1.3 s of work each
    log = tmp_path / "executions.log"
    # Two workers are held in their first run (so they surely hold a claim
    # when signalled): one is killed there, one stopped until its key was
    # taken over. A third is killed at whatever instant it has reached.
    never, wake = tmp_path / "never-opened", tmp_path / "wake-up"
    # The held ones start first and are in their first run before the others
    # start: on a loaded machine the others could otherwise finish the grid
    # before a held one claimed anything.
    (held_killed,) = start_workers(store, 1, keys, lease, seconds, log, gate=never)
    (stopped,) = start_workers(store, 1, keys, lease, seconds, log, gate=wake)

    def first_key(proc: Worker) -> int | None:
        return next((k for pid, k, _ in executions(log) if pid == proc.pid), None)

    def runs_of(proc: Worker) -> int:
        return sum(1 for pid, _, _ in executions(log) if pid == proc.pid)

    wait_for(
        lambda: runs_of(held_killed) > 0 and runs_of(stopped) > 0,
        "the workers to be held started no run",
    )
    free = start_workers(store, workers - 2, keys, lease, seconds, log)
    killed = [free[0], held_killed]
    procs = [*free, held_killed, stopped]
    wait_for(lambda: runs_of(free[0]) >= 3, "the worker to be killed started no run")
    for proc in killed:
        proc.send_signal(signal.SIGKILL)
    stopped.send_signal(signal.SIGSTOP)
    dead = {p.pid for p in (*killed, stopped)}
    held_keys = {first_key(held_killed), first_key(stopped)}
    # A lease after its last heartbeat (which came before the signal), no
    # claim of theirs is alive: their keys are free for the others to take over.
    time.sleep(lease + lease / 3 + 0.5)
    now = time.time()
    held = [c for c in opened(store).claims().values() if int(c.pid) in dead]
    assert not [c for c in held if c.live(now)], "a dead worker's claim is still alive"

    def taken_over() -> bool:
        return held_keys <= {k for pid, k, _ in executions(log) if pid not in dead}

    wait_for(taken_over, "the keys of the signalled workers were not taken over")
    wake.touch()
    stopped.send_signal(signal.SIGCONT)  # it wakes up after its key was taken over
    for proc in procs:
        returncode = proc.wait(timeout=300)
        assert returncode == (-signal.SIGKILL if proc in killed else 0)
    runs = executions(log)
    assert recorded(store) == Counter(range(keys)), "a key was recorded twice or never"
    assert opened(store).claims() == {}
    ran = Counter(key for _, key, _ in runs)
    assert set(ran) == set(range(keys))
    twice = [k for k, n in ran.items() if n > 1]
    assert held_keys <= set(twice)
    for key in twice:
        (_, first), *later = sorted((t, pid) for pid, k, t in runs if k == key)
        assert all(pid != first for _, pid in later)  # taken over by another worker
    with capsys.disabled():
        print(
            f"\n  {kind(store)}: {workers} workers x {keys} keys, 2 SIGKILLed and "
            f"1 SIGSTOPped past the lease; {len(twice)} keys reclaimed, "
            f"each key recorded once"
        )

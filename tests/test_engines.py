"""The engines researchers submit sweeps with, run in their real local modes.

submitit's local executor runs jobs as processes of this machine, and a Ray
instance started by ``ray.init`` runs on this machine alone (on the
loopback address). Dask (docs/how-to/dask.md) and joblib
(docs/how-to/parallel.md, test_parallel.py) are run by their pages and
tests.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import submitit

import stet

DOCS = Path(__file__).resolve().parent.parent / "docs" / "how-to"

#: How long a wait for a condition may take before the test gives up: a
#: guard against a hang, never a limit a loaded machine must beat.
PATIENCE = 300.0


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + PATIENCE
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def page_script(page: str, name: str) -> str:
    """The Python block of a docs page whose first line is ``# name``."""
    text = (DOCS / page).read_text()
    found = re.search(rf"```python\n(# {re.escape(name)}\n.*?)```", text, re.DOTALL)
    assert found, f"{page} has no python block starting with '# {name}'"
    return found.group(1)


def read_lines(path: Path) -> list[list[str]]:
    try:
        return [line.split() for line in path.read_text().splitlines()]
    except FileNotFoundError:
        return []


def test_a_submitit_array_killed_part_way_is_finished_by_submitting_what_is_pending(
    tmp_path: Path,
) -> None:
    """docs/how-to/submitit.md: jobs killed with SIGKILL mid-run record nothing,
    and the next map_array over stet.pending holds exactly their rows."""
    log, hold = tmp_path / "runs.log", tmp_path / "hold"
    hold.touch()
    grid = [{"lr": lr, "seed": seed} for lr in (0.1, 0.01) for seed in range(3)]
    doomed = [row for row in grid if row["seed"] == 1]

    @stet.once(store=str(tmp_path / "sweep.stetdir"), quiet=True)
    def train(lr: float, seed: int) -> float:
        # Only names the jobs can import: the test module is not importable there.
        with open(log, "a") as f:
            f.write(f"{os.getpid()} {lr} {seed}\n")
        while seed == 1 and hold.exists():  # still running when it is killed
            time.sleep(0.05)
        return lr * seed

    def run_row(row: dict[str, Any]) -> float | None:
        return train(**row)

    executor = submitit.AutoExecutor(folder=tmp_path / "submitit-logs", cluster="local")
    executor.update_parameters(timeout_min=60)
    rows = stet.pending(train, grid)
    jobs = executor.map_array(run_row, rows)
    try:
        survivors = [(job, row) for job, row in zip(jobs, rows, strict=True) if row not in doomed]
        assert [job.result() for job, _ in survivors] == [r["lr"] * r["seed"] for _, r in survivors]
        wait_until(lambda: sum(line[2] == "1" for line in read_lines(log)) == 2, "doomed runs")
        for pid, _, seed in read_lines(log):
            if seed == "1":
                os.kill(int(pid), signal.SIGKILL)
        for job, row in zip(jobs, rows, strict=True):
            if row in doomed:
                job._results_timeout_s = 0  # no result will come: submitit need not wait for one
                assert isinstance(job.exception(), submitit.core.utils.UncompletedJobError)
    finally:
        hold.unlink(missing_ok=True)  # lets any doomed run still alive finish
    assert stet.pending(train, grid) == doomed

    again = executor.map_array(run_row, stet.pending(train, grid))
    assert [job.result() for job in again] == [r["lr"] * r["seed"] for r in doomed]
    assert stet.pending(train, grid) == []
    started = Counter((float(lr), int(seed)) for _, lr, seed in read_lines(log))
    assert started == Counter({(r["lr"], r["seed"]): 2 if r in doomed else 1 for r in grid})
    records = stet.read(str(tmp_path / "sweep.stetdir"))
    assert Counter(zip(records["lr"], records["seed"], strict=True)) == Counter(
        (r["lr"], r["seed"]) for r in grid
    )


def ray_processes(marker: str) -> list[int]:
    """Processes whose command line names ``marker`` (Ray's temporary folder)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:  # ended meanwhile
            continue
        if marker.encode() in cmdline:
            pids.append(int(entry.name))
    return pids


@pytest.fixture
def ray_env() -> Iterator[dict[str, str]]:
    """The environment of a script that starts Ray on this machine alone.

    Ray's files go to a short temporary folder of their own (its socket
    paths must stay under 108 bytes), which names every process the
    instance starts; any such process still alive at the end is killed.
    """
    folder = tempfile.mkdtemp(prefix="stet-ray-", dir="/tmp")
    env = {
        **os.environ,
        "RAY_TMPDIR": folder,
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_AUTH_MODE": "disabled",
        # Ray's single-machine mode: it listens on the loopback address only.
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    }
    try:
        yield env
    finally:
        for pid in ray_processes(folder):
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(folder, ignore_errors=True)


def test_ray_tasks_racing_over_one_grid_with_claims_run_each_key_once(
    tmp_path: Path, ray_env: dict[str, str]
) -> None:
    """docs/how-to/ray.md, run as the page shows it: four tasks go over one grid."""
    (tmp_path / "ray_sweep.py").write_text(page_script("ray.md", "ray_sweep.py"))
    done = subprocess.run(
        [sys.executable, "ray_sweep.py"],
        cwd=tmp_path,
        env=ray_env,
        capture_output=True,
        text=True,
        timeout=PATIENCE,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "12 runs in 4 tasks for 12 keys, 12 distinct"
    records = stet.read(str(tmp_path / "lr_scan.stetdir"))
    keys = Counter(zip(records["lr"], records["seed"], strict=True))
    assert len(keys) == 12
    assert set(keys.values()) == {1}
    wait_until(lambda: not ray_processes(ray_env["RAY_TMPDIR"]), "Ray's processes to end")

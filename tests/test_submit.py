"""Submitting a sweep: `stet.pending` and `stet.shard`."""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

import stet
from stet._submit import VARIABLES


@pytest.fixture(autouse=True)
def _no_scheduler(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the environment of a real array job it may be running in."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)


def _sweep(store: Path) -> Callable[..., float | None]:
    @stet.once(store=str(store), quiet=True)
    def run(alpha: float, seed: int = 0, n_iter: int = 10) -> float:
        return alpha

    return run


# --- pending ---------------------------------------------------------------


def test_pending_gives_back_the_rows_not_recorded_as_given_in_grid_order(tmp_path: Path) -> None:
    run = _sweep(tmp_path / "runs.csv")
    run(0.2)
    run(0.4, seed=1)
    grid = [{"alpha": a, "seed": s, "note": f"{a}/{s}"} for a in (0.4, 0.2, 0.1) for s in (0, 1)]
    left = stet.pending(run, grid)
    assert left == [grid[0], grid[3], grid[4], grid[5]]
    assert all(any(row is g for g in grid) for row in left)  # the rows themselves


def test_pending_of_a_dataframe_is_a_dataframe_with_its_index(tmp_path: Path) -> None:
    run = _sweep(tmp_path / "runs.csv")
    run(0.2, seed=1)
    grid = pd.DataFrame(
        {"alpha": [0.1, 0.2, 0.2, 0.3], "seed": [0, 0, 1, 1], "extra": list("abcd")},
        index=[10, 20, 30, 40],
    )
    left = stet.pending(run, grid)
    assert isinstance(left, pd.DataFrame)
    assert list(left.index) == [10, 20, 40]
    assert list(left.columns) == ["alpha", "seed", "extra"]
    empty = stet.pending(run, grid.iloc[:0])
    assert list(empty.columns) == ["alpha", "seed", "extra"]
    assert len(empty) == 0


def test_pending_takes_tuples_and_a_generator_read_once(tmp_path: Path) -> None:
    run = _sweep(tmp_path / "runs.csv")
    run(0.1, 1)
    assert stet.pending(run, [(0.1, 1), (0.1, 2)]) == [(0.1, 2)]
    rows: Iterator[dict[str, Any]] = ({"alpha": a} for a in (0.1, 0.2))
    assert stet.pending(run, rows) == [{"alpha": 0.1}, {"alpha": 0.2}]


def test_pending_counts_keys_once_so_no_two_tasks_run_the_same_key(tmp_path: Path) -> None:
    run = _sweep(tmp_path / "runs.csv")
    grid = [{"alpha": 0.1, "n_iter": 5}, {"alpha": 0.2}, {"alpha": 0.1, "seed": 0}, {"alpha": 0.2}]
    # n_iter is part of the key here (all parameters are): rows 0 and 2 differ.
    assert stet.pending(run, grid) == [grid[0], {"alpha": 0.2}, grid[2]]
    assert len(stet.pending(run, grid)) == stet.progress(run, grid).left


def test_pending_sees_what_another_process_recorded_since(tmp_path: Path) -> None:
    run = _sweep(tmp_path / "runs.csv")
    grid = [{"alpha": a} for a in (0.1, 0.2, 0.3)]
    assert len(stet.pending(run, grid)) == 3
    # Another process: a second decorator over the same store, opened apart.
    stet.backends.forget_open()
    other = _sweep(tmp_path / "runs.csv")
    assert other.__stet__.store is not run.__stet__.store  # type: ignore[attr-defined]
    other(0.3)
    assert stet.pending(run, grid) == grid[:2]


def test_pending_of_a_key_subset_ignores_the_other_parameters(tmp_path: Path) -> None:
    @stet.once(store=str(tmp_path / "runs.sqlite"), key=["alpha"], quiet=True)
    def run(alpha: float, n_iter: int = 10) -> None: ...

    run(0.1, n_iter=99)
    assert stet.pending(run, [{"alpha": 0.1, "n_iter": 5}, {"alpha": 0.2}]) == [{"alpha": 0.2}]


def test_pending_refuses_a_function_that_is_not_decorated_and_a_row_without_its_key() -> None:
    with pytest.raises(TypeError, match=r"decorated with @stet\.once"):
        stet.pending(print, [{}])
    run = _sweep(Path("runs.csv"))
    with pytest.raises(ValueError, match=r"row 1 has no value for key parameter 'alpha'"):
        stet.pending(run, [{"alpha": 1.0}, {"seed": 2}])
    assert not Path("runs.csv").exists()


# --- shard: the arithmetic -------------------------------------------------


@given(st.integers(0, 60), st.integers(1, 12))
def test_the_shards_of_all_tasks_hold_every_row_exactly_once(n_rows: int, count: int) -> None:
    rows = list(range(n_rows))
    shares = [stet.shard(rows, index=i, count=count) for i in range(count)]
    assert sorted(r for share in shares for r in share) == rows
    sizes = [len(share) for share in shares]
    assert max(sizes) - min(sizes) <= 1
    for share in shares:
        assert share == sorted(share)


@given(st.integers(0, 40), st.integers(1, 9))
def test_dataframes_and_iterators_shard_like_lists(n_rows: int, count: int) -> None:
    frame = pd.DataFrame({"x": range(n_rows)}, index=[f"r{i}" for i in range(n_rows)])
    frames = [stet.shard(frame, index=i, count=count) for i in range(count)]
    assert sorted(i for f in frames for i in f.index) == sorted(frame.index)
    for i, f in enumerate(frames):
        assert list(f["x"]) == stet.shard(range(n_rows), index=i, count=count)
        assert stet.shard(iter(range(n_rows)), index=i, count=count) == list(f["x"])


def test_shards_are_strided_so_a_grid_growing_in_cost_is_spread_evenly() -> None:
    sizes = [n for n in (10, 100, 1000) for _ in range(4)]
    shares = [stet.shard(sizes, index=i, count=4) for i in range(4)]
    assert {sum(share) for share in shares} == {1110}


def test_the_documented_order_shard_then_pending_partitions_even_as_runs_finish(
    tmp_path: Path,
) -> None:
    """Tasks starting at different times still split the grid between them."""
    run = _sweep(tmp_path / "runs.csv")
    grid = [{"alpha": a / 10} for a in range(10)]
    ran: list[float] = []
    for task in range(3):  # one after the other: each sees the others' records
        for row in stet.pending(run, stet.shard(grid, index=task, count=3)):
            run(**row)
            ran.append(row["alpha"])
    assert sorted(ran) == [row["alpha"] for row in grid]


# --- shard: the schedulers' environments -----------------------------------


def _env(monkeypatch: pytest.MonkeyPatch, **variables: object) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, str(value))


def test_shard_with_no_index_anywhere_says_what_to_set() -> None:
    with pytest.raises(stet.ShardError) as caught:
        stet.shard([1, 2, 3])
    message = str(caught.value)
    for hint in ("index=", "count=", "STET_SHARD_INDEX", "SLURM --array", "Kubernetes"):
        assert hint in message
    assert isinstance(caught.value, ValueError)


def test_slurm_array_from_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    _env(
        monkeypatch,
        SLURM_ARRAY_TASK_ID=2,
        SLURM_ARRAY_TASK_MIN=0,
        SLURM_ARRAY_TASK_MAX=3,
        SLURM_ARRAY_TASK_STEP=1,
        SLURM_ARRAY_TASK_COUNT=4,
    )
    assert stet.shard(range(10)) == [2, 6]


_first = st.integers(0, 50)
_step = st.integers(1, 5)
_count = st.integers(1, 12)


@given(_first, _step, _count, st.integers(0, 40))
def test_slurm_ids_that_start_anywhere_and_step_still_partition(
    first: int, step: int, count: int, n_rows: int
) -> None:
    """``--array=1-99:2``: ids 1, 3, ..., 99 are tasks 0 to 49."""
    last = first + step * (count - 1)
    rows = list(range(n_rows))
    got: list[int] = []
    for task in range(first, last + 1, step):
        env = {
            "SLURM_ARRAY_TASK_ID": str(task),
            "SLURM_ARRAY_TASK_MIN": str(first),
            "SLURM_ARRAY_TASK_MAX": str(last),
            "SLURM_ARRAY_TASK_STEP": str(step),
            "SLURM_ARRAY_TASK_COUNT": str(count),
        }
        with pytest.MonkeyPatch.context() as mp:
            _env(mp, **env)
            got += stet.shard(rows)
    assert sorted(got) == rows


@given(_first.map(lambda f: f + 1), _step, _count, st.integers(0, 40))
def test_sge_ids_partition(first: int, step: int, count: int, n_rows: int) -> None:
    last = first + step * (count - 1)
    rows = list(range(n_rows))
    got: list[int] = []
    for task in range(first, last + 1, step):
        with pytest.MonkeyPatch.context() as mp:
            _env(
                mp,
                SGE_TASK_ID=task,
                SGE_TASK_FIRST=first,
                SGE_TASK_LAST=last,
                SGE_TASK_STEPSIZE=step,
            )
            got += stet.shard(rows)
    assert sorted(got) == rows


@given(_step, _count, st.integers(0, 4), st.integers(0, 40))
def test_lsf_ids_partition(step: int, count: int, beyond: int, n_rows: int) -> None:
    """LSF does not say where an array starts: stet takes its default, 1 (``[1-N:step]``)."""
    last = 1 + step * (count - 1)
    end = last + min(beyond, step - 1)  # [1-10:2] ends at 10 but its last id is 9
    rows = list(range(n_rows))
    got: list[int] = []
    for task in range(1, last + 1, step):
        with pytest.MonkeyPatch.context() as mp:
            _env(mp, LSB_JOBINDEX=task, LSB_JOBINDEX_STEP=step, LSB_JOBINDEX_END=end)
            got += stet.shard(rows)
    assert sorted(got) == rows


def test_lsf_array_and_step(monkeypatch: pytest.MonkeyPatch) -> None:
    _env(monkeypatch, LSB_JOBINDEX=5, LSB_JOBINDEX_STEP=2, LSB_JOBINDEX_END=10)
    # [1-10:2]: ids 1, 3, 5, 7, 9; id 5 is task 2 of 5.
    assert stet.shard(range(12)) == [2, 7]


def test_a_job_that_is_not_an_array_is_no_array_task(monkeypatch: pytest.MonkeyPatch) -> None:
    """SGE sets SGE_TASK_ID=undefined and LSF LSB_JOBINDEX=0 outside arrays."""
    _env(monkeypatch, SGE_TASK_ID="undefined", LSB_JOBINDEX=0)
    with pytest.raises(stet.ShardError, match="found no array task index and count"):
        stet.shard([1])
    assert stet.shard([1, 2], index=0, count=2) == [1]


def test_aws_batch_gives_index_and_size(monkeypatch: pytest.MonkeyPatch) -> None:
    _env(monkeypatch, AWS_BATCH_JOB_ARRAY_INDEX=1, AWS_BATCH_JOB_ARRAY_SIZE=3)
    assert stet.shard("abcdefg") == ["b", "e"]


@pytest.mark.parametrize("variable", ["PBS_ARRAY_INDEX", "PBS_ARRAYID", "JOB_COMPLETION_INDEX"])
def test_schedulers_without_a_count_take_it_from_count_or_stet_shard_count(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    _env(monkeypatch, **{variable: 1})
    with pytest.raises(stet.ShardError, match=rf"{variable} tells .* STET_SHARD_COUNT"):
        stet.shard(range(6))
    assert stet.shard(range(6), count=3) == [1, 4]
    _env(monkeypatch, STET_SHARD_COUNT=2)
    with pytest.raises(stet.ShardError, match="STET_SHARD_COUNT is set but STET_SHARD_INDEX"):
        stet.shard(range(6))
    _env(monkeypatch, STET_SHARD_INDEX=0)
    assert stet.shard(range(6)) == [0, 2, 4]


def test_stet_shard_variables_win_over_the_scheduler(monkeypatch: pytest.MonkeyPatch) -> None:
    _env(monkeypatch, SLURM_ARRAY_TASK_ID=0, SLURM_ARRAY_TASK_COUNT=1, SLURM_ARRAY_TASK_MAX=0)
    _env(monkeypatch, STET_SHARD_INDEX=1, STET_SHARD_COUNT=2)
    assert stet.shard(range(4)) == [1, 3]


def test_explicit_arguments_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    _env(monkeypatch, AWS_BATCH_JOB_ARRAY_INDEX=0, AWS_BATCH_JOB_ARRAY_SIZE=2)
    assert stet.shard(range(6), index=2, count=3) == [2, 5]
    assert stet.shard(range(6), index=1) == [1, 3, 5]  # count from AWS Batch


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        (
            {"SLURM_ARRAY_TASK_ID": 3, "SLURM_ARRAY_TASK_MIN": 1, "SLURM_ARRAY_TASK_MAX": 7,
             "SLURM_ARRAY_TASK_STEP": 1, "SLURM_ARRAY_TASK_COUNT": 3},
            "not evenly spaced",
        ),  # --array=1,3,7
        (
            {"SLURM_ARRAY_TASK_ID": 4, "SLURM_ARRAY_TASK_MIN": 1, "SLURM_ARRAY_TASK_MAX": 9,
             "SLURM_ARRAY_TASK_STEP": 2, "SLURM_ARRAY_TASK_COUNT": 5},
            "id 4 is not one of the array's ids 1..9 step 2",
        ),
        ({"SLURM_ARRAY_TASK_ID": "seven"}, "SLURM_ARRAY_TASK_ID='seven' is not a whole number"),
        ({"SLURM_ARRAY_TASK_ID": 2}, "SLURM_ARRAY_TASK_ID: the array's size is not in"),
        (
            {"SLURM_ARRAY_TASK_ID": 0, "SLURM_ARRAY_TASK_COUNT": 2,
             "AWS_BATCH_JOB_ARRAY_INDEX": 1, "AWS_BATCH_JOB_ARRAY_SIZE": 2},
            "more than one array task",
        ),
        ({"PBS_ARRAY_INDEX": 4, "STET_SHARD_COUNT": "x"}, "STET_SHARD_COUNT='x'"),
        ({"JOB_COMPLETION_INDEX": 4}, "task index 4 .* is not in 0..3 for 4 tasks"),
        ({"AWS_BATCH_JOB_ARRAY_INDEX": 0, "AWS_BATCH_JOB_ARRAY_SIZE": 4}, "says the array has 4"),
        ({"SGE_TASK_ID": 3, "SGE_TASK_FIRST": 1, "SGE_TASK_LAST": 5, "SGE_TASK_STEPSIZE": 0},
         "step is 0"),
    ],
    ids=["slurm-list", "slurm-off-step", "garbage", "slurm-no-size", "two-schedulers",
         "garbage-count", "index-past-count", "count-disagrees", "sge-step-0"],
)  # fmt: skip
def test_values_that_disagree_are_an_error_naming_them(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, object], message: str
) -> None:
    _env(monkeypatch, **variables)
    count = 3 if "AWS_BATCH_JOB_ARRAY_SIZE" in variables and len(variables) == 2 else None
    if "JOB_COMPLETION_INDEX" in variables:
        count = 4
    with pytest.raises(stet.ShardError, match=message):
        stet.shard(range(10), count=count)


@pytest.mark.parametrize(
    ("index", "count"), [(True, 2), (0, 2.0), (-1, 3), (3, 3), (0, 0), ("1", 2)]
)
def test_bad_index_or_count_arguments_are_refused(index: Any, count: Any) -> None:
    with pytest.raises(stet.ShardError):
        stet.shard(range(4), index=index, count=count)


def test_shard_error_survives_pickling() -> None:
    error = stet.ShardError("no index: set STET_SHARD_INDEX")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is stet.ShardError
    assert str(copy) == str(error)
    assert copy.reason == error.reason
    assert isinstance(copy, stet.StetError)
    assert repr(copy) == repr(error)

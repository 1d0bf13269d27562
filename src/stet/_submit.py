"""Submitting a sweep: the grid rows not yet recorded, and one array task's share.

`pending` asks the store which rows of a grid are left, so that a
submission (an array of tasks, ``map_array``, a pool) covers only those.
`shard` cuts rows into the shares of an array job's tasks, reading which
task this is from the scheduler's environment: SLURM, PBS/Torque, LSF,
SGE, Kubernetes Indexed Jobs and AWS Batch.

Shares are strided, not contiguous: task ``i`` of ``n`` takes rows
``i, i + n, i + 2n, ...``. A grid is most often written as nested loops
whose outer parameter sets the cost (a problem size, an epoch count), so
contiguous blocks would give the last task all the expensive runs;
strided shares give every task a slice of every part of the grid. Shares
differ in size by at most one row either way.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, TypeVar, overload

from ._lazy import is_dataframe, pd
from ._rows import _done_before, _grid_keys, _runner_of
from .backends import pack
from .exceptions import ShardError

__all__ = ["pending", "shard"]

T = TypeVar("T")

#: The variables that name this task's share directly; they take precedence
#: over any scheduler's.
INDEX_VARIABLE: Final = "STET_SHARD_INDEX"
COUNT_VARIABLE: Final = "STET_SHARD_COUNT"

#: Every environment variable `shard` reads (tests clear them all).
VARIABLES: Final = (
    INDEX_VARIABLE,
    COUNT_VARIABLE,
    "SLURM_ARRAY_TASK_ID",
    "SLURM_ARRAY_TASK_MIN",
    "SLURM_ARRAY_TASK_MAX",
    "SLURM_ARRAY_TASK_STEP",
    "SLURM_ARRAY_TASK_COUNT",
    "PBS_ARRAY_INDEX",
    "PBS_ARRAYID",
    "LSB_JOBINDEX",
    "LSB_JOBINDEX_STEP",
    "LSB_JOBINDEX_END",
    "SGE_TASK_ID",
    "SGE_TASK_FIRST",
    "SGE_TASK_LAST",
    "SGE_TASK_STEPSIZE",
    "JOB_COMPLETION_INDEX",
    "AWS_BATCH_JOB_ARRAY_INDEX",
    "AWS_BATCH_JOB_ARRAY_SIZE",
)


@overload
def pending(func: Any, grid: pd.DataFrame) -> pd.DataFrame: ...
@overload
def pending(func: Any, grid: Iterable[T]) -> list[T]: ...
def pending(func: Any, grid: pd.DataFrame | Iterable[Any]) -> pd.DataFrame | list[Any]:
    """The rows of a grid whose runs are not recorded yet, in the grid's order.

    A row is pending when the decorated function would run it rather than
    skip it: its key is not in the store (records other processes added
    are looked for first). Runs that are in progress (claimed) but not
    recorded are pending, since their worker may still die. A row whose key
    appeared earlier in the grid is left out, so that no two tasks of a
    submission run the same key. Extra columns, and parameters that are not
    part of the key, are kept as given.

    Args:
        func: A function decorated with `stet.once`.
        grid: The sweep's rows, as `stet.progress` takes them: a DataFrame,
            an iterable of mappings (missing parameters take their
            defaults), or of tuples of values in the function's parameter
            order.

    Returns:
        A DataFrame of the pending rows (with their index) for a DataFrame;
        a list of the pending rows, as given, for anything else.

    Raises:
        TypeError: ``func`` is not decorated with `stet.once`, or a row is
            neither a mapping nor a tuple of arguments.
        ValueError: A row lacks a key parameter that has no default.
        KeyEncodingError: A row's key value cannot be keyed.

    Example:
        >>> import stet, tempfile, os
        >>> @stet.once(store=os.path.join(tempfile.mkdtemp(), "runs.csv"), quiet=True)
        ... def run(alpha: float, seed: int = 0) -> None: ...
        >>> run(0.2)
        >>> stet.pending(run, [{"alpha": 0.1}, {"alpha": 0.2}, {"alpha": 0.3}])
        [{'alpha': 0.1}, {'alpha': 0.3}]
    """
    runner = _runner_of(func)
    rows: pd.DataFrame | list[Any] = grid if is_dataframe(grid) else list(grid)
    old: dict[int, tuple[str, ...]] = {}
    keys = [pack(values) for values in _grid_keys(runner, rows, old)]
    table = runner.store
    table.refresh()
    before = _done_before(runner, table, old) if old else set()
    seen: set[object] = set()
    keep: list[bool] = []
    for number, key in enumerate(keys):
        keep.append(
            key not in seen
            and number not in before
            and not table.knows(runner.name, runner.cols, key)
        )
        seen.add(key)
    if is_dataframe(rows):
        return rows.iloc[[number for number, kept in enumerate(keep) if kept]]
    return [row for row, kept in zip(rows, keep, strict=True) if kept]


# A DataFrame is also an iterable (of its column names); its overload comes first.
@overload
def shard(  # type: ignore[overload-overlap]
    rows: pd.DataFrame, index: int | None = None, count: int | None = None
) -> pd.DataFrame: ...
@overload
def shard(rows: Iterable[T], index: int | None = None, count: int | None = None) -> list[T]: ...
def shard(
    rows: pd.DataFrame | Iterable[Any], index: int | None = None, count: int | None = None
) -> pd.DataFrame | list[Any]:
    """This array task's share of the rows: every ``count``-th, from the ``index``-th.

    The shares of tasks ``0`` to ``count - 1`` hold every row exactly once,
    strided so that a grid whose cost grows along it is spread evenly (see
    the module's notes). Every task must be given the same rows in the same
    order: shard the whole grid, then skip what is done with `pending`
    (``stet.pending(run, stet.shard(grid))``). Sharding a list of pending
    rows that each task computes for itself is wrong, since tasks that start
    at different times see different lists.

    ``index`` and ``count`` not given are read from the environment:
    ``STET_SHARD_INDEX`` and ``STET_SHARD_COUNT`` first, then the array job
    of SLURM, PBS/Torque, LSF, SGE, a Kubernetes Indexed Job or AWS Batch.
    Array ids that do not start at 0, or that have a step (SLURM
    ``--array=1-99:2``), become positions 0, 1, 2, ... The table in the how-to
    "Run a sweep across nodes" lists each scheduler's variables, and where
    the count must be given (PBS, Kubernetes).

    Args:
        rows: A DataFrame, a sequence, or any iterable (read once).
        index: This task's position, from 0.
        count: How many tasks share the rows.

    Returns:
        The share as a DataFrame (for a DataFrame) or a list.

    Raises:
        ShardError: No index or count was given or found, or the values
            disagree (an index not below the count, array ids not evenly
            spaced, a given count other than the scheduler's).

    Example:
        >>> import stet
        >>> stet.shard(range(10), index=1, count=4)
        [1, 5, 9]
    """
    index, count = _position(index, count, os.environ)
    if is_dataframe(rows):
        return rows.iloc[index::count]
    if isinstance(rows, Sequence):
        return list(rows[index::count])
    return [row for number, row in enumerate(rows) if number % count == index]


def _position(index: int | None, count: int | None, environ: Mapping[str, str]) -> tuple[int, int]:
    """This task's index and the task count: given, else from the environment."""
    for name, value in (("index", index), ("count", count)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ShardError(f"{name}={value!r} is a {type(value).__name__}; give a whole number")
    source = "the arguments"
    if index is None or count is None:
        found = _from_environment(environ)
        if found is None:
            missing = " and ".join(n for n, v in (("index", index), ("count", count)) if v is None)
            raise ShardError(
                f"stet.shard found no array task {missing}: pass index= and count=, "
                f"set {INDEX_VARIABLE} and {COUNT_VARIABLE}, or run it as a task of an array "
                f"job (SLURM --array, PBS -J/-t, LSF -J 'name[1-N]', SGE -t, a Kubernetes "
                f"Indexed Job, an AWS Batch array job)"
            )
        name, found_index, found_count = found
        if index is None:
            index = found_index
            source = name
        if count is None:
            if found_count is None:
                raise ShardError(
                    f"{name} tells this task's index ({found_index}) but not how many tasks "
                    f"there are: pass count= or set {COUNT_VARIABLE} (to the array's size, "
                    f"e.g. the Job's spec.completions on Kubernetes)"
                )
            count = found_count
        elif source == name and found_count is not None and found_count != count:
            raise ShardError(
                f"count={count} was given, but {name} says the array has {found_count} "
                f"tasks: leave count out, or make the two agree"
            )
    if count < 1:
        raise ShardError(f"the task count is {count}; it must be at least 1")
    if not 0 <= index < count:
        raise ShardError(
            f"task index {index} (from {source}) is not in 0..{count - 1} for {count} tasks; "
            f"number the array's tasks from 0 (or give index= counted from 0)"
        )
    return index, count


def _from_environment(environ: Mapping[str, str]) -> tuple[str, int, int | None] | None:
    """The scheduler that names this task, its position and its task count (if known).

    Raises `ShardError` when two schedulers name different positions, or a
    variable is not a whole number.
    """
    if INDEX_VARIABLE in environ or COUNT_VARIABLE in environ:
        given_index = _number(environ, INDEX_VARIABLE)
        given_count = _number(environ, COUNT_VARIABLE)
        if given_index is None:
            raise ShardError(
                f"{COUNT_VARIABLE} is set but {INDEX_VARIABLE} is not: set both, or neither"
            )
        return INDEX_VARIABLE, given_index, given_count
    found = [
        task
        for task in (
            _slurm(environ),
            _sge(environ),
            _lsf(environ),
            _pbs(environ),
            _kubernetes(environ),
            _aws_batch(environ),
        )
        if task is not None
    ]
    if len({(i, c) for _, i, c in found}) > 1:
        seen = "; ".join(f"{name}: task {i} of {c if c else '?'}" for name, i, c in found)
        raise ShardError(
            f"the environment names more than one array task ({seen}): pass index= and "
            f"count=, or set {INDEX_VARIABLE} and {COUNT_VARIABLE}"
        )
    return found[0] if found else None


def _number(environ: Mapping[str, str], name: str) -> int | None:
    """The whole number a variable holds, None when unset."""
    text = environ.get(name)
    if text is None:
        return None
    try:
        return int(text.strip())
    except ValueError:
        raise ShardError(f"{name}={text!r} is not a whole number") from None


def _ranged(
    label: str, task: int, first: int, last: int | None, step: int, count: int | None
) -> tuple[str, int, int]:
    """The position of ``task`` in the ids ``first, first + step, ...``, and the count."""
    if step < 1:
        raise ShardError(f"{label}: the array's step is {step}; it must be at least 1")
    if count is None:
        if last is None:
            raise ShardError(f"{label}: the array's size is not in the environment")
        count = (last - first) // step + 1
    ids = f"ids {first}..{last if last is not None else '?'} step {step}, {count} tasks"
    if last is not None and first + step * (count - 1) != last:
        raise ShardError(
            f"{label}: the array's {ids} are not evenly spaced, so this task's position "
            f"cannot be told; submit a range (e.g. 0-{count - 1}) or pass index= and count="
        )
    offset, remainder = divmod(task - first, step)
    if remainder or not 0 <= offset < count:
        raise ShardError(f"{label}: this task's id {task} is not one of the array's {ids}")
    return label, offset, count


def _slurm(environ: Mapping[str, str]) -> tuple[str, int, int] | None:
    task = _number(environ, "SLURM_ARRAY_TASK_ID")
    if task is None:
        return None
    first = _number(environ, "SLURM_ARRAY_TASK_MIN")
    step = _number(environ, "SLURM_ARRAY_TASK_STEP")
    return _ranged(
        "SLURM_ARRAY_TASK_ID",
        task,
        0 if first is None else first,
        _number(environ, "SLURM_ARRAY_TASK_MAX"),
        1 if step is None else step,
        _number(environ, "SLURM_ARRAY_TASK_COUNT"),
    )


def _sge(environ: Mapping[str, str]) -> tuple[str, int, int] | None:
    # SGE sets SGE_TASK_ID to "undefined" in a job that is not an array.
    if environ.get("SGE_TASK_ID", "undefined").strip() == "undefined":
        return None
    task = _number(environ, "SGE_TASK_ID")
    assert task is not None
    first = _number(environ, "SGE_TASK_FIRST")
    step = _number(environ, "SGE_TASK_STEPSIZE")
    return _ranged(
        "SGE_TASK_ID",
        task,
        1 if first is None else first,
        _number(environ, "SGE_TASK_LAST"),
        1 if step is None else step,
        None,
    )


def _lsf(environ: Mapping[str, str]) -> tuple[str, int, int] | None:
    # LSF sets LSB_JOBINDEX to 0 in a job that is not an array; it does not
    # say where an array starts, so stet takes LSF's default start, 1.
    task = _number(environ, "LSB_JOBINDEX")
    if not task:
        return None
    step = _number(environ, "LSB_JOBINDEX_STEP")
    last = _number(environ, "LSB_JOBINDEX_END")
    step = 1 if step is None else step
    if last is not None and step >= 1:
        last = 1 + (last - 1) // step * step  # the last id the range reaches
    return _ranged("LSB_JOBINDEX", task, 1, last, step, None)


def _pbs(environ: Mapping[str, str]) -> tuple[str, int, None] | None:
    for name in ("PBS_ARRAY_INDEX", "PBS_ARRAYID"):
        task = _number(environ, name)
        if task is not None:
            return name, task, None
    return None


def _kubernetes(environ: Mapping[str, str]) -> tuple[str, int, None] | None:
    task = _number(environ, "JOB_COMPLETION_INDEX")
    return None if task is None else ("JOB_COMPLETION_INDEX", task, None)


def _aws_batch(environ: Mapping[str, str]) -> tuple[str, int, int | None] | None:
    task = _number(environ, "AWS_BATCH_JOB_ARRAY_INDEX")
    if task is None:
        return None
    return "AWS_BATCH_JOB_ARRAY_INDEX", task, _number(environ, "AWS_BATCH_JOB_ARRAY_SIZE")

"""How far a sweep has come, and how long the rest will take.

The estimate comes from the function's own recorded runs: the mean of their
``_stet_duration`` and how many ran side by side (the run time the recent
records add up to, over the wall time they span), so four runs of 0.2 s
predict 0.2 s a run, and eight workers an eighth of the time.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import attrs

from ._failures_api import failures_in
from ._grid import Grid
from ._grid_points import Points
from ._grid_texts import grid_texts, match_grid
from ._html import html_table
from ._inspect import latest_timed, recent_runs, runs_of
from ._lazy import pd
from ._rows import _done_before, _grid_keys, _runner_of
from ._runner import Runner, gives_up
from .backends import pack
from .backends._index import Packed
from .backends._registry import claims_in
from .backends._schema import DURATION, TIMESTAMP
from .backends._table import whole_store
from .typing import Record, Store

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["Progress", "progress"]

#: The most recent timed runs the estimate is made from.
RECENT_RUNS: Final = 200
#: Timed runs needed before stet estimates the time left.
MIN_TIMED_RUNS: Final = 3


@attrs.frozen
class Progress:
    """How far a sweep over a grid has come.

    Attributes:
        function: The function's name in the store.
        total: Distinct keys in the grid.
        done: How many of them are recorded.
        running: How many are claimed by a live worker (``claim=True``).
        left: How many are neither done, running nor failed.
        last_hour: The function's records made in the last hour.
        eta: Time to finish the rest (running and left), or None when too few
            runs were timed to tell.
        per_run: The mean duration of the function's recent runs, if timed.
        workers: How many runs went side by side recently (1 for one worker).
        failed: How many are not done and failed before (each counted once,
            however often it failed); ``Once(retry=...)`` decides whether
            they run again, and the estimate counts only those that will.

    `grid` and `plot` show which points are done, by the values of two key
    parameters; in Jupyter a `Progress` shows as a table.
    """

    function: str
    total: int
    done: int
    running: int
    left: int
    last_hour: int
    eta: timedelta | None
    per_run: timedelta | None = None
    workers: float = 1.0
    failed: int = 0
    _points: Points | None = attrs.field(default=None, eq=False, repr=False, kw_only=True)

    def grid(self, rows: str | None = None, columns: str | None = None) -> Grid:
        r"""The points of the grid, done, running or pending, by two key parameters.

        Rows are the values of ``rows``, columns those of ``columns``; both
        may be left out when the function has exactly two key parameters
        (rows the first, columns the second). With more, each cell holds
        the grid's points of every value of the others, and is done only
        when all of them are (`CellState.PARTLY_DONE` when some are). The
        states are those `stet.progress` saw.

        Raises:
            ValueError: A name is not a key parameter, or both names are the
                same, or the function has more than two key parameters and
                ``rows`` and ``columns`` are not given.

        Example:
            >>> import stet, tempfile, os
            >>> @stet.once(store=os.path.join(tempfile.mkdtemp(), "runs.csv"), quiet=True)
            ... def run(alpha: float, seed: int) -> None: ...
            >>> run(0.1, 0)
            >>> progress = stet.progress(run, [(a, s) for a in (0.1, 0.2) for s in (0, 1)])
            [stet] run: 1 of 4 done, 3 left; too few timed runs yet to estimate the time left
            >>> print(progress.grid().text(width=80))
            [stet] run: 1 of 4 done, 0 running, 3 pending; rows alpha, columns seed
            alpha \ seed  0  1
            0.1           #  .
            0.2           .  .
            [stet] # done  ~ running  . pending
        """
        if self._points is None:
            raise ValueError(
                "this Progress holds no points (only stet.progress(func, grid) records them)"
            )
        return self._points.grid(rows, columns)

    def plot(
        self,
        rows: str | None = None,
        columns: str | None = None,
        path: str | os.PathLike[str] | None = None,
    ) -> Figure:
        """Draw `grid` as a heatmap (matplotlib); save it to ``path`` if given.

        In a notebook the returned figure shows as the cell's value. Needs
        matplotlib: ``pip install "stet[plot]"``. See `Grid.plot`.
        """
        return self.grid(rows, columns).plot(path)

    def _repr_html_(self) -> str:
        rows: list[tuple[str, object]] = [
            ("done", f"{self.done:,} of {self.total:,}"),
            ("running", f"{self.running:,}"),
            ("failed", f"{self.failed:,}"),
            ("left", f"{self.left:,}"),
            ("finished in the last hour", f"{self.last_hour:,}"),
        ]
        if self.per_run is not None:
            rows.append(("per run", _duration(self.per_run)))
            rows.append(("side by side", f"{self.workers:.1f}"))
        if self.left or self.running:
            left = _duration(self.eta) if self.eta is not None else "too few timed runs to tell"
            rows.append(("time left", left))
        return html_table(("", self.function), rows, caption=f"stet progress: {self.function}")

    def __str__(self) -> str:
        text = f"[stet] {self.function}: {self.done:,} of {self.total:,} done, "
        if self.running:
            text += f"{self.running:,} running, "
        if self.failed:
            text += f"{self.failed:,} failed, "
        text += f"{self.left:,} left"
        if not (self.left or self.running or self.failed):
            return text
        if self.eta is None or self.per_run is None:
            return text + "; too few timed runs yet to estimate the time left"
        side = f" x {self.workers:.0f} workers" if round(self.workers) > 1 else ""
        return text + (
            f"; about {_duration(self.eta)} to go "
            f"({_duration(self.per_run)} a run{side}, {self.last_hour:,} in the last hour)"
        )


def _duration(span: timedelta) -> str:
    seconds = span.total_seconds()
    if seconds < 120:
        return f"{seconds:.2g} s" if seconds < 10 else f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def progress(func: Callable[..., Any], grid: pd.DataFrame | Iterable[Any]) -> Progress:
    """Print and return how much of a grid of runs is done, and an ETA.

    The estimate is the mean duration of the function's recent runs times
    the runs not done, divided by how many ran side by side lately; it says
    so when fewer than three runs were timed.

    Args:
        func: A function decorated with `stet.once`.
        grid: The sweep's parameter combinations: a DataFrame, an iterable
            of mappings (missing parameters take their defaults), or of
            tuples of values in the function's parameter order.

    Example:
        >>> import stet, tempfile, os
        >>> @stet.once(store=os.path.join(tempfile.mkdtemp(), "runs.csv"), quiet=True)
        ... def run(alpha: float, seed: int = 0) -> None: ...
        >>> run(0.1)
        >>> grid = [(0.1,), (0.2,), (0.3,)]
        >>> stet.progress(run, grid).left  # doctest: +ELLIPSIS
        [stet] run: 1 of 3 done, 2 left; too few timed runs yet to estimate the time left
        2
    """
    runner = _runner_of(func)
    table = runner.store
    texts = grid_texts(runner, grid)
    whole = whole_store(table) if table.exists() else None
    match = match_grid(texts, whole, runner) if texts is not None else None
    keys: Collection[Packed]
    pending: Collection[Packed]
    if match is None:
        old: dict[int, tuple[str, ...]] = {}
        listed = _grid_keys(runner, grid, old)
        keys = {pack(values) for values in listed}
        table.refresh()
        before = {pack(listed[n]) for n in _done_before(runner, table, old)} if old else set()
        pending = {
            key
            for key in keys
            if key not in before and not table.knows(runner.name, runner.cols, key)
        }
    if match is not None:
        keys, pending = match.keys, match.pending
        total, left = match.total, match.pending_count
    else:
        total, left = len(keys), len(pending)
    now = time.time()
    claimed = {
        pack(c.values)
        for c in claims_in(table).values()
        if c.function == runner.name and c.cols == runner.cols and c.live(now)
    }
    running = {key for key in claimed if key in pending}
    failed_keys, given_up = _failed(runner, table, pending, running)
    failed = len(failed_keys)
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    recent, per_run, workers = 0, None, 1.0
    if whole is not None:
        runs = runs_of(whole, runner.name)
        recent = recent_runs(whole, runs, hour_ago)
        per_run, workers = estimate_timed(latest_timed(whole, runs, RECENT_RUNS))
    to_run = left - given_up
    eta = per_run * to_run / workers if per_run is not None else None
    result = Progress(
        runner.name,
        total,
        total - left,
        len(running),
        left - len(running) - failed,
        recent,
        eta,
        per_run,
        workers,
        failed,
        points=Points(
            runner.name,
            runner.key,
            runner.cols,
            keys,
            pending,
            running,
            runner.config.codec.decode,
            failed_keys,
        ),
    )
    print(result)
    return result


def _failed(
    runner: Runner, table: Store, pending: Collection[Packed], running: set[Packed]
) -> tuple[set[Packed], int]:
    """The pending keys (not running) that failed before, and how many ``retry`` gave up on."""
    times: dict[Packed, int] = {}
    for failure in failures_in(table):
        if failure.function == runner.name and failure.cols == runner.cols:
            key = pack(failure.values)
            if key in pending and key not in running:
                times[key] = times.get(key, 0) + 1
    given_up = sum(1 for n in times.values() if gives_up(runner.config.retry, n))
    return set(times), given_up


def estimate(rows: Sequence[Record]) -> tuple[timedelta | None, float]:
    """The mean duration of the recent timed runs, and how many ran side by side.

    Side by side: the run time the recent records add up to, over the wall
    time from the first one's start to the last one's end (at least 1).
    """
    timed: list[tuple[datetime, float]] = []
    for row in rows:
        try:
            duration = float(row[DURATION])
            finished = datetime.fromisoformat(row[TIMESTAMP])
        except (KeyError, ValueError):
            continue
        if duration >= 0 and duration == duration:
            timed.append((finished if finished.tzinfo else finished.replace(tzinfo=UTC), duration))
    return estimate_timed(timed)


def estimate_timed(timed: list[tuple[datetime, float]]) -> tuple[timedelta | None, float]:
    """`estimate` of timed runs given as (finish time, seconds)."""
    if len(timed) < MIN_TIMED_RUNS:
        return None, 1.0
    timed = sorted(timed)
    timed = timed[-RECENT_RUNS:]
    busy = sum(d for _, d in timed)
    first_start = min(t - timedelta(seconds=d) for t, d in timed)
    span = (timed[-1][0] - first_start).total_seconds()
    workers = max(1.0, busy / span) if span > 0 else 1.0
    return timedelta(seconds=busy / len(timed)), workers

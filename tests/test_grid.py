"""Pictures of a sweep: which points of a grid are done, running or pending."""

from __future__ import annotations

import contextlib
import math
import os
import pickle
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import attrs
import matplotlib
import pytest
from hypothesis import given
from hypothesis import strategies as st

import stet
from stet import CellState, GridCell
from stet._cli import main
from stet.backends import get_backend, new_store
from stet.typing import ClaimingStore

from .fake_clock import FakeClock

matplotlib.use("Agg")

ELSEWHERE = "elsewhere:4242:feedbeef"
CODEC = stet.KeyCodec()


def claim_elsewhere(store: str, function: str, key: dict[str, object], lease: float = 60) -> None:
    """A live claim of ``key`` by a worker in another process."""
    cols = tuple(sorted(key))
    values = tuple(CODEC.encode(key[c]) for c in cols)
    elsewhere = FakeClock(wall=time.time(), timeline="another-machine")
    opened = new_store(store, clock=elsewhere)
    assert isinstance(opened, ClaimingStore)
    state, claim = opened.claim(function, cols, values, lease, owner=ELSEWHERE)
    if state != "done":  # a point given twice may be recorded already
        assert claim is not None
        assert claim.owner == ELSEWHERE  # claimed now, or already (a point given twice)


def stet_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stet", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "100"},
    )


# -- the states per cell ------------------------------------------------------

A_VALUES = [-1, 0, -0.0, 2.5, 10, math.nan]
B_VALUES = ["adam", "sgd", "007"]


@st.composite
def sweeps(
    draw: st.DrawFn,
) -> tuple[list[tuple[float, str, int]], bool, set[int], set[int], set[int]]:
    """A small grid (repeats allowed), whether ``c`` is a key, the points done, running, failed."""
    points = draw(
        st.lists(
            st.tuples(st.sampled_from(A_VALUES), st.sampled_from(B_VALUES), st.integers(0, 2)),
            min_size=1,
            max_size=30,
        )
    )
    three = draw(st.booleans())
    indices = st.integers(0, len(points) - 1)
    done = draw(st.sets(indices))
    running = draw(st.sets(indices)) - done
    failed = draw(st.sets(indices)) - done
    return points, three, done, running, failed


def canonical(value: object) -> str:
    return CODEC.encode(value)


@given(sweeps())
def test_each_cell_counts_its_points_done_running_failed_and_pending(
    sweep: tuple[list[tuple[float, str, int]], bool, set[int], set[int], set[int]],
) -> None:
    """Done is recorded, running is claimed by a live worker and not recorded, failed raised
    before and is neither, the rest pending; a cell is done only when every point in it is,
    failed when any is, else running when any is."""
    points, three, done, running, failed = sweep
    store = os.path.join(tempfile.mkdtemp(), "runs.json")
    key = ["a", "b", "c"] if three else ["a", "b"]

    @stet.once(store=store, key=key, quiet=True, name="run")
    def run(a: float, b: str, c: int) -> None: ...

    @stet.once(store=store, key=key, quiet=True, name="run")
    def crash(a: float, b: str, c: int) -> None:
        raise ValueError("diverged")

    for i in done:
        run(*points[i])
    for i in failed:
        with contextlib.suppress(ValueError):
            crash(*points[i])
    for i in running:
        claim_elsewhere(store, "run", dict(zip(key, points[i], strict=False)))
    grid = stet.progress(run, points).grid("a", "b")

    def ident(point: tuple[float, str, int]) -> tuple[str, ...]:
        return tuple(canonical(v) for v in point[: len(key)])

    done_keys = {ident(points[i]) for i in done}
    running_keys = {ident(points[i]) for i in running} - done_keys
    failed_keys = {ident(points[i]) for i in failed} - done_keys - running_keys
    distinct = {ident(p) for p in points}
    rows = sorted({k[0] for k in distinct}, key=lambda t: (t == "nan", float(t)))
    columns = sorted({k[1] for k in distinct})
    assert [canonical(v) for v in grid.row_values] == rows
    assert [canonical(v) for v in grid.column_values] == columns
    assert grid.others == (("c",) if three else ())
    for i, row in enumerate(rows):
        for j, column in enumerate(columns):
            inside = [k for k in distinct if k[:2] == (row, column)]
            cell = grid.cells[i][j]
            expected = GridCell(
                done=sum(k in done_keys for k in inside),
                running=sum(k in running_keys for k in inside),
                pending=sum(k not in done_keys | running_keys | failed_keys for k in inside),
                failed=sum(k in failed_keys for k in inside),
            )
            assert cell == expected
            if not inside:
                assert cell.state is CellState.EMPTY
            elif expected.failed:
                assert cell.state is CellState.FAILED
            elif expected.running:
                assert cell.state is CellState.RUNNING
            elif expected.done == len(inside):
                assert cell.state is CellState.DONE
            elif expected.done:
                assert cell.state is CellState.PARTLY_DONE
            else:
                assert cell.state is CellState.PENDING
    pending = distinct - done_keys - running_keys - failed_keys
    assert (grid.done, grid.running, grid.pending, grid.failed) == (
        len(done_keys),
        len(running_keys),
        len(pending),
        len(failed_keys),
    )


def make_run(store: str) -> stet.Progress:
    @stet.once(store=store, quiet=True, name="run")
    def run(alpha: float, beta: object) -> None: ...

    grid = [(a, b) for a in (0.1, 0.2, 1.0) for b in (1, 0.30000000000000004, "x")]
    for point in grid[:4]:
        run(*point)
    claim_elsewhere(store, "run", {"alpha": 0.2, "beta": 0.30000000000000004})
    return stet.progress(run, grid)


def test_the_text_grid_has_one_character_a_cell_and_values_as_skip_lines_show_them(
    tmp_path: Path,
) -> None:
    grid = make_run(str(tmp_path / "runs.csv")).grid()
    assert grid.text(width=100).splitlines() == [
        "[stet] run: 4 of 9 done, 1 running, 4 pending; rows alpha, columns beta",
        "alpha \\ beta  0.30000000000000004  1  'x'",
        "0.1                    #           #   #",
        "0.2                    ~           #   .",
        "1                      .           .   .",
        "[stet] # done  ~ running  . pending",
    ]


def test_a_failed_point_is_an_x_in_the_grid_and_its_legend(tmp_path: Path) -> None:
    store = str(tmp_path / "runs.csv")

    @stet.once(store=store, quiet=True, name="run")
    def run(alpha: float, seed: int) -> None:
        if alpha > 0.5:
            raise ValueError("diverged")

    for point in [(0.1, 0), (0.9, 0)]:
        with contextlib.suppress(ValueError):
            run(*point)
    grid = stet.progress(run, [(a, s) for a in (0.1, 0.9) for s in (0, 1)]).grid()
    assert grid.text(width=100).splitlines() == [
        "[stet] run: 1 of 4 done, 0 running, 2 pending, 1 failed; rows alpha, columns seed",
        "alpha \\ seed  0  1",
        "0.1           #  .",
        "0.9           x  .",
        "[stet] # done  ~ running  . pending  x failed",
    ]
    assert "failed" in grid._repr_html_()
    assert main(["show", store, "--grid", "alpha,seed"]) == 0


def test_a_grid_too_wide_for_the_terminal_numbers_its_columns(tmp_path: Path) -> None:
    grid = make_run(str(tmp_path / "runs.csv")).grid()
    assert grid.text(width=40).splitlines() == [
        "[stet] run: 4 of 9 done, 1 running, 4 pending; rows alpha, columns beta",
        "alpha \\ beta  123",
        "0.1           ###",
        "0.2           ~#.",
        "1             ...",
        "beta: 1=0.30000000000000004  2=1  3='x'",
        "[stet] # done  ~ running  . pending",
    ]


def test_the_rows_and_columns_can_be_swapped_and_default_to_the_key_order(
    tmp_path: Path,
) -> None:
    progress = make_run(str(tmp_path / "runs.csv"))
    assert (progress.grid().rows, progress.grid().columns) == ("alpha", "beta")
    swapped = progress.grid(rows="beta", columns="alpha")
    assert swapped.row_values == (0.30000000000000004, 1, "x")
    assert [c.state for c in swapped.cells[0]] == [
        CellState.DONE,
        CellState.RUNNING,
        CellState.PENDING,
    ]


def test_a_string_value_cannot_break_the_text_grid_or_the_html(tmp_path: Path) -> None:
    @stet.once(store=str(tmp_path / "runs.csv"), quiet=True, name="run")
    def run(alpha: float, tag: str) -> None: ...

    run(0.1, "<script>\nx")
    grid = stet.progress(run, [(0.1, "<script>\nx"), (0.2, "ok")]).grid()
    lines = grid.text(width=100).splitlines()
    assert lines[1] == "alpha \\ tag  '<script>\\nx'  'ok'"
    assert len(lines) == 5
    progress = stet.progress(run, [(0.1, "<script>\nx"), (0.2, "ok")])
    for html in (progress.grid()._repr_html_(), progress.grid("tag", "alpha")._repr_html_()):
        assert "<script>" not in html
        assert "&#x27;&lt;script&gt;\\nx&#x27;" in html


def test_naming_the_grid_wrongly_is_an_error_that_says_what_to_write(tmp_path: Path) -> None:
    @stet.once(store=str(tmp_path / "runs.csv"), quiet=True)
    def run(alpha: float, beta: int, seed: int) -> None: ...

    progress = stet.progress(run, [(0.1, 1, 0)])
    with pytest.raises(ValueError, match=r"run has 3 \(alpha, beta, seed\)"):
        progress.grid()
    with pytest.raises(ValueError, match=r"'alhpa' is not a key parameter.*did you mean 'alpha'"):
        progress.grid("alhpa", "beta")
    with pytest.raises(ValueError, match="two different key parameters"):
        progress.grid("alpha", "alpha")
    with pytest.raises(ValueError, match="give both rows= and columns="):
        progress.grid("alpha")
    aggregated = progress.grid("alpha", "beta")
    assert aggregated.others == ("seed",)
    assert "each cell holds every seed" in aggregated.text(width=100)
    made_by_hand = stet.Progress("run", 1, 0, 0, 1, 0, None)
    with pytest.raises(ValueError, match=r"only stet\.progress"):
        made_by_hand.grid()


# -- the heatmap ----------------------------------------------------------------


def test_plot_writes_a_png_and_returns_the_figure_closed_in_pyplot(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    progress = make_run(str(tmp_path / "runs.csv"))
    path = tmp_path / "grid.png"
    figure = progress.plot(path=path)
    assert isinstance(figure, Figure)
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 1000
    assert plt.get_fignums() == []  # shown once in a notebook, never piled up in a loop
    (ax,) = figure.axes
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.30000000000000004", "1", "'x'"]
    legend = ax.get_legend()
    assert legend is not None
    assert [t.get_text() for t in legend.get_texts()] == ["done", "running", "pending"]


def test_plot_without_a_path_writes_nothing(tmp_path: Path) -> None:
    figure = make_run(str(tmp_path / "runs.csv")).plot("beta", "alpha")
    assert figure.axes[0].get_xlabel() == "alpha"
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".png") == []


def test_plot_of_more_parameters_shows_the_counts_of_each_cell(tmp_path: Path) -> None:
    @stet.once(store=str(tmp_path / "runs.csv"), quiet=True)
    def run(alpha: float, beta: int, seed: int) -> None: ...

    run(0.1, 1, 0)
    figure = stet.progress(run, [(0.1, 1, s) for s in range(3)]).plot("alpha", "beta")
    assert [t.get_text() for t in figure.axes[0].texts] == ["1/3"]


def test_without_matplotlib_plot_says_which_extra_to_install(tmp_path: Path) -> None:
    script = """
import sys
sys.modules["matplotlib"] = None  # as if it were not installed
import stet

@stet.once(store="runs.csv", quiet=True)
def run(alpha: float, beta: int) -> None: ...

progress = stet.progress(run, [(0.1, 1)])
print(progress.grid())
try:
    progress.plot()
except stet.MissingDependencyError as exc:
    assert isinstance(exc, ImportError) and isinstance(exc, stet.StetError)
    print("error:", exc)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "0.1           ." in done.stdout  # the text grid needs no matplotlib
    assert (
        'error: drawing a grid needs matplotlib, which is not installed: pip install "stet[plot]"'
        in done.stdout
    )


def test_import_stet_does_not_import_matplotlib() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import sys, stet; print('matplotlib' in sys.modules)"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stdout.strip() == "False", done.stderr


def test_the_missing_dependency_error_survives_pickling() -> None:
    error = stet.MissingDependencyError("matplotlib", "plot", "drawing a grid")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.package, copy.extra, copy.feature) == ("matplotlib", "plot", "drawing a grid")
    assert str(copy) == str(error)
    assert copy.name == "matplotlib"
    assert "MissingDependencyError" in repr(copy)


# -- the command line -------------------------------------------------------------


def test_show_grid_prints_the_text_grid_of_the_stores_values(store: str, tmp_path: Path) -> None:
    @stet.once(store=store, quiet=True, name="run")
    def run(alpha: float, beta: int) -> None: ...

    for alpha, beta in [(0.1, 1), (0.1, 2), (0.2, 1)]:
        run(alpha, beta)
    claim_elsewhere(store, "run", {"alpha": 0.3, "beta": 2})
    get_backend(store).flush()
    done = stet_cli("show", store, "--grid", "alpha,beta", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "[stet] run: 3 of 6 done, 1 running, 2 pending; rows alpha, columns beta",
        "alpha \\ beta  1  2",
        "0.1           #  #",
        "0.2           #  .",
        "0.3           .  ~",
        "[stet] # done  ~ running  . pending",
    ]


def test_show_grid_counts_every_combination_of_the_other_columns(
    capsys: pytest.CaptureFixture[str],
) -> None:
    @stet.once(store="runs.csv", quiet=True, name="run")
    def run(alpha: float, beta: int, seed: int) -> None: ...

    for alpha, beta, seed in [(0.1, 1, 0), (0.1, 1, 1), (0.1, 2, 0), (0.2, 2, 2)]:
        run(alpha, beta, seed)
    assert main(["show", "runs.csv", "--grid", "alpha,beta"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        "[stet] run: 4 of 12 done, 0 running, 8 pending; rows alpha, columns beta; "
        "each cell holds every seed"
    )
    assert lines[2:4] == ["0.1           +  +", "0.2           .  +"]
    assert lines[-1] == "[stet] # done  + partly done  ~ running  . pending"


def test_show_grid_leaves_out_records_of_an_older_key_and_says_so(
    capsys: pytest.CaptureFixture[str],
) -> None:
    @stet.once(store="runs.csv", quiet=True, name="run", key=["alpha"])
    def old(alpha: float, beta: int) -> None: ...

    @stet.once(store="runs.csv", quiet=True, name="run")
    def run(alpha: float, beta: int) -> None: ...

    old(0.5, 1)
    run(0.1, 1)
    assert main(["show", "runs.csv", "--grid", "alpha,beta"]) == 0
    out = capsys.readouterr().out
    assert "[stet] run: 1 of 1 done" in out
    assert "[stet] 1 record(s) of run with other key columns are not in the grid" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--grid", "alpha,bta"], "'bta' is not a key parameter of run; did you mean 'beta'?"),
        (["--grid", "alpha"], "--grid takes two key columns, ROWS,COLUMNS; got 'alpha'"),
        (["--grid", "alpha,alpha"], "two different key parameters"),
        (["--grid", "alpha,beta", "--json"], "leave out --json"),
        (["--grid", "alpha,beta", "--function", "runn"], "did you mean 'run'?"),
    ],
)
def test_show_grid_refuses_what_it_cannot_draw(
    args: Sequence[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    @stet.once(store="runs.csv", quiet=True, name="run")
    def run(alpha: float, beta: int) -> None: ...

    run(0.1, 1)
    assert main(["show", "runs.csv", *args]) == 1
    assert message in capsys.readouterr().err


def test_show_grid_needs_function_when_the_store_holds_several(
    capsys: pytest.CaptureFixture[str],
) -> None:
    @stet.once(store="runs.csv", quiet=True, name="train")
    def train(alpha: float, beta: int) -> None: ...

    @stet.once(store="runs.csv", quiet=True, name="test")
    def test(alpha: float, beta: int) -> None: ...

    train(0.1, 1)
    test(0.2, 1)
    assert main(["show", "runs.csv", "--grid", "alpha,beta"]) == 1
    assert "name one with --function" in capsys.readouterr().err
    assert main(["show", "runs.csv", "--grid", "alpha,beta", "--function", "test"]) == 0
    assert "0.2           #" in capsys.readouterr().out


# -- Jupyter ------------------------------------------------------------------------


def test_status_and_progress_show_as_html_tables_in_jupyter(tmp_path: Path) -> None:
    store = str(tmp_path / "runs.csv")
    progress = make_run(store)
    html = progress._repr_html_()
    assert html.startswith("<table>")
    assert "<td>done</td><td>4 of 9</td>" in html
    assert "<td>running</td><td>1</td>" in html
    assert "<td>left</td><td>4</td>" in html
    summary = stet.status(store)
    html = summary._repr_html_()
    assert html.startswith("<table>")
    assert "4 completed experiments recorded" in html
    assert "<td>run</td><td>4</td>" in html
    assert "<td>alpha, beta</td>" in html
    assert "<td>run</td><td>4</td>" in summary.functions[0]._repr_html_()

    @stet.once(store=store, quiet=True)  # named by its qualname, with <locals> in it
    def evaluate(x: int) -> None: ...

    evaluate(1)
    html = stet.status(store)._repr_html_()
    assert "<td>test_status_and_progress_show_as_html_tables_in_jupyter.&lt;locals&gt;" in html
    assert "<locals>" not in html
    grid = progress.grid()._repr_html_()
    assert grid.startswith("<table>")
    assert grid.count("<td ") == 9
    assert 'title="running: 0 done, 1 running, 0 pending"' in grid


def test_a_progress_as_a_dict_does_not_copy_every_key_of_the_grid(tmp_path: Path) -> None:
    facts = attrs.asdict(make_run(str(tmp_path / "runs.csv")))
    assert set(facts) == {
        "function",
        "total",
        "done",
        "running",
        "left",
        "last_hour",
        "eta",
        "per_run",
        "workers",
        "failed",
        "_points",
    }
    assert not isinstance(facts["_points"], dict)  # not a copy of every key of the grid

"""Looking after a store: status, reset, read, mark_done."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import stet

from . import strategies as S
from .conftest import shown


def make_sweep(store: str) -> tuple[Callable[..., Any], list[tuple[Any, ...]]]:
    calls: list[tuple[Any, ...]] = []

    @stet.once(store=store, quiet=True)
    def run(alpha: float, seed: int, method: str = "adam") -> float:
        calls.append((alpha, seed, method))
        return alpha

    return run, calls


def test_status_prints_and_returns_the_summary(
    store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run, _ = make_sweep(store)
    before = datetime.now(UTC)
    for alpha in (0.1, 0.2):
        for seed in range(3):
            run(alpha, seed)
    run(0.1, 0)
    capsys.readouterr()
    summary = stet.status(store=store)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"[stet] Store: {shown(store)}"
    assert out[1] == "[stet] 6 completed experiments recorded"
    assert out[2].startswith("[stet] Last run: ")
    assert out[3] == "[stet] Key columns: alpha, method, seed"
    assert out[4:] == ["[stet] 6 finished in the last hour"]
    assert summary.records == 6
    assert summary.functions[0].last_hour == 6
    assert summary.last_run is not None
    assert summary.last_run >= before
    assert [f.function for f in summary.functions] == [run.__qualname__]


def test_status_lists_each_function_of_a_shared_store(
    store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    @stet.once(store=store, name="train")
    def train(x: int) -> None: ...

    @stet.once(store=store, name="evaluate")
    def evaluate(y: str) -> None: ...

    train(1)
    train(2)
    evaluate("a")
    summary = stet.status(store)
    out = capsys.readouterr().out
    assert "[stet] 3 completed experiments recorded" in out
    assert "[stet]   train: 2 recorded" in out
    assert "[stet]   evaluate: 1 recorded" in out
    assert {f.function: f.records for f in summary.functions} == {"train": 2, "evaluate": 1}
    assert {f.function: f.key_columns for f in summary.functions} == {
        "train": ("x",),
        "evaluate": ("y",),
    }


def test_status_of_a_missing_store_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nowhere\.csv"):
        stet.status(store=tmp_path / "nowhere.csv")


def test_reset_one_entry_makes_it_run_again(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    run, calls = make_sweep(store)
    run(0.1, 1)
    run(0.1, 2)
    assert (
        stet.reset(store=store, key_dict={"alpha": np.float64(0.1), "seed": 1, "method": "adam"})
        == 1
    )
    assert (
        "[stet] Removed 1 record(s) of alpha=0.1, seed=1, method='adam'" in capsys.readouterr().out
    )
    run(0.1, 1)
    run(0.1, 2)
    assert calls == [(0.1, 1, "adam"), (0.1, 2, "adam"), (0.1, 1, "adam")]


def test_reset_of_an_absent_entry_says_so(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    run, _ = make_sweep(store)
    run(0.1, 1)
    assert stet.reset(store, {"alpha": 0.2}) == 0
    assert "No record of alpha=0.2" in capsys.readouterr().out


def test_reset_without_a_terminal_clears_without_asking(
    store: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run, calls = make_sweep(store)
    run(0.1, 1)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert stet.reset(store=store) == 1
    assert f"[stet] Store cleared: {shown(store)}" in capsys.readouterr().out
    run(0.1, 1)
    assert len(calls) == 2


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("answer", "cleared"), [("y\n", True), ("yes\n", True), ("\n", False), ("n\n", False)]
)
def test_reset_on_a_terminal_asks_first(
    store: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    answer: str,
    cleared: bool,
) -> None:
    run, _ = make_sweep(store)
    run(0.1, 1)
    monkeypatch.setattr("sys.stdin", FakeTerminal(answer))
    stet.reset(store=store)
    out = capsys.readouterr().out
    assert "[y/N]" in out
    assert ("[stet] Aborted." in out) == (not cleared)
    assert stet.backends.get_backend(store).has({"alpha": 0.1, "seed": 1, "method": "adam"}) == (
        not cleared
    )


def test_reset_can_clear_one_function(store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))

    @stet.once(store=store, name="a")
    def a(x: int) -> None: ...

    @stet.once(store=store, name="b")
    def b(x: int) -> None: ...

    a(1)
    b(1)
    assert stet.reset(store, function="a") == 1
    assert {f.function for f in stet.status(store).functions} == {"b"}


def test_read_gives_typed_columns(store: str) -> None:
    run, _ = make_sweep(store)
    run(0.5, 1, "adam")
    run(1.5, 2, "007")
    frame = stet.read(store)
    assert list(frame["alpha"]) == [0.5, 1.5]
    assert frame["alpha"].dtype == "float64"
    assert frame["seed"].dtype == "int64"
    assert list(frame["method"]) == ["adam", "007"]
    assert isinstance(frame["_stet_timestamp"].dtype, pd.DatetimeTZDtype)
    assert str(frame["_stet_timestamp"].dt.tz) == "UTC"
    assert (frame["_stet_duration"] >= 0).all()
    assert set(frame["_stet_function"]) == {run.__qualname__}


def test_read_keeps_none_and_mixed_kinds_apart(store: str) -> None:
    b = stet.backends.get_backend(store)
    b.record({"x": 1})
    b.record({"x": None})
    b.record({"x": "1"})
    b.record({"y": 2.5})
    frame = stet.read(store)
    assert list(frame["x"]) == [1, None, "1", None]
    assert [type(v) for v in frame["x"]] == [int, type(None), str, type(None)]


def test_read_of_a_missing_store_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        stet.read(tmp_path / "nothing.parquet")


def test_mark_done_imports_existing_results(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    run, calls = make_sweep(store)
    results = pd.DataFrame({"alpha": [0.1, 0.2, 0.3], "seed": [1, 2, 3], "loss": [9.0, 8.0, 7.0]})
    assert stet.mark_done(run, results) == 3
    assert stet.mark_done(run, [{"alpha": 0.1, "seed": 1, "method": "adam"}]) == 0
    for alpha, seed in [(0.1, 1), (0.2, 2), (0.3, 3), (0.4, 4)]:
        run(alpha, seed)
    assert calls == [(0.4, 4, "adam")]


def test_mark_done_needs_every_key_without_a_default(store: str) -> None:
    run, _ = make_sweep(store)
    with pytest.raises(ValueError, match=r"row 1 has no value for key parameter 'seed'"):
        stet.mark_done(run, [{"alpha": 1, "seed": 1}, {"alpha": 2}])
    assert not stet.backends.get_backend(store).exists()  # all or nothing


def test_mark_done_refuses_an_undecorated_function() -> None:
    def plain(x: int) -> None: ...

    with pytest.raises(TypeError, match=r"decorated with @stet\.once"):
        stet.mark_done(plain, [{"x": 1}])


def test_mark_done_names_the_row_of_an_unkeyable_value(store: str) -> None:
    run, _ = make_sweep(store)
    with pytest.raises(stet.KeyEncodingError, match="row 1"):
        stet.mark_done(run, [{"alpha": 1, "seed": 1}, {"alpha": object(), "seed": 2}])


def test_mark_done_of_many_rows_is_one_write(store: str) -> None:
    run, calls = make_sweep(store)
    n = 20_000
    frame = pd.DataFrame({"alpha": np.linspace(0, 1, n), "seed": np.arange(n)})
    assert stet.mark_done(run, frame) == n
    run(float(frame["alpha"][123]), 123)
    assert calls == []
    assert len(stet.read(store)) == n


def test_read_and_reset_accept_what_read_returned(store: str) -> None:
    @stet.once(store=store, quiet=True)
    def run(cfg: S.TrainConfig, method: S.Method) -> None: ...

    run(S.TrainConfig(0.1, (2,)), S.Method.SGD)
    frame = stet.read(store)
    row = frame.iloc[0]
    assert stet.reset(store, {"cfg": row["cfg"], "method": row["method"]}) == 1


def test_records_of_older_code_are_counted_and_can_be_forgotten(
    store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ran: list[str] = []

    @stet.once(store=store, quiet=True, name="run")
    def run(x: int) -> None:
        ran.append("v1")

    run(1)
    run(2)

    @stet.once(store=store, quiet=True, name="run")
    def run_edited(x: int) -> None:
        ran.append("v2")  # the body changed: a new code hash

    run_edited(3)
    run_edited(1)  # still skipped: nothing is invalidated automatically
    assert ran == ["v1", "v1", "v2"]
    (summary,) = stet.status(store).functions
    assert summary.older_code == 2
    assert "2 record(s) made by an older version of its code" in capsys.readouterr().out
    assert stet.reset(store, function="run", stale_code=True) == 2
    run_edited(1)
    assert ran == ["v1", "v1", "v2", "v2"]
    assert stet.status(store).functions[0].older_code == 0


def test_progress_counts_done_and_left(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    run, _ = make_sweep(store)
    grid = pd.DataFrame({"alpha": [0.1, 0.1, 0.2, 0.2], "seed": [1, 2, 1, 2]})
    empty = stet.progress(run, grid)
    assert (empty.total, empty.done, empty.left, empty.eta) == (4, 0, 4, None)
    run(0.1, 1)
    run(0.2, 2)
    rows = [{"alpha": a, "seed": s} for a in (0.1, 0.2) for s in (1, 2)]
    half = stet.progress(run, rows * 2)  # repeats count once
    assert (half.total, half.done, half.left, half.last_hour) == (4, 2, 2, 2)
    assert half.eta is None  # two timed runs are too few to tell
    out = capsys.readouterr().out
    assert "2 of 4 done, 2 left; too few timed runs yet to estimate the time left" in out


def timed_runs(store: str, function: str, runs: list[tuple[int, float, float]]) -> None:
    """Records of ``(x, finished at, duration)``, as runs at those times write them."""
    start = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    rows = [
        {
            "x": str(x),
            "_stet_function": function,
            "_stet_timestamp": datetime.fromtimestamp(start + at, UTC).isoformat(),
            "_stet_duration": f"{duration:.6f}",
            "_stet_codec": str(stet.CODEC_VERSION),
        }
        for x, at, duration in runs
    ]
    table = stet.backends.open_store(store)
    table.merge(rows)  # as written, metadata and all
    table.flush()
    stet.backends.forget_open()  # read them as a new process would


def test_progress_estimates_from_the_recorded_durations(
    store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Four runs of 0.2 s one after the other: 20 left take about 4 s."""

    @stet.once(store=store, quiet=True, name="run")
    def run(x: int) -> None: ...

    timed_runs(store, "run", [(x, 0.2 * (x + 1), 0.2) for x in range(4)])
    result = stet.progress(run, [(x,) for x in range(24)])
    assert (result.done, result.left) == (4, 20)
    assert result.per_run is not None
    assert result.per_run.total_seconds() == pytest.approx(0.2)
    assert result.workers == pytest.approx(1.0)
    assert result.eta is not None
    assert result.eta.total_seconds() == pytest.approx(4.0)
    assert "about 4 s to go (0.2 s a run" in capsys.readouterr().out


def test_progress_counts_the_workers_that_ran_side_by_side(store: str) -> None:
    """Eight workers, each run 60 s: 80 left take 10 minutes, not 80."""

    @stet.once(store=store, quiet=True, name="run")
    def run(x: int) -> None: ...

    timed_runs(store, "run", [(x, 60.0 * (x // 8 + 1), 60.0) for x in range(16)])
    result = stet.progress(run, [{"x": x} for x in range(96)])
    assert result.workers == pytest.approx(8.0)
    assert result.eta is not None
    assert result.eta.total_seconds() == pytest.approx(600.0)
    assert "x 8 workers" in str(result)


def test_progress_takes_a_grid_as_tuples_mappings_or_a_dataframe(store: str) -> None:
    run, _ = make_sweep(store)
    run(0.1, 1)
    forms: list[Any] = [
        [(0.1, 1), (0.2, 1)],  # the function's parameter order
        [(0.1, 1, "adam"), (0.2, 1, "adam")],
        [{"alpha": 0.1, "seed": 1}, {"seed": 1, "alpha": 0.2}],
        pd.DataFrame({"alpha": [0.1, 0.2], "seed": [1, 1]}),
    ]
    for grid in forms:
        assert (stet.progress(run, grid).done, stet.progress(run, grid).left) == (1, 1)
    with pytest.raises(TypeError, match=r"row 1 is a str; give each row as a mapping.*tuple"):
        stet.progress(run, [(0.1, 1), "0.2,1"])
    with pytest.raises(TypeError, match=r"row 0 \(0.1,\) does not fit run\(alpha"):
        stet.progress(run, [(0.1,)])

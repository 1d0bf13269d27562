"""What a sweep prints: readable for one skip, and for a hundred thousand."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

import stet
from stet._report import FULL_LINES


def make(store: str, quiet: bool = False) -> Any:
    @stet.once(store=store, quiet=quiet)
    def run(x: int) -> int:
        return x

    return run


def test_a_long_streak_of_skips_is_summed_up_in_one_line(
    store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run = make(store)
    for x in range(1_000):
        run(x)
    capsys.readouterr()
    for x in range(1_000):
        run(x)
    run(1_000)  # a run ends the streak
    lines = capsys.readouterr().out.splitlines()
    assert lines[:FULL_LINES] == [f"[stet] Skipping run(x={x})" for x in range(FULL_LINES)]
    assert lines[FULL_LINES:] == [f"[stet] ... and {1_000 - FULL_LINES:,} more skipped"]


def test_a_few_skips_are_all_shown(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    run = make(store)
    run(1)
    run(2)
    run(1)
    run(2)
    run(3)
    run(1)
    assert capsys.readouterr().out.splitlines() == [
        "[stet] Skipping run(x=1)",
        "[stet] Skipping run(x=2)",
        "[stet] Skipping run(x=1)",
    ]


@pytest.mark.parametrize("value", ["1", "true", "yes"])
def test_stet_quiet_silences_skip_lines(
    store: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    run = make(store)
    run(1)
    monkeypatch.setenv("STET_QUIET", value)
    run(1)
    assert capsys.readouterr().out == ""


def test_skip_lines_go_to_the_stet_logger_too(store: str, caplog: pytest.LogCaptureFixture) -> None:
    run = make(store)
    run(1)
    with caplog.at_level(logging.INFO, logger="stet"):
        run(1)
    assert [r.getMessage() for r in caplog.records] == ["[stet] Skipping run(x=1)"]
    assert caplog.records[0].name == "stet"


def test_an_async_sweep_does_not_block_the_event_loop_on_the_store(
    store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    @stet.once(store=store, quiet=True)
    async def run(x: int) -> int:
        return x

    table = stet.backends.open_store(store)
    slow_sync = table.refresh

    window: list[float] = []

    def sync() -> None:
        window.append(time.perf_counter())
        time.sleep(0.3)  # a store on a slow disk
        window.append(time.perf_counter())
        slow_sync()

    monkeypatch.setattr(table, "refresh", sync)
    ticks: list[float] = []

    async def ticker() -> None:
        for _ in range(10):
            ticks.append(time.perf_counter())
            await asyncio.sleep(0.02)

    async def main() -> None:
        await asyncio.gather(run(1), ticker())

    asyncio.run(main())
    start, end = window[0], window[1]
    # The loop kept turning while the store was being read.
    assert any(start < tick < end for tick in ticks)


def refined_grid(tmp_path: Any, points: int) -> Any:
    """A sweep whose every other point is already done (a grid refined)."""
    run = make(str(tmp_path / "runs.csv"), quiet=True)
    for x in range(0, points, 2):
        run(x)
    return make(str(tmp_path / "runs.csv"))


def test_alternating_runs_and_skips_collapse_off_a_terminal(
    tmp_path: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stet._report, "SUMMARY_SECONDS", 1e9)  # no summary by time here
    run = refined_grid(tmp_path, 2_000)
    capsys.readouterr()
    for x in range(2_000):
        run(x)
    stet._report.reporter.finish()  # as at exit
    lines = capsys.readouterr().out.splitlines()
    assert lines[:FULL_LINES] == [f"[stet] Skipping run(x={x})" for x in range(0, 10, 2)]
    assert lines[FULL_LINES:] == [f"[stet] ... and {1_000 - FULL_LINES:,} more skipped"]


def test_alternating_runs_and_skips_are_summed_up_now_and_then(
    tmp_path: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stet._report, "SUMMARY_SECONDS", 0.0)  # every time a run starts
    run = refined_grid(tmp_path, 20)
    capsys.readouterr()
    for x in range(20):
        run(x)
    lines = capsys.readouterr().out.splitlines()
    assert lines[FULL_LINES:] == ["[stet] ... and 1 more skipped"] * (10 - FULL_LINES)


class Terminal:
    """A stdout that says it is a terminal and keeps what was written."""

    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> int:
        self.text += text
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_hidden_skips_are_one_count_line_that_rewrites_itself(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = refined_grid(tmp_path, 400)
    terminal = Terminal()
    monkeypatch.setattr("sys.stdout", terminal)
    monkeypatch.setattr(stet._report, "_REDRAW_SECONDS", 0.0)
    for x in range(400):
        run(x)
    stet._report.reporter.finish()
    # Five full lines and the final count stay on screen; every other
    # update rewrote the count line in place.
    screen = [line.rsplit("\r\x1b[K", 1)[-1] for line in terminal.text.split("\n")]
    assert screen == [
        *(f"[stet] Skipping run(x={x})" for x in range(0, 10, 2)),
        f"[stet] ... and {200 - FULL_LINES:,} more skipped",
        "",
    ]
    assert terminal.text.count("more skipped") > 100  # it was redrawn as skips came

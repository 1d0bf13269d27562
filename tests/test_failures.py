"""Failed runs: what a failure records, how it is kept safe, and what reads it back.

The store-level contract (kept beside every store, never as a finished run)
is in tests/test_conformance.py; here are the parts above it: the
decorator's recording, the bounds and redaction of what is kept, the log
file's crash safety, `Once(retry=...)` in configs, `stet.failures`,
`stet.forget_failures` and `stet.progress`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

import stet
import stet.testing
from stet.backends import open_store
from stet.backends._failures import (
    MESSAGE_LIMIT,
    TRACEBACK_FRAMES,
    TRACEBACK_LIMIT,
    FailureLog,
    redact,
)
from stet.typing import FailingStore, Failure

from . import workers


def _failures(store: str) -> list[Failure]:
    table = open_store(store)
    assert isinstance(table, FailingStore)
    return table.failures()


def _call(func: object, *args: object) -> BaseException | None:
    try:
        func(*args)  # type: ignore[operator]
    except BaseException as exc:
        return exc
    return None


# -- what a failure records --------------------------------------------------------


@given(
    password=st.text(
        alphabet=st.characters(blacklist_characters="@/:\\ \t\n\r", blacklist_categories=["Cs"]),
        min_size=1,
    ).filter(lambda p: "stetuser" not in p and "dbhost" not in p and p not in "postgresql")
)
def test_a_password_in_a_url_never_reaches_a_failure(password: str) -> None:
    text = f"could not connect to postgresql://stetuser:{password}@dbhost/db (timeout)"
    assert redact(text) == "could not connect to postgresql://stetuser:***@dbhost/db (timeout)"


def test_a_password_setting_and_pgpassword_are_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPASSWORD", "hunter22")
    assert redact("host=db password=s3cret user=x") == "host=db password=*** user=x"
    assert redact("conn failed for hunter22!") == "conn failed for ***!"


def test_message_and_traceback_are_bounded_and_redacted(tmp_path: Path) -> None:
    store = str(tmp_path / "runs.csv")

    def deep(n: int) -> None:
        if n == 0:
            raise RuntimeError("x" * 50_000 + " postgresql://u:pw123@h/db")
        deep(n - 1)

    @stet.once(store=store)
    def run(depth: int) -> None:
        deep(depth)

    assert isinstance(_call(run, 60), RuntimeError)
    (failure,) = _failures(store)
    assert len(failure.message) <= MESSAGE_LIMIT
    assert failure.message.endswith("...")
    assert len(failure.traceback) <= TRACEBACK_LIMIT
    assert failure.traceback.count('File "') <= TRACEBACK_FRAMES
    assert "pw123" not in failure.traceback
    assert failure.traceback.rstrip().endswith("postgresql://u:***@h/db")
    assert failure.host
    assert failure.type == "RuntimeError"


def test_an_exception_whose_str_raises_is_still_recorded(tmp_path: Path) -> None:
    class Odd(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no text")

    store = str(tmp_path / "runs.json")
    error = Odd()

    @stet.once(store=store)
    def run(seed: int) -> None:
        raise error

    assert _call(run, 1) is error
    (failure,) = _failures(store)
    assert failure.type.endswith("Odd")
    assert "str() raised" in failure.message


def test_a_coroutine_that_raises_records_a_failure(tmp_path: Path) -> None:
    store = str(tmp_path / "runs.sqlite")

    @stet.once(store=store, retry="never", quiet=True)
    async def run(seed: int) -> None:
        raise ValueError(seed)

    with pytest.raises(ValueError, match="1"):
        asyncio.run(run(1))
    assert asyncio.run(run(1)) is None
    assert [f.values for f in _failures(store)] == [("1",)]


def test_attempts_count_up_and_retry_n_stops_after_n(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = str(tmp_path / "runs.parquet")
    calls = []

    @stet.once(store=store, retry=3)
    def run(seed: int) -> None:
        calls.append(seed)
        raise ZeroDivisionError("division by zero")

    for _ in range(5):
        _call(run, 7)
    assert calls == [7, 7, 7]
    assert [f.attempt for f in _failures(store)] == [1, 2, 3]
    out = capsys.readouterr().out
    assert "[stet] Skipping run(seed=7): failed 3 times: ZeroDivisionError: division by zero" in out
    assert not os.path.exists(store), "a failure is never a finished run"


def test_a_failure_that_cannot_be_written_warns_and_the_run_error_propagates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "runs.csv"
    os.symlink(tmp_path / "elsewhere", str(store) + ".failures.jsonl")  # planted link
    error = ValueError("the run's own")

    @stet.once(store=str(store))
    def run(seed: int) -> None:
        raise error

    assert _call(run, 1) is error
    assert "Could not record the failure of run" in capsys.readouterr().err
    assert not (tmp_path / "elsewhere").exists(), "a symlink is never followed for writing"


def test_a_fifo_in_place_of_the_log_is_an_error_not_a_hang(tmp_path: Path) -> None:
    path = tmp_path / "runs.csv.failures.jsonl"
    os.mkfifo(path)
    log = FailureLog(str(tmp_path / "runs.csv"), lambda: str(path))
    with pytest.raises(stet.StoreError, match="not a regular file"):
        log.all()


# -- crash safety ----------------------------------------------------------------


def _line(value: str) -> bytes:
    failure = Failure("f", ("seed",), (value,), "ValueError", "m")
    return (json.dumps(failure.to_json()) + "\n").encode()


def test_a_half_written_last_failure_is_ignored_then_cut_by_the_next_writer(
    tmp_path: Path,
) -> None:
    path = tmp_path / "runs.csv.failures.jsonl"
    path.write_bytes(_line("1") + _line("2")[:17])  # a writer killed mid-line
    log = FailureLog(str(tmp_path / "runs.csv"), lambda: str(path))
    assert [f.values for f in log.all()] == [("1",)]
    log.add(Failure("f", ("seed",), ("3",), "ValueError", "m"))
    assert [f.values for f in FailureLog("x", lambda: str(path)).all()] == [("1",), ("3",)]
    assert path.read_bytes().count(b"\n") == 2


def test_a_damaged_failure_log_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "runs.csv.failures.jsonl"
    path.write_bytes(_line("1") + b"not json\n")
    with pytest.raises(stet.StoreError, match=r"failures\.jsonl.*not a stet failure"):
        stet.failures(str(tmp_path / "runs.csv"))


# -- configs, the API and progress ----------------------------------------------------


@pytest.mark.parametrize("retry", ["again", "never", 1, 5])
def test_retry_survives_a_config_round_trip(retry: str | int) -> None:
    once = stet.Once(retry=retry)  # type: ignore[arg-type]
    assert stet.Once.from_dict(once.to_dict()) == once
    assert once.to_dict()["retry"] == retry


@pytest.mark.parametrize("retry", ["3", 0, -1, True, 1.5, "sometimes", None])
def test_a_bad_retry_is_refused_at_construction_saying_what_is_allowed(retry: object) -> None:
    with pytest.raises(ValueError, match=r"retry must be 'again'.*'never'.*number"):
        stet.Once(retry=retry)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="retry"):
        stet.Once.from_dict({"retry": retry})


def test_failures_are_grouped_by_type_and_message_with_keys_decoded(tmp_path: Path) -> None:
    store = str(tmp_path / "runs.csv")

    @stet.once(store=store, quiet=True)
    def run(alpha: float, seed: int) -> None:
        if seed % 2:
            raise ValueError("odd seed")
        raise MemoryError

    for seed in (1, 3, 3, 2):
        _call(run, 0.5, seed)

    @stet.once(store=store, name="ok")
    def run_ok(x: int) -> int:
        return x

    run_ok(1)
    grouped = stet.failures(store)
    assert list(grouped["type"]) == ["ValueError", "MemoryError"]
    assert list(grouped["failures"]) == [3, 1]
    assert list(grouped["keys"]) == [2, 1]
    assert grouped["example"][0] == "alpha=0.5, seed=3"
    assert isinstance(grouped["last"][0], pd.Timestamp)
    assert grouped["last"][0].tzinfo
    flat = stet.failures(store, grouped=False)
    assert list(flat["seed"]) == [1, 3, 3, 2]
    assert list(flat["_stet_attempt"]) == [1, 1, 2, 1]
    assert flat["alpha"].dtype == float

    assert stet.forget_failures(store, {"seed": 3}) == 2
    assert stet.forget_failures(store, function="other") == 0
    assert len(stet.failures(store, grouped=False)) == 2
    assert stet.forget_failures(store) == 2
    assert stet.failures(store).empty
    assert len(stet.read(store)) == 1, "forgetting failures keeps the records"


def test_failures_of_a_store_that_is_not_there_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        stet.failures(str(tmp_path / "nothing.csv"))


def test_progress_tells_done_failed_and_pending_apart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = str(tmp_path / "runs.csv")

    @stet.once(store=store, quiet=True, retry="never")
    def run(seed: int) -> None:
        if seed == 2:
            raise ValueError("two")

    run(1)
    _call(run, 2)
    _call(run, 2)
    progress = stet.progress(run, [(1,), (2,), (3,), (4,)])
    assert (progress.done, progress.failed, progress.left, progress.total) == (1, 1, 2, 4)
    assert "1 of 4 done, 1 failed, 2 left" in capsys.readouterr().out


def _fail(func: object, x: int) -> None:
    with contextlib.suppress(ValueError):
        func(x)  # type: ignore[operator]


@pytest.mark.parametrize("store", ["failing.csv", "failing.stetdir"])
def test_processes_failing_at_once_leave_every_failure_whole(store: str) -> None:
    func = workers.fail_csv if store.endswith(".csv") else workers.fail_shared
    with multiprocessing.get_context("fork").Pool(4) as pool:
        pool.starmap(_fail, [(func, x) for x in range(40)])
    found = _failures(store)
    assert sorted(int(f.values[0]) for f in found) == list(range(40))
    assert all(f.message.startswith(f"{f.values[0]} long message") for f in found)


# -- status, reset and the command line ------------------------------------------------


def _sweep_with_failures(store: str) -> None:
    @stet.once(store=store, quiet=True, name="run")
    def run(alpha: float, seed: int) -> float:
        if alpha > 0.5:
            raise ValueError(f"diverged at alpha={alpha}")
        return alpha

    for alpha in (0.1, 0.7, 0.9):
        _call(run, alpha, 1)
    _call(run, 0.9, 1)


def test_status_counts_failures_and_distinct_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = str(tmp_path / "runs.csv")
    _sweep_with_failures(store)
    summary = stet.status(store)
    assert (summary.records, summary.failed, summary.failed_keys) == (1, 3, 2)
    assert (summary.functions[0].failed, summary.functions[0].failed_keys) == (3, 2)
    assert "[stet] 3 failed (2 distinct keys" in capsys.readouterr().out


def test_status_of_a_store_with_only_failures_yet_shows_them(tmp_path: Path) -> None:
    store = str(tmp_path / "runs.json")

    @stet.once(store=store, quiet=True, name="run")
    def run(seed: int) -> None:
        raise ValueError(seed)

    _call(run, 1)
    summary = stet.status(store)
    assert (summary.records, summary.failed) == (0, 1)
    assert [f.function for f in summary.functions] == ["run"]
    assert summary.key_columns == summary.functions[0].key_columns == ("seed",)


def test_status_of_only_failures_names_their_key_columns_and_says_none_finished(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = str(tmp_path / "runs.csv")

    @stet.once(store=store, quiet=True, name="run")
    def run(alpha: float, seed: int) -> None:
        raise ValueError(seed)

    @stet.once(store=store, quiet=True, name="other")
    def other(x: int) -> None: ...

    _call(run, 0.1, 1)
    capsys.readouterr()
    stet.status(store)
    lines = capsys.readouterr().out.splitlines()
    assert "[stet] Key columns: alpha, seed (of the failures; no run has finished yet)" in lines
    other(3)
    stet.status(store)
    lines = capsys.readouterr().out.splitlines()
    assert "[stet] Key columns: x, alpha, seed" in lines
    assert (
        "[stet]   run: 0 recorded; key columns: alpha, seed (of its failures; no run has "
        "finished yet); 1 failed (1 distinct keys)"
    ) in lines


def test_reset_forgets_failures_with_the_store_and_failed_only_with_failed(
    tmp_path: Path,
) -> None:
    store = str(tmp_path / "runs.sqlite")
    _sweep_with_failures(store)
    assert stet.reset(store, {"alpha": 0.7}) == 0, "no record of a key that only failed"
    assert len(_failures(store)) == 3
    assert stet.reset(store, {"alpha": 0.9}, failed=True) == 2
    assert [f.values for f in _failures(store)] == [("0.7", "1")]
    assert len(stet.read(store)) == 1, "reset(failed=True) keeps the records"
    stet.reset(store)
    assert _failures(store) == []
    assert not os.path.exists(store + ".failures.jsonl")


def test_the_command_line_lists_and_forgets_failures(tmp_path: Path) -> None:
    from .test_cli import stet_cli

    store = str(tmp_path / "runs.csv")
    _sweep_with_failures(store)
    listed = stet_cli("failures", store, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert "[stet] 3 failed (2 distinct keys)" in lines
    assert lines[2].startswith("[stet] run: 2 x ValueError: diverged at alpha=0.9 (1 key")
    every = stet_cli("failures", store, "--all", cwd=tmp_path).stdout
    assert "run(alpha=0.9, seed=1) attempt 2 on " in every
    refused = stet_cli("reset", store, "--failed", cwd=tmp_path)
    assert refused.returncode == 1
    assert "add --yes" in refused.stderr
    done = stet_cli("reset", store, "--failed", "--where", "alpha=0.9", "--yes", cwd=tmp_path)
    assert "Forgot 2 failure(s)" in done.stdout
    assert [f.values for f in _failures(store)] == [("0.7", "1")]
    assert "1 failed (1 distinct keys" in stet_cli("status", store, cwd=tmp_path).stdout
    missing = stet_cli("failures", str(tmp_path / "none.csv"), cwd=tmp_path)
    assert missing.returncode == 1
    assert "not found" in missing.stderr


def test_export_writes_finished_runs_and_says_where_the_failures_are(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from stet import _cli

    store = str(tmp_path / "runs.csv")
    _sweep_with_failures(store)
    capsys.readouterr()
    out = tmp_path / "exported.csv"
    assert _cli.main(["export", store, str(out)]) == 0
    said = capsys.readouterr().out
    assert len(pd.read_csv(out)) == 1, "a failure is never exported as a finished run"
    assert "3 failure(s) are not exported" in said
    assert f"stet failures {store} --all" in said

"""The stet command, run as a user runs it.

Most tests call the command's `main` in this process, which is the same
code as the ``stet`` script but costs no Python start; those about what the
entry point itself shows (exit codes, one line on stderr, no traceback)
run ``python -m stet`` in a subprocess.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

import stet
import stet.testing
from stet import _cli


def stet_cli(
    *args: str, cwd: Path, stdin: str = "", in_process: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``stet ARGS`` in ``cwd``: its exit code, stdout and stderr."""
    command = [sys.executable, "-m", "stet", *args]
    if not in_process:
        return subprocess.run(
            command, cwd=cwd, input=stdin, capture_output=True, text=True, timeout=120
        )
    out, err = io.StringIO(), io.StringIO()
    with (
        _as_a_new_process(cwd, stdin),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        try:
            code = _cli.main(list(args))
        except SystemExit as exc:  # argparse's usage errors and --version
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    return subprocess.CompletedProcess(command, code, out.getvalue(), err.getvalue())


@contextlib.contextmanager
def _as_a_new_process(cwd: Path, stdin: str) -> Iterator[None]:
    """No store object of the test's is shared, and stdin is not a terminal."""
    here, given = os.getcwd(), sys.stdin
    stet.testing.fresh_process()
    os.chdir(cwd)
    sys.stdin = io.StringIO(stdin)
    try:
        yield
    finally:
        sys.stdin = given
        os.chdir(here)
        stet.testing.fresh_process()


@pytest.fixture
def sweep(store: str) -> str:
    @stet.once(store=store, quiet=True, name="run")
    def run(alpha: float, seed: int, method: str = "adam") -> None: ...

    for alpha in (0.1, 0.2):
        for seed in range(3):
            run(alpha, seed)
    run(0.3, 1, "007")
    stet.backends.get_backend(store).flush()
    return store


def test_status_prints_the_summary(sweep: str, tmp_path: Path) -> None:
    done = stet_cli("status", sweep, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "[stet] 7 completed experiments recorded" in done.stdout
    assert "[stet] Key columns: alpha, method, seed" in done.stdout


def test_status_shows_runs_in_progress_in_other_processes(store: str, tmp_path: Path) -> None:
    worker = Path(__file__).with_name("claim_worker.py")
    # One key, claimed and then running for a minute in another process.
    args = [str(worker), store, "1", "60", "60", str(tmp_path / "log")]
    proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120  # however loaded the machine
        while not (tmp_path / "log").exists():  # the worker is inside the run
            assert proc.poll() is None, "the worker exited before it ran its key"
            assert time.monotonic() < deadline, "the worker never started its run"
            time.sleep(0.05)
        done = stet_cli("status", store, cwd=tmp_path)
    finally:
        proc.kill()
        proc.wait()
    assert done.returncode == 0, done.stderr
    assert "[stet] 0 completed experiments recorded" in done.stdout
    assert "[stet] work: 1 running now" in done.stdout


def test_show_prints_the_newest_records(sweep: str, tmp_path: Path) -> None:
    done = stet_cli("show", sweep, "--limit", "2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:3] == ["alpha", "method", "seed"]
    assert lines[-2].split()[:3] == ["0.3", "007", "1"]
    assert lines[-1] == "(2 of 7 records)"


def test_reset_where_removes_only_matching_records(sweep: str, tmp_path: Path) -> None:
    done = stet_cli("reset", sweep, "--where", "alpha=0.1", "--yes", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Removed 3 record(s)" in done.stdout
    left = stet.read(sweep)
    assert sorted(left["alpha"]) == [0.2, 0.2, 0.2, 0.3]
    done = stet_cli("reset", sweep, "--where", "method='007", "--yes", cwd=tmp_path)
    assert "Removed 1 record(s)" in done.stdout


def test_reset_refuses_without_yes_when_not_a_terminal(sweep: str, tmp_path: Path) -> None:
    done = stet_cli("reset", sweep, cwd=tmp_path)
    assert done.returncode == 1
    assert "--yes" in done.stderr
    assert len(stet.read(sweep)) == 7


def test_export_then_import_carries_the_runs_over(sweep: str, tmp_path: Path) -> None:
    out = tmp_path / "exported.parquet"
    assert stet_cli("export", sweep, str(out), cwd=tmp_path).returncode == 0
    assert len(pd.read_parquet(out)) == 7
    other = tmp_path / "other.sqlite"
    done = stet_cli(
        "import",
        str(other),
        str(out),
        "--function",
        "run",
        "--key",
        "alpha,seed,method",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "Marked 7 run(s)" in done.stdout
    assert stet.backends.get_backend(other).has(
        {"alpha": 0.3, "seed": 1, "method": "007"}, function="run"
    )


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("status", "missing.csv"), 1, "/missing.csv"),
        (("status", "runs.txt"), 1, "Unsupported store extension"),
        (("show",), 1, "no store at"),  # the default store, _stet_store.csv, is not there
        (("frobnicate", "x.csv"), 2, "invalid choice"),
        (("reset", "damaged.csv", "--yes"), 1, "damaged.csv"),
        (("reset", "damaged.csv", "--where", "x"), 1, "KEY=VALUE"),
        (("reset", "damaged.csv", "--where", "_stet_host=vm"), 1, "is reserved"),
        (("reset", "damaged.csv", "--where", "a-b=1"), 1, "is not a parameter name"),
        (("import", "a.csv", "missing.parquet", "-f", "run", "-k", "x"), 1, "no file"),
    ],
)
def test_mistakes_are_one_line_on_stderr_with_a_conventional_exit_code(
    tmp_path: Path, args: tuple[str, ...], code: int, message: str
) -> None:
    (tmp_path / "damaged.csv").write_text("not a store\n")
    done = stet_cli(*args, cwd=tmp_path, in_process=False)
    assert done.returncode == code
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    if code == 1:
        assert len(done.stderr.strip().splitlines()) == 1


def test_merge_combines_per_node_stores_into_one(tmp_path: Path) -> None:
    sources = []
    for node, ext in enumerate(("csv", "json", "parquet")):
        path = tmp_path / f"node{node}.{ext}"

        @stet.once(store=str(path), quiet=True, name="run")
        def run(x: int) -> None: ...

        for x in range(node * 5, node * 5 + 10):  # overlapping halves
            run(x)
        stet.backends.get_backend(path).flush()
        sources.append(str(path))
    dest = tmp_path / "all.sqlite"
    done = stet_cli("merge", *sources, str(dest), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Merged 20 record(s)" in done.stdout
    merged = stet.read(dest)
    assert sorted(merged["x"]) == list(range(20))
    assert set(merged["_stet_function"]) == {"run"}
    again = stet_cli("merge", *sources, str(dest), cwd=tmp_path)
    assert "Merged 0 record(s)" in again.stdout


def test_reset_stale_code_forgets_records_of_older_code(tmp_path: Path) -> None:
    store = str(tmp_path / "runs.csv")

    @stet.once(store=store, quiet=True, name="run")
    def run(x: int) -> None:
        pass

    run(1)

    @stet.once(store=store, quiet=True, name="run")
    def run_edited(x: int) -> None:
        return None

    run_edited(2)
    done = stet_cli("reset", store, "--function", "run", "--stale-code", "--yes", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Removed 1 record(s)" in done.stdout
    assert list(stet.read(store)["x"]) == [2]


def test_show_and_reset_can_be_limited_to_one_function(tmp_path: Path) -> None:
    store = str(tmp_path / "runs.csv")

    @stet.once(store=store, quiet=True, name="train")
    def train(x: int) -> None: ...

    @stet.once(store=store, quiet=True, name="evaluate")
    def evaluate(x: int) -> None: ...

    for x in range(3):
        train(x)
        evaluate(x)
    shown = stet_cli("show", store, "--function", "evaluate", "--limit", "0", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.count("evaluate") == 3
    assert "train" not in shown.stdout
    assert shown.stdout.splitlines()[-1] == "(3 of 3 records)"
    done = stet_cli("reset", store, "--function", "train", "--yes", cwd=tmp_path)
    assert "Removed 3 record(s)" in done.stdout
    assert set(stet.read(store)["_stet_function"]) == {"evaluate"}


def test_export_to_csv_opens_in_pandas(sweep: str, tmp_path: Path) -> None:
    out = tmp_path / "exported.csv"
    done = stet_cli("export", sweep, str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    frame = pd.read_csv(out)
    assert len(frame) == 7
    assert sorted(set(frame["alpha"])) == [0.1, 0.2, 0.3]


def test_without_a_store_argument_the_default_store_is_used(tmp_path: Path) -> None:
    @stet.once(quiet=True)  # _stet_store.csv in the working directory
    def run(x: int) -> None: ...

    run(1)
    for command in ("status", "show"):
        done = stet_cli(command, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    assert "_stet_store.csv" in stet_cli("status", cwd=tmp_path).stdout


def test_version_is_printed() -> None:
    done = stet_cli("--version", cwd=Path.cwd())
    assert done.returncode == 0
    assert done.stdout.strip() == f"stet {stet.__version__}"


def test_why_needs_no_function_when_the_store_holds_one(sweep: str, tmp_path: Path) -> None:
    done = stet_cli("why", sweep, "alpha=0.1", "seed=9", "method=adam", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "is not recorded" in done.stdout
    assert "seed: 9 here, 2 recorded" in done.stdout  # the numerically nearest


def test_why_asks_for_the_function_when_the_store_holds_several(tmp_path: Path) -> None:
    store = str(tmp_path / "runs.csv")
    for name in ("fit", "plot"):
        stet.backends.get_backend(store).record({"x": 1}, function=name)
    done = stet_cli("why", store, "x=1", cwd=tmp_path)
    assert done.returncode == 1
    assert "several functions ('fit', 'plot'); name one with --function" in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("show", "{store}", "--function", "runn"),
            "no records of function 'runn'; did you mean 'run'?",
        ),
        (("reset", "{store}", "--function", "runn", "--yes"), "did you mean 'run'?"),
        (
            ("reset", "{store}", "--where", "alhpa=0.1", "--yes"),
            "no key column 'alhpa'; did you mean 'alpha'?",
        ),
        (("why", "{store}", "-f", "run", "alhpa=0.1"), "did you mean 'alpha'?"),
    ],
)
def test_a_misspelt_function_or_column_is_an_error_with_a_suggestion(
    sweep: str, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    before = len(stet.read(sweep))
    done = stet_cli(*(a.format(store=sweep) for a in args), cwd=tmp_path)
    assert done.returncode == 1
    assert message in done.stderr
    assert len(stet.read(sweep)) == before  # nothing was removed


def test_status_and_show_speak_json_for_scripts(sweep: str, tmp_path: Path) -> None:
    import json

    status = stet_cli("status", sweep, "--json", cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    summary = json.loads(status.stdout)
    assert summary["records"] == 7
    assert summary["functions"][0]["function"] == "run"
    assert summary["key_columns"] == ["alpha", "method", "seed"]
    show = stet_cli("show", sweep, "--json", "--limit", "0", cwd=tmp_path)
    assert show.returncode == 0, show.stderr
    records = [json.loads(line) for line in show.stdout.splitlines()]
    assert len(records) == 7
    assert {"alpha": 0.3, "seed": 1, "method": "007"}.items() <= records[-1].items()


def _import(
    store: Path, file: Path, *options: str, in_process: bool = True
) -> subprocess.CompletedProcess[str]:
    return stet_cli(
        "import",
        str(store),
        str(file),
        "-f",
        "run",
        *options,
        cwd=file.parent,
        in_process=in_process,
    )


def test_import_takes_each_cells_text_as_the_key(tmp_path: Path) -> None:
    """A cell is read as stet reads a store written by hand: 007 stays the
    string "007", NA the string "NA", 3 and 1.0 are numbers."""
    store = tmp_path / "runs.csv"
    file = tmp_path / "old.csv"
    file.write_text("method,seed,alpha,tag\n007,3,1.0,NA\nadam,4,0.5,nan\n")
    done = _import(store, file, "--key", "method,seed,alpha,tag")
    assert done.returncode == 0, done.stderr
    assert "Marked 2 run(s)" in done.stdout
    ran: list[object] = []

    @stet.once(store=str(store), quiet=True, name="run")
    def run(method: object, seed: int, alpha: float, tag: object) -> None:
        ran.append(method)

    run("007", 3, 1.0, "NA")
    run("adam", 4, 0.5, float("nan"))
    assert ran == []
    run(7, 3, 1.0, "NA")  # the number 7 was never imported
    assert ran == [7]


def test_import_of_an_exported_csv_keeps_strings_that_look_like_numbers(
    tmp_path: Path,
) -> None:
    store = tmp_path / "runs.json"

    @stet.once(store=str(store), quiet=True, name="run")
    def run(method: str, seed: int) -> None: ...

    run("007", 1)
    run("042", 2)  # a column of nothing but number-like strings
    stet.backends.get_backend(store).flush()
    exported = tmp_path / "exported.csv"
    assert stet_cli("export", str(store), str(exported), cwd=tmp_path).returncode == 0
    other = tmp_path / "other.sqlite"
    done = _import(other, exported, "--key", "method,seed")
    assert done.returncode == 0, done.stderr
    table = stet.backends.get_backend(other)
    assert table.has({"method": "007", "seed": 1}, function="run")
    assert table.has({"method": "042", "seed": 2}, function="run")
    assert not table.has({"method": 7, "seed": 1}, function="run")


def test_import_typed_reads_columns_as_pandas_types_them(tmp_path: Path) -> None:
    store = tmp_path / "runs.csv"
    file = tmp_path / "old.csv"
    file.write_text("run_id,method\n007,adam\n008,sgd\n")
    done = _import(store, file, "--key", "run_id,method", "--typed")
    assert done.returncode == 0, done.stderr
    table = stet.backends.get_backend(store)
    assert table.has({"run_id": 7, "method": "adam"}, function="run")
    assert table.has({"run_id": 8, "method": "sgd"}, function="run")
    assert not table.has({"run_id": "007", "method": "adam"}, function="run")


@pytest.mark.parametrize("typed", [(), ("--typed",)])
@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_an_empty_cell_is_an_error_naming_its_row_and_column_and_nothing_is_marked(
    tmp_path: Path, suffix: str, typed: tuple[str, ...]
) -> None:
    """An empty cell could mean a missing value or the empty string; stet
    does not guess (pandas would have made it the key NaN)."""
    frame = pd.DataFrame({"alpha": [0.1, 0.2, None], "seed": ["1", None, "3"]})
    file = tmp_path / f"old.{suffix}"
    if suffix == "csv":
        frame.to_csv(file, index=False)
    else:
        frame.to_parquet(file, index=False)
    store = tmp_path / "runs.csv"
    done = _import(store, file, "--key", "alpha,seed", *typed)
    assert done.returncode == 1
    assert f"{file}, data row 2, column 'seed': the cell is empty" in done.stderr
    assert not store.exists()


@pytest.mark.parametrize(
    ("setup", "key", "message"),
    [
        ("fifo", "x", "is not a regular file"),
        ("directory", "x", "is not a regular file"),
        ("empty", "x", "cannot be read as CSV"),
        ("latin-1", "x", "is not UTF-8 text"),
        ("garbage", "x", "cannot be read as Parquet"),
        ("good", "x,x", "key name 'x' appears twice"),
        ("good", ",", "names no column"),
        ("good", "_stet_function", "reserved"),
        ("good", "y", "has no column 'y'"),
    ],
)
def test_an_import_file_or_key_stet_cannot_use_is_a_clear_error(
    tmp_path: Path, setup: str, key: str, message: str
) -> None:
    file = tmp_path / ("in.parquet" if setup == "garbage" else "in.csv")
    if setup == "fifo":  # reading it would wait for a writer forever
        os.mkfifo(file)
    elif setup == "directory":
        file.mkdir()
    elif setup == "empty":
        file.write_bytes(b"")
    elif setup == "latin-1":
        file.write_bytes("x\ncaf\xe9\n".encode("latin-1"))
    elif setup == "garbage":
        file.write_bytes(b"not parquet at all")
    else:
        file.write_text("x\n1\n")
    store = tmp_path / "runs.csv"
    # A FIFO would hang the test itself if it were read: that one runs apart.
    done = _import(store, file, "--key", key, in_process=setup != "fifo")
    assert done.returncode == 1
    assert message in done.stderr
    assert str(file.name) in done.stderr or setup == "good"
    assert len(done.stderr.strip().splitlines()) == 1
    assert not store.exists()


def test_an_imported_double_underscore_column_is_read_back(store: str, tmp_path: Path) -> None:
    file = tmp_path / "old.csv"
    file.write_text("__x\n1\n")
    done = stet_cli("import", store, str(file), "-f", "run", "--key", "__x", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert stet_cli("status", store, cwd=tmp_path).returncode == 0
    assert list(stet.read(store)["__x"]) == [1]


def test_reset_of_everything_removes_the_store_file_as_the_python_api_does(
    tmp_path: Path,
) -> None:
    store = tmp_path / "runs.csv"
    stet.backends.get_backend(store).record({"x": 1})
    done = stet_cli("reset", str(store), "--yes", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Removed 1 record(s)" in done.stdout
    assert not store.exists()

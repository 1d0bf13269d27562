"""A shared directory's failure files are folded by compaction, and no failure is lost.

After an array job, ``failures/`` holds one file per task. `stet compact`
folds those no writer appends to any more (sealed at exit, or of a process
of this machine that is gone), as it folds records files; a writer still
appending, another machine's unsealed file and an older stet's file stay.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterable
from pathlib import Path

import pytest

import stet
from stet.backends import _failures, _shared_claims, _shared_failures, forget_open, open_store
from stet.backends._failures import Failure
from stet.backends._shared_files import this_host
from stet.typing import FailingStore

#: ``python worker.py STORE MODE ARGS``: the tasks of an array job, forked
#: from one interpreter (stet imported once), each on a host of its own.
WORKER = textwrap.dedent(
    """
    import atexit, os, sys
    import stet

    store, mode, *args = sys.argv[1:]

    def sweep(prefix):
        @stet.once(store=store, name="run", quiet=True)
        def run(key: str) -> None:
            if key.startswith("bad"):
                raise ValueError(key)

        return run

    def tasks(hosts, per_task, seal):
        for index, host in enumerate(hosts.split(",")):
            if os.fork() == 0:
                os.environ["STET_HOST"] = host
                run = sweep(host)
                run(f"good-{host}")
                for i in range(int(per_task)):
                    try:
                        run(f"bad-{host}-{i}")
                    except ValueError:
                        pass
                if seal == "1":
                    atexit._run_exitfuncs()  # an interpreter's exit: seals its files
                os._exit(0)  # else: killed, its failure file left unsealed
            os.wait()

    def appender(stop):
        run = sweep("live")
        i = 0
        while not os.path.exists(stop):
            try:
                run(f"bad-live-{i}")
            except ValueError:
                pass
            print(i, flush=True)  # after its failure is fsynced
            i += 1

    if mode == "tasks":
        tasks(*args)
    else:
        appender(*args)
    """
)


def worker(tmp_path: Path, *args: str) -> list[str]:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    return [sys.executable, str(script), *args]


def failures_of(store: str) -> list[tuple[str, int]]:
    forget_open()
    table = open_store(store)
    assert isinstance(table, FailingStore)
    return sorted((f.values[0], f.attempt) for f in table.failures())


def test_compaction_folds_finished_tasks_failures_and_loses_none_while_one_appends(
    tmp_path: Path,
) -> None:
    store = str(tmp_path / "runs.stetdir")
    subprocess.run(worker(tmp_path, store, "tasks", "n1,n2,n3,n4", "3", "1"), check=True)
    host = this_host()  # a task of this machine, killed: its process is gone
    subprocess.run(worker(tmp_path, store, "tasks", host, "2", "0"), check=True)
    folder = Path(store, "failures")
    # Another machine's writer, maybe still appending (unsealed), and a file
    # an older stet named by host and pid alone: read, never folded.
    other = folder / "elsewhere-7-0123456789ab.jsonl"
    older = folder / f"{host}-1.jsonl"
    lines = (folder / next(n for n in os.listdir(folder) if "n1" in n)).read_bytes().splitlines()
    other.write_bytes(lines[0].replace(b"bad-n1-0", b"bad-other") + b"\n")
    older.write_bytes(lines[1].replace(b"bad-n1-1", b"bad-older") + b"\n")
    before = failures_of(store)
    assert len(before) == 4 * 3 + 2 + 2

    stop = tmp_path / "stop"
    command = worker(tmp_path, store, "appender", str(stop))
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as live:
        assert live.stdout is not None
        written = [live.stdout.readline()]  # it has written its first failure
        for _ in range(3):
            stet.compact(store)  # while it appends
            written.append(live.stdout.readline())
        stop.touch()
        rest = live.stdout.read()  # to its end: it has exited
        assert live.wait(timeout=120) == 0
    count = len([*written, *rest.splitlines()])
    assert count >= 4

    after = failures_of(store)
    assert after == sorted([*before, *((f"bad-live-{i}", 1) for i in range(count))])
    stet.compact(store)  # the appender has exited (sealed): its file folds too
    assert failures_of(store) == after
    left = sorted(os.listdir(folder))
    assert other.name in left
    assert older.name in left
    assert len(left) == 3  # those two, and one compacted file
    assert not os.listdir(Path(store, "tmp"))


def test_a_folded_failure_is_still_cleared_by_a_later_success_and_counted_once(
    tmp_path: Path,
) -> None:
    store = str(tmp_path / "runs.stetdir")
    subprocess.run(worker(tmp_path, store, "tasks", "n1,n2", "2", "1"), check=True)
    folder = Path(store, "failures")
    sealed = sorted(folder.iterdir())
    # A compaction killed after its file was renamed in, before the folded
    # ones went: every failure is in two files.
    (folder / "compacted-0011223344556677.jsonl").write_bytes(
        b"".join(p.read_bytes() for p in sealed)
    )
    forget_open()

    @stet.once(store=store, name="run", quiet=True, retry=2)
    def run(key: str) -> None:
        ran.append(key)

    ran: list[str] = []
    grid = [{"key": f"bad-n{n}-{i}"} for n in (1, 2) for i in range(2)]
    assert stet.progress(run, grid).failed == 4
    run("bad-n1-0")  # failed once (not twice): retry=2 runs it again, and it succeeds
    assert ran == ["bad-n1-0"]
    stet.compact(store)
    assert sorted(p.name.startswith("compacted-") for p in folder.iterdir()) == [True]
    assert len(failures_of(store)) == 4  # the success forgets nothing...
    forget_open()
    progress = stet.progress(run, grid)
    assert (progress.done, progress.failed) == (1, 3)  # ...but the key is done


def test_a_fold_that_cannot_be_written_removes_no_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = str(tmp_path / "runs.stetdir")
    subprocess.run(worker(tmp_path, store, "tasks", "n1,n2", "2", "1"), check=True)
    before = failures_of(store)
    names = sorted(os.listdir(Path(store, "failures")))

    def full(path: str, data: bytes, *, exclusive: bool = True) -> None:
        Path(path).write_bytes(data[: len(data) // 2])  # part of it, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_shared_failures, "write_file", full)
    with pytest.raises(stet.StoreError, match="no failure was removed"):
        stet.compact(store)
    assert sorted(os.listdir(Path(store, "failures"))) == names
    assert not os.listdir(Path(store, "tmp"))
    assert failures_of(store) == before


def test_a_failure_forgotten_while_a_compaction_folds_it_stays_forgotten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Else retry= counts it again and skips a run the user asked to retry."""
    store = str(tmp_path / "runs.stetdir")
    subprocess.run(worker(tmp_path, store, "tasks", "n1,n2", "1", "1"), check=True)
    forget_open()
    other = open_store(store)  # another process's handle, as `stet forget` has
    assert isinstance(other, FailingStore)
    forget = threading.Thread(
        target=lambda: counts.append(other.forget_failures(lambda f: f.values[0] == "bad-n1-0"))
    )
    counts: list[int] = []
    waiting = threading.Event()  # the forget waits for the compaction, or is done
    enter = _shared_claims.FolderLock.__enter__

    def enter_lock(lock: _shared_claims.FolderLock) -> None:
        if threading.current_thread() is forget:
            waiting.set()
        enter(lock)

    read_log = _failures.read_log

    def read_then_forget(path: str) -> list[Failure]:
        found = read_log(path)
        if not forget.is_alive() and not counts:
            forget.start()
            waiting.wait()
        return found

    def forget_done() -> None:
        original()
        waiting.set()

    original = forget.run
    monkeypatch.setattr(forget, "run", forget_done)
    monkeypatch.setattr(_shared_claims.FolderLock, "__enter__", enter_lock)
    monkeypatch.setattr(_shared_failures, "read_log", read_then_forget)
    forget_open()
    stet.compact(store)
    forget.join()
    assert counts == [1]
    assert failures_of(store) == [("bad-n2-0", 1)]


def test_a_failure_file_this_process_still_appends_to_is_not_folded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A compaction run from a sweep's process (another thread, another handle
    of the store) loses none of the failures that sweep records meanwhile."""
    store = str(tmp_path / "runs.stetdir")
    subprocess.run(worker(tmp_path, store, "tasks", "n1,n2", "1", "1"), check=True)
    forget_open()
    sweep = open_store(store)  # the sweep's handle, appending to its own file
    assert isinstance(sweep, FailingStore)
    sweep.add_failure(Failure("run", ("key",), ("bad-live-0",), "ValueError", "x"))
    lines = _failures.failure_lines

    def fail_again_then_write(failures: Iterable[Failure]) -> bytes:
        # The sweep fails once more after the fold has read every file.
        sweep.add_failure(Failure("run", ("key",), ("bad-live-1",), "ValueError", "x"))
        return lines(failures)

    monkeypatch.setattr(_shared_failures, "failure_lines", fail_again_then_write)
    forget_open()
    stet.compact(store)
    assert [k for k, _ in failures_of(store)] == [
        "bad-live-0",
        "bad-live-1",
        "bad-n1-0",
        "bad-n2-0",
    ]


def test_a_reader_that_listed_the_files_before_a_fold_still_counts_their_failures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fold between a reader's listing and its reads removes the files it
    listed: their failures are in the folded file, so it lists again (else
    retry= would run a key once more than asked, and progress miss failures)."""
    store = str(tmp_path / "runs.stetdir")
    subprocess.run(worker(tmp_path, store, "tasks", "n1,n2", "1", "1"), check=True)
    forget_open()
    reader = open_store(store)
    assert isinstance(reader, FailingStore)
    files = _failures.FailureLog._files

    def listed_then_folded(log: _failures.FailureLog) -> list[str]:
        listed = files(log)
        if not folded:
            folded.append(True)
            forget_open()
            stet.compact(store)
        return listed

    folded: list[bool] = []
    monkeypatch.setattr(_failures.FailureLog, "_files", listed_then_folded)
    assert sorted(f.values[0] for f in reader.failures()) == ["bad-n1-0", "bad-n2-0"]
    assert folded == [True]

"""A writer killed at any instant leaves a store that loads and holds every
record whose call had returned."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import stet
from stet.backends import ParquetBackend, SqliteBackend, StoreBackend, get_backend
from stet.backends._parquet import _ParquetFormat

from .conftest import kind, soak

if TYPE_CHECKING:
    from typing_extensions import Buffer

#: SIGKILLs per store; full size 100 (STET_SOAK=1).
KILLS = soak(30, 100)


def _writer(store: str, start: int, pipe_fd: int) -> None:
    """Record keys start, start+1, ... and report each after its call returned."""
    stet.backends.forget_open()

    @stet.once(store=store, quiet=True, name="work")
    def work(x: int) -> int:
        return x

    x = start
    while True:
        work(x)
        os.write(pipe_fd, f"{x}\n".encode())
        x += 1


def _first_line(pipe: BinaryIO) -> bytes:
    """Read up to the first line break (the writer's first report), or EOF."""
    data = b""
    while not data.endswith(b"\n"):
        byte = pipe.read(1)
        if not byte:
            break
        data += byte
    return data


@pytest.mark.soak
def test_sigkill_at_random_instants_loses_no_returned_record(
    store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    context = multiprocessing.get_context("fork")
    rng = random.Random(1234)
    returned: set[int] = set()
    next_key = 0
    for round_ in range(KILLS):
        read_fd, write_fd = os.pipe()
        child = context.Process(target=_writer, args=(store, next_key, write_fd))
        child.start()
        os.close(write_fd)
        with os.fdopen(read_fd, "rb", buffering=0) as pipe:
            # Kill while it writes, however slow the machine: after its first
            # returned call (forking and opening the store can take longer
            # than any pause), at a random instant; one round in five from
            # the start, to kill it while it opens or creates the store.
            first = _first_line(pipe) if round_ % 5 else b""
            time.sleep(rng.uniform(0.0, 0.03))
            assert child.pid is not None
            os.kill(child.pid, signal.SIGKILL)
            child.join()
            done = [int(line) for line in (first + pipe.read()).split()]
        returned.update(done)
        next_key = max(done, default=next_key) + 1000  # fresh keys each round
    fresh = type(get_backend(store))(store)
    recorded = {r["x"] for r in fresh.load()}
    missing = returned - recorded
    assert not missing, f"{len(missing)} returned calls have no record"
    with capsys.disabled():
        print(
            f"\n  {kind(store)}: {KILLS} SIGKILLs, {len(returned)} returned calls, "
            f"{len(recorded)} records, 0 lost"
        )


@pytest.mark.parametrize("ext", ["csv", "json", "parquet"])
@pytest.mark.parametrize("error", ["ENOSPC", "EIO"])
@pytest.mark.parametrize("written", [0, 7])
def test_a_failed_write_reaches_the_caller_and_leaves_a_valid_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ext: str, error: str, written: int
) -> None:
    import errno

    store = str(tmp_path / f"runs.{ext}")
    ran: list[int] = []

    @stet.once(store=store, quiet=True)
    def work(x: int) -> int:
        ran.append(x)
        return x

    work(1)
    work(2)
    real_write, real_pwrite = os.write, os.pwrite

    def failing_write(fd: int, data: bytes | memoryview) -> int:
        real_write(fd, bytes(data[:written]))  # part of the record reaches the file
        raise OSError(getattr(errno, error), os.strerror(getattr(errno, error)))

    def failing_pwrite(fd: int, data: bytes | memoryview, offset: int) -> int:
        real_pwrite(fd, bytes(data[:written]), offset)
        raise OSError(getattr(errno, error), os.strerror(getattr(errno, error)))

    monkeypatch.setattr(os, "write", failing_write)
    monkeypatch.setattr(os, "pwrite", failing_pwrite)
    with pytest.raises(stet.StoreError, match=os.strerror(getattr(errno, error))):
        work(3)
    monkeypatch.setattr(os, "write", real_write)
    monkeypatch.setattr(os, "pwrite", real_pwrite)
    fresh = type(get_backend(store))(store)
    assert fresh.has({"x": 1})
    assert fresh.has({"x": 2})
    assert not fresh.has({"x": 3})  # no partial record is visible
    assert work(3) == 3  # it runs again, and now it is recorded
    assert type(get_backend(store))(store).has({"x": 3})
    assert ran == [1, 2, 3, 3]


@pytest.mark.parametrize("ext", ["csv", "json", "parquet"])
@pytest.mark.parametrize("point", ["fsync", "replace"])
def test_a_failed_rewrite_leaves_the_old_store_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ext: str, point: str
) -> None:
    """Removing records rewrites the store through a temporary file: an I/O
    error while flushing it or renaming it over the store changes nothing."""
    import errno

    path = tmp_path / f"runs.{ext}"
    table = get_backend(path)
    for x in range(5):
        table.record({"x": x}, function="f")
    table.flush()
    before = path.read_bytes()

    def failing(*args: object) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, point, failing)
    with pytest.raises(stet.StoreError, match=os.strerror(errno.EIO)):
        table.remove({"x": 3}, function="f")
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert not list(tmp_path.glob("*.tmp"))  # the temporary file is cleaned up
    fresh = type(table)(path)
    assert all(fresh.has({"x": x}, function="f") for x in range(5))
    assert fresh.remove({"x": 3}, function="f") == 1  # and it works afterwards


def test_a_full_sqlite_database_refuses_the_whole_batch(tmp_path: Path) -> None:
    """SQLite reports a full disk (here: a page limit) inside the transaction;
    none of the batch becomes visible and earlier records stay."""
    path = tmp_path / "runs.sqlite"
    table = get_backend(path)
    table.record({"x": -1}, function="f")
    # The page limit is per connection: set it on the store's own (no public seam
    # makes a disk full).
    conn = table.store._format._db.connect()  # type: ignore[attr-defined]
    (pages,) = conn.execute("PRAGMA page_count").fetchone()
    conn.execute(f"PRAGMA max_page_count = {pages}")
    batch = [(str(x),) for x in range(5_000)]
    with pytest.raises(stet.StoreError, match="full"):
        table.store.add("f", ("x",), batch)
    fresh = type(table)(path)
    assert fresh.has({"x": -1}, function="f")
    assert len(fresh.load()) == 1
    conn.execute("PRAGMA max_page_count = 1073741823")
    assert table.store.add("f", ("x",), batch) == 5_000
    assert len(type(table)(path).load()) == 5_001


def test_a_fold_killed_before_deleting_its_journal_repeats_no_record(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The Parquet store's journal, once folded in, is deleted; a writer killed
    between the two steps leaves it behind, and it must not count twice."""
    store = "runs.parquet"
    table = ParquetBackend(store)
    for x in range(5):
        table.record({"x": x}, function="f")
    with monkeypatch.context() as m:
        m.setattr(_ParquetFormat, "_drop_journal", lambda self: None)  # killed there
        table.flush()
    assert os.path.exists(store + ".journal.csv")
    assert Counter(r["x"] for r in ParquetBackend(store).load()) == Counter(range(5))
    writer = ParquetBackend(store)
    writer.record({"x": 5}, function="f")  # finishes the fold, then journals x=5
    assert Counter(r["x"] for r in ParquetBackend(store).load()) == Counter(range(6))
    writer.flush()
    assert sorted(pd.read_parquet(store)["x"].astype(int)) == list(range(6))


def test_a_new_journal_like_the_folded_one_is_still_read() -> None:
    """A new journal may get the folded one's inode number, and rows of equal
    length give it the same size: it must not be taken for the leftover."""
    store = "runs.parquet"
    table = ParquetBackend(store)
    table.record({"x": 0}, function="f")
    for x in range(10, 20):
        table.record({"x": x}, function="f")
    table.flush()
    for x in range(20, 30):  # as many rows, as long: the same journal size
        table.record({"x": x}, function="f")
    # Make the file's mark name the new journal's device, inode and size, as
    # when the inode number is reused; only the content digest still differs.
    folded = pq.read_table(store)
    old = folded.schema.metadata[b"stet.folded_journal"].decode().split(":")
    st = os.stat(store + ".journal.csv")
    assert st.st_size == int(old[2])
    mark = f"{st.st_dev}:{st.st_ino}:{st.st_size}:{old[3]}".encode()
    pq.write_table(folded.replace_schema_metadata({b"stet.folded_journal": mark}), store)
    expected = Counter([0, *range(10, 30)])
    assert Counter(r["x"] for r in ParquetBackend(store).load()) == expected


# -- a model-based state machine: calls, concurrent calls, kills, torn writes ----


def _record_in_child(cls: type[StoreBackend], path: str, keys: list[int], pipe_fd: int) -> None:
    """Record keys, reporting each after its call returned."""
    table = cls(path)
    for x in keys:
        table.record({"x": x}, function="f")
        os.write(pipe_fd, f"{x}\n".encode())


def _torn_write_in_child(cls: type[StoreBackend], path: str, key: int, keep: int) -> None:
    """Die by SIGKILL in the middle of writing a record: ``keep`` bytes land."""
    table = cls(path)
    table.store.refresh()
    write = os.write

    def torn(fd: int, data: Buffer) -> int:
        write(fd, bytes(data)[:keep])
        os.kill(os.getpid(), signal.SIGKILL)
        return 0  # never reached

    os.write = torn  # this child only; SQLite writes in C and is not torn
    table.record({"x": key}, function="f")


def _reset_killed_in_child(cls: type[StoreBackend], path: str, at: int) -> None:
    """Reset the store, dying by SIGKILL just before removing its ``at``-th file."""
    unlink = os.unlink
    removed = 0

    def dying(target: str, *args: Any, **kwargs: Any) -> None:
        nonlocal removed
        if removed == at:
            os.kill(os.getpid(), signal.SIGKILL)
        removed += 1
        unlink(target, *args, **kwargs)

    os.unlink = dying  # type: ignore[assignment]  # this child only
    cls(path).clear()


class CrashMachine(RuleBasedStateMachine):
    """What a store must hold after calls, concurrent calls, kills and torn writes.

    The model: keys whose call returned must be present; keys of a call that
    was killed may or may not be; nothing else may be.
    """

    extension = "csv"

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.TemporaryDirectory()
        self.path = str(Path(self.dir.name) / f"m.{self.extension}")
        self.cls = type(get_backend(self.path))
        self.table = self.cls(self.path)
        self.sure: set[int] = set()
        self.maybe: set[int] = set()
        self.fresh = 1000  # keys never used before, for killed writers
        self.context = multiprocessing.get_context("fork")

    def teardown(self) -> None:
        self.dir.cleanup()

    def _new_keys(self, n: int) -> list[int]:
        keys = list(range(self.fresh, self.fresh + n))
        self.fresh += n
        return keys

    @rule(x=st.integers(0, 40))
    def call(self, x: int) -> None:
        self.table.record({"x": x}, function="f")
        self.sure.add(x)

    @rule(keys=st.lists(st.integers(0, 40), max_size=20))
    def concurrent_call(self, keys: list[int]) -> None:
        read_fd, write_fd = os.pipe()
        child = self.context.Process(
            target=_record_in_child, args=(self.cls, self.path, keys, write_fd)
        )
        child.start()
        os.close(write_fd)
        for x in keys[: len(keys) // 2]:  # the parent records some at the same time
            self.table.record({"x": x}, function="f")
        child.join()
        with os.fdopen(read_fd) as pipe:
            assert sorted(int(x) for x in pipe.read().split()) == sorted(keys)
        assert child.exitcode == 0
        self.sure.update(keys)

    @rule(pause=st.floats(0, 0.02))
    def kill(self, pause: float) -> None:
        keys = self._new_keys(10_000)
        read_fd, write_fd = os.pipe()
        child = self.context.Process(
            target=_record_in_child, args=(self.cls, self.path, keys, write_fd)
        )
        child.start()
        os.close(write_fd)
        time.sleep(pause)
        assert child.pid is not None
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        with os.fdopen(read_fd) as pipe:
            returned = {int(x) for x in pipe.read().split()}
        self.sure.update(returned)
        self.maybe.update(k for k in keys if k not in returned)

    @rule(keep=st.integers(1, 60))
    def torn_write(self, keep: int) -> None:
        (key,) = self._new_keys(1)
        child = self.context.Process(
            target=_torn_write_in_child, args=(self.cls, self.path, key, keep)
        )
        child.start()
        child.join()
        self.maybe.add(key)

    @rule()
    def reopen(self) -> None:
        self.table = self.cls(self.path)

    @rule()
    def reset(self) -> None:
        self.table.clear()
        self.sure.clear()
        self.maybe.clear()

    @rule(at=st.integers(0, 2))
    def killed_reset(self, at: int) -> None:
        """A reset killed midway took effect or did not; what it removed never comes back."""
        child = self.context.Process(target=_reset_killed_in_child, args=(self.cls, self.path, at))
        child.start()
        child.join()
        if not self.cls(self.path).load():  # it took effect
            self.sure.clear()
            self.maybe.clear()

    @invariant()
    def holds_what_returned_and_nothing_else(self) -> None:
        if not os.path.exists(self.path):
            assert not self.sure
            return
        present = {int(r["x"]) for r in self.cls(self.path).load()}  # type: ignore[call-overload]
        missing = self.sure - present
        assert not missing, f"returned calls without a record: {sorted(missing)[:10]}"
        extra = present - self.sure - self.maybe
        assert not extra, f"records of calls never made: {sorted(extra)[:10]}"
        assert all(self.table.has({"x": x}, function="f") for x in self.sure)


class CrashCsv(CrashMachine):
    extension = "csv"


class CrashJson(CrashMachine):
    extension = "json"


class CrashSqlite(CrashMachine):
    extension = "sqlite"


class CrashParquet(CrashMachine):
    extension = "parquet"


#: Each step may fork; a few examples of a dozen steps cover the mixes
#: (full size 15 examples, STET_SOAK=1). Kills make runs differ in timing, so a
#: failure is reported as found, without shrinking (which would not replay).
CRASH_SETTINGS = settings(
    max_examples=soak(6, 15),
    stateful_step_count=12,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
TestCrashCsv = CrashCsv.TestCase
TestCrashJson = CrashJson.TestCase
TestCrashSqlite = CrashSqlite.TestCase
TestCrashParquet = CrashParquet.TestCase
for _case in (TestCrashCsv, TestCrashJson, TestCrashSqlite, TestCrashParquet):
    _case.settings = CRASH_SETTINGS
    pytest.mark.soak(_case)
del _case  # else pytest collects the last machine a second time, as "_case"


def test_a_forked_child_inherits_no_open_sqlite_database(tmp_path: Path) -> None:
    """A child that inherits a SQLite connection (even only to close it) can
    corrupt the shared WAL index; stet closes its connections before a fork."""
    path = tmp_path / "runs.sqlite"
    table = get_backend(path)
    table.record({"x": 1}, function="f")  # the connection is open now
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: which files does it hold open?
        held = []
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):
                held.append(os.readlink(f"/proc/self/fd/{fd}"))
        os.write(write_fd, "\n".join(held).encode())
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:  # read first: a long list fills the pipe
        held = pipe.read().split("\n")
    os.waitpid(pid, 0)
    assert not [f for f in held if f.startswith(str(path))], held
    table.record({"x": 2}, function="f")  # the parent reconnects
    assert table.has({"x": 1}, function="f")
    assert table.has({"x": 2}, function="f")


def _sqlite_in_use(path: Path) -> bool:
    """True if some process holds SQLite's shared lock on the database file."""
    probe = (
        "import fcntl, os, sys\n"
        f"fd = os.open({str(path)!r}, os.O_RDWR)\n"
        "try:\n"
        "    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 510, 0x40000002)\n"
        "except OSError:\n"
        "    sys.exit(0)\n"
        "sys.exit(1)\n"
    )
    return subprocess.run([sys.executable, "-c", probe], check=False).returncode == 0


def test_opening_a_sqlite_store_again_keeps_the_first_connections_locks(tmp_path: Path) -> None:
    """Closing any descriptor of a database drops all of the process's locks
    on it; another process may then reset the write-ahead log under the open
    connection, and committed records vanish. stet never opens the file itself."""
    path = tmp_path / "runs.sqlite"
    first = SqliteBackend(path)
    first.record({"x": 1}, function="f")
    assert _sqlite_in_use(path)
    second = SqliteBackend(path)
    assert second.has({"x": 1}, function="f")
    assert _sqlite_in_use(path), "opening the store again dropped the first one's locks"
    assert first.has({"x": 1}, function="f")

"""A writer killed at any instant leaves a store that loads and holds every
record whose call had returned."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

import stet
from stet.backends import ParquetBackend, get_backend
from stet.backends._parquet import _ParquetFormat

KILLS = int(os.environ.get("STET_TEST_KILLS", "100"))


def _writer(store: str, start: int, pipe_fd: int) -> None:
    """Record keys start, start+1, ... and report each after its call returned."""
    stet.backends._open.clear()

    @stet.once(store=store, quiet=True, name="work")
    def work(x: int) -> int:
        return x

    x = start
    while True:
        work(x)
        os.write(pipe_fd, f"{x}\n".encode())
        x += 1


def test_sigkill_at_random_instants_loses_no_returned_record(
    store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    context = multiprocessing.get_context("fork")
    rng = random.Random(1234)
    returned: set[int] = set()
    next_key = 0
    for _ in range(KILLS):
        read_fd, write_fd = os.pipe()
        child = context.Process(target=_writer, args=(store, next_key, write_fd))
        child.start()
        os.close(write_fd)
        time.sleep(rng.uniform(0.0, 0.03))
        assert child.pid is not None
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        with os.fdopen(read_fd) as pipe:
            done = [int(line) for line in pipe.read().split()]
        returned.update(done)
        next_key = max(done, default=next_key) + 1000  # fresh keys each round
    fresh = type(get_backend(store))(store)
    recorded = {r["x"] for r in fresh.load()}
    missing = returned - recorded
    assert not missing, f"{len(missing)} returned calls have no record"
    with capsys.disabled():
        print(
            f"\n  {Path(store).suffix[1:]}: {KILLS} SIGKILLs, {len(returned)} returned calls, "
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
    real_write = os.write

    def failing_write(fd: int, data: bytes | memoryview) -> int:
        real_write(fd, bytes(data[:written]))  # part of the record reaches the file
        raise OSError(getattr(errno, error), os.strerror(getattr(errno, error)))

    monkeypatch.setattr(os, "write", failing_write)
    with pytest.raises(stet.StoreError, match=os.strerror(getattr(errno, error))):
        work(3)
    monkeypatch.setattr(os, "write", real_write)
    fresh = type(get_backend(store))(store)
    assert fresh.has({"x": 1})
    assert fresh.has({"x": 2})
    assert not fresh.has({"x": 3})  # no partial record is visible
    assert work(3) == 3  # it runs again, and now it is recorded
    assert type(get_backend(store))(store).has({"x": 3})
    assert ran == [1, 2, 3, 3]


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

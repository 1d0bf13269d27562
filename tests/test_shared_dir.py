"""The shared-directory store (``*.stetdir``): one store for many machines, with no locks."""

from __future__ import annotations

import errno
import glob
import logging
import multiprocessing
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
import types
from collections import Counter
from pathlib import Path

import attrs
import pandas as pd
import pyarrow.csv as pa_csv
import pyarrow.dataset as ds
import pytest

import stet
from stet.backends import _shared_dir as shared_dir
from stet.backends import _shared_writer as shared_writer
from stet.backends import new_store, open_store
from stet.backends._claims import Claim
from stet.backends._shared_claims import ClaimFiles
from stet.backends._shared_dir import SMALL, SharedDirStore
from stet.backends._shared_files import this_host
from stet.typing import ClaimingStore

from .fake_clock import FakeClock
from .fuse_mount import FuseMount, Mounts
from .test_claims import executions, wait_for
from .test_claims import (
    test_identical_workers_split_a_grid_each_key_executed_once as split_case,
)
from .test_claims import (
    test_keys_of_killed_and_stopped_workers_are_reclaimed_and_completed_once as killed_case,
)

WRITER = Path(__file__).with_name("shared_dir_worker.py")
KEY = ("key",)


def opened(path: str | Path, clock: FakeClock | None = None) -> SharedDirStore:
    """The store as another process opens it."""
    store = new_store(path, clock=clock) if clock is not None else new_store(path)
    assert isinstance(store, SharedDirStore)
    return store


def record_lines(path: str | Path) -> Counter[str]:
    """Every record line of every file in records/, by key (duplicates counted)."""
    lines: Counter[str] = Counter()
    for name in glob.glob(os.path.join(path, "records", "*.csv")):
        frame = pd.read_csv(name, dtype=str)
        lines.update(frame["key"])
    return lines


def start(hosts: str, *args: str) -> subprocess.Popen[str]:
    """shared_dir_worker.py on these hosts (comma-separated): one process, forked per host."""
    return subprocess.Popen(
        [sys.executable, str(WRITER), hosts, *args], text=True, stdout=subprocess.PIPE
    )


def read_keys(proc: subprocess.Popen[str], at_least: int) -> list[int]:
    """Keys a writer printed (its calls returned), once it printed ``at_least``."""
    assert proc.stdout is not None
    keys: list[int] = []
    while len(keys) < at_least:
        line = proc.stdout.readline()
        assert line, "the writer stopped early"
        keys.append(int(line))
    return keys


# -- using it -------------------------------------------------------------------


def test_a_stetdir_store_is_made_on_first_use_and_skips_what_finished(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ran = []

    @stet.once(store="runs.stetdir")
    def train(lr: float, seed: int) -> None:
        ran.append((lr, seed))

    assert not (tmp_path / "runs.stetdir").exists()
    train(0.1, 1)
    train(0.1, 2)
    stet.testing.fresh_process()
    train(0.1, 1)
    assert ran == [(0.1, 1), (0.1, 2)]
    assert "[stet] Skipping train(lr=0.1, seed=1)" in capsys.readouterr().out
    assert sorted(os.listdir(tmp_path / "runs.stetdir")) == ["claims", "records", "tmp"]
    frame = stet.read("runs.stetdir")
    assert sorted(frame["seed"]) == [1, 2]


def test_the_finished_runs_read_as_one_table_with_pandas_and_pyarrow(tmp_path: Path) -> None:
    @stet.once(store="runs.stetdir", quiet=True)
    def train(lr: float, seed: int) -> None: ...

    train(0.1, 1)
    open_store("runs.stetdir").flush()  # sealed, as at exit: the next record starts a file
    train(0.2, 2)

    @stet.once(store="runs.stetdir", quiet=True)
    def claimed(seed: int) -> None: ...

    stet.once(store="runs.stetdir", claim=True, quiet=True)(claimed)(seed=3)
    files = glob.glob("runs.stetdir/records/*.csv")
    assert len(files) == 2
    frame = pd.concat(pd.read_csv(f, dtype=str) for f in files)
    assert sorted(frame["seed"]) == ["1", "2", "3"]
    table = ds.dataset(
        "runs.stetdir/records",
        format=ds.CsvFileFormat(convert_options=pa_csv.ConvertOptions(strings_can_be_null=True)),
    ).to_table()
    assert sorted(table.column("seed").to_pylist(), key=str) == [1, 2, 3]


def test_files_are_shared_with_the_group_as_the_umask_allows(tmp_path: Path) -> None:
    old = os.umask(0o002)
    try:

        @stet.once(store="runs.stetdir", claim=True, quiet=True)
        def train(seed: int) -> None:
            claim_files = os.listdir("runs.stetdir/claims")
            assert claim_files
            mode = os.stat(os.path.join("runs.stetdir/claims", claim_files[0])).st_mode
            assert stat.S_IMODE(mode) == 0o664

        train(1)
    finally:
        os.umask(old)
    for folder in ("runs.stetdir", "runs.stetdir/records", "runs.stetdir/claims"):
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o775
    (record_file,) = glob.glob("runs.stetdir/records/*.csv")
    assert stat.S_IMODE(os.stat(record_file).st_mode) == 0o664


def identity(x: int) -> int:
    return x


def test_a_file_or_a_foreign_folder_named_stetdir_is_refused(tmp_path: Path) -> None:
    Path("file.stetdir").write_text("a,b\n")
    with pytest.raises(stet.StoreError, match="is not a folder"):
        stet.once(store="file.stetdir")(identity)(1)
    (tmp_path / "photos.stetdir").mkdir()
    (tmp_path / "photos.stetdir" / "cat.jpg").write_bytes(b"\xff")
    with pytest.raises(stet.StoreError, match="not a shared-directory store"):
        stet.once(store="photos.stetdir")(identity)(1)
    assert os.listdir(tmp_path / "photos.stetdir") == ["cat.jpg"]


def test_a_symlink_to_the_folder_is_the_same_store(tmp_path: Path) -> None:
    (tmp_path / "real.stetdir").mkdir()
    (tmp_path / "link.stetdir").symlink_to(tmp_path / "real.stetdir")
    calls = []

    def run(seed: int) -> None:
        calls.append(seed)

    stet.once(store="link.stetdir", quiet=True)(run)(1)
    stet.testing.fresh_process()
    stet.once(store="real.stetdir", quiet=True)(run)(1)
    assert calls == [1]


# -- readers ---------------------------------------------------------------------


def test_a_reader_sees_another_writers_new_records_and_waits_for_a_half_written_line(
    tmp_path: Path,
) -> None:
    writer, reader = opened("runs.stetdir"), opened("runs.stetdir")
    writer.add("work", KEY, [("1",)])
    assert reader.is_done("work", KEY, "1")
    (path,) = glob.glob("runs.stetdir/records/*.csv")
    line = Path(path).read_bytes().splitlines()[-1].replace(b"1", b"2", 1)
    with open(path, "ab") as file:
        file.write(line[:5])  # a writer stopped mid-record
    assert not reader.is_done("work", KEY, "2")
    assert len(opened("runs.stetdir").records()) == 1
    with open(path, "ab") as file:
        file.write(line[5:] + b"\n")
    assert reader.is_done("work", KEY, "2")


def test_a_file_that_shrank_or_was_replaced_is_read_again(tmp_path: Path) -> None:
    writer, reader = opened("runs.stetdir"), opened("runs.stetdir")
    writer.add("work", KEY, [("1",), ("2",)])
    assert reader.is_done("work", KEY, "2")
    (path,) = glob.glob("runs.stetdir/records/*.csv")
    lines = Path(path).read_bytes().splitlines(keepends=True)
    Path(path + ".new").write_bytes(lines[0] + lines[1].replace(b"1", b"3", 1))
    os.replace(path + ".new", path)  # someone rewrote it: 1 and 2 gone, 3 in
    assert reader.is_done("work", KEY, "3")
    assert not reader.is_done("work", KEY, "2")


def test_a_miss_does_not_list_a_big_store_at_every_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    many_files("runs.stetdir")
    reader = opened("runs.stetdir")
    assert reader.is_done("work", KEY, "old-0")
    listings = []
    real_list = SharedDirStore._list

    def counting(self: SharedDirStore) -> list[str]:
        listings.append(1)
        return real_list(self)

    frozen = types.SimpleNamespace(monotonic=lambda: 1e9)
    monkeypatch.setattr(SharedDirStore, "_list", counting)
    monkeypatch.setattr(shared_dir, "time", frozen)
    for miss in range(100):
        assert not reader.is_done("work", KEY, f"missing-{miss}")
    assert len(listings) == 1  # the first miss lists; the others wait LISTING_INTERVAL
    # A refresh (status, or a won claim) always looks.
    opened("runs.stetdir").add("work", KEY, [("new",)])
    reader.refresh()
    assert reader.is_done("work", KEY, "new")


def test_damaged_files_are_store_errors_naming_them(tmp_path: Path) -> None:
    writer = opened("runs.stetdir")
    writer.add("work", KEY, [("1",)])
    garbage = tmp_path / "runs.stetdir" / "records" / "garbage.csv"
    garbage.write_bytes(b"no header line")
    with pytest.raises(stet.StoreError, match=r"garbage\.csv.*no complete header"):
        opened("runs.stetdir").is_done("work", KEY, "2")
    garbage.write_bytes(b"name,colour\nx,y\n")
    with pytest.raises(stet.StoreError, match=r"garbage\.csv.*_stet_timestamp"):
        opened("runs.stetdir").records()
    garbage.write_bytes(b'key,_stet_timestamp\n"1,2026\n2,2026\n')
    with pytest.raises(stet.StoreError, match=r"garbage\.csv.*quote"):
        opened("runs.stetdir").refresh()
    garbage.unlink()
    claim_file = writer._claims.path_of(("work", KEY, ("5",)))
    os.makedirs(os.path.dirname(claim_file), exist_ok=True)
    Path(claim_file).write_text("{not json")
    with pytest.raises(stet.StoreError, match=r"\.claim.*not a claim written by stet"):
        opened("runs.stetdir").claim("work", KEY, ("5",), 60.0, owner="me")


# -- many writers, many machines -------------------------------------------------


def test_writers_on_several_hosts_each_keep_a_file_and_every_record_is_read(
    tmp_path: Path,
) -> None:
    proc = start("node0,node1,node2", "write", "runs.stetdir", "0", "30")
    proc.communicate()
    assert proc.returncode == 0
    names = sorted(os.listdir("runs.stetdir/records"))
    assert [n.split("-")[0] for n in names] == ["node0", "node1", "node2"]
    assert all(n.endswith(".sealed.csv") for n in names)  # sealed at exit
    frame = stet.read("runs.stetdir")
    assert sorted(frame["key"]) == [1000 * n + k for n in range(3) for k in range(30)]
    assert set(frame["_stet_host"]) == {"node0", "node1", "node2"}


def test_claimed_workers_on_several_hosts_run_and_record_each_key_once(
    tmp_path: Path,
) -> None:
    keys, log = 60, tmp_path / "executions.log"
    proc = start("node0,node1,node2,node3", "sweep", "runs.stetdir", str(keys), "10", str(log))
    proc.communicate()
    assert proc.returncode == 0
    ran = Counter(key for _, key, _ in executions(log))
    assert ran == Counter(range(keys)), "some key ran twice or never"
    assert record_lines("runs.stetdir") == Counter(str(k) for k in range(keys))
    assert opened("runs.stetdir").claims() == {}
    assert os.listdir("runs.stetdir/claims") == []  # finished keys leave no file


def test_a_writer_killed_at_any_instant_loses_no_record_whose_call_returned(
    tmp_path: Path,
) -> None:
    proc = start("node0", "write", "runs.stetdir", "0", "1000000")
    returned = read_keys(proc, 40)
    proc.send_signal(signal.SIGKILL)
    rest, _ = proc.communicate()
    returned += [int(k) for k in rest.split()]
    store = opened("runs.stetdir")
    assert all(store.is_done("work", KEY, str(k)) for k in returned)
    # The next writer goes on beside it; the killed one's file (unsealed) is still read.
    store.add("work", KEY, [("-1",)])
    assert len(opened("runs.stetdir").records()) >= len(returned) + 1


# -- claims ----------------------------------------------------------------------


def test_a_claim_expires_by_the_server_clock_and_a_renewal_keeps_it(tmp_path: Path) -> None:
    clock = FakeClock()
    a, b = opened("runs.stetdir", clock), opened("runs.stetdir", clock)
    state, claim = a.claim("work", KEY, ("1",), 60.0, owner="a")
    assert state == "claimed"
    assert claim is not None
    assert b.claim("work", KEY, ("1",), 60.0, owner="b")[0] == "busy"
    clock.step_wall(3600)  # a node's wall clock is not the server's
    assert b.claim("work", KEY, ("1",), 60.0, owner="b")[0] == "busy"
    clock.advance(40)
    a.renew([claim])
    clock.advance(40)  # 80 s after the claim, 40 s after its renewal
    assert b.claim("work", KEY, ("1",), 60.0, owner="b")[0] == "busy"
    clock.advance(21)
    state, taken = b.claim("work", KEY, ("1",), 60.0, owner="b")
    assert state == "claimed"
    assert taken is not None
    assert taken.epoch == 2
    # Fencing: the first owner wakes up; its run is not recorded.
    assert not a.complete(claim)
    assert not opened("runs.stetdir").is_done("work", KEY, "1")
    assert b.complete(taken)
    assert opened("runs.stetdir").is_done("work", KEY, "1")
    assert b.claims() == {}


def test_a_claim_judged_by_file_times_not_by_this_machines_clock(tmp_path: Path) -> None:
    store = opened("runs.stetdir")
    state, claim = store.claim("work", KEY, ("1",), 60.0, owner="dead")
    assert state == "claimed"
    assert claim is not None
    path = store._claims.path_of(claim.id)
    (listed,) = store.claims().values()
    assert listed.live(time.time())
    old = os.stat(path).st_mtime - 61
    os.utime(path, (old, old))  # last renewed 61 s ago, as the server saw it
    (listed,) = opened("runs.stetdir").claims().values()
    assert not listed.live(time.time())
    assert opened("runs.stetdir").claim("work", KEY, ("1",), 60.0, owner="b")[0] == "claimed"


def test_of_workers_racing_for_one_expired_claim_exactly_one_wins(tmp_path: Path) -> None:
    store = opened("runs.stetdir")
    state, claim = store.claim("work", KEY, ("0",), 60.0, owner="dead")
    assert state == "claimed"
    assert claim is not None
    path = store._claims.path_of(claim.id)
    old = os.stat(path).st_mtime - 3600
    os.utime(path, (old, old))
    gate = tmp_path / "go"
    proc = start(",".join(f"node{n}" for n in range(8)), "claim", "runs.stetdir", str(gate))
    gate.write_text("")
    states = Counter(proc.communicate()[0].split())
    assert states == Counter({"claimed": 1, "busy": 7})
    (current,) = opened("runs.stetdir").claims().values()
    assert current.owner.startswith("node")
    # Usually a takeover (epoch 2); a taker moves the expired claim aside
    # before linking its own in, and a racer that finds the name free in that
    # instant makes a new claim (epoch 1). Either way one worker holds it, and
    # the dead owner's completion is fenced by its owner name.
    assert current.epoch in (1, 2)


def many_files(path: str, count: int = SMALL + 1) -> None:
    """A store with ``count`` sealed files, as left by as many finished tasks."""
    for number in range(count):
        store = opened(path)
        store.add("work", KEY, [(f"old-{number}",)])
        store.flush()


def test_a_record_written_elsewhere_makes_a_won_claim_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The claim file is the authority: a node that had not yet seen the record reads it."""
    many_files("runs.stetdir")
    monkeypatch.setattr(shared_dir, "time", types.SimpleNamespace(monotonic=lambda: 1e9))
    late = opened("runs.stetdir")
    assert not late.is_done("work", KEY, "1")
    finisher = opened("runs.stetdir")
    state, claim = finisher.claim("work", KEY, ("1",), 60.0, owner="f")
    assert state == "claimed"
    assert claim is not None
    assert finisher.complete(claim)
    assert not late.is_done("work", KEY, "1")  # not seen yet: the listing is not due
    assert late.claim("work", KEY, ("1",), 60.0, owner="late") == ("done", None)
    assert os.listdir("runs.stetdir/claims") == []


def test_two_workers_taking_over_one_expired_claim_at_the_same_instant_one_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both judged it expired and both saw it unchanged: the takeover marker decides."""
    store = opened("runs.stetdir")
    state, expired = store.claim("work", KEY, ("0",), 60.0, owner="dead")
    assert state == "claimed"
    assert expired is not None
    path = store._claims.path_of(expired.id)
    arrived = threading.Condition()
    settled = [0]
    here = threading.local()
    real_staged = ClaimFiles._staged

    def settle() -> None:
        with arrived:
            if not getattr(here, "settled", False):
                here.settled = True
                settled[0] += 1
                arrived.notify_all()

    def staged(self: ClaimFiles, claim: Claim) -> str:
        settle()
        with arrived:  # replace only once the other worker got this far, or gave up
            arrived.wait_for(lambda: settled[0] >= 2)
        return real_staged(self, claim)

    monkeypatch.setattr(ClaimFiles, "_staged", staged)
    won: list[bool] = []

    def worker(owner: str) -> None:
        mine = attrs.evolve(expired, owner=owner, epoch=2)
        won.append(opened("runs.stetdir")._claims.take_over(path, expired, mine))
        settle()

    threads = [threading.Thread(target=worker, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(won) == [False, True]


def test_a_short_lease_on_a_network_filesystem_is_explained(
    fuse_mount: FuseMount, caplog: pytest.LogCaptureFixture
) -> None:
    store = opened(fuse_mount.path / "runs.stetdir")
    with caplog.at_level(logging.WARNING, logger="stet"):
        store.claim("work", KEY, ("1",), 30.0, owner="me")
    assert "lease of 30 s" in caplog.text
    assert "Once(lease=90)" in caplog.text


# -- compaction, delete ------------------------------------------------------------


def test_compaction_while_a_writer_runs_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STET_HOST", "node0")  # compaction runs on the writers' machine
    start("node0,node0,node0", "write", "runs.stetdir", "0", "10").communicate()  # 3 tasks
    proc = start("node0", "write", "runs.stetdir", "5000", "1000000")
    returned = read_keys(proc, 5)
    for _ in range(3):
        stet.compact("runs.stetdir")
        returned += read_keys(proc, 5)
    names = os.listdir("runs.stetdir/records")
    assert len(names) == 2  # the folded tasks, and the running writer's file
    assert any(n.startswith("node0-") and not n.endswith(".sealed.csv") for n in names)
    proc.send_signal(signal.SIGKILL)
    returned += [int(k) for k in proc.communicate()[0].split()]
    assert stet.compact("runs.stetdir") == 2  # its writer is gone: folded too
    (name,) = os.listdir("runs.stetdir/records")
    assert name.startswith("compacted-")
    keys = record_lines("runs.stetdir")
    assert set(map(str, returned)) <= set(keys)
    assert {str(1000 * n + k) for n in range(3) for k in range(10)} <= set(keys)
    assert max(keys.values()) == 1


def test_a_compaction_killed_before_deleting_leaves_duplicates_counted_once(
    tmp_path: Path,
) -> None:
    store = opened("runs.stetdir")
    store.add("work", KEY, [("1",), ("2",)])
    store.flush()
    (sealed,) = glob.glob("runs.stetdir/records/*.sealed.csv")
    # Killed after the folded file appeared, before the old ones were deleted:
    os.link(sealed, "runs.stetdir/records/compacted-0123.csv")
    assert len(stet.read("runs.stetdir")) == 2
    assert opened("runs.stetdir").compact() == 2
    assert record_lines("runs.stetdir") == Counter({"1": 1, "2": 1})


def test_reset_removes_records_but_not_from_a_running_writer_elsewhere(tmp_path: Path) -> None:
    store = opened("runs.stetdir")
    store.add("work", KEY, [("1",), ("2",)])
    stet.reset("runs.stetdir", {"key": 1}, function="work")
    assert sorted(stet.read("runs.stetdir")["key"]) == [2]
    other = tmp_path / "runs.stetdir" / "records" / "othernode-1-abc.csv"
    other.write_text("key,_stet_function,_stet_timestamp\n2,work,2026-01-01T00:00:00+00:00\n")
    with pytest.raises(stet.StoreError, match=r"may still be appending.*othernode-1-abc\.csv"):
        stet.reset("runs.stetdir", {"key": 2}, function="work")
    with pytest.raises(stet.StoreError, match=r"othernode-1-abc\.csv"):
        stet.reset("runs.stetdir")  # the whole store: refused the same way
    assert sorted(stet.read("runs.stetdir")["key"]) == [2]


# -- a filesystem without flock --------------------------------------------------


def test_through_a_filesystem_without_flock_claimed_workers_record_each_key_once(
    fuse_mount: FuseMount, tmp_path: Path
) -> None:
    store, keys, log = str(fuse_mount.path / "runs.stetdir"), 30, tmp_path / "executions.log"
    proc = start("node0,node1,node2", "sweep", store, str(keys), "120", str(log))
    proc.communicate()
    assert proc.returncode == 0
    assert Counter(key for _, key, _ in executions(log)) == Counter(range(keys))
    assert record_lines(fuse_mount.backing / "runs.stetdir") == Counter(map(str, range(keys)))
    assert stet.compact(store) == 3
    assert len(stet.read(store)) == keys


def test_through_the_test_filesystem_a_reader_sees_another_clients_record(
    fuse_mount: FuseMount,
) -> None:
    mine = opened(fuse_mount.path / "runs.stetdir")
    mine.add("work", KEY, [("1",)])
    other_client = opened(fuse_mount.backing / "runs.stetdir")
    other_client.add("work", KEY, [("2",)])
    other_client.flush()
    wait_for(lambda: mine.is_done("work", KEY, "2"), "the other client's record to appear")
    assert isinstance(mine, ClaimingStore)


# -- what could break it -----------------------------------------------------------


def test_a_fifo_or_a_symlink_in_records_is_an_error_not_a_hang(tmp_path: Path) -> None:
    opened("runs.stetdir").add("work", KEY, [("1",)])
    fifo = tmp_path / "runs.stetdir" / "records" / "planted.csv"
    os.mkfifo(fifo)
    with pytest.raises(stet.StoreError, match=r"planted\.csv.*not a regular file"):
        opened("runs.stetdir").refresh()
    fifo.unlink()
    fifo.symlink_to("/etc/passwd")
    with pytest.raises(stet.StoreError, match=r"planted\.csv.*symbolic link"):
        opened("runs.stetdir").records()


def test_a_record_whose_file_was_deleted_meanwhile_is_written_again(tmp_path: Path) -> None:
    writer = opened("runs.stetdir")
    writer.add("work", KEY, [("1",)])
    (path,) = glob.glob("runs.stetdir/records/*.csv")
    os.unlink(path)  # someone removed it (or compacted it, taking this writer for dead)
    writer.add("work", KEY, [("2",)])
    assert opened("runs.stetdir").is_done("work", KEY, "2")
    shutil.rmtree("runs.stetdir")  # the whole store removed while the sweep runs
    writer.add("work", KEY, [("3",)])
    assert opened("runs.stetdir").is_done("work", KEY, "3")


def test_a_full_disk_is_a_store_error_and_compaction_removes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = opened("runs.stetdir")
    store.add("work", KEY, [("1",)])
    store.flush()
    store.add("work", KEY, [("2",)])
    store.flush()

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as patched:
        patched.setattr(os, "fsync", full)
        with pytest.raises(stet.StoreError, match="No space left"):
            store.add("work", KEY, [("3",)])
    real_write = os.write

    def half(fd: int, data: bytes) -> int:
        real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    store.add("work", KEY, [("4",)])
    with monkeypatch.context() as patched:
        patched.setattr(os, "write", half)
        with pytest.raises(stet.StoreError, match="No space left"):
            store.add("work", KEY, [("5",)])
    store.add("work", KEY, [("6",)])  # space again: not after the half-written record
    assert {r["key"] for r in opened("runs.stetdir").records()} == {"1", "2", "4", "6"}

    def write_full(path: str, data: bytes) -> None:
        Path(path).write_bytes(data[:10])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as patched:
        patched.setattr(shared_writer, "write_file", write_full)
        with pytest.raises(stet.StoreError, match=r"No space left.*nothing was removed"):
            stet.compact("runs.stetdir")
    assert len(glob.glob("runs.stetdir/records/*.csv")) >= 2
    assert os.listdir("runs.stetdir/tmp") == []
    assert {r["key"] for r in opened("runs.stetdir").records()} >= {"1", "2"}


def test_a_forked_child_writes_a_file_of_its_own(tmp_path: Path) -> None:
    store = opened("runs.stetdir")
    store.add("work", KEY, [("parent",)])
    context = multiprocessing.get_context("fork")
    child = context.Process(target=store.add, args=("work", KEY, [("child",)]))
    child.start()
    child.join()
    assert child.exitcode == 0
    store.add("work", KEY, [("parent-again",)])
    assert len(glob.glob("runs.stetdir/records/*.csv")) == 2
    assert record_lines("runs.stetdir") == Counter({"parent": 1, "child": 1, "parent-again": 1})


def test_a_takeover_whose_worker_died_midway_is_finished_by_the_next_after_a_lease(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    store = opened("runs.stetdir", clock)
    state, claim = store.claim("work", KEY, ("1",), 60.0, owner="first")
    assert state == "claimed"
    assert claim is not None
    clock.advance(61)
    # A worker made the takeover marker and was killed before replacing the claim.
    killed = opened("runs.stetdir", clock)._claims
    marker = killed._marker(killed.path_of(claim.id), claim, 0)
    Path(marker).write_bytes(b"")
    killed.server.shift(marker)
    assert opened("runs.stetdir", clock).claim("work", KEY, ("1",), 60.0, owner="b")[0] == "busy"
    clock.advance(61)
    state, taken = opened("runs.stetdir", clock).claim("work", KEY, ("1",), 60.0, owner="c")
    assert state == "claimed"
    assert taken is not None
    assert taken.epoch == 2
    assert opened("runs.stetdir", clock).complete(taken)
    assert os.listdir("runs.stetdir/claims") == []  # markers go with the claim


def test_a_compaction_lock_left_by_a_killed_process_is_taken_over(tmp_path: Path) -> None:
    store = opened("runs.stetdir")
    store.add("work", KEY, [("1",)])
    store.flush()
    lock = Path("runs.stetdir/compaction.claim")
    lock.write_text(Path(glob.glob("runs.stetdir/records/*")[0]).read_text())  # anything
    with pytest.raises(stet.StoreError, match=r"compaction\.claim.*not a claim"):
        stet.compact("runs.stetdir")
    other = opened("runs.stetdir")
    other.add("work", KEY, [("2",)])
    other.flush()
    _, claim = other.claim("work", KEY, ("9",), 60.0, owner="killed-compaction")
    assert claim is not None
    os.replace(other._claims.path_of(claim.id), lock)  # a real lock, left behind
    old = time.time() - 3600
    os.utime(lock, (old, old))
    assert stet.compact("runs.stetdir") == 2
    assert not lock.exists()


def test_compaction_sweeps_what_killed_processes_left_half_made(tmp_path: Path) -> None:
    store = opened("runs.stetdir")
    store.add("work", KEY, [("1",)])
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    pid = int(gone.stdout)
    host = this_host()
    leftovers = [
        Path(f"runs.stetdir/tmp/{host}-{pid}-abc123.csv"),
        Path("runs.stetdir/tmp/compacted-0123abcd.csv"),
        Path(f"runs.stetdir/claims/.new-{host}-{pid}-abc123"),
        Path(f"runs.stetdir/claims/.probe-{host}-{pid}-abc123"),
        Path(f"runs.stetdir/tmp/.probe-{host}-{pid}-abc123"),
        Path(f"runs.stetdir/tmp/{host}-{pid}-abc123.probe"),  # as earlier releases named it
    ]
    alive = Path(f"runs.stetdir/claims/.new-{host}-{os.getpid()}-abc123")
    elsewhere = Path(f"runs.stetdir/claims/.new-othernode-{pid}-abc123")
    for path in [*leftovers, alive, elsewhere]:
        path.write_text("")
    stet.compact("runs.stetdir")
    assert not any(path.exists() for path in leftovers)
    assert alive.exists()
    assert elsewhere.exists()


def test_the_next_writer_removes_the_probes_killed_processes_left(tmp_path: Path) -> None:
    """A probe of a process gone, or an hour old, goes; a live one's, and anything else, stays."""
    opened("runs.stetdir").add("work", KEY, [("1",)])
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    pid, host = int(gone.stdout), this_host()
    tmp = tmp_path / "runs.stetdir" / "tmp"
    target = tmp_path / "precious.txt"
    target.write_text("kept")
    old = tmp / ".probe-othernode-7-abc123"
    left = [tmp / f".probe-{host}-{pid}-abc123", tmp / f"{host}-{pid}-abc123.probe", old]
    kept = [
        tmp / f".probe-{host}-{os.getppid()}-abc123",  # alive: probing right now
        tmp / ".probe-othernode-7-def456",  # another machine's, made just now
        tmp / f"new-{host}-{pid}-abc123.csv",  # not a probe: compaction's to judge
    ]
    for path in [*left, *kept]:
        path.write_text("")
    link = tmp / f".probe-{host}-{pid}-fff000"
    link.symlink_to(target)
    a_day_ago = time.time() - 86400
    os.utime(old, (a_day_ago, a_day_ago))
    assert not opened("runs.stetdir").is_done("work", KEY, "2"), "a miss: the writer probes"
    assert [p.name for p in [*left, link] if os.path.lexists(p)] == []
    assert all(path.exists() for path in kept)
    assert target.read_text() == "kept", "a link is removed, never what it points to"
    assert not [n for n in os.listdir(tmp) if n.startswith(f".probe-{host}-{os.getpid()}-")]


def test_a_big_file_is_read_in_columns_and_still_incrementally(tmp_path: Path) -> None:
    writer = opened("runs.stetdir")
    keys = [(f"{n:07d}-{'x' * 30}",) for n in range(40_000)]  # well over a megabyte
    writer.add("work", KEY, keys)
    (path,) = glob.glob("runs.stetdir/records/*.csv")
    assert os.path.getsize(path) > 1 << 20
    with open(path, "ab") as file:
        file.write(b"half-written,wo")
    reader = opened("runs.stetdir")
    assert all(reader.is_done("work", KEY, key) for (key,) in keys[::997])
    assert len(reader.records()) == len(keys)
    writer.add("work", KEY, [("late",)])  # after the torn tail: readers see a damaged line
    with pytest.raises(stet.StoreError, match="not valid CSV"):
        opened("runs.stetdir").refresh()


def test_a_store_another_client_just_made_is_used_though_this_client_cached_its_absence(
    mount_fuse: Mounts,
) -> None:
    mount = mount_fuse.mount(attr_timeout=600)
    here = mount.path / "runs.stetdir"
    (mount.backing / "runs.stetdir").mkdir()
    assert not (here / "records").exists()  # now cached as missing, for 600 s
    opened(mount.backing / "runs.stetdir").add("work", KEY, [("1",)])  # the other client
    store = opened(here)
    assert store.exists()
    store.is_done("work", KEY, "1")  # seen once the cache expires; never an error
    store.add("work", KEY, [("2",)])
    assert opened(mount.backing / "runs.stetdir").is_done("work", KEY, "2")


# -- the claims tests every store passes, on this one --------------------------------


@pytest.mark.slow
def test_eight_workers_split_500_keys_each_executed_and_recorded_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    split_case(str(tmp_path / "runs.stetdir"), tmp_path, capsys)


@pytest.mark.slow
def test_keys_of_killed_and_stopped_workers_are_run_again_and_recorded_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    killed_case(str(tmp_path / "runs.stetdir"), tmp_path, capsys)

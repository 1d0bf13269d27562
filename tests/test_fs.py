"""Telling which filesystem a store lives on, from mountinfo texts as Linux writes them."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from stet.backends import _fs
from stet.backends._fs import (
    Mount,
    filesystem_of,
    is_network,
    mount_of,
    parse_mountinfo,
    sqlite_journal_mode,
    warn_many_hosts,
)

#: Lines in the formats of proc(5) and of real machines: no optional fields,
#: several, FUSE subtypes, escapes.
SAMPLE = "\n".join(
    [
        "22 27 0:21 / /proc rw,relatime - proc proc rw",
        "27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard",
        "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue",
        "118 27 0:55 / /home rw,relatime shared:60 - nfs4 fs01:/export/home rw,vers=4.2",
        "119 27 0:56 / /scratch rw,flock shared:61 master:3 propagate_from:2 unbindable"
        " - lustre 10.0.0.1@o2ib:/scratch rw,flock,lazystatfs",
        "120 27 0:57 / /gpfs/projects rw,relatime - gpfs projects rw",
        "121 27 0:58 / /beegfs rw,relatime - beegfs beegfs_nodev rw,cfgFile=/etc/beegfs.conf",
        "122 27 0:59 / /mnt/share rw,relatime - cifs //server/share rw,vers=3.1.1",
        "123 27 0:60 / /mnt/remote rw,nosuid,nodev - fuse.sshfs alice@login:/data rw,user_id=0",
        "124 27 0:61 / /mnt/old rw - fuse sshfs#bob@login:/old rw,user_id=0",
        r"125 27 0:62 / /mnt/my\040data rw,relatime - nfs srv:/my\040data rw",
        r"126 27 0:63 / /mnt/tab\011and\134back rw - ceph 10.0.0.2:/ rw,name=lab",
        "127 27 0:64 / /scratch2 rw,relatime - xfs /dev/vdb rw",
        "this line is not one",
        "128 27 0:65 / /no/separator rw,relatime xfs /dev/vdc rw",
    ]
)


@pytest.fixture(autouse=True)
def _warnings_forgotten() -> Iterator[None]:
    _fs.forget_warnings()
    yield
    _fs.forget_warnings()


def test_parse_reads_every_well_formed_line_and_leaves_out_the_rest() -> None:
    mounts = parse_mountinfo(SAMPLE)
    assert len(mounts) == 13
    assert mounts[2] == Mount("/mnt2", "ext3", "/dev/root", "/mnt1")
    assert mounts[4] == Mount("/scratch", "lustre", "10.0.0.1@o2ib:/scratch")


def test_escaped_spaces_tabs_and_backslashes_are_unescaped() -> None:
    points = {m.mount_point: m for m in parse_mountinfo(SAMPLE)}
    assert points["/mnt/my data"].source == "srv:/my data"
    assert "/mnt/tab\tand\\back" in points


@pytest.mark.parametrize(
    ("path", "fs_type"),
    [
        ("/home/alice/sweep/runs.csv", "nfs4"),
        ("/home", "nfs4"),
        ("/scratch/alice/runs.sqlite", "lustre"),
        ("/scratch2/alice/runs.sqlite", "xfs"),  # a longer name, not under /scratch
        ("/scratchy", "ext4"),
        ("/gpfs/projects/x/runs.csv", "gpfs"),
        ("/gpfs/other", "ext4"),
        ("/beegfs/runs.json", "beegfs"),
        ("/mnt/share/runs.csv", "cifs"),
        ("/mnt/remote/runs.csv", "fuse.sshfs"),
        ("/mnt/old/runs.csv", "fuse.sshfs"),
        ("/mnt/my data/runs.csv", "nfs"),
        ("/mnt/my", "ext4"),
        ("/mnt/tab\tand\\back/x", "ceph"),
        ("/tmp/runs.csv", "ext4"),
    ],
)
def test_the_longest_mount_point_above_a_path_decides(path: str, fs_type: str) -> None:
    mount = mount_of(path, parse_mountinfo(SAMPLE))
    assert mount is not None
    assert mount.fs_type == fs_type


def test_of_mounts_on_one_point_the_last_is_on_top() -> None:
    text = SAMPLE + "\n130 118 0:70 / /home rw - tmpfs tmpfs rw"
    assert filesystem_of("/home/alice", text) == "tmpfs"


def test_no_mount_above_a_path_is_unknown() -> None:
    assert filesystem_of("/data/x", "22 27 0:21 / /proc rw - proc proc rw") == "unknown"
    assert filesystem_of("/data/x", "") == "unknown"


def test_a_symbolic_link_is_on_the_filesystem_of_its_target(tmp_path: Path) -> None:
    """A link on a local disk to a folder on NFS: the store is on NFS."""
    (tmp_path / "on nfs").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "on nfs")
    escaped = str((tmp_path / "on nfs").resolve()).replace(" ", r"\040")
    text = f"27 1 254:0 / / rw - ext4 /dev/vda rw\n140 27 0:80 / {escaped} rw - nfs4 s:/e rw"
    assert filesystem_of(tmp_path / "link" / "runs.csv", text) == "nfs4"
    assert filesystem_of(tmp_path / "link" / "new" / "folder" / "runs.csv", text) == "nfs4"
    assert filesystem_of(tmp_path / "runs.csv", text) == "ext4"
    # A relative path is taken from the working directory (the test's tmp_path).
    assert filesystem_of("link/runs.csv", text) == "nfs4"


def test_mountinfo_is_read_from_proc_or_the_answer_is_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "mountinfo"
    fake.write_text(SAMPLE)
    monkeypatch.setattr(_fs, "MOUNTINFO", str(fake))
    assert filesystem_of("/scratch/x") == "lustre"
    monkeypatch.setattr(_fs, "MOUNTINFO", str(tmp_path / "absent"))
    assert filesystem_of("/scratch/x") == "unknown"


@pytest.mark.parametrize(
    "fs_type",
    ["nfs", "nfs4", "lustre", "gpfs", "beegfs", "cifs", "smb3", "fuse.sshfs", "ceph", "NFS4"],
)
def test_network_filesystems_are_known(fs_type: str) -> None:
    assert is_network(fs_type)


@pytest.mark.parametrize("fs_type", ["ext4", "xfs", "btrfs", "tmpfs", "overlay", "fuse", "unknown"])
def test_local_filesystems_are_not_network_ones(fs_type: str) -> None:
    assert not is_network(fs_type)


def test_sqlite_leaves_wal_mode_out_on_a_network_filesystem() -> None:
    assert sqlite_journal_mode("/x.sqlite", fs_type="nfs4") == "DELETE"
    assert sqlite_journal_mode("/x.sqlite", fs_type="lustre") == "DELETE"
    assert sqlite_journal_mode("/x.sqlite", fs_type="ext4") == "WAL"
    assert sqlite_journal_mode("/x.sqlite", fs_type="unknown") == "WAL"


def test_many_hosts_on_a_network_filesystem_warn_once_per_store(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="stet"):
        assert warn_many_hosts("/home/a/runs.csv", ["n1", "n2", "n1"], fs_type="nfs4")
        assert not warn_many_hosts("/home/a/runs.csv", ["n1", "n3"], fs_type="nfs4")
        assert warn_many_hosts("/home/a/other.csv", ["n1", "n3"], fs_type="nfs4")
    assert len(caplog.records) == 2
    message = caplog.records[0].getMessage()
    for part in ("/home/a/runs.csv", "2 machines", "n1, n2", "nfs4", "shared-directory store"):
        assert part in message
    assert "stet merge" in message


def test_one_host_or_a_local_disk_does_not_warn(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="stet"):
        assert not warn_many_hosts("/a.csv", ["n1", "n1", ""], fs_type="nfs")
        assert not warn_many_hosts("/a.csv", [], fs_type="nfs")
        assert not warn_many_hosts("/a.csv", ["n1", "n2"], fs_type="ext4")
        assert not warn_many_hosts("/a.csv", ["n1", "n2"], fs_type="unknown")
    assert not caplog.records


def test_many_hosts_lists_a_few_and_counts_the_rest(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="stet"):
        warn_many_hosts("/s/a.csv", [f"node{i:02}" for i in range(40)], fs_type="lustre")
    message = caplog.records[0].getMessage()
    assert "40 machines (node00, node01, node02, node03, node04 and 35 more)" in message


# -- the lock-based stores on a network filesystem ---------------------------


@pytest.mark.parametrize("ext", ["csv", "json", "sqlite", "parquet"])
def test_a_file_store_warns_once_when_machines_share_it_over_the_network(
    tmp_path: Path, ext: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import stet

    path = str(tmp_path / f"runs.{ext}")
    STAMP = "2026-01-01T00:00:00+00:00"
    # Records of two machines (a merge keeps their _stet_host).
    stet.backends.open_store(path).merge(
        [
            {
                "x": "1",
                "_stet_function": "f",
                "_stet_timestamp": STAMP,
                "_stet_host": "node01",
                "_stet_codec": "2",
            },
            {
                "x": "2",
                "_stet_function": "f",
                "_stet_timestamp": STAMP,
                "_stet_host": "node02",
                "_stet_codec": "2",
            },
        ]
    )
    stet.backends.forget_open()
    with caplog.at_level(logging.WARNING, logger="stet"):
        stet.backends.new_store(path).refresh()  # a local disk: no warning
        assert not caplog.records
        monkeypatch.setattr(_fs, "filesystem_of", lambda p, mountinfo=None: "nfs4")
        reader = stet.backends.new_store(path)
        reader.refresh()
        reader.refresh()
        stet.backends.new_store(path).refresh()
    (warning,) = caplog.records  # once per store
    assert "2 machines (node01, node02)" in warning.getMessage()
    assert "shared-directory store" in warning.getMessage()


def test_a_sqlite_store_on_a_network_filesystem_uses_no_write_ahead_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    import stet

    monkeypatch.setattr(_fs, "filesystem_of", lambda p, mountinfo=None: "nfs")
    path = tmp_path / "runs.sqlite"
    stet.backends.get_backend(path).record({"x": 1})
    (mode,) = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()
    assert mode == "delete"
    assert not (tmp_path / "runs.sqlite-wal").exists()
    assert stet.backends.StoreBackend(stet.backends.new_store(path)).has({"x": 1})

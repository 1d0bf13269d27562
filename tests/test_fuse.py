"""Stores on a filesystem that lacks what a local disk gives (the FUSE test filesystem)."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path

import pytest

import stet
from stet.backends._fs import filesystem_of, is_network

from .fuse_mount import FuseMount, Mounts


@pytest.mark.parametrize("lock_errno", ["ENOLCK", "EOPNOTSUPP"])
def test_flock_fails_on_the_test_filesystem(mount_fuse: Mounts, lock_errno: str) -> None:
    mount = mount_fuse.mount(lock_errno=lock_errno)
    path = mount.path / "lock"
    path.write_text("")
    fd = os.open(path, os.O_RDWR)
    try:
        with pytest.raises(OSError, match=os.strerror(getattr(errno, lock_errno))) as caught:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert caught.value.errno == getattr(errno, lock_errno)
        with pytest.raises(OSError, match=os.strerror(getattr(errno, lock_errno))):
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)
    # On the local disk next to it, the same lock is taken.
    local = os.open(mount.backing / "lock", os.O_RDWR)
    try:
        fcntl.flock(local, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(local)


def test_the_test_filesystem_passes_files_through(fuse_mount: FuseMount) -> None:
    (fuse_mount.path / "sub").mkdir()
    (fuse_mount.path / "sub" / "a.txt").write_text("one\n")
    with open(fuse_mount.path / "sub" / "a.txt", "a") as file:
        file.write("two\n")
        file.flush()
        os.fsync(file.fileno())
    os.replace(fuse_mount.path / "sub" / "a.txt", fuse_mount.path / "sub" / "b.txt")
    assert (fuse_mount.backing / "sub" / "b.txt").read_text() == "one\ntwo\n"
    assert sorted(os.listdir(fuse_mount.path / "sub")) == ["b.txt"]
    (fuse_mount.path / "link").symlink_to("sub/b.txt")
    assert (fuse_mount.path / "link").read_text() == "one\ntwo\n"


def test_another_clients_change_is_seen_only_after_the_attribute_cache(
    mount_fuse: Mounts,
) -> None:
    """As on an NFS client: a size changed elsewhere is stale until the cache expires."""
    mount = mount_fuse.mount(attr_timeout=600)
    (mount.backing / "runs.csv").write_text("a\n")
    assert (mount.path / "runs.csv").stat().st_size == 2  # now cached
    with open(mount.backing / "runs.csv", "a") as other_client:
        other_client.write("b\n")
    assert (mount.backing / "runs.csv").stat().st_size == 4
    assert (mount.path / "runs.csv").stat().st_size == 2
    assert not (mount.path / "missing.csv").exists()  # a miss is cached too
    (mount.backing / "missing.csv").write_text("")
    assert not (mount.path / "missing.csv").exists()


def test_stet_takes_the_test_filesystem_for_a_network_one(fuse_mount: FuseMount) -> None:
    assert fuse_mount.fs_type == "fuse.sshfs"
    assert filesystem_of(fuse_mount.path / "runs.csv") == "fuse.sshfs"
    assert is_network(filesystem_of(fuse_mount.path / "new" / "runs.csv"))
    assert not is_network(filesystem_of(fuse_mount.backing / "runs.csv"))


def test_a_csv_store_where_flock_fails_is_a_clear_store_error_not_a_hang(
    fuse_mount: FuseMount, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STET_LOCK_TIMEOUT", "5")
    ran: list[int] = []

    @stet.once(store=str(fuse_mount.path / "runs.csv"), quiet=True)
    def run(seed: int) -> None:
        ran.append(seed)

    with pytest.raises(stet.StoreError) as caught:
        run(1)
    message = str(caught.value)
    assert str(fuse_mount.path / "runs.csv") in message
    assert "lock" in message
    assert os.strerror(errno.ENOLCK) in message
    assert "does not support file locks" in message
    assert isinstance(caught.value, OSError)
    # Refused before the experiment ran, and nothing is recorded.
    assert ran == []
    assert not (fuse_mount.backing / "runs.csv").exists()


def test_the_mount_is_gone_after_the_test_even_when_a_file_stays_open(tmp_path: Path) -> None:
    mounts = Mounts(tmp_path)
    mount = mounts.mount()
    held = open(mount.path / "held.txt", "w")  # noqa: SIM115 - left open on purpose
    try:
        assert os.path.ismount(mount.path)
        mounts.unmount_all()
        assert not os.path.ismount(mount.path)
    finally:
        with contextlib.suppress(OSError):  # its filesystem is gone: ENOTCONN
            held.close()


def test_the_mount_is_gone_after_the_test_even_when_its_server_died(tmp_path: Path) -> None:
    mounts = Mounts(tmp_path)
    mount = mounts.mount()
    server = mounts._live[-1][1]
    server.kill()
    server.wait()
    with pytest.raises(OSError, match=os.strerror(errno.ENOTCONN)):
        os.listdir(mount.path)
    mounts.unmount_all()
    assert not os.path.ismount(mount.path)
    assert os.listdir(mount.path) == []

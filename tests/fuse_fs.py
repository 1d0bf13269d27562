"""A pass-through FUSE filesystem that lacks what network filesystems lack.

It mirrors a backing directory and, like a network filesystem seen from one
of its clients:

- refuses ``flock`` and ``fcntl`` locks (``ENOLCK`` by default, or
  ``EOPNOTSUPP``), as NFS without a lock manager and Lustre without
  ``-o flock`` do;
- lets the kernel cache attributes and directory entries for
  ``--attr-timeout`` seconds, so a change made in the backing directory
  (by "another client") is seen through the mount only that much later,
  as an NFS client's attribute cache does.

It calls itself ``fuse.sshfs`` in ``/proc/self/mountinfo`` (``--subtype``),
the FUSE network filesystem it imitates, so stet's filesystem detection
takes it for a network filesystem, as it would a real sshfs mount.

With ``--lock-errno ENOSYS`` the kernel keeps locks itself, as on a local
disk. With ``--read-only`` the kernel refuses every write (``EROFS``), as on a
read-only mount of an archived sweep.

Run as ``python -m tests.fuse_fs BACKING MOUNTPOINT [--lock-errno ENOLCK]
[--attr-timeout 2] [--subtype sshfs] [--read-only]``; it prints ``ready`` on stdout once
mounted and serves until unmounted (``fusermount3 -u MOUNTPOINT``). The
``fuse_mount`` fixture (conftest.py, through tests/fuse_mount.py) does all
of that for a test. Needs libfuse
(Debian ``fuse3``) and the ``mfusepy`` binding (the ``test`` extra).
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from typing import Any

import mfusepy  # type: ignore[import-untyped]  # it ships no type information

__all__ = ["NetworkLikeFS", "main"]


class NetworkLikeFS(mfusepy.Operations):  # type: ignore[misc]
    """Every call goes to the backing directory, except locks, which fail."""

    use_ns = True

    def __init__(self, backing: str, lock_errno: int, attr_timeout: float) -> None:
        self.backing = os.path.realpath(backing)
        self.lock_errno = lock_errno
        self.attr_timeout = attr_timeout

    def _path(self, path: str) -> str:
        return os.path.join(self.backing, path.lstrip("/"))

    # -- mounting ---------------------------------------------------------

    def init_with_config(self, conn_info: Any, config: Any) -> None:
        if config is not None:
            config.attr_timeout = self.attr_timeout
            config.entry_timeout = self.attr_timeout
            config.negative_timeout = self.attr_timeout
        print("ready", flush=True)

    # -- what a network filesystem may refuse -----------------------------

    def flock(self, path: str, fh: int, op: int) -> int:
        raise mfusepy.FuseOSError(self.lock_errno)

    def lock(self, path: str, fh: int, cmd: int, lock: Any) -> int:
        raise mfusepy.FuseOSError(self.lock_errno)

    # -- attributes and names ---------------------------------------------

    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        st = os.fstat(fh) if fh is not None else os.lstat(self._path(path))
        keys = ("st_mode", "st_nlink", "st_uid", "st_gid", "st_size", "st_ino", "st_dev")
        attrs: dict[str, Any] = {key: getattr(st, key) for key in keys}
        for name in ("st_atime", "st_mtime", "st_ctime"):
            attrs[name] = getattr(st, name + "_ns")
        return attrs

    def access(self, path: str, amode: int) -> int:
        if not os.access(self._path(path), amode):
            raise mfusepy.FuseOSError(errno.EACCES)
        return 0

    def readdir(self, path: str, fh: int) -> list[str]:
        return [".", "..", *os.listdir(self._path(path))]

    def readlink(self, path: str) -> str:
        return os.readlink(self._path(path))

    def statfs(self, path: str) -> dict[str, Any]:
        st = os.statvfs(self._path(path))
        keys = ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree", "f_files")
        return {key: getattr(st, key) for key in (*keys, "f_flag", "f_frsize", "f_namemax")}

    def chmod(self, path: str, mode: int) -> int:
        os.chmod(self._path(path), mode)
        return 0

    def chown(self, path: str, uid: int, gid: int) -> int:
        os.chown(self._path(path), uid, gid)
        return 0

    def utimens(self, path: str, times: tuple[int, int] | None = None) -> int:
        if times is None:
            os.utime(self._path(path))
        else:
            os.utime(self._path(path), ns=times)
        return 0

    def mkdir(self, path: str, mode: int) -> int:
        os.mkdir(self._path(path), mode)
        return 0

    def rmdir(self, path: str) -> int:
        os.rmdir(self._path(path))
        return 0

    def unlink(self, path: str) -> int:
        os.unlink(self._path(path))
        return 0

    def rename(self, old: str, new: str) -> int:
        os.rename(self._path(old), self._path(new))
        return 0

    def link(self, target: str, source: str) -> int:
        os.link(self._path(source), self._path(target))
        return 0

    def symlink(self, target: str, source: str) -> int:
        os.symlink(source, self._path(target))
        return 0

    # -- file contents ----------------------------------------------------

    def open(self, path: str, flags: int) -> int:
        return os.open(self._path(path), flags)

    def create(self, path: str, mode: int, fi: Any = None) -> int:
        return os.open(self._path(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        return os.pread(fh, size, offset)

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        return os.pwrite(fh, data, offset)

    def truncate(self, path: str, length: int, fh: int | None = None) -> int:
        if fh is not None:
            os.ftruncate(fh, length)
        else:
            os.truncate(self._path(path), length)
        return 0

    def flush(self, path: str, fh: int) -> int:
        return 0

    def fsync(self, path: str, datasync: int, fh: int) -> int:
        if datasync:
            os.fdatasync(fh)
        else:
            os.fsync(fh)
        return 0

    def release(self, path: str, fh: int) -> int:
        os.close(fh)
        return 0


def main(argv: list[str] | None = None) -> None:
    """Mount the filesystem and serve it in the foreground until unmounted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("backing")
    parser.add_argument("mountpoint")
    parser.add_argument(
        "--lock-errno", default="ENOLCK", choices=["ENOLCK", "EOPNOTSUPP", "ENOSYS"]
    )
    parser.add_argument("--attr-timeout", type=float, default=2.0)
    parser.add_argument("--subtype", default="sshfs", help="mountinfo shows fuse.SUBTYPE")
    parser.add_argument("--read-only", action="store_true", help="mount it read-only (EROFS)")
    args = parser.parse_args(argv)
    operations = NetworkLikeFS(args.backing, getattr(errno, args.lock_errno), args.attr_timeout)
    mfusepy.FUSE(
        operations,
        args.mountpoint,
        foreground=True,
        fsname="stet-test",
        subtype=args.subtype,
        ro=args.read_only,
    )
    sys.exit(0)


if __name__ == "__main__":
    main()

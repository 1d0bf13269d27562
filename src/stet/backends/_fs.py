"""Which filesystem a store lives on, and what that means on a network filesystem.

The file stores rely on ``flock`` and on appends that land whole. Both hold
on a local disk; across the clients of a network filesystem neither is
promised (NFS clients' appends can interleave, Lustre locks only with
``-o flock``, and SQLite's write-ahead log needs memory shared between its
readers, which two machines do not have). So a store on such a filesystem
does not use SQLite's WAL mode, and says so once when it sees records from
more than one machine.

On Linux the filesystem is found in ``/proc/self/mountinfo`` (see
proc(5)): the mount whose mount point is the longest prefix of the store's
real path (every symbolic link followed). Elsewhere, or when that file
cannot be read, it is ``"unknown"``, which is treated as local.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Iterable, Sequence
from typing import Final

import attrs

__all__ = [
    "NETWORK_FILESYSTEMS",
    "UNKNOWN",
    "Mount",
    "filesystem_of",
    "is_network",
    "mount_of",
    "parse_mountinfo",
    "sqlite_journal_mode",
    "warn_many_hosts",
]

logger: Final = logging.getLogger("stet")

#: The filesystem type given when it cannot be told.
UNKNOWN: Final = "unknown"
#: Where Linux lists the mounts this process sees.
MOUNTINFO: Final = "/proc/self/mountinfo"

#: Filesystem types whose files several machines reach at once. FUSE
#: filesystems appear as ``fuse.NAME`` in mountinfo.
NETWORK_FILESYSTEMS: Final = frozenset(
    {
        "nfs",
        "nfs4",
        "lustre",
        "gpfs",
        "beegfs",
        "cifs",
        "smb3",
        "smbfs",
        "ceph",
        "glusterfs",
        "afs",
        "9p",
        "panfs",
        "wekafs",
        "pvfs2",
        "orangefs",
        "ocfs2",
        "gfs2",
        "fuse.sshfs",
        "fuse.ceph-fuse",
        "fuse.glusterfs",
        "fuse.s3fs",
        "fuse.gcsfuse",
        "fuse.rclone",
        "fuse.juicefs",
        "fuse.davfs2",
    }
)

_OCTAL: Final = re.compile(r"\\([0-7]{3})")


@attrs.frozen
class Mount:
    """One line of mountinfo: where a filesystem is mounted, and what it is.

    Attributes:
        mount_point: Where it is mounted, unescaped.
        fs_type: Its type (``ext4``, ``nfs4``, ``fuse.sshfs``).
        source: What is mounted (``server:/export``, ``/dev/sda1``), unescaped.
        root: The directory of the filesystem that is mounted there.
    """

    mount_point: str
    fs_type: str
    source: str
    root: str = "/"


def _unescape(field: str) -> str:
    """Undo the kernel's octal escapes (``\\040`` space, ``\\011`` tab, ``\\012``, ``\\134``)."""
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[Mount]:
    """The mounts of a mountinfo text, in its order; malformed lines are left out.

    A line reads ``ID PARENT MAJOR:MINOR ROOT MOUNT_POINT OPTIONS
    [OPTIONAL...] - TYPE SOURCE SUPER_OPTIONS``: the optional fields
    (``shared:1``, ``master:2``) may be any number, and end at the lone
    ``-``.

    Example:
        >>> line = r"36 25 0:52 / /mnt/my\\040data rw,relatime shared:7 - nfs4 srv:/x rw"
        >>> parse_mountinfo(line)
        [Mount(mount_point='/mnt/my data', fs_type='nfs4', source='srv:/x', root='/')]
    """
    mounts: list[Mount] = []
    for line in text.splitlines():
        fields = line.split(" ")
        try:
            separator = fields.index("-", 6)
        except ValueError:
            continue
        if len(fields) < separator + 3:
            continue
        fs_type = _unescape(fields[separator + 1])
        source = _unescape(fields[separator + 2])
        if fs_type == "fuse" and "#" in source:  # old FUSE mounts: "sshfs#user@host:/dir"
            fs_type = f"fuse.{source.split('#', 1)[0]}"
        mounts.append(Mount(_unescape(fields[4]), fs_type, source, _unescape(fields[3])))
    return mounts


def mount_of(path: str | os.PathLike[str], mounts: Sequence[Mount]) -> Mount | None:
    """The mount that holds ``path``: the longest mount point it lies under.

    ``path`` should be absolute and real (`filesystem_of` resolves it). Of
    mounts on the same point, the last one listed is the one on top.
    """
    target = os.fspath(path)
    best: Mount | None = None
    for mount in mounts:
        point = mount.mount_point
        inside = (
            target == point
            or point == "/"
            or target.startswith(point if point.endswith("/") else point + "/")
        )
        if inside and (best is None or len(point) >= len(best.mount_point)):
            best = mount
    return best


def filesystem_of(path: str | os.PathLike[str], mountinfo: str | None = None) -> str:
    """The type of the filesystem ``path`` lives on, or ``"unknown"``.

    ``path`` need not exist yet (a store about to be made): the directories
    above it decide. Symbolic links are followed, so a link on a local disk
    to a file on NFS is on NFS.

    Args:
        path: A file or directory.
        mountinfo: The text of a mountinfo file; read from
            ``/proc/self/mountinfo`` when not given.
    """
    if mountinfo is None:
        try:
            with open(MOUNTINFO, "rb") as file:
                mountinfo = os.fsdecode(file.read())
        except OSError:
            return UNKNOWN
    real = os.path.realpath(os.path.abspath(os.fspath(path)))
    mount = mount_of(real, parse_mountinfo(mountinfo))
    return UNKNOWN if mount is None else mount.fs_type


def is_network(fs_type: str) -> bool:
    """True for a filesystem that several machines share (NFS, Lustre, GPFS, CIFS, sshfs...).

    Example:
        >>> is_network("nfs4"), is_network("fuse.sshfs"), is_network("ext4")
        (True, True, False)
    """
    return fs_type.lower() in NETWORK_FILESYSTEMS


def sqlite_journal_mode(path: str | os.PathLike[str], fs_type: str | None = None) -> str:
    """The journal mode for a SQLite store: ``"DELETE"`` on a network filesystem, else ``"WAL"``.

    SQLite's write-ahead log keeps its index in memory shared by every
    reader, which processes on different machines cannot share, so SQLite
    documents that WAL does not work over a network filesystem. There,
    the rollback journal (``DELETE``, SQLite's default) is used instead.
    """
    kind = filesystem_of(path) if fs_type is None else fs_type
    return "DELETE" if is_network(kind) else "WAL"


_warned: set[str] = set()
_warned_lock: Final = threading.Lock()


def warn_many_hosts(
    location: str | os.PathLike[str], hosts: Iterable[str], fs_type: str | None = None
) -> bool:
    """Warn, once per store, when records of several machines share a network filesystem.

    A lock-based file store (CSV, JSON, SQLite, Parquet) is safe for the
    processes of one machine. Records from more than one host in a store on
    a network filesystem mean several machines write it, which its locks do
    not make safe there. The warning goes to the ``stet`` logger (stderr
    unless logging is set up) and names what to use instead.

    Args:
        location: The store's path.
        hosts: The ``_stet_host`` of its records (empty ones, of records
            that predate the column, are ignored).
        fs_type: The filesystem's type, when already known.

    Returns:
        True if it warned now.
    """
    names = sorted({host for host in hosts if host})
    if len(names) < 2:
        return False
    where = os.fspath(location)
    kind = filesystem_of(where) if fs_type is None else fs_type
    if not is_network(kind):
        return False
    with _warned_lock:
        if where in _warned:
            return False
        _warned.add(where)
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    logger.warning(
        "[stet] %s holds records from %d machines (%s) and lives on a network filesystem "
        "(%s), where this store's file locks and appends do not keep writers on different "
        "machines apart: records can be lost or garbled. For a sweep across nodes use the "
        "shared-directory store or a PostgreSQL store, or give each machine its own store "
        "and combine them with `stet merge`.",
        where,
        len(names),
        shown,
        kind,
    )
    return True


def forget_warnings() -> None:
    """Let `warn_many_hosts` warn again about every store (for tests)."""
    with _warned_lock:
        _warned.clear()

"""The files of a shared-directory store's ``records/``: names, incremental reads, leftovers.

Every file in ``records/`` is a CSV file with a header, written by one
process: ``<host>-<pid>-<token>.csv`` while its writer appends to it,
``*.sealed.csv`` once it exited, ``compacted-<token>.csv`` for folded
files. `read_new` reads one file from where the last read stopped,
checking that the bytes before that point are still the same.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import socket
import stat
from collections.abc import Sequence
from typing import Final

import attrs

from .._lazy import np, pa
from ..exceptions import StoreError
from ._csv import CsvChunks
from ._records import Batch, Columns, Record, as_records
from ._schema import identity
from ._table import WholeStore, arrow_of

__all__ = [
    "COMPACTED",
    "SEALED",
    "FilesRead",
    "Replaced",
    "Seen",
    "foldable",
    "is_probe",
    "is_records_file",
    "is_settled",
    "once_each",
    "pid_gone",
    "process_tag",
    "read_all",
    "read_new",
    "read_once_each",
    "sweep_leftovers",
    "sweep_probes",
    "sync_folder",
    "this_host",
    "writer_of",
]

SEALED: Final = ".sealed.csv"
COMPACTED: Final = "compacted-"
#: How a probe file's name starts (``.probe-<host>-<pid>-<token>``, made and removed at once).
PROBE: Final = ".probe-"
#: Seconds after which a probe of another machine is surely a killed process's.
PROBE_AGE: Final = 3600.0
#: Bytes before a read's end kept to recognize the same file next time.
TAIL: Final = 64
_WRITER: Final = re.compile(
    r"^\.?(?:new-|probe-)?(?P<host>.+)-(?P<pid>[0-9]+)-[0-9a-f]+(?:\.csv|\.probe)?$"
)
_O_NOFOLLOW: Final = getattr(os, "O_NOFOLLOW", 0)


def this_host() -> str:
    """This machine as file names show it: ``STET_HOST``, or the host name."""
    name = os.environ.get("STET_HOST") or socket.gethostname()
    return re.sub(r"[^A-Za-z0-9._]", "_", name) or "host"


def process_tag() -> str:
    """``<host>-<pid>``: what names a file this process makes, for `sweep_leftovers`."""
    return f"{this_host()}-{os.getpid()}"


@attrs.define
class Seen:
    """How far one file was read: its inode, the offset, and the bytes before it."""

    inode: int
    offset: int = 0
    header: tuple[str, ...] | None = None
    tail: bytes = b""


class Replaced(Exception):
    """A file was replaced, shrank or changed before where it was read: records may be gone."""


def is_records_file(name: str) -> bool:
    """True for the names a ``records/*.csv`` glob reads."""
    return name.endswith(".csv") and not name.startswith(".")


def is_settled(name: str) -> bool:
    """True for a file nobody appends to any more (sealed or compacted)."""
    return name.endswith(SEALED) or name.startswith(COMPACTED)


def writer_of(name: str) -> tuple[str, int] | None:
    """(host, pid) of the process a file name says wrote it, or None."""
    found = _WRITER.match(name)
    return (found["host"], int(found["pid"])) if found is not None else None


def pid_gone(pid: int) -> bool:
    """True if no process of this machine has this pid."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # alive, someone else's
    return False


def _unreadable(path: str, exc: OSError) -> StoreError:
    why = exc.strerror or str(exc)
    if exc.errno == errno.ELOOP:
        why = "it is a symbolic link, which stet never follows inside the store"
    return StoreError(path, f"cannot be read: {why}; move it out of records/")


def _open(path: str) -> tuple[int, os.stat_result]:
    """A descriptor of the regular file ``path`` (FileNotFoundError if it is gone)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | _O_NOFOLLOW)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise _unreadable(path, exc) from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise StoreError(path, "is not a regular file; move it out of records/")
    return fd, st


def _pread_all(fd: int, start: int) -> bytes:
    parts: list[bytes] = []
    while True:
        chunk = os.pread(fd, 1 << 20, start)
        if not chunk:
            return b"".join(parts)
        parts.append(chunk)
        start += len(chunk)


def read_new(path: str, seen: Seen | None) -> tuple[Batch, Seen]:
    """The records of ``path`` added since ``seen``, and how far it is read now.

    Raises:
        FileNotFoundError: It is gone (compacted away meanwhile).
        Replaced: It was replaced, shrank, or changed before ``seen``'s end.
        StoreError: It is damaged, or not a regular file (naming it).
    """
    fd, st = _open(path)
    try:
        if seen is not None and (seen.inode != st.st_ino or st.st_size < seen.offset):
            raise Replaced
        if seen is None:
            seen = Seen(st.st_ino)
        elif st.st_size == seen.offset:
            return [], seen
        data = _pread_all(fd, seen.offset - len(seen.tail))
    finally:
        os.close(fd)
    if data[: len(seen.tail)] != seen.tail:
        raise Replaced
    return _parse(path, data[len(seen.tail) :], seen)


def _parse(path: str, data: bytes, seen: Seen) -> tuple[Batch, Seen]:
    chunks = CsvChunks(path)
    start = 0
    if seen.header is None:
        end = data.find(b"\n")
        if end < 0:
            raise StoreError(
                path,
                "has no complete header line, so it is not a file stet wrote (stet "
                "writes the header before a file appears in records/); move it away",
            )
        seen.header = chunks.header(data[: end + 1])
        start = end + 1
    batch, used = chunks.records(data[start:], seen.header, seen.offset + start)
    seen.offset += start + used
    seen.tail = (seen.tail + data[: start + used])[-TAIL:]
    return batch, seen


def read_all(path: str) -> list[Record]:
    """Every record of ``path``, as dicts (FileNotFoundError if it is gone)."""
    fd, st = _open(path)
    try:
        data = _pread_all(fd, 0)
    finally:
        os.close(fd)
    return as_records(_parse(path, data, Seen(st.st_ino))[0])


def foldable(name: str, host: str, own: str | None) -> bool:
    """True for a file no writer appends to any more (seen from ``host``, writing ``own``)."""
    if is_settled(name):
        return True
    writer = writer_of(name)
    if writer is None or writer[0] != host:
        return False  # another machine's writer: only it can tell
    if writer[1] == os.getpid():
        return own != name
    return pid_gone(writer[1])


@attrs.define(eq=False)
class FilesRead:
    """A whole read of a shared directory's files (`SharedDirStore.scanned`): what
    they held, one record per run, and each file's state as it was read."""

    paths: list[str]
    batch: Batch
    #: Each file's (device, inode, size read, mtime) from the descriptor it was read through.
    states: list[tuple[int, int, int, int]]
    #: Each file's header, and where its records start and its last whole record ends.
    layouts: list[tuple[tuple[str, ...], int, int]] = attrs.Factory(list)
    #: How many records each file held, and whether ``batch`` is them all in order
    #: (no run was in two files).
    counts: list[int] = attrs.Factory(list)
    whole: bool = True

    def still(self, paths: Sequence[str]) -> bool:
        """True if ``paths`` are the files read and each is as it was (one look each)."""
        if list(paths) != self.paths:
            return False
        for path, state in zip(paths, self.states, strict=True):
            try:
                st = os.stat(path, follow_symlinks=False)
            except OSError:
                return False
            # An append changes the size (and time), a file moved in the inode.
            if (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) != state:
                return False
        return True


def columns_once_each(paths: Sequence[str], location: str) -> Batch:
    """The records of these files, one per run (the first kept), as one Arrow table.

    What `once_each` of their records gives, column by column, for the
    whole-store tools (FileNotFoundError if a file is gone).
    """
    return read_once_each(paths, location).batch


def read_once_each(paths: Sequence[str], location: str) -> FilesRead:
    """`columns_once_each`, and the files' states as read (see `FilesRead.still`)."""
    read = FilesRead(list(paths), [], [])
    tables = []
    for path in paths:
        fd, st = _open(path)
        try:
            data = _pread_all(fd, 0)
        finally:
            os.close(fd)
        read.states.append((st.st_dev, st.st_ino, len(data), st.st_mtime_ns))
        batch, seen = _parse(path, data, Seen(st.st_ino))
        assert seen.header is not None
        read.layouts.append((seen.header, data.find(b"\n") + 1, seen.offset))
        tables.append(arrow_of(batch))
        read.counts.append(tables[-1].num_rows)
    if not tables:
        return read
    table = pa.concat_tables(tables, promote_options="default")
    first = WholeStore(location, table).grouped().column("__row_min").to_numpy()
    read.whole = len(first) == table.num_rows
    if not read.whole:  # a run recorded twice: its first record kept
        table = table.take(pa.array(np.sort(first)))
    read.batch = Columns.of_arrow(table)
    return read


def once_each(records: Sequence[Record], location: str) -> list[Record]:
    """One record per run (two writers may both have recorded it), the first kept."""
    seen: set[tuple[str, tuple[str, ...], tuple[str, ...]]] = set()
    out = []
    for record in records:
        ident = identity(record, location)
        if ident not in seen:
            seen.add(ident)
            out.append(record)
    return out


def sync_folder(path: str) -> None:
    """Make the names in a folder durable (where the filesystem allows it)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EBADF, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


def is_probe(name: str) -> bool:
    """True for a probe file's name (earlier releases named them ``<host>-<pid>-<token>.probe``)."""
    return name.startswith(PROBE) or name.endswith(".probe")


def sweep_probes(folder: str, host: str, now: float) -> None:
    """Delete the probe files in ``folder`` that killed processes left.

    A probe lives for a moment, so one is left over if its process (of this
    machine) is gone, or, whoever made it, if it is `PROBE_AGE` older than
    ``now`` (the file server's time, from a file just made there). A live
    process's probe, and any file that is not a probe, is left alone.
    """
    try:
        names = [n for n in os.listdir(folder) if is_probe(n)]
    except OSError:
        return
    for name in names:
        path = os.path.join(folder, name)
        writer = writer_of(name)
        if writer is not None and writer[0] == host:
            left = pid_gone(writer[1])
        else:
            try:
                left = now - os.lstat(path).st_mtime > PROBE_AGE
            except OSError:
                continue
        if left:
            with contextlib.suppress(OSError):
                os.unlink(path)


def sweep_leftovers(folders: Sequence[str], host: str) -> None:
    """Delete files that processes of this host, now gone, left half-made.

    A writer killed while staging its file in ``tmp/``, a claim staged in
    ``claims/`` or a probe file: each is named with its host and pid. A
    compacted file staged in ``tmp/`` belongs to a compaction, and only one
    runs at a time (the caller holds ``compaction.claim``).
    """
    for folder in folders:
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in names:
            if name.endswith((".claim", ".takeover")):
                continue
            writer = writer_of(name)
            left = name.startswith(COMPACTED) or (
                writer is not None and writer[0] == host and pid_gone(writer[1])
            )
            if left:
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(folder, name))

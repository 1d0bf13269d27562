"""Helpers shared by the file formats: paths, atomic replacement, reading from an offset."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import time
from typing import Any, Final

from .._lazy import pa
from ..exceptions import StoreError
from ._records import TableRecords

__all__ = [
    "NUL",
    "SCAN_RETRIES",
    "TAIL",
    "FileFormat",
    "FileState",
    "atomic_write",
    "file_state",
    "open_regular",
    "read_after",
    "read_from",
    "real_path",
    "tail_before",
    "write_all",
]

FileState = tuple[int, int, int, int]  # (device, inode, size, mtime_ns)

NUL: Final = b"\x00"
_UTF16_BOMS: Final = (b"\xff\xfe", b"\xfe\xff")
#: Reads of a file with NUL bytes before it is called damaged (see read_from).
_NUL_RETRIES: Final = 8
#: Reads of a file that fails to parse while it changes (see AppendedFile.scan).
SCAN_RETRIES: Final = 5
#: How many bytes before a cursor's end are kept to recognize the same file.
TAIL: Final = 64
_O_NONBLOCK: Final = getattr(os, "O_NONBLOCK", 0)
_O_NOFOLLOW: Final = getattr(os, "O_NOFOLLOW", 0)


_KINDS: Final = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def _not_regular(path: str, mode: int) -> StoreError:
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    return StoreError(
        path,
        f"is {kind}, not a regular file, so it cannot be a stet store; it is left "
        "untouched (give the store the path of a file)",
    )


def real_path(path: str, *, directory: bool = False) -> str:
    """The absolute path of the file ``path`` names, every symlink followed.

    A store is locked, rewritten and given its side files (lock, journal,
    claims) under this one name, so writers that reach it through a link
    and through its real name share one lock, and a rewrite replaces the
    target, never the link. It is resolved once, when the store is opened.

    Raises:
        StoreError: ``path`` is (or passes through) a symlink loop or a
            symlink to nothing, or is something other than a regular file
            (a directory, a FIFO, a device), which stet never opens; with
            ``directory`` (a store that is a folder), anything but a folder.
    """
    absolute = os.path.abspath(path)
    try:
        real = os.path.realpath(absolute, strict=True)
    except FileNotFoundError:
        _check_dangling(absolute)
        real = os.path.realpath(absolute)  # a new store (its folder may be new too)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StoreError(
                absolute,
                "is a loop of symbolic links that never reaches a file; fix the links "
                "or give the store another path",
            ) from None
        raise StoreError(absolute, f"cannot be resolved: {exc.strerror or exc}") from None
    try:
        st = os.stat(real)
    except FileNotFoundError:
        return real
    except OSError as exc:
        raise StoreError(real, f"cannot be opened: {exc.strerror or exc}") from None
    if directory:
        if not stat.S_ISDIR(st.st_mode):
            raise StoreError(
                real,
                "is not a folder, so it cannot be a shared-directory store; it is left "
                "untouched (give the store the path of a folder, or of none yet)",
            )
        return real
    if not stat.S_ISREG(st.st_mode):
        raise _not_regular(real, st.st_mode)
    return real


def _check_dangling(absolute: str) -> None:
    """Refuse a path through a symlink whose target does not exist.

    The link names a store that is gone (a moved or unmounted disk): a new,
    empty store in its place would run the whole sweep again.
    """
    prefix = os.sep
    for part in absolute.split(os.sep):
        prefix = os.path.join(prefix, part)
        if os.path.islink(prefix) and not os.path.exists(prefix):
            target = os.readlink(prefix)
            raise StoreError(
                absolute,
                f"goes through the symbolic link {prefix} to {target}, which does not "
                "exist; stet does not start a new store in its place (restore the "
                "target, or remove the link to start a new store)",
            )


def open_regular(path: str, flags: int = os.O_RDONLY) -> int:
    """A descriptor of the regular file ``path``, opened without blocking.

    Anything else found at the store's path (a FIFO, which would block the
    process forever, a device, a directory) is refused before and after
    opening, so a file swapped in meanwhile is caught too.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        StoreError: ``path`` is not a regular file, or cannot be opened.
    """
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise _not_regular(path, st.st_mode)
        fd = os.open(path, flags | _O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except (FileNotFoundError, StoreError):
        raise
    except OSError as exc:
        raise StoreError(path, f"cannot be opened: {exc.strerror or exc}") from None
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        os.close(fd)
        raise
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise _not_regular(path, mode)
    return fd


def file_state(path: str) -> FileState | None:
    """(device, inode, size, mtime_ns) of ``path``, or None if it is missing."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreError(path, f"cannot be read: {exc.strerror or exc}") from None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def read_from(path: str, offset: int) -> tuple[bytes, FileState]:
    """Bytes of ``path`` from ``offset`` to its end, and the state they came from.

    Readers take no lock, so a read can race a writer that is cutting off a
    file's closing bytes and appending: Linux may then show a few of the
    rewritten bytes as NUL for an instant. NUL bytes are therefore read
    again a few times before the file is called damaged. NUL bytes at the
    very end (a write not finished, or a tail a power cut zero-filled) are
    left out like a half-written record; the next writer cuts them off.
    """
    pause = 0.001
    for attempt in range(_NUL_RETRIES):
        data, st = _read(path, offset)
        if offset == 0 and data[:2] in _UTF16_BOMS:
            raise StoreError(
                path,
                "is UTF-16 text (it starts with a UTF-16 byte-order mark), but stet's text "
                "stores are UTF-8; it is left untouched (save it as UTF-8, e.g. 'CSV UTF-8')",
            )
        complete = data.rstrip(NUL)
        if NUL not in complete:
            break
        if attempt + 1 < _NUL_RETRIES:
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
    else:
        raise StoreError(
            path,
            "contains NUL bytes, so it is not a text store written by stet; it is left untouched",
        )
    return complete, (st.st_dev, st.st_ino, offset + len(complete), st.st_mtime_ns)


def _read(path: str, offset: int) -> tuple[bytes, os.stat_result]:
    try:
        with open(open_regular(path), "rb") as f:
            st = os.fstat(f.fileno())
            f.seek(offset)
            return f.read(), st
    except StoreError:
        raise
    except OSError as exc:
        raise StoreError(path, f"cannot be read: {exc.strerror or exc}") from None


def read_after(path: str, end: int, tail: bytes) -> tuple[bytes, FileState] | None:
    """Bytes after ``end``, if the bytes before it are still ``tail``.

    A file rewritten in place, or a new file that happens to get the old
    inode number, fails the check and must be read from the start.
    """
    data, state = read_from(path, end - len(tail))
    if not data.startswith(tail):
        return None
    return data[len(tail) :], state


def tail_before(data: bytes, end: int) -> bytes:
    """The bytes of ``data`` just before ``end``, kept for `read_after`."""
    return data[max(0, end - TAIL) : end]


def write_all(fd: int, data: bytes, offset: int | None = None) -> None:
    """Write every byte of ``data`` (os.write may write less than asked),
    at ``offset`` if given (the file's position is then left alone)."""
    view = memoryview(data)
    while view:
        if offset is None:
            written = os.write(fd, view)
        else:
            written = os.pwrite(fd, view, offset)
            offset += written
        view = view[written:]


def atomic_write(path: str, data: bytes) -> FileState:
    """Replace ``path`` with ``data`` so that readers see the old or the new file.

    The data goes to a temporary file beside the store, is flushed to disk,
    and is renamed over the store; a crash at any point leaves one of the two
    complete versions.
    """
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        # A leftover of a killed writer of this pid, or anything planted
        # there (a FIFO would block, a symlink would redirect the write).
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW, 0o644)
        try:
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise StoreError(path, f"cannot be written: {exc.strerror or exc}") from None
    state = file_state(path)
    assert state is not None
    return state


class FileFormat:
    """What the file formats share: the resolved path, no-op process hooks, errors.

    A format that buffers (Parquet) or holds connections (SQLite) replaces
    `fold` or the fork hooks; see `._file_store.FileFormat` for the contract.
    """

    def __init__(self, path: str) -> None:
        self.path = real_path(path)
        self.location = self.path

    def fold(self, cursor: Any) -> Any:
        return cursor  # nothing buffered

    def unchanged(self, cursor: Any) -> bool:
        """True if the store is still as ``cursor`` saw it (one look; False if unsure)."""
        return False

    def encode(self, records: Any, cursor: Any) -> object:
        """What `append` would write for ``records`` after ``cursor``, made
        before the lock is taken (None: nothing to make ahead)."""
        return None

    def remove(self, table: pa.Table, doomed: Any, cursor: Any) -> Any:
        # The records kept, written from their columns (see `TableRecords`).
        rewrite = self.rewrite  # type: ignore[attr-defined]  # every format has one
        return rewrite(TableRecords(table.filter(pa.array(~doomed))), cursor)

    def before_fork(self) -> None:
        pass  # no connection to close

    def after_fork(self) -> None:
        pass

    def _error(self, problem: str) -> StoreError:
        return StoreError(self.path, problem)

"""Helpers shared by the file formats: atomic replacement and tail reading."""

from __future__ import annotations

import contextlib
import os
from typing import Final

from ..exceptions import StoreError

__all__ = [
    "TAIL",
    "FileState",
    "atomic_write",
    "file_state",
    "read_after",
    "read_from",
    "tail_before",
    "write_all",
]

FileState = tuple[int, int, int, int]  # (device, inode, size, mtime_ns)

_NUL: Final = b"\x00"
#: How many bytes before a cursor's end are kept to recognize the same file.
TAIL: Final = 64


def file_state(path: str) -> FileState | None:
    """(device, inode, size, mtime_ns) of ``path``, or None if it is missing."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def read_from(path: str, offset: int) -> tuple[bytes, FileState]:
    """Bytes of ``path`` from ``offset`` to its end, and the state they came from."""
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            f.seek(offset)
            data = f.read()
    except OSError as exc:
        raise StoreError(path, f"cannot be read: {exc.strerror or exc}") from None
    if _NUL in data:
        raise StoreError(
            path,
            "contains NUL bytes, so it is not a text store written by stet; it is left untouched",
        )
    return data, (st.st_dev, st.st_ino, offset + len(data), st.st_mtime_ns)


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


def write_all(fd: int, data: bytes) -> None:
    """Write every byte of ``data`` (os.write may write less than asked)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def atomic_write(path: str, data: bytes) -> FileState:
    """Replace ``path`` with ``data`` so that readers see the old or the new file.

    The data goes to a temporary file beside the store, is flushed to disk,
    and is renamed over the store; a crash at any point leaves one of the two
    complete versions.
    """
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
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

"""Files that grow by appends (CSV, JSON, Parquet's journal): `AppendedFile`.

A format of records appended at the end keeps a cursor (`AppendCursor`) of
how far it read, reads only what follows it (checking the bytes just before
it, so a rewritten file is noticed), and writes at the end through a
descriptor it keeps open. The helpers it stands on (atomic replacement,
reading from an offset) are `._files`'.
"""

from __future__ import annotations

import abc
import contextlib
import os
import time
from typing import Any

import attrs

from ..exceptions import StoreError
from ._files import (
    NUL,
    SCAN_RETRIES,
    FileFormat,
    FileState,
    file_state,
    open_regular,
    read_after,
    tail_before,
    write_all,
)

__all__ = ["AppendCursor", "AppendedFile"]


@attrs.frozen
class AppendCursor:
    """Where reading an appended file stopped.

    Attributes:
        state: The file's (device, inode, size, mtime) as last read.
        end: Byte offset just past the last complete record.
        tail: The bytes just before ``end``, to recognize the same file.
        context: What the format needs to read on (a header, a count).
        closed: The bytes from ``end`` to the size in ``state`` are known to
            be the format's closing bytes (``AppendedFile.closing``), so an
            append may write over them without reading or cutting them first.
    """

    state: FileState
    end: int
    tail: bytes
    context: Any
    closed: bool = False


class _KeptFile:
    """A descriptor of the store's file kept open for appends, closed with its owner.

    While it is open its inode cannot be reused, so a file at the store's
    path with the same (device, inode) is this very file.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        st = os.fstat(fd)
        self.identity = (st.st_dev, st.st_ino)

    def __del__(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


class AppendedFile(FileFormat, abc.ABC):
    """A text file whose records are appended in place.

    Subclasses parse the whole file (`scan_all`) and what follows a cursor
    (`parse_after`); this class decides which is needed and writes appends.
    """

    _kept: _KeptFile | None = None
    #: The cursor the last look (`unchanged`, lock held) found the file at.
    _checked: AppendCursor | None = None
    #: What follows the last record in a complete file (JSON's ``\n]\n``).
    closing: bytes = b""

    def unchanged(self, cursor: Any) -> bool:
        # An append changes the size (and time), a replacement the inode.
        same = isinstance(cursor, AppendCursor) and file_state(self.path) == cursor.state
        self._checked = cursor if same else None
        return same

    def after_fork(self) -> None:
        self._kept = None  # the child opens its own

    def _writable(self, state: FileState) -> int:
        """A descriptor of the file a scan under the lock just saw as ``state``.

        Kept between appends (a writer recording one run at a time opens the
        file once, not per record); opened again once the store's path holds
        another file (a rewrite, or a file moved in by hand).
        """
        kept = self._kept
        if kept is None or kept.identity != state[:2]:
            self._kept = None
            kept = _KeptFile(open_regular(self.path, os.O_RDWR))
            if kept.identity != state[:2]:
                # Another file moved in by hand since the look (a backup, say):
                # written at this cursor's end, its own records would be cut
                # or overwritten.
                raise self._error(
                    "was replaced by another file just as a record was to be written "
                    "(moved there by hand?); nothing was written to it: run again"
                )
            self._kept = kept
        return kept.fd

    @abc.abstractmethod
    def scan_all(self, every_column: bool = True) -> tuple[Any, AppendCursor, bool]:
        """Read the whole file: (records, cursor, True)."""

    @abc.abstractmethod
    def parse_after(
        self, data: bytes, cursor: AppendCursor
    ) -> tuple[list[dict[str, str]], int, Any]:
        """Records in ``data`` (which starts at ``cursor.end``), bytes used, new context."""

    def scan(
        self, cursor: object | None, *, every_column: bool = False
    ) -> tuple[Any, AppendCursor | None, bool]:
        """Read what is new (see `FileFormat.scan`).

        Readers take no lock, so a read can interleave with a writer's
        append and see a mix of old and new bytes that does not parse. A
        read that fails while the file changed under it is tried again; a
        file that fails while nothing writes to it is damaged.
        """
        for attempt in range(SCAN_RETRIES):
            before = file_state(self.path)
            try:
                return self._scan(before, cursor, every_column)
            except StoreError:
                if attempt + 1 == SCAN_RETRIES or file_state(self.path) == before:
                    raise
                time.sleep(0.002 * (attempt + 1))
        raise AssertionError("unreachable")  # pragma: no cover

    def _scan(
        self, state: FileState | None, cursor: object | None, every_column: bool
    ) -> tuple[Any, AppendCursor | None, bool]:
        if state is None:
            return [], None, True
        if isinstance(cursor, AppendCursor) and state[:2] == cursor.state[:2]:
            if state[2:] == cursor.state[2:]:
                return [], cursor, False
            after = self._read_kept(cursor, state)
            if after is None:
                after = read_after(self.path, cursor.end, cursor.tail)
            if after is not None:
                data, state = after
                rows, used, context = self.parse_after(data, cursor)
                tail = tail_before(cursor.tail + data, len(cursor.tail) + used)
                closed = bool(self.closing) and data[used:] == self.closing
                return rows, AppendCursor(state, cursor.end + used, tail, context, closed), False
        return self.scan_all(every_column)

    def _read_kept(self, cursor: AppendCursor, state: FileState) -> tuple[bytes, FileState] | None:
        """`read_after` through the descriptor kept for appends, in one ``pread``.

        What another writer appended since this one last wrote is read on
        every record while several write: without opening the file again.
        Only when the path (just looked at, ``state``) still holds the kept
        file; None when unsure (no such descriptor, NUL bytes, a file cut
        short, other bytes before the cursor), and the careful read decides.
        """
        kept = self._kept
        start = cursor.end - len(cursor.tail)
        if kept is None or kept.identity != state[:2] or start <= 0 or state[2] <= cursor.end:
            return None
        try:
            data = os.pread(kept.fd, state[2] - start, start)
        except OSError:
            return None
        if len(data) != state[2] - start or NUL in data or not data.startswith(cursor.tail):
            return None
        return data[len(cursor.tail) :], state

    def check_cut(self, cut: bytes, offset: int) -> None:
        """Refuse to cut off ``cut`` (found at ``offset``) if it cannot be a torn record."""

    def write_at_end(
        self, cursor: AppendCursor, data: bytes, context: Any, closing: bytes = b""
    ) -> AppendCursor:
        """Write ``data`` (then ``closing``) at ``cursor.end``.

        Whatever followed the last complete record (a half-written record
        left by a killed writer, or the format's closing bytes) is cut off
        first, once `check_cut` agrees; ``closing`` is written after the
        data but not counted as records.
        """
        tail = tail_before(cursor.tail + data, len(cursor.tail) + len(data))
        try:
            fd = self._writable(cursor.state)
            # Its size is known when the look under this lock just found the
            # file at this cursor: the descriptor is of that file (its inode).
            checked, self._checked = self._checked, None
            size = cursor.state[2] if checked is cursor else os.fstat(fd).st_size
            # Only the closing bytes follow (this process wrote or read them
            # at this very size): the longer write below covers them, so the
            # lock is not held for a read and a cut as well.
            known = cursor.closed and size == cursor.state[2] and closing == self.closing
            if size != cursor.end and not known:
                if size > cursor.end:
                    os.lseek(fd, cursor.end, os.SEEK_SET)
                    self.check_cut(os.read(fd, size - cursor.end), cursor.end)
                os.ftruncate(fd, cursor.end)
            try:
                write_all(fd, data + closing, cursor.end)
            except OSError:
                # A full disk (or quota) stopped the write part-way: take
                # the partial records back, so the store ends where it did.
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, cursor.end)
                raise
            st = os.fstat(fd)
        except StoreError:
            raise
        except OSError as exc:
            self._kept = None
            raise self._error(f"cannot be written: {exc.strerror or exc}") from None
        state = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        closed = bool(closing) and st.st_size == cursor.end + len(data) + len(closing)
        return AppendCursor(state, cursor.end + len(data), tail, context, closed)

"""Helpers shared by the file formats: atomic replacement and tail reading."""

from __future__ import annotations

import abc
import contextlib
import errno
import os
import stat
import time
from typing import Any, Final

import attrs

from .._lazy import pa
from ..exceptions import StoreError
from ._records import TableRecords

__all__ = [
    "TAIL",
    "AppendCursor",
    "AppendedFile",
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

_NUL: Final = b"\x00"
_UTF16_BOMS: Final = (b"\xff\xfe", b"\xfe\xff")
#: Reads of a file with NUL bytes before it is called damaged (see read_from).
_NUL_RETRIES: Final = 8
#: Reads of a file that fails to parse while it changes (see AppendedFile.scan).
_SCAN_RETRIES: Final = 5
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
        complete = data.rstrip(_NUL)
        if _NUL not in complete:
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
    #: What follows the last record in a complete file (JSON's ``\n]\n``).
    closing: bytes = b""

    def unchanged(self, cursor: Any) -> bool:
        # An append changes the size (and time), a replacement the inode.
        return isinstance(cursor, AppendCursor) and file_state(self.path) == cursor.state

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
            kept = self._kept = _KeptFile(open_regular(self.path, os.O_RDWR))
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
        for attempt in range(_SCAN_RETRIES):
            before = file_state(self.path)
            try:
                return self._scan(before, cursor, every_column)
            except StoreError:
                if attempt + 1 == _SCAN_RETRIES or file_state(self.path) == before:
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
        if len(data) != state[2] - start or _NUL in data or not data.startswith(cursor.tail):
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
            size = os.fstat(fd).st_size
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

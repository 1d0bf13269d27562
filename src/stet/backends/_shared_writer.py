"""This process's own file in a shared-directory store's ``records/``.

Each writer process appends to a file no other process writes, every
record flushed and fsynced before the call returns. The file appears
whole with its header (written in ``tmp/`` and renamed in); a forked
child starts a file of its own; a file that another process moved away
(a compaction that took this one for dead, a store removed by hand) is
left, and the records go into a new one, so nothing is written where no
reader looks. Sealing (at exit, or before a record with other columns)
renames it ``*.sealed.csv``, which compaction may fold into a file of
many writers' records (`write_compacted`).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Sequence
from typing import Final

import attrs

from ..exceptions import StoreError
from ._csv import format_rows, header_for
from ._records import Record
from ._shared_claims import make_folder, write_file
from ._shared_files import (
    COMPACTED,
    PROBE,
    SEALED,
    process_tag,
    sweep_probes,
    sync_folder,
    this_host,
)

__all__ = ["OwnFile", "write_compacted"]

_O_NOFOLLOW: Final = getattr(os, "O_NOFOLLOW", 0)


@attrs.define
class _Writer:
    """The file open for appending."""

    path: str
    fd: int
    header: tuple[str, ...]
    pid: int


class OwnFile:
    """The file in ``records_dir`` this process appends its records to.

    Args:
        records_dir: The store's ``records/``.
        tmp_dir: Where a new file is written before it appears.
        make_dirs: Makes the store's folders (refusing a folder that is
            not a store).
        on_seal: Told ``(name, sealed name)`` when the file is sealed.
    """

    def __init__(
        self,
        records_dir: str,
        tmp_dir: str,
        make_dirs: Callable[[], None],
        on_seal: Callable[[str, str], None],
    ) -> None:
        self.records_dir = records_dir
        self.tmp_dir = tmp_dir
        self._make_dirs = make_dirs
        self._on_seal = on_seal
        self._writer: _Writer | None = None
        self._writable = False  # a file could be made in tmp/ (see `check_writable`)

    def check_writable(self, store: str) -> None:
        """Fail before a run whose record could not be written (a read-only mount).

        Checked once: a probe file is made in ``tmp/`` and removed, and the
        probes killed processes left there are removed too (`sweep_probes`).
        """
        if self._writable:
            return
        self._make_dirs()
        probe = os.path.join(self.tmp_dir, f"{PROBE}{process_tag()}-{secrets.token_hex(6)}")
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                now = os.fstat(fd).st_mtime  # the file server's clock
            finally:
                os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise StoreError(
                store,
                f"cannot be written: {exc.strerror or exc} (making a file in {self.tmp_dir}); "
                "a store that can only be read still answers stet.read, stet status and "
                "the calls it holds, but a call it does not hold cannot be recorded; copy "
                "the store somewhere writable, or give a store there",
            ) from None
        self._writable = True
        sweep_probes(self.tmp_dir, this_host(), now)

    @property
    def name(self) -> str | None:
        """The file's name in ``records/`` while it is open."""
        return os.path.basename(self._writer.path) if self._writer is not None else None

    def append(self, records: Sequence[Record]) -> None:
        """Write records, fsynced (the store's mutex held).

        If the file was deleted or moved meanwhile, the records go again
        into a new file.
        """
        for _ in range(3):
            writer = self._writer
            if writer is not None and writer.pid != os.getpid():
                writer = self._writer = None  # a forked child: a file of its own
            header = header_for(records, writer.header if writer is not None else ())
            if writer is not None and header != writer.header:
                self.seal()
                writer = None
            try:
                if writer is None:
                    writer = self._writer = self._new_file(header)
                data = memoryview(format_rows(records, writer.header))
                while data:
                    data = data[os.write(writer.fd, data) :]
                os.fsync(writer.fd)
                if _in_place(writer):
                    return
            except OSError as exc:
                # A record may be half-written: no other is ever put after it
                # (the file is sealed, and the next record starts another).
                with contextlib.suppress(OSError):
                    self.seal()
                raise StoreError(
                    writer.path if writer is not None else self.records_dir,
                    f"cannot be written: {exc.strerror or exc}",
                ) from None
            with contextlib.suppress(OSError):
                os.close(writer.fd)
            self._writer = None
        raise StoreError(self.records_dir, "its files keep vanishing while records are written")

    def _new_file(self, header: tuple[str, ...]) -> _Writer:
        self._make_dirs()
        name = f"{process_tag()}-{secrets.token_hex(6)}.csv"
        staged = os.path.join(self.tmp_dir, name)
        try:  # an OSError is named by append
            write_file(staged, ",".join(header).encode() + b"\n")
            fd = os.open(staged, os.O_WRONLY | os.O_APPEND | _O_NOFOLLOW)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(staged)
            raise
        path = os.path.join(self.records_dir, name)
        try:
            os.rename(staged, path)  # it appears with its header
            sync_folder(self.records_dir)
        except OSError:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(staged)
            raise
        return _Writer(path, fd, header, os.getpid())

    def seal(self) -> None:
        """Close the file and rename it ``*.sealed.csv``: compaction may fold it."""
        writer, self._writer = self._writer, None
        if writer is None or writer.pid != os.getpid():
            return
        with contextlib.suppress(OSError):
            os.close(writer.fd)
        sealed = writer.path[: -len(".csv")] + SEALED
        try:
            os.rename(writer.path, sealed)
        except OSError:
            return  # compacted or cleared meanwhile: nothing to seal
        self._on_seal(os.path.basename(writer.path), os.path.basename(sealed))

    def forget_in_child(self) -> None:
        """In a forked child: close the parent's file unused (it stays the parent's)."""
        if self._writer is not None:
            with contextlib.suppress(OSError):
                os.close(self._writer.fd)
            self._writer = None


def _in_place(writer: _Writer) -> bool:
    """True if the writer's file is still where readers look for it."""
    try:
        return os.stat(writer.path).st_ino == os.fstat(writer.fd).st_ino
    except FileNotFoundError:
        return False


def write_compacted(records: Sequence[Record], tmp_dir: str, records_dir: str) -> None:
    """Write many writers' records into one new file in ``records_dir``, whole or not at all."""
    made = getattr(records, "file_bytes", None)  # a fold's (`._shared_kept.FoldedRecords`)
    if callable(made):
        data = made()
    else:
        header = header_for(records, ())
        data = ",".join(header).encode() + b"\n" + format_rows(records, header)
    name = f"{COMPACTED}{secrets.token_hex(8)}.csv"
    staged = os.path.join(tmp_dir, name)
    try:
        make_folder(tmp_dir)
        write_file(staged, data)
        os.rename(staged, os.path.join(records_dir, name))
        sync_folder(records_dir)  # in place before the folded files go
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(staged)
        raise StoreError(
            staged,
            f"cannot be written: {exc.strerror or exc}; nothing was removed, the "
            "store is as it was",
        ) from None

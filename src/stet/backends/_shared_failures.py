"""A shared directory's failure files: one per writer process, sealed, folded by compaction.

Each writer process appends its failures to ``failures/<host>-<pid>-<token>.jsonl``
(a token of its own, so no later process with the same pid ever appends to
it) and renames it ``*.sealed.jsonl`` when it exits, as it does its records
file. Compaction folds the failure files no writer appends to any more (the
same rule as records: sealed ones, earlier compactions, and those of
processes of this machine that are gone) into ``failures/compacted-<token>.jsonl``:
staged in ``tmp/``, fsynced, renamed in, and only then the folded files
removed. A reader that lists the folder between the two sees a failure
twice; `FailureLog` counts each failure once. A file named otherwise (an
older stet's ``<host>-<pid>.jsonl``) is read, and never folded.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from typing import Final

from ..exceptions import StoreError
from ._failures import Failure, failure_lines, read_log
from ._process import written
from ._shared_files import COMPACTED, foldable, process_tag, sync_folder, writer_of
from ._shared_server import make_folder, write_file

__all__ = ["FailureFiles"]

_LOG: Final = ".jsonl"
_SEALED: Final = ".sealed.jsonl"
#: A writer's own file: the token (12 hex digits) tells it from an older stet's.
_OWN: Final = re.compile(r"^.+-[0-9]+-[0-9a-f]{12}(?:\.sealed)?\.jsonl$")


class FailureFiles:
    """This process's failure file in ``folder``, and the folding of everyone's.

    Args:
        folder: ``STORE.stetdir/failures``.
        tmp_dir: ``STORE.stetdir/tmp``, where a folded file is staged.
    """

    def __init__(self, folder: str, tmp_dir: str) -> None:
        self.folder = folder
        self.location = folder
        self.tmp_dir = tmp_dir
        self._pid = -1
        self._name = ""

    def path(self) -> str:
        """The file this process appends to (a forked child, or a sealed file: a new one)."""
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._name = f"{process_tag()}-{secrets.token_hex(6)}{_LOG}"
            written(self)  # sealed at exit
        return os.path.join(self.folder, self._name)

    def flush(self, timeout: float | None = None) -> None:
        """At exit: `seal`."""
        self.seal()

    def seal(self) -> None:
        """Rename this process's file ``*.sealed.jsonl``, if it has one: compaction may fold it."""
        if self._pid != os.getpid():
            return
        path = self.path()
        self._pid = -1  # a later failure starts another file
        with contextlib.suppress(OSError):  # none yet, or forgotten meanwhile
            os.rename(path, path[: -len(_LOG)] + _SEALED)

    def fold(self, host: str) -> int:
        """Fold the failure files no writer appends to into one; how many were folded.

        The caller holds ``compaction.claim``. Every failure of the folded
        files is in the new file (once) before any of them goes.
        """
        try:
            names = sorted(os.listdir(self.folder))
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise StoreError(self.folder, f"cannot be listed: {exc.strerror or exc}") from None
        fold = [n for n in names if _foldable(n, host)]
        if len(fold) < 2 and not (fold and not fold[0].startswith(COMPACTED)):
            return 0
        failures: dict[Failure, None] = {}
        for name in fold:
            for failure in read_log(os.path.join(self.folder, name)):
                failures[failure] = None
        if failures:
            staged = os.path.join(self.tmp_dir, f"{COMPACTED}{secrets.token_hex(8)}{_LOG}")
            try:
                make_folder(self.tmp_dir)
                write_file(staged, failure_lines(failures))
                os.rename(staged, os.path.join(self.folder, os.path.basename(staged)))
                sync_folder(self.folder)  # in place before the folded files go
            except OSError as exc:
                with contextlib.suppress(OSError):
                    os.unlink(staged)
                raise StoreError(
                    staged, f"cannot be written: {exc.strerror or exc}; no failure was removed"
                ) from None
        for name in fold:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.folder, name))
        return len(fold)


def _foldable(name: str, host: str) -> bool:
    """True for a failure file no writer appends to any more (seen from ``host``).

    An unsealed file of this very process is never folded: another handle of
    the store, or another thread, may append to it between the fold's read and
    its removal (the compacting handle seals its own file first).
    """
    if name.startswith(COMPACTED) and name.endswith(_LOG):
        return True
    if not _OWN.match(name):
        return False  # an older stet's file (one per pid, which a new process may reuse)
    if name.endswith(_SEALED):
        return True
    stem = name[: -len(_LOG)]
    if writer_of(stem) == (host, os.getpid()):
        return False
    return foldable(stem, host, None)

"""Writing ``stet export``'s file so that no half of it is left under its name.

Written in place, an export that fails part way (a full disk, a quota, a
kill) leaves a file that looks like a complete export of fewer runs. The
data goes to a temporary file beside the output instead, is flushed to disk
and renamed over it; a FIFO or a device (``/dev/stdout``) is written as it
is, being no file a reader could take for a complete export.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable

from ._cli_checks import Failure

__all__ = ["write_export"]


def write_export(file: str, write: Callable[[str], None]) -> None:
    """Call ``write`` with a path whose file becomes ``file`` only once it is whole.

    Raises:
        Failure: The file cannot be written (naming it and why); nothing new
            is left under its name, and a file that was there is kept.
    """
    target = os.path.realpath(file)  # a symbolic link's target is the export, as open() takes it
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise Failure(f"{file}: cannot be written: {exc.strerror or exc}") from None
    if mode is not None and not stat.S_ISREG(mode):
        try:
            write(target)  # a FIFO or a device: nothing there to leave half written
        except OSError as exc:
            raise Failure(f"{file}: cannot be written: {exc.strerror or exc}") from None
        return
    folder, name = os.path.split(target)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
        os.close(fd)
        write(tmp)
        with open(tmp, "rb") as done:
            os.fsync(done.fileno())
        os.chmod(tmp, stat.S_IMODE(mode) if mode is not None else 0o666 & ~_umask())
        os.replace(tmp, target)
        tmp = None
    except OSError as exc:
        raise Failure(
            f"{file}: cannot be written: {exc.strerror or exc} (nothing was left under that name)"
        ) from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask

"""Files on the shared server: folders and files made safely, and the server's clock.

The store's `Clock` is a seam for tests: with any clock but the system's,
the server's time is moved by as much as that clock's monotonic time moved
beyond the real one, so a `FakeClock` advanced by a lease expires claims.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
import time
from typing import Final

from ..exceptions import StoreError
from ._clock import SYSTEM_CLOCK, Clock
from ._shared_files import process_tag

__all__ = ["ServerTime", "make_folder", "write_file"]

#: Per clock other than the system's: the clock, its monotonic time and the
#: real monotonic time when it was first used (see `ServerTime.drift`).
_bases: dict[int, tuple[Clock, float, float]] = {}
_bases_lock: Final = threading.Lock()


def make_folder(path: str) -> None:
    """Make a folder (mode 0o777 less the umask) unless it exists.

    Not `os.makedirs`: its ``exist_ok`` asks `os.path.isdir`, which a
    client's stale "no such file" cache (NFS, FUSE) can answer wrongly just
    after another client made the folder.
    """
    try:
        os.mkdir(path, 0o777)
    except FileExistsError:
        pass
    except FileNotFoundError:
        make_folder(os.path.dirname(path))
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o777)


def write_file(path: str, data: bytes, *, exclusive: bool = True) -> None:
    """Write ``data`` to a new file and fsync it (mode 0o666 less the umask)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags | getattr(os, "O_NOFOLLOW", 0), 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except OSError:
        if exclusive:  # made by this call: leave no half-written file
            with contextlib.suppress(OSError):
                os.unlink(path)
        raise
    finally:
        os.close(fd)


class ServerTime:
    """The file server's clock, read from the modification time of a probe file.

    Args:
        folder: Where probe files are made (the claims' folder: the same server).
        clock: The store's clock; any but the system's shifts the server's time
            (tests).
    """

    def __init__(self, folder: str, clock: Clock) -> None:
        self.folder = folder
        self.clock = clock

    def drift(self) -> float:
        """Seconds the store's clock moved beyond real time (zero for the system clock)."""
        if self.clock is SYSTEM_CLOCK:
            return 0.0
        with _bases_lock:
            base = _bases.get(id(self.clock))
            if base is None or base[0] is not self.clock:
                base = _bases[id(self.clock)] = (
                    self.clock,
                    self.clock.now().monotonic,
                    time.monotonic(),
                )
        return (self.clock.now().monotonic - base[1]) - (time.monotonic() - base[2])

    def now_ns(self) -> int:
        """The server's time now, in nanoseconds (a probe file made, read, removed)."""
        probe = os.path.join(self.folder, f".probe-{process_tag()}-{secrets.token_hex(6)}")
        try:
            write_file(probe, b"")
            taken = os.stat(probe).st_mtime_ns
        except OSError as exc:
            raise StoreError(
                self.folder,
                f"cannot create a file to read the server's time: {exc.strerror or exc}",
            ) from None
        finally:
            with contextlib.suppress(OSError):
                os.unlink(probe)
        return taken + round(self.drift() * 1e9)

    def stamp(self, path: str) -> None:
        """Set ``path``'s modification time to the server's time now (a touch)."""
        os.utime(path)  # no times given: the server's own (NFS SET_TO_SERVER_TIME)
        self.shift(path)

    def shift(self, path: str) -> None:
        """Move a file just made (its time the server's) by the clock's drift."""
        drift = self.drift()
        if drift:
            st = os.stat(path)
            shifted = st.st_mtime_ns + round(drift * 1e9)
            os.utime(path, ns=(st.st_atime_ns, shifted))

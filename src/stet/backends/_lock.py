"""The lock that serializes writers of one store, across processes.

On POSIX it is ``flock`` on a lock file opened once per process: taking and
releasing it costs about a microsecond, where `filelock` (used on other
systems) opens and closes the file each time and costs tens. Like filelock,
it is an advisory whole-file lock, released by the kernel when a process
dies, so a killed writer never leaves a store locked.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Final

import filelock

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

__all__ = ["LockTimeout", "StoreLock", "lock_timeout"]

#: The first and the longest pause between tries of a busy lock. Shorter
#: pauses (20 µs to 2 ms, or a blocking ``flock``) hand the lock over after
#: nearly every record, and each hand-over makes the next holder read what
#: the other just wrote before its own write: measured with two writers of
#: one store on an otherwise idle 2-core machine, they wrote 0.44-0.52 times as
#: fast as one (CSV), against 0.61-0.73 times with these pauses, which let a
#: writer append several records in a row.
_FIRST_SLEEP: Final = 0.0005
_MAX_SLEEP: Final = 0.05


def lock_timeout() -> float:
    """Seconds a writer waits for a store's lock (``STET_LOCK_TIMEOUT``, default 120)."""
    try:
        return float(os.environ.get("STET_LOCK_TIMEOUT", "120"))
    except ValueError:
        return 120.0


class LockTimeout(Exception):
    """The lock was not free within the timeout."""


class StoreLock:
    """An exclusive, reentrant (within one thread of use) inter-process lock.

    Callers serialize threads themselves (the store's mutex); this class
    only excludes other processes.

    Args:
        path: The lock file; created (with its folder) if missing and never
            deleted.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None
        self._depth = 0
        self._fallback = filelock.FileLock(path, thread_local=False) if fcntl is None else None

    def __del__(self) -> None:
        # The descriptor is this object's alone: a store no longer used must
        # not keep its lock file open (a long session opens many stores).
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def after_fork(self) -> None:
        """Drop the parent's file descriptor: the child needs its own lock."""
        # The inherited descriptor shares the parent's open file (and lock);
        # closing the child's copy leaves the parent's lock in place.
        if self._fd is not None:
            os.close(self._fd)
        self._fd = None
        self._depth = 0

    def acquire(self, timeout: float) -> None:
        """Take the lock, waiting at most ``timeout`` seconds.

        Raises:
            LockTimeout: Another process held it all that time.
            OSError: The lock file cannot be created or locked.
        """
        if self._depth:
            self._depth += 1
            return
        if self._fd is None:  # first use: the store's folder may not exist yet
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        if self._fallback is not None:  # pragma: no cover - not POSIX
            try:
                self._fallback.acquire(timeout=timeout)
            except filelock.Timeout:
                raise LockTimeout(self.path) from None
            self._depth = 1
            return
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + timeout
        pause = _FIRST_SLEEP
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeout(self.path) from None
                time.sleep(pause)
                pause = min(pause * 2, _MAX_SLEEP)
        self._depth = 1

    def release(self) -> None:
        """Release one level of the lock."""
        self._depth -= 1
        if self._depth:
            return
        if self._fallback is not None:  # pragma: no cover - not POSIX
            self._fallback.release()
        elif self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

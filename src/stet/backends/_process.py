"""What stores must do when their process forks or exits.

A forked child must not inherit a store in use, nor a database connection
(even only to close it: a child that does can corrupt SQLite's shared WAL
index, so that committed records vanish). So before a fork every store
that `track` was given is paused (its threads' operations finish, its
connections close), resumed in the parent afterwards, and reset in the
child. At exit, every store that `written` was given folds what it buffers
(the Parquet store's journal) into its main file.
"""

from __future__ import annotations

import atexit
import multiprocessing
import multiprocessing.util
import os
import sys
import weakref
from typing import Protocol

__all__ = ["Flushing", "ForkAware", "track", "written"]


class ForkAware(Protocol):
    """A store that takes part in forks."""

    def pause_for_fork(self) -> bool:
        """Wait for operations in flight and close connections; True if paused."""
        ...

    def resume_after_fork(self) -> None:
        """In the parent: undo `pause_for_fork`."""
        ...

    def reset_in_child(self) -> None:
        """In the child: new mutexes, no inherited connections or locks."""
        ...


class Flushing(Protocol):
    """A store that may buffer records to fold in at exit."""

    @property
    def location(self) -> str: ...

    def flush(self, timeout: float | None = None) -> None: ...


_live: weakref.WeakSet[ForkAware] = weakref.WeakSet()
_written: weakref.WeakSet[Flushing] = weakref.WeakSet()
_paused: list[ForkAware] = []


def track(store: ForkAware) -> None:
    """Pause ``store`` around forks for as long as it lives."""
    _live.add(store)


def written(store: Flushing) -> None:
    """Flush ``store`` when the process exits (it wrote records)."""
    _written.add(store)


def _before_fork() -> None:
    for store in list(_live):
        if store.pause_for_fork():
            _paused.append(store)


def _after_fork_in_parent() -> None:
    while _paused:
        _paused.pop().resume_after_fork()


def _after_fork_in_child() -> None:
    _paused.clear()  # the child makes new mutexes
    for store in list(_live):
        store.reset_in_child()


def _flush_at_exit() -> None:
    for store in list(_written):
        try:
            store.flush(timeout=5)
        except Exception as exc:  # exiting: report, never raise
            print(
                f"[stet] Could not fold buffered records into {store.location}: {exc}",
                file=sys.stderr,
            )


def _flush_in_worker() -> None:
    # Worker processes of multiprocessing leave through os._exit, which skips
    # atexit; multiprocessing's finalizers still run when a worker finishes
    # normally. (In the main process they run after Arrow has shut down, so
    # there atexit does the work.)
    if multiprocessing.parent_process() is not None:
        _flush_at_exit()


os.register_at_fork(
    before=_before_fork,
    after_in_parent=_after_fork_in_parent,
    after_in_child=_after_fork_in_child,
)
atexit.register(_flush_at_exit)
multiprocessing.util.Finalize(None, _flush_in_worker, exitpriority=1)

"""What stet tells the researcher: skip lines, collapsed when there are many.

A resumed sweep of 100,000 finished runs must not print 100,000 lines: the
first few skips of a streak are printed in full, the rest are counted and
summed up in one line when the streak ends (a run starts, or the process
exits). Every line also goes to the ``logging`` logger ``stet`` at INFO.
``Once(quiet=True)`` or the environment variable ``STET_QUIET=1`` silences
both.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import Final

__all__ = ["FULL_LINES", "logger", "reporter"]

logger: Final = logging.getLogger("stet")

#: Skips of one streak printed in full before the rest are counted.
FULL_LINES: Final = 5


def quiet_by_environment() -> bool:
    """True when ``STET_QUIET`` asks for silence."""
    return os.environ.get("STET_QUIET", "").strip().lower() in ("1", "true", "yes", "on")


class Reporter:
    """Prints skip lines and collapses long streaks of them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._streak = 0

    def say(self, message: str) -> None:
        """Print a line to stdout and log it."""
        print(message, file=sys.stdout)
        logger.info(message)

    def warn(self, message: str) -> None:
        """Print a warning to stderr and log it (even when quiet)."""
        print(message, file=sys.stderr)
        logger.warning(message)

    def skipped(self, describe: Callable[[], str]) -> None:
        """One more skip; ``describe()`` gives ``run(alpha=0.1, seed=3)``."""
        with self._lock:
            self._streak += 1
            if self._streak <= FULL_LINES:
                self.say(f"[stet] Skipping {describe()}")

    def end_streak(self) -> None:
        """A run starts (or the process ends): sum up the skips not shown."""
        with self._lock:
            hidden = self._streak - FULL_LINES
            self._streak = 0
        if hidden > 0:
            self.say(f"[stet] ... and {hidden:,} more skipped")

    def reset(self) -> None:
        """Forget the current streak without a summary (for tests)."""
        with self._lock:
            self._streak = 0


reporter: Final = Reporter()
atexit.register(reporter.end_streak)

"""What stet tells the researcher: skip lines, collapsed when there are many.

A resumed sweep of 100,000 finished runs must not print 100,000 lines, nor
must a refined grid whose every other point is done print one line per
skip. The first few skips are printed in full; the rest are counted:

- on a terminal, one count line rewrites itself in place (and reappears
  below whatever a run prints);
- elsewhere (a log file, a notebook, a pipe), a summary line is printed when
  a long streak of skips ends, at most every `SUMMARY_SECONDS` while runs
  and skips alternate, and when the process exits.

Every printed line also goes to the ``logging`` logger ``stet`` at INFO
(the rewriting count line does not; its final count does).
``Once(quiet=True)`` or the environment variable ``STET_QUIET=1`` silences
all of it.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import sys
import threading
import time
from typing import Final

__all__ = ["FULL_LINES", "SUMMARY_SECONDS", "logger", "reporter"]

logger: Final = logging.getLogger("stet")

#: Skips printed in full before the rest are counted.
FULL_LINES: Final = 5
#: Off a terminal, the least time between two summary lines while runs and
#: skips alternate.
SUMMARY_SECONDS: Final = 30.0
#: On a terminal, the least time between two redraws of the count line.
_REDRAW_SECONDS: Final = 0.1
_CLEAR: Final = "\r\x1b[K"


def quiet_by_environment() -> bool:
    """True when ``STET_QUIET`` asks for silence."""
    return os.environ.get("STET_QUIET", "").strip().lower() in ("1", "true", "yes", "on")


class Reporter:
    """Prints skip lines and collapses many of them into a count.

    Once the first `FULL_LINES` of a streak are shown, a skip is only
    counted, without the lock: each takes the next number of an
    `itertools.count` (one C call, so no two skips share a number and none
    is lost between threads), and `_collect` turns the numbers handed out
    since it last looked into counts, under the lock, when a count is
    shown. So a collapsed skip costs a few attribute reads; the environment
    is read, and the terminal looked at, only when a line would be printed.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._shown = 0  # skip lines printed in full
        self._hidden = 0  # skips counted but not shown, since the last summary
        self._streak = 0  # skips since the last run started
        self._collapsed = False  # the first lines are shown: skips are only counted
        self._tally = itertools.count()  # numbers taken by collapsed skips
        self._tallied = next(self._tally)  # the number _collect took last
        self._drawn = False  # a count line is on the terminal, unterminated
        self._drawn_at = 0.0
        self._summarized_at = time.monotonic()
        self._stdout: object = None  # the stdout that _tty describes
        self._tty = False

    def say(self, message: str) -> None:
        """Print a line to stdout and log it."""
        if self._drawn:
            self._drawn = False
            print(_CLEAR, end="", file=sys.stdout)
        print(message, file=sys.stdout)
        logger.info(message)

    def warn(self, message: str) -> None:
        """Print a warning to stderr and log it (even when quiet)."""
        print(message, file=sys.stderr)
        logger.warning(message)

    def skipped(self) -> bool:
        """One more skip; True if it is to be shown in full (then call `show_skip`)."""
        if self._collapsed:
            next(self._tally)
            if self._stdout is not sys.stdout or (
                self._tty and time.monotonic() - self._drawn_at >= _REDRAW_SECONDS
            ):
                self._redraw()
            return False
        with self._lock:
            self._streak += 1
            if self._shown < FULL_LINES:
                if quiet_by_environment():
                    return False
                self._shown += 1
                self._collapsed = self._shown >= FULL_LINES
                return True
            self._hidden += 1  # collapsed meanwhile, by another thread
            return False

    def show_skip(self, description: str) -> None:
        """Print the full line of a skip `skipped` said to show."""
        with self._lock:
            self.say(f"[stet] Skipping {description}")

    def _redraw(self) -> None:
        """On a terminal, rewrite the count line (at most every `_REDRAW_SECONDS`)."""
        with self._lock:
            if self._stdout is not sys.stdout:  # replaced (captured, redirected)
                self._stdout = sys.stdout
                self._tty = _on_terminal()
            now = time.monotonic()
            if not self._tty or now - self._drawn_at < _REDRAW_SECONDS:
                return
            self._drawn_at = now
            if quiet_by_environment():
                return
            self._collect()
            self._drawn = True
            print(f"{_CLEAR}[stet] ... {self._hidden:,} more skipped", end="", flush=True)

    def _collect(self) -> None:
        """Count the skips that took a number since the last call (under the lock)."""
        taken = next(self._tally)
        counted = taken - self._tallied - 1  # the numbers between, not this one
        self._tallied = taken
        self._hidden += counted
        self._streak += counted

    def end_streak(self) -> None:
        """A run starts: sum up the skips not shown, if it is time to."""
        with self._lock:
            self._collect()
            streak, self._streak = self._streak, 0
            if not self._hidden:
                return
            if streak >= FULL_LINES:  # a streak of its own: sum it up now
                self._summarize()
                self._shown = 0  # the next streak shows its first lines again
                self._collapsed = False
            elif self._drawn:
                # Clear the count line: the run's own output takes its place,
                # and the next skip draws it again below.
                self._drawn = False
                print(_CLEAR, end="", flush=True)
            elif time.monotonic() - self._summarized_at >= SUMMARY_SECONDS:
                self._summarize()

    def finish(self) -> None:
        """The process ends: sum up every skip not shown yet."""
        with self._lock:
            self._collect()
            self._streak = 0
            if self._hidden:
                self._summarize()

    def _summarize(self) -> None:
        hidden, self._hidden = self._hidden, 0
        self._summarized_at = time.monotonic()
        if not quiet_by_environment():
            self.say(f"[stet] ... and {hidden:,} more skipped")

    def reset(self) -> None:
        """Forget every count without a summary (for tests)."""
        with self._lock:
            self._collect()
            self._shown = self._hidden = self._streak = 0
            self._collapsed = False
            self._drawn = False
            self._drawn_at = 0.0
            self._summarized_at = time.monotonic()
            self._stdout = None


def _on_terminal() -> bool:
    isatty = getattr(sys.stdout, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # closed
        return False


reporter: Final = Reporter()
atexit.register(reporter.finish)

"""The clock that times claims: a seam, so that tests can drive it.

A claim on a file store expires a lease after its owner's last heartbeat.
Comparing wall-clock times would make that depend on the clock being right:
an NTP step or an administrator setting the date an hour forward would
expire every claim at once while its worker still runs (and a step back
would keep a dead worker's claims alive for an hour). File stores are
one-machine stores, so their claims are timed by a clock every process on
the machine shares and nobody can set: on Linux ``CLOCK_MONOTONIC``
(`time.monotonic`), which counts from boot.

Why ``CLOCK_MONOTONIC`` and not ``CLOCK_BOOTTIME``: both are system-wide
(one value for every process on the machine) and neither can be stepped;
they differ only while the machine is suspended, which ``CLOCK_BOOTTIME``
counts. A suspend stops every worker of the machine at once, so counting it
would expire all their claims at resume, and the first worker to wake up
could take over keys whose owners are alive and about to renew them.

A monotonic reading only means something on the boot that produced it,
so each reading carries its *timeline*: the kernel's boot id (plus the
process's time-namespace offset, when it has one). Two readings are
compared only on the same timeline; anything else (a claim written before
a reboot, by another machine on a shared folder, or by an earlier stet
release, which wrote wall-clock times only) is compared by wall-clock
time, as before.
Where no boot id is available (not Linux), the timeline is None and claims
are timed by the wall clock.
"""

from __future__ import annotations

import functools
import time
from typing import Protocol

import attrs

__all__ = ["SYSTEM_CLOCK", "Clock", "Instant", "SystemClock"]


@attrs.frozen
class Instant:
    """One reading of a `Clock`.

    Attributes:
        wall: Unix time (shown to people, and compared across timelines).
        monotonic: Seconds on ``timeline``; only differences mean anything.
        timeline: Which monotonic clock ``monotonic`` was read from: the
            same text in every process of one boot of one machine, or None
            where there is no such clock.
    """

    wall: float
    monotonic: float
    timeline: str | None


class Clock(Protocol):
    """What claims need from a clock: one reading at a time, and how far it was moved.

    A store that times leases on this machine takes its readings from
    `now`. A store whose leases are timed by another machine's clock (a
    PostgreSQL server's ``now()``, so that workers' clocks need not agree)
    asks only for `ahead` and adds it to that clock: zero for the real
    clock, so the server alone decides; a test clock moved forward by the
    lease makes a claim expire there without waiting.
    """

    def now(self) -> Instant:
        """The current time."""
        ...

    def ahead(self) -> float:
        """Seconds this clock was moved forward beyond real time (0 for the real clock)."""
        ...


@functools.cache
def _timeline() -> str | None:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            boot = f.read().strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not boot:
        return None
    try:  # a time namespace shifts CLOCK_MONOTONIC for the processes in it
        with open("/proc/self/timens_offsets", encoding="ascii") as f:
            for line in f:
                name, *offset = line.split()
                if name == "monotonic" and offset != ["0", "0"]:
                    return f"{boot}+{'.'.join(offset)}"
    except (OSError, UnicodeDecodeError):
        pass
    return boot


class SystemClock:
    """The machine's clocks: `time.time` and `time.monotonic` (``CLOCK_MONOTONIC``)."""

    def now(self) -> Instant:
        return Instant(time.time(), time.monotonic(), _timeline())

    def ahead(self) -> float:
        return 0.0

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK = SystemClock()

"""A clock the tests set by hand, for the claims' clock seam (``Table(clock=...)``)."""

from __future__ import annotations

import attrs

from stet.backends._clock import Instant


@attrs.define
class FakeClock:
    """Wall and monotonic time that move only when told to.

    `advance` moves both, as time passing does; `step_wall` moves only the
    wall clock, as NTP or an administrator setting the date does.
    """

    wall: float = 1_700_000_000.0
    monotonic: float = 1_000.0
    timeline: str | None = "fake-boot"

    def now(self) -> Instant:
        return Instant(self.wall, self.monotonic, self.timeline)

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.monotonic += seconds

    def step_wall(self, seconds: float) -> None:
        self.wall += seconds

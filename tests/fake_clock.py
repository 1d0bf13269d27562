"""A clock the tests set by hand, for the claims' clock seam (``new_store(path, clock=...)``)."""

from __future__ import annotations

import attrs

from stet.backends._clock import Instant


@attrs.define
class FakeClock:
    """Wall and monotonic time that move only when told to.

    `advance` moves both, as time passing does; `step_wall` moves only the
    wall clock, as NTP or an administrator setting the date does. A store
    timed by a server's clock (PostgreSQL) adds what `advance` moved to the
    server's time (`ahead`), where real time passes as well.
    """

    wall: float = 1_700_000_000.0
    monotonic: float = 1_000.0
    timeline: str | None = "fake-boot"
    advanced: float = 0.0

    def now(self) -> Instant:
        return Instant(self.wall, self.monotonic, self.timeline)

    def ahead(self) -> float:
        return self.advanced

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.monotonic += seconds
        self.advanced += seconds

    def step_wall(self, seconds: float) -> None:
        self.wall += seconds

"""Takeovers of the shared-directory store's claims racing a release or a later taker.

Each test forces one interleaving by running the other worker from a hook
at the instant named, so none depends on timing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import attrs
import pytest

from stet.backends import new_store
from stet.backends._claims import Claim
from stet.backends._shared_claims import ClaimFiles
from stet.backends._shared_dir import SharedDirStore

from .fake_clock import FakeClock

KEY = ("key",)


def opened(clock: FakeClock) -> SharedDirStore:
    store = new_store("runs.stetdir", clock=clock)
    assert isinstance(store, SharedDirStore)
    return store


def expired_claim(clock: FakeClock) -> tuple[SharedDirStore, Claim]:
    """A store and the claim of its worker, not renewed for over a lease."""
    store = opened(clock)
    state, claim = store.claim("work", KEY, ("1",), 60.0, owner="dead")
    assert state == "claimed"
    assert claim is not None
    clock.advance(61)
    return store, claim


def holder(clock: FakeClock) -> str:
    (current,) = opened(clock).claims().values()
    return current.owner


@pytest.mark.parametrize("how", ["release", "complete"])
def test_a_worker_presumed_dead_ending_its_claim_as_it_is_taken_over_ends_only_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """The takeover lands between the old owner's look at its claim file and its removal."""
    clock = FakeClock()
    dead, claim = expired_claim(clock)
    taker = opened(clock)
    theirs = attrs.evolve(claim, owner="taker", epoch=2)
    real_read, real_remove = ClaimFiles.read, ClaimFiles.remove
    removing: list[ClaimFiles] = []
    taken: list[bool] = []

    def remove(self: ClaimFiles, claim: Claim, **kwargs: object) -> None:
        removing.append(self)
        real_remove(self, claim, **kwargs)  # type: ignore[arg-type]

    def read(self: ClaimFiles, path: str) -> tuple[Claim, int] | None:
        found = real_read(self, path)
        if removing and self is dead._claims and not taken:
            taken.append(taker._claims.take_over(path, claim, theirs))
        return found

    with monkeypatch.context() as patched:
        patched.setattr(ClaimFiles, "remove", remove)
        patched.setattr(ClaimFiles, "read", read)
        if how == "release":
            dead.release(claim)
        else:
            assert dead.complete(claim)  # still its claim when it was fenced
    assert taken == [True]
    assert taker._claims.holds(theirs)  # its claim file is still there, as it wrote it
    if how == "release":  # a third worker finds the key taken, not free
        assert holder(clock) == "taker"
        assert opened(clock).claim("work", KEY, ("1",), 60.0, owner="third")[0] == "busy"
    assert [n for n in os.listdir("runs.stetdir/claims") if n.startswith(".new-")] == []


def stopped_taker_claims(
    slow: SharedDirStore, monkeypatch: pytest.MonkeyPatch, meanwhile: Callable[[], None]
) -> str:
    """``slow``'s claim of the key, with ``meanwhile`` run once its takeover marker is made."""
    real_staged, real_take_over = ClaimFiles._staged, ClaimFiles.take_over
    taking: list[ClaimFiles] = []
    ran: list[bool] = []

    def take_over(self: ClaimFiles, path: str, expired: Claim, claim: Claim) -> bool:
        taking.append(self)
        return real_take_over(self, path, expired, claim)

    def staged(self: ClaimFiles, claim: Claim) -> str:
        if taking and self is slow._claims and not ran:  # marker made
            ran.append(True)
            meanwhile()
        return real_staged(self, claim)

    with monkeypatch.context() as patched:
        patched.setattr(ClaimFiles, "_staged", staged)
        patched.setattr(ClaimFiles, "take_over", take_over)
        state = slow.claim("work", KEY, ("1",), 60.0, owner="slow")[0]
    assert ran == [True]
    return state


def test_a_taker_stopped_for_over_a_lease_leaves_the_claim_of_the_one_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopped between its marker and its replacement, its marker was judged abandoned."""
    clock = FakeClock()
    expired_claim(clock)
    slow, quick = opened(clock), opened(clock)
    states: dict[str, str] = {}

    def meanwhile() -> None:
        clock.advance(61)  # slow is stopped (SIGSTOP) for over a lease
        states["quick"] = quick.claim("work", KEY, ("1",), 60.0, owner="quick")[0]

    states["slow"] = stopped_taker_claims(slow, monkeypatch, meanwhile)
    assert states == {"quick": "claimed", "slow": "busy"}
    assert holder(clock) == "quick"


def test_a_taker_stopped_while_the_key_was_released_and_claimed_anew_leaves_that_claim(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The presumed-dead owner woke and released; a third worker claimed the free key."""
    clock = FakeClock()
    dead, claim = expired_claim(clock)
    slow, third = opened(clock), opened(clock)
    states: dict[str, str] = {}

    def meanwhile() -> None:
        dead.release(claim)
        states["third"] = third.claim("work", KEY, ("1",), 60.0, owner="third")[0]

    states["slow"] = stopped_taker_claims(slow, monkeypatch, meanwhile)
    assert states == {"third": "claimed", "slow": "busy"}
    assert holder(clock) == "third"


def test_a_taker_stopped_after_checking_its_marker_puts_back_the_claim_it_moved_aside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its marker was still its own; the claim file then changed before it moved it aside."""
    clock = FakeClock()
    expired_claim(clock)
    slow, quick = opened(clock), opened(clock)
    real_owns = ClaimFiles._owns
    states: dict[str, str] = {}

    def owns(self: ClaimFiles, marker: str, token: bytes) -> bool:
        still = real_owns(self, marker, token)
        if self is slow._claims and "quick" not in states:
            clock.advance(61)
            states["quick"] = quick.claim("work", KEY, ("1",), 60.0, owner="quick")[0]
        return still

    with monkeypatch.context() as patched:
        patched.setattr(ClaimFiles, "_owns", owns)
        states["slow"] = slow.claim("work", KEY, ("1",), 60.0, owner="slow")[0]
    assert states == {"quick": "claimed", "slow": "busy"}
    assert holder(clock) == "quick"
    assert [n for n in os.listdir("runs.stetdir/claims") if n.startswith(".new-")] == []

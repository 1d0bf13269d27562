"""Claims against a plain model, driven by a fake clock (hypothesis state machine).

Workers (each its own open store, as separate processes have) claim keys,
renew their claims, complete or release them, record a key and die before
dropping its claim, or just die; time passes and the wall clock is set
forward and back. After every step a fresh reader must see exactly the
claims the model holds (owner, epoch, alive or expired) and each finished
key recorded once.

Every store runs here. The file stores time leases on this machine, by the
clock the store is given. PostgreSQL times them by the server's ``now()``,
to which the store adds what the fake clock was moved forward
(`Clock.ahead`); real time passes on the server too, and only ever makes a
claim expire sooner, so there time is counted in hours (a model second is
an hour), which no real delay between two steps comes near.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import ClassVar

import attrs
import psycopg
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from stet.backends import new_store
from stet.backends._claims import Claim
from stet.typing import ClaimingStore

from . import pg_server
from .conftest import STORE_KINDS, new_pg_store
from .fake_clock import FakeClock

KEYS = st.integers(0, 3)
LEASES = st.sampled_from([1.0, 2.0, 4.0])
#: Times are multiples of half a second, so that the model's sums are exact.
STEPS = st.sampled_from([0.5, 1.0, 1.5, 3.0])


@attrs.define
class ModelClaim:
    owner: str
    epoch: int
    renewed: float  # monotonic time of the claim or its last renewal
    lease: float

    def alive(self, now: float) -> bool:
        return self.renewed + self.lease > now


@attrs.define
class Worker:
    owner: str
    table: ClaimingStore
    held: dict[int, Claim] = attrs.Factory(dict)


def _key(key: int) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    return ("work", ("key",), (str(key),))


class ClaimsMachine(RuleBasedStateMachine):
    kind: ClassVar[str]
    #: Clock seconds per model second (leases, time passing).
    unit: ClassVar[float]

    def __init__(self) -> None:
        super().__init__()
        self.folder = tempfile.mkdtemp(prefix="stet-claims-")
        if self.kind == "postgresql":
            self.store = new_pg_store(pg_server.shared())
        else:
            self.store = str(Path(self.folder) / f"runs.{self.kind}")
        self.clock = FakeClock()
        self.workers: list[Worker] = []
        self.spawned = 0
        # The model: what is recorded, and which claims are in progress.
        self.records: set[int] = set()
        self.claims: dict[int, ModelClaim] = {}

    def teardown(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        self.workers.clear()  # their connections close
        if self.kind == "postgresql":
            t = self.store.rsplit("=", 1)[1]
            with psycopg.connect(pg_server.shared().url(), autocommit=True) as conn:
                conn.execute(f"DROP TABLE IF EXISTS {t}, {t}_meta, {t}_claims")

    def _open(self) -> ClaimingStore:
        opened = new_store(self.store, clock=self.clock)
        assert isinstance(opened, ClaimingStore)
        return opened

    @initialize()
    def two_workers(self) -> None:
        self.spawn()
        self.spawn()

    @precondition(lambda self: self.spawned < 5)
    @rule()
    def spawn(self) -> None:
        self.spawned += 1
        self.workers.append(Worker(f"host:{self.spawned}:w{self.spawned}", self._open()))

    @precondition(lambda self: self.workers)
    @rule(data=st.data(), key=KEYS, lease=LEASES)
    def claim(self, data: st.DataObject, key: int, lease: float) -> None:
        worker = data.draw(st.sampled_from(self.workers))
        function, cols, values = _key(key)
        lease *= self.unit
        state, claim = worker.table.claim(function, cols, values, lease, owner=worker.owner)
        current = self.claims.get(key)
        now = self.clock.monotonic
        if key in self.records:
            assert (state, claim) == ("done", None)
        elif current is not None and current.alive(now):
            assert state == "busy"
            assert claim is not None
            assert (claim.owner, claim.epoch) == (current.owner, current.epoch)
        else:
            assert state == "claimed"
            assert claim is not None
            epoch = current.epoch + 1 if current is not None else 1
            assert (claim.owner, claim.epoch) == (worker.owner, epoch)
            self.claims[key] = ModelClaim(worker.owner, epoch, now, lease)
            worker.held[key] = claim

    def _holding(self) -> list[Worker]:
        return [w for w in self.workers if w.held]

    def _pick_held(self, data: st.DataObject) -> tuple[Worker, int, Claim]:
        worker = data.draw(st.sampled_from(self._holding()))
        key = data.draw(st.sampled_from(sorted(worker.held)))
        return worker, key, worker.held.pop(key)

    def _same(self, key: int, claim: Claim) -> bool:
        current = self.claims.get(key)
        return current is not None and (current.owner, current.epoch) == (claim.owner, claim.epoch)

    @precondition(lambda self: self._holding())
    @rule(data=st.data())
    def complete(self, data: st.DataObject) -> None:
        worker, key, claim = self._pick_held(data)
        expected = self._same(key, claim)
        assert worker.table.complete(claim) == expected
        if expected:
            self.records.add(key)
            del self.claims[key]

    @precondition(lambda self: self._holding())
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        worker, key, claim = self._pick_held(data)
        worker.table.release(claim)
        if self._same(key, claim):
            del self.claims[key]

    @precondition(lambda self: self._holding())
    @rule(data=st.data())
    def heartbeat(self, data: st.DataObject) -> None:
        worker = data.draw(st.sampled_from(self._holding()))
        renewed = worker.table.renew(list(worker.held.values()))
        worker.held.update((int(c.values[0]), c) for c in renewed)
        for key, claim in worker.held.items():
            if self._same(key, claim):
                self.claims[key].renewed = self.clock.monotonic

    @precondition(lambda self: self._holding())
    @rule(data=st.data())
    def die_between_record_and_drop(self, data: st.DataObject) -> None:
        """The record is written, then the worker is killed before dropping its claim."""
        worker, key, claim = self._pick_held(data)
        if not self._same(key, claim):
            return
        worker.table.add("work", ("key",), [(str(key),)])
        self.records.add(key)
        del self.claims[key]  # finished: no longer in progress
        self.workers.remove(worker)

    @precondition(lambda self: self.workers)
    @rule(data=st.data())
    def die(self, data: st.DataObject) -> None:
        """Killed or stopped for good: its claims are never renewed again."""
        self.workers.remove(data.draw(st.sampled_from(self.workers)))

    @rule(seconds=STEPS)
    def time_passes(self, seconds: float) -> None:
        self.clock.advance(seconds * self.unit)

    @rule(hours=st.sampled_from([-1, 1, 24]))
    def wall_clock_is_set(self, hours: int) -> None:
        self.clock.step_wall(hours * 3600.0)

    @invariant()
    def a_fresh_reader_sees_the_model(self) -> None:
        reader = self._open()
        seen = {
            int(c.values[0]): (c.owner, c.epoch, c.live(self.clock.wall))
            for c in reader.claims().values()
        }
        now = self.clock.monotonic
        assert seen == {k: (c.owner, c.epoch, c.alive(now)) for k, c in self.claims.items()}
        rows = [int(r["key"]) for r in reader.records()]
        assert all(isinstance(key, int) for key in rows)
        assert Counter(rows) == Counter(self.records), "a key recorded twice, or lost"


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_claims_behave_like_the_model_whatever_the_clock_does(
    kind: str, request: pytest.FixtureRequest
) -> None:
    if kind == "postgresql":
        request.getfixturevalue("pg_server")  # started (or skipped, as every PostgreSQL test)
    unit = 3600.0 if kind == "postgresql" else 1.0
    machine = type(f"ClaimsMachine_{kind}", (ClaimsMachine,), {"kind": kind, "unit": unit})
    # PostgreSQL makes a fresh schema for every example and answers over a
    # socket: a third of the profile's examples took over a minute, most of
    # `make test`'s longest worker. A tenth keeps it to about 20 s; the
    # thorough profile (HYPOTHESIS_PROFILE=thorough) still runs it at size.
    share = 10 if kind == "postgresql" else 3
    run_state_machine_as_test(
        machine,
        settings=settings(settings(), max_examples=max(settings().max_examples // share, 10)),
    )

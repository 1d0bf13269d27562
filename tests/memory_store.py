"""A store kept in this process's memory, written against stet's public seam only.

It proves that a store is added by registering it: the conformance suite
(tests/test_conformance.py) runs over it as over the built-in stores, and
nothing in stet knows it exists. It imports only public names
(`stet.typing`, `stet.backends`, `stet.CODEC_VERSION`).

Every store object for one name (``memory://NAME``) shares one table, so
`stet.backends.new_store`, which stands for another process's view in the
tests, sees the same records at once: `refresh` has nothing to catch up
with. Claims of this process (``owner`` None) need no heartbeat: the store
lives only as long as the process that holds them, so they stay live until
completed or released. Claims made for another owner expire by the store's
clock, a fake one in tests.
"""

from __future__ import annotations

import math
import os
import secrets
import socket
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime

import attrs

import stet
from stet.backends import identity, pack
from stet.typing import (
    Claim,
    ClaimId,
    ClaimState,
    Clock,
    ColumnLimits,
    Failure,
    Instant,
    Packed,
    Record,
)

__all__ = ["SCHEME", "MemoryStore", "check_location", "forget_all"]

SCHEME = "memory://"
_HOST = socket.gethostname()
_TOKEN = secrets.token_hex(4)
_META = ("_stet_function", "_stet_timestamp", "_stet_duration", "_stet_host", "_stet_code")


def _owner() -> str:
    return f"{_HOST}:{os.getpid()}:{_TOKEN}"


def check_location(location: str) -> None:
    """Refuse ``memory://`` without a name (registered as the store's ``check``)."""
    if not location.partition("://")[2]:
        raise ValueError(f"{location!r} names no store: write memory://NAME")


@attrs.define
class _Held:
    claim: Claim
    renewed: Instant
    ours: bool  # made by this process: live until completed or released


@attrs.define
class _Table:
    records: list[Record] = attrs.Factory(list)
    done: dict[tuple[str, tuple[str, ...]], set[Packed]] = attrs.Factory(dict)
    claims: dict[ClaimId, _Held] = attrs.Factory(dict)
    failures: list[Failure] = attrs.Factory(list)
    created: bool = False
    lock: threading.RLock = attrs.Factory(threading.RLock)


_tables: dict[str, _Table] = {}
_tables_lock = threading.Lock()


def forget_all() -> None:
    """Drop every memory store (between tests)."""
    with _tables_lock:
        _tables.clear()


class MemoryStore:
    """A `stet.typing.ClaimingStore` and `FailingStore` in a dict of this process, by name."""

    limits = ColumnLimits()

    def __init__(self, location: str, *, clock: Clock) -> None:
        scheme, sep, name = location.partition("://")
        self.location = f"{scheme.lower()}{sep}{name}"  # a scheme ignores case, a name not
        self.clock = clock
        self._order: dict[tuple[str, ...], tuple[str, ...]] = {}
        with _tables_lock:
            self._table = _tables.setdefault(self.location, _Table())

    def __repr__(self) -> str:
        return f"MemoryStore({self.location!r})"

    def exists(self) -> bool:
        return self._table.created

    def refresh(self) -> None:
        pass  # every object of this name reads the one shared table

    def knows(self, function: str, cols: tuple[str, ...], key: Packed) -> bool:
        done = self._table.done
        return key in done.get((function, cols), ()) or key in done.get(("", cols), ())

    def is_done(self, function: str, cols: tuple[str, ...], key: Packed) -> bool:
        return self.knows(function, cols, key)

    def matches(self, function: str | None, cols: tuple[str, ...], values: tuple[str, ...]) -> bool:
        wanted = dict(zip(cols, values, strict=True))
        for record in self.records():
            fn, held_cols, held = identity(record, self.location)
            if function is not None and fn not in (function, ""):
                continue
            if cols != held_cols and not (cols and set(cols) < set(held_cols)):
                continue
            texts = dict(zip(held_cols, held, strict=True))
            if all(texts[c] == t for c, t in wanted.items()):
                return True
        return False

    def check_can_hold(self, cols: Sequence[str]) -> None:
        pass  # a dict holds any column name the shared rule allows

    def prefer_order(self, names: Sequence[str]) -> None:
        self._order.setdefault(tuple(sorted(names)), tuple(names))

    def _keep(self, record: Record) -> bool:
        """Hold ``record`` unless its run is recorded (table lock held)."""
        function, cols, values = identity(record, self.location)
        key = pack(values)
        if self.knows(function, cols, key):
            return False
        self._table.records.append(record)
        self._table.done.setdefault((function, cols), set()).add(key)
        self._table.created = True
        return True

    def add(
        self,
        function: str,
        cols: tuple[str, ...],
        keys: Iterable[tuple[str, ...]],
        *,
        duration: float | None = None,
        code: str | None = None,
    ) -> int:
        meta = {
            "_stet_function": function,
            "_stet_timestamp": datetime.now(UTC).isoformat(timespec="microseconds"),
            "_stet_duration": None if duration is None else f"{duration:.6f}",
            "_stet_host": _HOST,
            "_stet_code": code,
            "_stet_codec": str(stet.CODEC_VERSION),
        }
        order = self._order.get(cols, cols)
        added = 0
        with self._table.lock:
            for values in keys:
                texts = dict(zip(cols, values, strict=True))
                record = {c: texts[c] for c in order}
                record.update((c, t) for c, t in meta.items() if t)
                added += self._keep(record)
        return added

    def merge(self, records: Iterable[Record]) -> int:
        added = 0
        with self._table.lock:
            for record in records:
                # identity() brings texts of older key rules to today's.
                _, cols, values = identity(record, self.location)
                today = dict(zip(cols, values, strict=True))
                today.update((c, t) for c, t in record.items() if c in _META)
                # Texts of rules 2 and older keep an old stamp: a pruned
                # class value is found by it (stet._old_keys).
                now = str(stet.CODEC_VERSION)
                today["_stet_codec"] = now if record.get("_stet_codec") == now else "2"
                added += self._keep(today)
        return added

    def records(self) -> list[Record]:
        with self._table.lock:
            return [dict(record) for record in self._table.records]

    def delete(self, doomed: Callable[[Record], bool]) -> int:
        with self._table.lock:
            records = self.records()
            self._table.records = []
            self._table.done = {}
            for record in records:
                if not doomed(dict(record)):
                    self._keep(record)
            return len(records) - len(self._table.records)

    def clear(self, *, in_place: bool = False) -> int:
        return self.delete(lambda record: True)  # claims of running workers stay

    def flush(self, timeout: float | None = None) -> None:
        pass  # nothing is buffered

    # -- claims -------------------------------------------------------------

    def _judged(self, held: _Held, now: Instant) -> Claim:
        """The claim with its expiry as of ``now``."""
        claim, renewed = held.claim, held.renewed
        if held.ours:
            left = claim.lease
        elif renewed.timeline is not None and renewed.timeline == now.timeline:
            left = renewed.monotonic + claim.lease - now.monotonic
        else:
            left = renewed.wall + claim.lease - now.wall
        return attrs.evolve(claim, expires=now.wall + left)

    def claim(
        self,
        function: str,
        cols: tuple[str, ...],
        values: tuple[str, ...],
        lease: float,
        *,
        owner: str | None = None,
    ) -> tuple[ClaimState, Claim | None]:
        with self._table.lock:
            if self.knows(function, cols, pack(values)):
                return "done", None
            now = self.clock.now()
            current = self._table.claims.get((function, cols, values))
            if current is not None:
                judged = self._judged(current, now)
                if judged.live(now.wall):
                    return "busy", judged
            epoch = current.claim.epoch + 1 if current is not None else 1
            who = _owner() if owner is None else owner
            expires = now.wall + lease if math.isfinite(lease) else math.inf
            claim = Claim(function, cols, values, who, epoch, expires, lease, now.wall)
            self._table.claims[claim.id] = _Held(claim, now, ours=owner is None)
            return "claimed", claim

    def renew(self, claims: Sequence[Claim]) -> list[Claim]:
        renewed = []
        with self._table.lock:
            now = self.clock.now()
            for claim in claims:
                held = self._table.claims.get(claim.id)
                if held is not None and claim.same(held.claim):  # a lost claim gains nothing
                    held.renewed = now
                    renewed.append(attrs.evolve(claim, expires=now.wall + claim.lease))
        return renewed

    def complete(
        self, claim: Claim, *, duration: float | None = None, code: str | None = None
    ) -> bool:
        with self._table.lock:
            held = self._table.claims.get(claim.id)
            if held is None or not claim.same(held.claim):
                return False  # taken over (or finished) by another worker: fenced
            self.add(claim.function, claim.cols, [claim.values], duration=duration, code=code)
            del self._table.claims[claim.id]
            return True

    def release(self, claim: Claim) -> None:
        with self._table.lock:
            held = self._table.claims.get(claim.id)
            if held is not None and claim.same(held.claim):
                del self._table.claims[claim.id]

    def claims(self) -> dict[ClaimId, Claim]:
        with self._table.lock:
            now = self.clock.now()
            return {
                claim_id: self._judged(held, now)
                for claim_id, held in self._table.claims.items()
                if not self.knows(held.claim.function, held.claim.cols, pack(held.claim.values))
            }

    # -- failures: a list of their own, never among the records ----------------

    def add_failure(self, failure: Failure) -> None:
        with self._table.lock:
            self._table.failures.append(failure)

    def failures(self) -> list[Failure]:
        with self._table.lock:
            return list(self._table.failures)

    def failures_of(
        self, function: str, cols: tuple[str, ...], values: tuple[str, ...]
    ) -> list[Failure]:
        return [f for f in self.failures() if f.id == (function, cols, values)]

    def forget_failures(self, doomed: Callable[[Failure], bool] | None = None) -> int:
        with self._table.lock:
            kept = [f for f in self._table.failures if doomed is not None and not doomed(f)]
            removed = len(self._table.failures) - len(kept)
            self._table.failures = kept
            return removed

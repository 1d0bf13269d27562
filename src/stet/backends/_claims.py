"""Cooperative claims: which worker is running which key right now.

With ``Once(claim=True)`` a worker claims a key before running it. A claim
names its owner (host, process and a random token, so a reused pid is
another owner), an epoch that grows each time the key is claimed anew, and
the moment it expires. The owner's heartbeat thread pushes that moment
forward while the run lasts; a worker that dies or is stopped stops
renewing, and once its claim has expired another worker may take the key
over, with the next epoch.

Completing a run checks that the claim is still the same (owner, epoch):
a worker that wakes up after its key was taken over does not write a
second record (fencing).

File stores keep claims in ``STORE.claims.json`` beside the store,
rewritten atomically under the store's lock; SQLite keeps them in a
``stet_claims`` table. Either way the claim check and the claim write
happen under the store's lock, which is what makes claiming atomic.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import threading
import time
import weakref
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final

import attrs

from ..exceptions import StoreError

if TYPE_CHECKING:
    from ._base import Table

__all__ = ["Claim", "ClaimId", "heartbeat", "owner"]

logger: Final = logging.getLogger("stet")

#: (function, key columns, key texts): one claimable run.
ClaimId = tuple[str, tuple[str, ...], tuple[str, ...]]

_FORMAT: Final = "stet claims 1"


def _new_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


_owner = _new_owner()


def owner() -> str:
    """This process's identity as a claim owner: ``host:pid:token``."""
    return _owner


@attrs.frozen
class Claim:
    """One key being run by one worker.

    Attributes:
        function: The function's name in the store.
        cols: The key columns (sorted).
        values: The key's canonical texts, in ``cols`` order.
        owner: ``host:pid:token`` of the worker.
        epoch: 1 for the first claim of the key, one more at each takeover.
        expires: Unix time after which other workers may take the key over.
        lease: Seconds each heartbeat extends the claim by.
        since: Unix time the claim was made.
    """

    function: str
    cols: tuple[str, ...]
    values: tuple[str, ...]
    owner: str
    epoch: int
    expires: float
    lease: float
    since: float

    @property
    def id(self) -> ClaimId:
        return (self.function, self.cols, self.values)

    @property
    def host(self) -> str:
        return self.owner.split(":")[0]

    @property
    def pid(self) -> str:
        parts = self.owner.split(":")
        return parts[1] if len(parts) > 1 else "?"

    def live(self, now: float) -> bool:
        return self.expires > now

    def same(self, other: Claim | None) -> bool:
        """True if ``other`` is this very claim (fencing: owner and epoch)."""
        return other is not None and other.owner == self.owner and other.epoch == self.epoch

    def to_json(self) -> dict[str, object]:
        return {
            "function": self.function,
            "key": dict(zip(self.cols, self.values, strict=True)),
            "owner": self.owner,
            "epoch": self.epoch,
            "expires": self.expires,
            "lease": self.lease,
            "since": self.since,
        }

    @classmethod
    def from_json(cls, data: Any) -> Claim:
        key = data["key"]
        if not isinstance(key, dict):
            raise TypeError("key is not an object")
        cols = tuple(sorted(key))
        values = tuple(key[c] for c in cols)
        if not all(isinstance(t, str) for t in (*cols, *values, data["owner"], data["function"])):
            raise TypeError("texts expected")
        return cls(
            data["function"],
            cols,
            values,
            data["owner"],
            int(data["epoch"]),
            float(data["expires"]),
            float(data["lease"]),
            float(data["since"]),
        )


class ClaimsFile:
    """The claims of a file store, in ``STORE.claims.json``.

    The file holds only claims in progress (a handful, one per worker), so
    it is read and replaced whole, atomically, under the store's lock.
    """

    def __init__(self, store_path: str) -> None:
        self.path = store_path + ".claims.json"

    def load(self) -> dict[ClaimId, Claim]:
        from ._files import open_regular  # _files imports this module

        try:
            with open(open_regular(self.path), "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return {}
        except StoreError:
            raise
        except OSError as exc:
            raise StoreError(self.path, f"cannot be read: {exc.strerror or exc}") from None
        try:
            parsed = json.loads(data)
            if parsed.get("format") != _FORMAT:
                raise ValueError(f"format is {parsed.get('format')!r}, not {_FORMAT!r}")
            claims = [Claim.from_json(item) for item in parsed["claims"]]
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise StoreError(
                self.path,
                f"is not a claims file written by stet ({exc}); if no worker is "
                "running, delete it (it only says which runs are in progress)",
            ) from None
        return {c.id: c for c in claims}

    def save(self, put: Iterable[Claim], drop: Iterable[ClaimId]) -> None:
        claims = self.load()
        for claim_id in drop:
            claims.pop(claim_id, None)
        for claim in put:
            claims[claim.id] = claim
        if not claims:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise StoreError(self.path, f"cannot be removed: {exc.strerror or exc}") from None
            return
        from ._files import atomic_write  # _files imports this module

        text = json.dumps(
            {"format": _FORMAT, "claims": [c.to_json() for c in claims.values()]}, indent=1
        )
        atomic_write(self.path, text.encode())


class Heartbeat:
    """Renews the claims this process holds, from one background thread.

    Each claim is renewed every third of its lease, so two renewals can
    fail (a slow filesystem, a busy lock) before the claim expires.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._held: weakref.WeakKeyDictionary[Table, dict[ClaimId, Claim]] = (
            weakref.WeakKeyDictionary()
        )
        self._thread: threading.Thread | None = None

    def hold(self, table: Table, claim: Claim) -> None:
        with self._lock:
            self._held.setdefault(table, {})[claim.id] = claim
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="stet-heartbeat", daemon=True
                )
                self._thread.start()
        self._wake.set()

    def drop(self, table: Table, claim: Claim) -> None:
        with self._lock:
            held = self._held.get(table)
            if held is not None and claim.same(held.get(claim.id)):
                del held[claim.id]

    def current(self, table: Table, claim: Claim) -> Claim:
        """The latest renewal of ``claim`` (for completing it)."""
        with self._lock:
            held = self._held.get(table, {})
            return held.get(claim.id, claim)

    def held(self) -> dict[Table, list[Claim]]:
        with self._lock:
            return {t: list(c.values()) for t, c in self._held.items() if c}

    def _interval(self) -> float | None:
        leases = [c.lease for claims in self.held().values() for c in claims]
        return min(leases) / 3 if leases else None

    def _run(self) -> None:
        while True:
            interval = self._interval()
            self._wake.wait(interval)
            self._wake.clear()
            if interval is None:
                continue
            self.beat()

    def beat(self) -> None:
        """Renew every claim due for renewal now."""
        now = time.time()
        for table, claims in self.held().items():
            # Due once a quarter of the lease has passed: a wake-up every third
            # of the lease renews every claim, while an early wake-up (a new
            # claim was just taken) leaves fresh ones alone.
            due = [c for c in claims if c.expires - now < c.lease * 3 / 4]
            if not due:
                continue
            try:
                renewed = table.renew_claims(due)
            except Exception as exc:  # the thread must go on; the claim may still be renewed
                logger.warning("[stet] Could not renew claims in %s: %s", table.location, exc)
                continue
            with self._lock:
                held = self._held.get(table, {})
                for claim in renewed:
                    if claim.same(held.get(claim.id)):
                        held[claim.id] = claim

    def after_fork(self) -> None:
        # The child holds none of its parent's claims and has no thread yet.
        global _owner
        _owner = _new_owner()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._held = weakref.WeakKeyDictionary()
        self._thread = None


heartbeat: Final = Heartbeat()
os.register_at_fork(after_in_child=heartbeat.after_fork)


def describe_owner(claim: Claim) -> str:
    """``host H, pid P`` for messages."""
    return f"host {claim.host}, pid {claim.pid}"


def claims_by_function(claims: Mapping[ClaimId, Claim], now: float) -> dict[str, tuple[int, int]]:
    """Per function: (live claims, expired claims)."""
    out: dict[str, tuple[int, int]] = {}
    for claim in claims.values():
        live, expired = out.get(claim.function, (0, 0))
        out[claim.function] = (live + 1, expired) if claim.live(now) else (live, expired + 1)
    return out

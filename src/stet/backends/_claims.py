"""Cooperative claims: which worker is running which key right now.

With ``Once(claim=True)`` a worker claims a key before running it. A claim
names its owner (host, process and a random token, so a reused pid is
another owner), an epoch that grows each time the key is claimed anew, and
its lease. The owner's heartbeat thread renews it while the run lasts; a
worker that dies or is stopped stops renewing, and once a lease has passed
since its last renewal another worker may take the key over, with the next
epoch.

Completing a run checks that the claim is still the same (owner, epoch):
a worker that wakes up after its key was taken over does not write a
second record (fencing).

File stores keep two things apart. The *claim records* (who holds which
key, in which epoch) live in ``STORE.claims.json`` beside the store (SQLite:
a ``stet_claims`` table) and change only under the store's lock, which is
what makes claiming atomic. The *leases* (when each claim was last renewed)
live in ``STORE.claims.d/``, one small file per claim, written by its owner
alone, atomically and without any lock: a heartbeat never waits for the
store's lock, so another process holding that lock for minutes (a big
import, a stopped writer) cannot make a live worker's claim expire.
Leases are timed by the machine's monotonic clock (see `._clock`).

A claim whose key is recorded is finished, whatever its lease says: a
worker killed between writing the record and dropping the claim leaves
such a claim behind, which is not listed as in progress and is dropped by
the next claim write.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import math
import os
import secrets
import socket
import stat
import threading
import weakref
from collections.abc import Iterable, Mapping
from typing import Any, Final, Literal, Protocol

import attrs

from ..exceptions import StoreError
from ._clock import Clock, Instant
from ._files import atomic_write

__all__ = ["Claim", "ClaimId", "ClaimState", "LeaseFiles", "heartbeat", "owner"]

logger: Final = logging.getLogger("stet")

#: What claiming a key found: recorded already, claimed by a live worker,
#: or claimed now by the caller.
ClaimState = Literal["done", "busy", "claimed"]

#: (function, key columns, key texts): one claimable run.
ClaimId = tuple[str, tuple[str, ...], tuple[str, ...]]

_FORMAT: Final = "stet claims 1"
_LEASE_FORMAT: Final = "stet lease 1"


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
        expires: Unix time after which other workers may take the key over
            (as estimated when the claim was read: file stores time leases
            by the monotonic clock, PostgreSQL by the server's).
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


def _read_file(path: str, limit: int = -1) -> bytes:
    """The bytes of a regular file; anything else raises `OSError` (EINVAL).

    Opened without blocking, so that a FIFO planted in place of a claims or
    lease file is an error rather than a hang.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read(limit)
    finally:
        os.close(fd)


class ClaimsFile:
    """The claims of a file store, in ``STORE.claims.json``.

    The file holds only claims in progress (a handful, one per worker), so
    it is read and replaced whole, atomically, under the store's lock.
    """

    def __init__(self, store_path: str) -> None:
        self.path = store_path + ".claims.json"

    def load(self) -> dict[ClaimId, Claim]:

        try:
            data = _read_file(self.path)
        except FileNotFoundError:
            return {}
        except StoreError:
            raise
        except OSError as exc:
            raise StoreError(
                self.path,
                f"cannot be read: {exc.strerror or exc}; if no worker is running, delete it "
                "(it only says which runs are in progress)",
            ) from None
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
        text = json.dumps(
            {"format": _FORMAT, "claims": [c.to_json() for c in claims.values()]}, indent=1
        )
        atomic_write(self.path, text.encode())


@attrs.frozen
class Lease:
    """When a claim was last renewed: its owner's latest heartbeat."""

    owner: str
    epoch: int
    timeline: str | None
    monotonic: float
    wall: float


def remaining(claim: Claim, lease: Lease | None, now: Instant) -> float:
    """Seconds ``claim`` has left at ``now`` (zero or less: expired).

    A lease read on this machine's timeline counts by the monotonic clock,
    whatever the wall clock did meanwhile. Anything else (no lease file,
    as claims of an earlier release have; a lease from before a reboot or
    from another machine) counts by wall-clock time, the claim record's
    expiry or a lease after the last renewal, whichever is later.
    """
    if lease is not None and lease.timeline is not None and lease.timeline == now.timeline:
        return lease.monotonic + claim.lease - now.monotonic
    last = lease.wall + claim.lease if lease is not None else -math.inf
    return max(claim.expires, last) - now.wall


class LeaseFiles:
    """The leases of a file store's claims: ``STORE.claims.d/*.lease``.

    One file per claim, named by a digest of (function, key, owner, epoch),
    so that only the claim's owner ever writes it: renewing needs no lock.
    Each write replaces the file atomically (no fsync: a power failure stops
    every worker of the machine, and the boot id changes).
    """

    def __init__(self, store_path: str) -> None:
        self.path = store_path + ".claims.d"

    def _file(self, claim: Claim) -> str:
        ident = json.dumps([claim.function, claim.cols, claim.values, claim.owner, claim.epoch])
        return os.path.join(self.path, hashlib.sha256(ident.encode()).hexdigest()[:32] + ".lease")

    def write(self, claim: Claim, now: Instant) -> None:
        """Record that ``claim`` is renewed at ``now``."""
        data = json.dumps(
            {
                "format": _LEASE_FORMAT,
                "owner": claim.owner,
                "epoch": claim.epoch,
                "timeline": now.timeline,
                "monotonic": now.monotonic,
                "wall": now.wall,
            }
        ).encode()
        path = self._file(claim)
        tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
        for attempt in (1, 2):  # the folder may be removed by a sweep meanwhile
            try:
                os.makedirs(self.path, exist_ok=True)
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view) :]
                finally:
                    os.close(fd)
                os.replace(tmp, path)
                return
            except FileNotFoundError:
                if attempt == 2:
                    raise StoreError(self.path, "cannot be written: it keeps vanishing") from None
            except OSError as exc:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise StoreError(
                    self.path,
                    f"cannot hold the claims' leases: {exc.strerror or exc} (it must be "
                    "a folder stet can write; if no worker is running, delete it)",
                ) from None

    def read(self, claim: Claim) -> Lease | None:
        """The latest lease of ``claim``, or None if there is none.

        A file that is not a lease of this very claim counts as no lease:
        the claim then expires by its record's wall-clock time.
        """
        try:
            data = json.loads(_read_file(self._file(claim), 4096))
            lease = Lease(
                data["owner"],
                int(data["epoch"]),
                data["timeline"],
                float(data["monotonic"]),
                float(data["wall"]),
            )
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.EINVAL:  # not a regular file: no lease of ours
                return None
            raise StoreError(self.path, f"cannot be read: {exc.strerror or exc}") from None
        except (ValueError, TypeError, KeyError, AttributeError):
            return None
        if data.get("format") != _LEASE_FORMAT or not isinstance(lease.timeline, str | None):
            return None
        if (lease.owner, lease.epoch) != (claim.owner, claim.epoch):
            return None
        return lease

    def delete(self, claim: Claim) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self._file(claim))

    def sweep(self, claims: Iterable[Claim]) -> None:
        """Delete the leases of claims not in ``claims`` (store lock held).

        They belong to claims that were completed, released or taken over,
        by a worker killed before it could delete them. With no claim left
        the folder goes too.
        """
        keep = {os.path.basename(self._file(c)) for c in claims}
        try:
            names = os.listdir(self.path)
        except OSError:
            return
        for name in names:
            if name.endswith(".lease") and name not in keep:
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(self.path, name))
        if not keep:
            with contextlib.suppress(OSError):
                os.rmdir(self.path)  # fails while a heartbeat is writing: fine


class Renewing(Protocol):
    """A store whose claims the heartbeat renews."""

    @property
    def location(self) -> str: ...

    @property
    def clock(self) -> Clock: ...

    def renew(self, claims: list[Claim]) -> list[Claim]: ...


class Heartbeat:
    """Renews the claims this process holds, from one background thread.

    Each claim is renewed every third of its lease, so two renewals can
    fail (a slow filesystem, a lost connection) before the claim expires.
    When a renewal is due is decided by the table's monotonic clock, so a
    wall clock set back an hour does not pause the heartbeat.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Event()
        #: Per table: each held claim and the monotonic time it was last renewed.
        self._held: weakref.WeakKeyDictionary[Renewing, dict[ClaimId, tuple[Claim, float]]] = (
            weakref.WeakKeyDictionary()
        )
        self._thread: threading.Thread | None = None

    def hold(self, table: Renewing, claim: Claim) -> None:
        renewed = table.clock.now().monotonic
        with self._lock:
            self._held.setdefault(table, {})[claim.id] = (claim, renewed)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="stet-heartbeat", daemon=True
                )
                self._thread.start()
        self._wake.set()

    def drop(self, table: Renewing, claim: Claim) -> None:
        with self._lock:
            held = self._held.get(table)
            if held is not None and claim.id in held and claim.same(held[claim.id][0]):
                del held[claim.id]

    def current(self, table: Renewing, claim: Claim) -> Claim:
        """The latest renewal of ``claim`` (for completing it)."""
        with self._lock:
            entry = self._held.get(table, {}).get(claim.id)
            return entry[0] if entry is not None else claim

    def held(self) -> dict[Renewing, list[Claim]]:
        with self._lock:
            return {t: [c for c, _ in held.values()] for t, held in self._held.items() if held}

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
        with self._lock:
            held = {t: list(h.values()) for t, h in self._held.items() if h}
        for table, entries in held.items():
            now = table.clock.now().monotonic
            # Due once a quarter of the lease has passed: a wake-up every third
            # of the lease renews every claim, while an early wake-up (a new
            # claim was just taken) leaves fresh ones alone.
            due = [c for c, renewed in entries if now - renewed >= c.lease / 4]
            if not due:
                continue
            try:
                renewed_claims = table.renew(due)
            except Exception as exc:  # the thread must go on; the claim may still be renewed
                logger.warning("[stet] Could not renew claims in %s: %s", table.location, exc)
                continue
            with self._lock:
                current = self._held.get(table, {})
                for claim in renewed_claims:
                    entry = current.get(claim.id)
                    if entry is not None and claim.same(entry[0]):
                        current[claim.id] = (claim, now)

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

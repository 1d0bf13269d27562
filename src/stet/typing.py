"""The contracts of stet's stores, for code that uses or adds one.

Two levels:

- `Store` is the text level every store implements and everything in stet
  (the decorator, `stet.status`, the CLI) uses: key columns and key texts
  already encoded by the codec, records as dicts of texts. A store that
  also implements `ClaimingStore` supports ``Once(claim=True)``.
- `Backend` is the value level users call (``has/record/load/remove/clear``
  with ordinary Python values): one adapter, `stet.backends.StoreBackend`,
  over any `Store` and the codec.

A new store is a class satisfying `Store` (and, for claims, `ClaimingStore`)
plus one `stet.backends.register` call; see the how-to "Write your own store".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol, runtime_checkable

from .backends._claims import Claim, ClaimId, ClaimState
from .backends._clock import Clock, Instant
from .backends._columns import ColumnLimits
from .backends._failures import Failure
from .backends._index import Packed
from .backends._records import Record

__all__ = [
    "Backend",
    "Claim",
    "ClaimId",
    "ClaimState",
    "ClaimingStore",
    "Clock",
    "ColumnLimits",
    "CompactingStore",
    "FailingStore",
    "Failure",
    "Instant",
    "Packed",
    "Record",
    "Store",
    "StoreFactory",
]


@runtime_checkable
class Store(Protocol):
    """A table of finished runs, addressed by key texts.

    A key is the tuple of its columns' texts in the order of ``cols``, the
    key column names sorted; `pack` (in ``stet.backends``) makes the one
    hashable the lookups take. ``function`` is the decorated function's name
    in the store, ``""`` for records that count for every function.
    """

    @property
    def location(self) -> str:
        """Where the store is, as shown in messages (never a password)."""
        ...

    @property
    def limits(self) -> ColumnLimits:
        """What this store cannot hold in column names, beyond the shared rule."""
        ...

    @property
    def clock(self) -> Clock:
        """What times claims' leases here (a fake one in tests).

        A store that times leases on this machine reads `Clock.now`; one
        whose leases are timed by a server (PostgreSQL's ``now()``, so that
        workers' clocks need not agree) asks only for `Clock.ahead` and adds
        it to the server's time, so a test clock moved forward expires its
        claims too.
        """
        ...

    def exists(self) -> bool:
        """True once the store has been created."""
        ...

    def refresh(self) -> None:
        """Catch up with what other writers recorded since the last look."""
        ...

    def knows(self, function: str, cols: tuple[str, ...], key: Packed) -> bool:
        """True if this process already saw the key recorded (no I/O: the hot path)."""
        ...

    def is_done(self, function: str, cols: tuple[str, ...], key: Packed) -> bool:
        """True if the key is recorded, looking for other writers' records when not known."""
        ...

    def matches(self, function: str | None, cols: tuple[str, ...], values: tuple[str, ...]) -> bool:
        """True if a record holds each of ``cols`` with these texts, after a refresh.

        The record may have more key columns (stet 0.0.x's subset lookup);
        ``function`` None looks at every function's records.
        """
        ...

    def check_can_hold(self, cols: Sequence[str]) -> None:
        """Raise `ValueError` if these key columns cannot be written beside the store's own."""
        ...

    def prefer_order(self, names: Sequence[str]) -> None:
        """Write these key columns in this order where a store has an order (a CSV header)."""
        ...

    def add(
        self,
        function: str,
        cols: tuple[str, ...],
        keys: Iterable[tuple[str, ...]],
        *,
        duration: float | None = None,
        code: str | None = None,
    ) -> int:
        """Record the keys not yet recorded, atomically; return how many were new."""
        ...

    def merge(self, records: Iterable[Record]) -> int:
        """Add other stores' records (metadata kept), one per run; return how many."""
        ...

    def records(self) -> list[Record]:
        """Every record, as stored (a fresh read)."""
        ...

    def delete(self, doomed: Callable[[Record], bool]) -> int:
        """Delete the records for which ``doomed(record)`` is true; return how many."""
        ...

    def clear(self, *, in_place: bool = False) -> int:
        """Delete every record (a file store may delete its file); return how many.

        ``in_place`` keeps the file, emptied (it is reached through a link).
        Locks and the claims of running workers stay.
        """
        ...

    def flush(self, timeout: float | None = None) -> None:
        """Move buffered records into the main file, if the store buffers any."""
        ...


@runtime_checkable
class ClaimingStore(Store, Protocol):
    """A store whose workers can claim keys (``Once(claim=True)``)."""

    def claim(
        self,
        function: str,
        cols: tuple[str, ...],
        values: tuple[str, ...],
        lease: float,
        *,
        owner: str | None = None,
    ) -> tuple[ClaimState, Claim | None]:
        """Claim a key atomically: ``("done", None)``, ``("busy", other)`` or ``("claimed", new)``.

        A claim for this process (``owner`` None) is renewed by its heartbeat
        until completed or released.
        """
        ...

    def renew(self, claims: Sequence[Claim]) -> list[Claim]:
        """Renew these claims' leases now; return them renewed."""
        ...

    def complete(
        self, claim: Claim, *, duration: float | None = None, code: str | None = None
    ) -> bool:
        """Record a claimed key and drop the claim; False if it was lost to another worker."""
        ...

    def release(self, claim: Claim) -> None:
        """Give a claim up (the run failed): the key may run again at once."""
        ...

    def claims(self) -> dict[ClaimId, Claim]:
        """The claims in progress, live or expired, as of now."""
        ...


@runtime_checkable
class FailingStore(Store, Protocol):
    """A store that keeps failed runs beside its records (every built-in store does).

    A failure is never a record: `Store.records`, `Store.is_done` and any
    reader of the finished-runs table never see it.
    """

    def add_failure(self, failure: Failure) -> None:
        """Record that a call raised (crash-safe; never takes the records' lock)."""
        ...

    def failures(self) -> list[Failure]:
        """Every failure recorded (a fresh read)."""
        ...

    def failures_of(
        self, function: str, cols: tuple[str, ...], values: tuple[str, ...]
    ) -> list[Failure]:
        """The failures of one run, oldest first, after a look for other writers' ones."""
        ...

    def forget_failures(self, doomed: Callable[[Failure], bool] | None = None) -> int:
        """Remove the failures for which ``doomed`` is true (None: all); return how many."""
        ...


@runtime_checkable
class CompactingStore(Store, Protocol):
    """A store made of many files that `stet.compact` folds into one."""

    def compact(self) -> int:
        """Fold the files no writer appends to any more into one; return how many were folded."""
        ...


class StoreFactory(Protocol):
    """Opens the store at a path or URL (what `stet.backends.register` takes)."""

    def __call__(self, location: str, /, *, clock: Clock) -> Store: ...


@runtime_checkable
class Backend(Protocol):
    """A store of finished runs, addressed with ordinary Python values."""

    @property
    def location(self) -> str:
        """Where the store is, as shown in messages."""
        ...

    def has(self, key: Mapping[str, object], *, function: str | None = None) -> bool:
        """True if a record holds these key columns (all or some of its own) and values."""
        ...

    def record(self, key: Mapping[str, object], *, function: str | None = None) -> bool:
        """Record the key as done; False if it already was."""
        ...

    def load(self) -> list[dict[str, object]]:
        """Every record, key values decoded."""
        ...

    def remove(self, key: Mapping[str, object], *, function: str | None = None) -> int:
        """Remove every record matching the key (as `has` does); return how many."""
        ...

    def clear(self) -> None:
        """Remove every record (a file store deletes its file; lock and claims stay)."""
        ...

"""Protocols for code that works with stet's stores.

A `Backend` is what `stet.backends.get_backend` returns and what every
backend class satisfies: a table of finished runs, addressed with ordinary
Python values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

__all__ = ["Backend"]


@runtime_checkable
class Backend(Protocol):
    """A store of finished runs."""

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

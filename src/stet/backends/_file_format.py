"""What a file store is made of, as the store sees it: a format and claim records.

`FileStore` (`._file_store`) drives a `FileFormat` under its lock; the
CSV, JSON, SQLite and Parquet formats implement it (`._files.FileFormat`
gives the defaults). `ClaimRecords` is where a store keeps its claims.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from .._lazy import pa
from ._claims import Claim, ClaimId
from ._records import Batch, Cursor, Record

__all__ = ["ClaimRecords", "FileFormat"]


class FileFormat(Protocol):
    """How one kind of file holds the records.

    A format holds no records itself. The store calls `append`, `rewrite`
    and `fold` only while holding its lock, and only right after a `scan`
    brought the cursor up to date; `encode` (and a `scan`) also without it.

    Attributes:
        path: The store's file, symbolic links resolved.
        location: The store as messages name it.
    """

    path: str
    location: str

    def scan(
        self, cursor: Cursor | None, *, every_column: bool = False
    ) -> tuple[Batch, Cursor | None, bool]:
        """Read records: ``(records, cursor, complete)``.

        With ``complete`` true the records are the whole store (it was new,
        replaced or rewritten); otherwise those added since ``cursor``. A
        missing store gives ``([], None, True)``. Metadata columns the index
        does not need may be left out unless ``every_column`` is true.
        """
        ...

    def unchanged(self, cursor: Cursor | None) -> bool:
        """True if the store is still as ``cursor`` saw it: one cheap look
        (a ``stat``), which may say False when unsure; a `scan` then reads."""
        ...

    def encode(self, records: Sequence[Record], cursor: Cursor | None) -> object:
        """What `append` would write for ``records`` after ``cursor``, made
        before the lock is taken (None: nothing to make ahead)."""
        ...

    def append(
        self, records: Sequence[Record], cursor: Cursor | None, encoded: object = None
    ) -> Cursor:
        """Add records (creating the store if ``cursor`` is None); return the cursor.

        ``encoded`` is what `encode` made of the same records, perhaps for
        an older cursor: used if it still fits, made again if not.
        """
        ...

    def rewrite(self, records: Sequence[Record], cursor: Cursor | None) -> Cursor:
        """Replace every record atomically; return the new cursor."""
        ...

    def remove(self, table: pa.Table, doomed: Any, cursor: Cursor | None) -> Cursor:
        """Remove the records at the rows ``doomed`` (a boolean numpy mask over
        ``table``, the whole store as `scan` just read it) atomically; return the
        new cursor (`._files.FileFormat` rewrites the others, column by column)."""
        ...

    def fold(self, cursor: Cursor | None) -> Cursor | None:
        """Move buffered records into the main file (none buffered: return ``cursor``)."""
        ...

    def before_fork(self) -> None:
        """Close what a forked child must not inherit (a database connection)."""
        ...

    def after_fork(self) -> None:
        """In a forked child: drop inherited connections unused."""
        ...


class ClaimRecords(Protocol):
    """Where a file store keeps its claims: who holds which key, in which epoch."""

    def load(self) -> dict[ClaimId, Claim]:
        """The claim records."""
        ...

    def save(self, put: Iterable[Claim], drop: Iterable[ClaimId]) -> None:
        """Add or replace claims and remove others (store lock held)."""
        ...

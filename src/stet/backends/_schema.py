"""The ``_stet_`` metadata columns, and what a record says about its run.

Every store holds the same columns: one per key parameter, then these
metadata columns. Reading a record back to the run it records (`identity`)
is where texts of older key rules are brought to today's, so every store
and every tool agrees on which run a record is.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Final

from .._codec import CODEC_VERSION
from .._codec_legacy import canonical_from_legacy, canonical_from_v1
from ..exceptions import StoreError
from ._key_columns import KeyColumns
from ._new_records import NewRecords
from ._records import Record

__all__ = [
    "CODE",
    "CODEC",
    "CURRENT",
    "DURATION",
    "FUNCTION",
    "HOST",
    "META_COLUMNS",
    "PREFIX",
    "THIS_HOST",
    "TIMESTAMP",
    "identity",
    "is_meta",
    "meta_value",
    "new_record_rows",
    "new_records",
    "now_text",
]

#: What every metadata column's name starts with; no key parameter's may.
PREFIX: Final = "_stet_"
TIMESTAMP: Final = "_stet_timestamp"
FUNCTION: Final = "_stet_function"
DURATION: Final = "_stet_duration"
HOST: Final = "_stet_host"
CODEC: Final = "_stet_codec"
CODE: Final = "_stet_code"
META_COLUMNS: Final = (FUNCTION, TIMESTAMP, DURATION, HOST, CODE, CODEC)

#: The ``_stet_codec`` text of records written now.
CURRENT: Final = str(CODEC_VERSION)
#: This machine, as records name it in ``_stet_host``.
THIS_HOST: Final = socket.gethostname()


def is_meta(name: str) -> bool:
    """True for a metadata column's name (``_stet_...``), false for a key column's."""
    return name[:6] == PREFIX


#: A run as a record names it: (function, key columns sorted, their texts).
Identity = tuple[str, tuple[str, ...], tuple[str, ...]]


def identity(record: Record, location: str) -> Identity:
    """The (function, key columns, key texts) a record records.

    Records without a ``_stet_codec`` (stet 0.0.x, hand-written) hold
    ``str(value)`` texts, and records of key rules version 1 a few texts
    that changed since: both are canonicalized here. Version 2 texts are
    today's, but for a class value that ``exclude=`` reaches into, which
    they hold as a mapping (`stet._old_keys` finds those). A store of one's own
    reads its records through it, and writes merged records with these
    texts and ``_stet_codec`` 3 (`stet.CODEC_VERSION`), or 2 for a record
    of version 2 or older, so that old stores merge into it as into the
    built-in ones. The function is ``""``
    for a record that counts for every function; the key columns are sorted.

    Args:
        record: A record as a store holds it.
        location: The store, named in the error.

    Raises:
        StoreError: The record was written by a newer stet, or its
            ``_stet_codec`` is not a version (``location`` names the store).
    """
    version = record.get(CODEC)
    if version == CURRENT or version == "2":
        keys = {c: t for c, t in record.items() if c[:6] != PREFIX}
    elif version is None:
        keys = {c: canonical_from_legacy(t) for c, t in record.items() if c[:6] != PREFIX}
    elif version == "1":
        keys = {c: canonical_from_v1(t) for c, t in record.items() if c[:6] != PREFIX}
    else:
        raise _bad_version(version, location)
    cols = tuple(sorted(keys))
    return record.get(FUNCTION, ""), cols, tuple(keys[c] for c in cols)


def _bad_version(version: str, location: str) -> StoreError:
    if version.isdigit() and int(version) > CODEC_VERSION:
        return StoreError(
            location,
            f"a record was written with key rules version {version}, newer "
            f"than this stet's ({CODEC_VERSION}); upgrade stet to use this store",
        )
    return StoreError(location, f"_stet_codec holds {version!r}, not a version")


def now_text() -> str:
    """The current UTC time as ISO 8601 text with microseconds."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def new_records(
    function: str,
    cols: tuple[str, ...],
    keys: Iterable[tuple[str, ...]],
    *,
    order: Sequence[str] | None = None,
    duration: float | None = None,
    code: str | None = None,
) -> list[Record]:
    """The records of runs of ``function`` with these keys, finished now.

    ``keys`` hold texts in the order of ``cols`` (sorted); ``order`` is the
    order the key columns are written in, when the store keeps one.
    """
    return list(new_record_rows(function, cols, keys, order=order, duration=duration, code=code))


def new_record_rows(
    function: str,
    cols: tuple[str, ...],
    keys: Iterable[tuple[str, ...]],
    *,
    order: Sequence[str] | None = None,
    duration: float | None = None,
    code: str | None = None,
) -> NewRecords:
    """`new_records` as rows of texts, without a dict per record (see `NewRecords`)."""
    timestamp = now_text()
    meta: Record = {}
    if function:
        meta[FUNCTION] = function
    meta[TIMESTAMP] = timestamp
    if duration is not None:
        meta[DURATION] = f"{duration:.6f}"
    meta[HOST] = THIS_HOST
    if code:
        meta[CODE] = code
    meta[CODEC] = CURRENT
    texts = keys if isinstance(keys, KeyColumns) else list(keys)
    return NewRecords.ordered(cols, texts, meta, order)


def meta_value(col: str, text: str) -> object:
    """A metadata cell as a Python value: time, duration and codec parsed, others text."""
    if col == TIMESTAMP:
        try:
            stamp = datetime.fromisoformat(text)
        except ValueError:
            return text
        return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)
    if col in (DURATION, CODEC):
        try:
            return float(text) if col == DURATION else int(text)
        except ValueError:
            return text
    return text

"""The in-memory index of finished runs that makes a skip a set lookup.

Every store keeps one: per (function, key columns), the set of keys
recorded, each packed into one string where it can be (see `pack`). It is
built from a store's records when the store is opened or rewritten, and
grown by what other writers append and what this process records.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Final

from .._codec_legacy import V1_CHANGED
from ..exceptions import StoreError
from ._records import Batch, Columns, Record, as_records
from ._schema import CODEC, CURRENT, FUNCTION, identity, is_meta

__all__ = ["SEP", "KeyIndex", "Packed", "pack", "unpack"]

#: A key as the index holds it: see `pack`.
Packed = str | tuple[str, ...]
#: The group of keys a key belongs to: (function, key columns).
Group = tuple[str, tuple[str, ...]]
SEP: Final = "\x1f"


def pack(values: tuple[str, ...]) -> Packed:
    """One key's texts as a single hashable, as small as possible.

    One text stays itself; several are joined with the unit separator, which
    is unambiguous for a fixed number of columns unless a text contains it,
    in which case the tuple is kept. A million keys then cost about one
    string each in memory.
    """
    if len(values) == 1:
        return values[0]
    for text in values:
        if SEP in text:
            return values
    return SEP.join(values)


def unpack(packed: Packed, width: int) -> tuple[str, ...]:
    """The texts `pack` made ``packed`` of, for a key of ``width`` columns."""
    if isinstance(packed, tuple):
        return packed
    return (packed,) if width == 1 else tuple(packed.split(SEP))


class KeyIndex:
    """The keys recorded in a store, grouped by function and key columns.

    A record without a function (written by ``Backend.record`` without one,
    or by stet 0.0.x) counts for every function with its key columns.

    Attributes:
        groups: Per (function, key columns), the packed keys recorded. A
            rebuild replaces the dict, so a reader in another thread keeps
            looking at a whole one.
    """

    def __init__(self, location: str) -> None:
        self.location = location
        self.groups: dict[Group, set[Packed]] = {}

    def knows(self, function: str, cols: tuple[str, ...], key: Packed) -> bool:
        """True if the key is recorded for this function (or for every function)."""
        groups = self.groups
        done = groups.get((function, cols))
        if done is not None and key in done:
            return True
        done = groups.get(("", cols))
        return done is not None and key in done

    def add(self, function: str, cols: tuple[str, ...], keys: Iterable[Packed]) -> None:
        """Hold these keys as recorded."""
        self.groups.setdefault((function, cols), set()).update(keys)

    def columns(self) -> set[str]:
        """Every key column of the records indexed."""
        return {c for (_, cols) in self.groups for c in cols}

    def matches(self, function: str | None, cols: tuple[str, ...], values: tuple[str, ...]) -> bool:
        """True if a record holds each of ``cols`` with these texts (all its columns or some).

        ``function`` None looks at every function's records.
        """
        packed = pack(values)
        wanted = set(cols)
        for (fn, group), done in list(self.groups.items()):
            if function is not None and fn not in (function, ""):
                continue
            if group == cols:
                if packed in done:
                    return True
            elif cols and wanted < set(group):
                where = [group.index(col) for col in cols]
                for other in done:
                    texts = unpack(other, len(group))
                    if all(texts[i] == t for i, t in zip(where, values, strict=True)):
                        return True
        return False

    def fresh(
        self, function: str, cols: tuple[str, ...], keys: Iterable[tuple[str, ...]]
    ) -> dict[Packed, tuple[str, ...]]:
        """The keys not recorded yet, each once, by their packed form."""
        out: dict[Packed, tuple[str, ...]] = {}
        for values in keys:
            packed = pack(values)
            if packed not in out and not self.knows(function, cols, packed):
                out[packed] = values
        return out

    def unseen(
        self, records: Iterable[Record], check: Callable[[tuple[str, ...]], None]
    ) -> tuple[list[Record], dict[Group, set[Packed]]]:
        """Of other stores' records, those of runs not recorded here, written as today's.

        One record per run; their metadata is kept and their texts are
        today's. ``check`` sees each new group's key columns first (and may
        refuse them). Returns the records and their keys by group, to `add`
        once they are written.
        """
        out: list[Record] = []
        new: dict[Group, set[Packed]] = {}
        for record in records:
            function, cols, values = identity(record, self.location)
            packed = pack(values)
            group = new.setdefault((function, cols), set())
            done = self.groups.get((function, cols))
            if (done is not None and packed in done) or packed in group:
                continue
            if not group:  # a group seen for the first time
                check(cols)
            if function and not function.isprintable():
                raise StoreError(
                    self.location,
                    f"a record to merge names the function {function!r}, which holds a "
                    "control character no store line may hold; fix it in the source",
                )
            clean = {c: t for c, t in record.items() if is_meta(c)}
            clean.update(zip(cols, values, strict=True))
            clean[CODEC] = CURRENT
            out.append(clean)
            group.add(packed)
        return out, new

    def rebuild(self, batch: Batch) -> None:
        """Index exactly these records (the whole store, read anew)."""
        groups: dict[Group, set[Packed]] = {}
        _ingest(batch, groups, self.location)
        self.groups = groups

    def ingest(self, batch: Batch) -> None:
        """Add these records (read since the last look) to the index."""
        _ingest(batch, self.groups, self.location)


def _ingest(batch: Batch, groups: dict[Group, set[Packed]], location: str) -> None:
    if isinstance(batch, Columns):
        if not _ingest_columns(batch, groups):
            _ingest_records(as_records(batch), groups, location)
        # A big read leaves Arrow's allocator holding the columns' memory.
        batch.release()
        return
    _ingest_records(batch, groups, location)


def _ingest_records(
    records: Sequence[Record], groups: dict[Group, set[Packed]], location: str
) -> None:
    for record in records:
        function, cols, values = identity(record, location)
        groups.setdefault((function, cols), set()).add(pack(values))


def _ingest_columns(columns: Columns, groups: dict[Group, set[Packed]]) -> bool:
    """Index uniform columns without a dict per record; False if not uniform.

    Uniform: every record has every key column and texts of today's key
    rules (version 1 texts count when none of them changed since), which
    is what a store with one function (or one key) looks like.
    """
    names = columns.names
    if CODEC not in names:
        return False
    versions = columns.distinct(CODEC)
    keys = sorted(n for n in names if not is_meta(n))
    if not versions <= {CURRENT, "1"}:
        return False
    if "1" in versions and any(columns.matches(k, V1_CHANGED) for k in keys):
        return False
    if any(columns.has_null(k) for k in keys):
        return False
    cols = tuple(keys)
    distinct = columns.distinct(FUNCTION) if FUNCTION in names else {None}
    separated = len(keys) > 1 and any(columns.contains(k, SEP) for k in keys)
    values = [columns.column(k) for k in keys]
    if len(values) == 1:
        packed: Iterable[Packed] = values[0]  # type: ignore[assignment]  # no None: checked
    elif separated:
        packed = [pack(v) for v in zip(*values, strict=True)]
    else:
        packed = map(SEP.join, zip(*values, strict=True))
    if len(distinct) == 1:
        (function,) = distinct
        groups.setdefault((function or "", cols), set()).update(packed)
        return True
    functions = columns.column(FUNCTION)
    for function, key in zip(functions, packed, strict=True):
        groups.setdefault((function or "", cols), set()).add(key)
    return True

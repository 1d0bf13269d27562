"""The in-memory index of finished runs that makes a skip a set lookup.

Every store keeps one: per (function, key columns), the set of keys
recorded, each packed into one string where it can be (see `pack`). It is
built from a store's records when the store is opened or rewritten, and
grown by what other writers append and what this process records. Keys
read in bulk are held as their UTF-8 texts in a table (`._dense.KeySet`),
their text and about 16 bytes a key, so a store of ten million records
opens in a few hundred megabytes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Final

from .._codec_legacy import V1_CHANGED
from .._lazy import np, pa
from ..exceptions import StoreError
from . import _dense
from ._dense import KeySet
from ._dense_texts import Texts, texts_of_arrow, texts_of_strs
from ._key_columns import FreshKeys, KeyColumns
from ._records import Batch, Columns, Record, as_records
from ._schema import CODEC, CURRENT, FUNCTION, identity, is_meta

__all__ = ["SEP", "KeyIndex", "Packed", "pack", "pack_all", "pack_columns", "unpack"]

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


def pack_all(keys: Sequence[tuple[str, ...]], width: int) -> list[Packed]:
    """`pack` of each key of ``width`` texts, joined in one pass where no text holds `SEP`."""
    if width == 1:
        return [values[0] for values in keys]
    joined = list(map(SEP.join, keys))
    # Each join holds width - 1 separators unless a text holds one itself.
    if SEP.join(joined).count(SEP) == len(joined) * width - 1:
        return list(joined)
    return [pack(values) for values in keys]


def pack_columns(keys: KeyColumns) -> list[Packed]:
    """`pack_all` of keys held column by column, without a tuple per key where no text
    holds `SEP`."""
    columns = keys.columns
    if len(columns) == 1:
        return list(columns[0])
    if any(SEP in "".join(column) for column in columns):
        return [pack(values) for values in keys]
    return list(map(SEP.join, zip(*columns, strict=True)))


def unpack(packed: Packed, width: int) -> tuple[str, ...]:
    """The texts `pack` made ``packed`` of, for a key of ``width`` columns."""
    if isinstance(packed, tuple):
        return packed
    return (packed,) if width == 1 else tuple(packed.split(SEP))


class KeyIndex:
    """The keys recorded in a store, grouped by function and key columns.

    A record without a function (written by ``Backend.record`` without one,
    or by stet 0.0.x) counts for every function with its key columns.

    Args:
        location: The store, for messages.
        source: The store's records, read anew: asked only by `matches` for
            a subset of a group's columns when the group holds keys in
            its table, whose texts it does not list.

    Attributes:
        groups: Per (function, key columns), the packed keys recorded. A
            rebuild replaces the dict, so a reader in another thread keeps
            looking at a whole one.
    """

    def __init__(self, location: str, source: Callable[[], Iterable[Record]] | None = None) -> None:
        self.location = location
        self.source = source
        self.groups: dict[Group, KeySet] = {}

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
        if isinstance(keys, FreshKeys) and keys.unique is not None:
            keys = keys.unique  # the same keys, their set already made (faster to add)
        self.groups.setdefault((function, cols), KeySet()).update(keys)

    def columns(self) -> set[str]:
        """Every key column of the records indexed."""
        return {c for (_, cols) in self.groups for c in cols}

    def matches(self, function: str | None, cols: tuple[str, ...], values: tuple[str, ...]) -> bool:
        """True if a record holds each of ``cols`` with these texts (all its columns or some).

        ``function`` None looks at every function's records.
        """
        packed = pack(values)
        wanted = set(cols)
        reread = False
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
                reread = reread or done.dense
        if reread and self.source is not None:
            return self._matches_in_source(function, cols, values)
        return False

    def _matches_in_source(
        self, function: str | None, cols: tuple[str, ...], values: tuple[str, ...]
    ) -> bool:
        """`matches` of some columns, from the records (the table does not list its texts)."""
        assert self.source is not None
        wanted = set(cols)
        for record in self.source():
            fn, group, texts = identity(record, self.location)
            if function is not None and fn not in (function, ""):
                continue
            if wanted < set(group) and all(
                texts[group.index(c)] == t for c, t in zip(cols, values, strict=True)
            ):
                return True
        return False

    def fresh(
        self, function: str, cols: tuple[str, ...], keys: Iterable[tuple[str, ...]]
    ) -> dict[Packed, tuple[str, ...]]:
        """The keys not recorded yet, each once, by their packed form."""
        keys = keys if isinstance(keys, list) else list(keys)
        # Equal packed forms are equal keys: the first of each stays, in order.
        out = dict(zip(pack_all(keys, len(cols)), keys, strict=True))
        held = [g for g in (self.groups.get((function, cols)), self.groups.get(("", cols))) if g]
        for done in held:
            out = {packed: values for packed, values in out.items() if packed not in done}
        return out

    def fresh_columns(
        self, function: str, cols: tuple[str, ...], keys: KeyColumns
    ) -> FreshKeys[Packed]:
        """`fresh` of keys held column by column, kept so (see `FreshKeys`).

        Nothing is rebuilt when every key is new and none is repeated (a
        first import), which the size of their set tells; `add` then takes
        that set as it is.
        """
        packed = pack_columns(keys)
        held = [g for g in (self.groups.get((function, cols)), self.groups.get(("", cols))) if g]
        if not held:
            unique = set(packed)
            if len(unique) == len(packed):
                return FreshKeys(packed, keys, unique)
        # Equal packed forms are equal keys: which row of them stays does not
        # matter, and a dict keeps the order in which each was first seen.
        rows = dict(zip(packed, range(len(packed)), strict=True))
        for done in held:
            rows = {p: row for p, row in rows.items() if p not in done}
        return FreshKeys(list(rows), keys.take(list(rows.values())))

    def unseen(
        self, records: Iterable[Record], check: Callable[[tuple[str, ...]], None]
    ) -> tuple[list[Record], dict[Group, set[Packed]]]:
        """Of other stores' records, those of runs not recorded here, written as today's.

        One record per run; their metadata is kept and their texts are
        today's (stamped 3, or 2 if written under key rules 2 or older).
        ``check`` sees each new group's key columns first (and may refuse
        them). Returns the records and their keys by group, to `add`
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
            # Texts of key rules 2 and older are stamped 2: they are today's
            # but for pruned class values, which only an old stamp lets a
            # call find (`stet._old_keys`).
            clean[CODEC] = CURRENT if record.get(CODEC) == CURRENT else "2"
            out.append(clean)
            group.add(packed)
        return out, new

    def rebuild(self, batch: Batch) -> None:
        """Index exactly these records (the whole store, read anew)."""
        groups: dict[Group, KeySet] = {}
        _ingest(batch, groups, self.location)
        self.groups = groups

    def ingest(self, batch: Batch) -> None:
        """Add these records (read since the last look) to the index."""
        _ingest(batch, self.groups, self.location)


def _ingest(batch: Batch, groups: dict[Group, KeySet], location: str) -> None:
    if isinstance(batch, Columns):
        if not _ingest_columns(batch, groups):
            _ingest_records(as_records(batch), groups, location)
        # A big read leaves Arrow's allocator holding the columns' memory.
        batch.release()
        if len(batch) > _dense.FOLD_AT:
            _dense.trim_heap()
        return
    _ingest_records(batch, groups, location)


def _ingest_records(records: Sequence[Record], groups: dict[Group, KeySet], location: str) -> None:
    for record in records:
        function, cols, values = identity(record, location)
        groups.setdefault((function, cols), KeySet()).add(pack(values))


def _ingest_columns(columns: Columns, groups: dict[Group, KeySet]) -> bool:
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
    if not versions <= {CURRENT, "2", "1"}:
        return False
    if "1" in versions and any(columns.matches(k, V1_CHANGED) for k in keys):
        return False
    if any(columns.has_null(k) for k in keys):
        return False
    cols = tuple(keys)
    distinct: set[str | None] = columns.distinct(FUNCTION) if FUNCTION in names else {None}
    separated = len(keys) > 1 and any(columns.contains(k, SEP) for k in keys)
    if not separated and len(columns) > _dense.FOLD_AT:
        _ingest_dense(columns, cols, distinct, groups)
        return True
    values = [columns.column(k) for k in keys]
    if len(values) == 1:
        packed: Iterable[Packed] = values[0]  # type: ignore[assignment]  # no None: checked
    elif separated:
        packed = [pack(v) for v in zip(*values, strict=True)]
    else:
        packed = map(SEP.join, zip(*values, strict=True))
    if len(distinct) == 1:
        (function,) = distinct
        groups.setdefault((function or "", cols), KeySet()).update(packed)
        return True
    functions = columns.column(FUNCTION)
    for function, key in zip(functions, packed, strict=True):
        groups.setdefault((function or "", cols), KeySet()).add(key)
    return True


def _ingest_dense(
    columns: Columns,
    cols: tuple[str, ...],
    distinct: set[str | None],
    groups: dict[Group, KeySet],
) -> None:
    """Uniform columns of no separator, held as texts in a table, a chunk at a time."""
    parts = columns.key_parts(cols, SEP, _dense.CHUNK)
    if len(distinct) == 1:
        (function,) = distinct
        keys = groups.setdefault((function or "", cols), KeySet())
        keys.absorb(texts for part in parts for texts in _texts(part))
        return
    found: dict[str, list[Texts]] = {}
    functions = columns.chunks([FUNCTION], _dense.CHUNK)
    for part, (fns,) in zip(parts, functions, strict=True):
        # The chunk's rows grouped by function (stable), then each group's texts.
        names = [fn or "" for fn in fns]
        code_of = {name: code for code, name in enumerate(dict.fromkeys(names))}
        codes = np.fromiter(map(code_of.__getitem__, names), dtype=np.int64, count=len(names))
        order = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[order], np.arange(len(code_of) + 1)).tolist()
        taken: tuple[pa.ChunkedArray[Any], ...] | list[str]
        if isinstance(part, list):
            taken = [part[i] for i in order.tolist()]
        else:
            taken = tuple(column.take(order) for column in part)
        for name, code in code_of.items():
            a, b = bounds[code], bounds[code + 1]
            some = taken[a:b] if isinstance(taken, list) else tuple(c[a:b] for c in taken)
            found.setdefault(name, []).extend(_texts(some))
    for fn, chunks in found.items():
        groups.setdefault((fn, cols), KeySet()).absorb(chunks)


def _texts(part: tuple[pa.ChunkedArray[Any], ...] | list[str]) -> Iterator[Texts]:
    return texts_of_strs(part) if isinstance(part, list) else texts_of_arrow(part, SEP)

"""The value-level view of a store: `has`, `record`, `load`, `remove`, `clear`.

`StoreBackend` is one thin adapter over any `stet.typing.Store` and the
codec: it encodes ordinary Python values to key texts on the way in and
decodes them on the way out. The named classes (`CsvBackend`...) only say
which store they open, so that ``CsvBackend("runs.csv")`` works as it did
in stet 0.0.x.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from .._codec import KeyCodec
from .._codec_legacy import canonical_from_legacy
from .._lazy import np
from .._lazy import pc as _pc
from .._old_texts import OLD_VERSIONS, old_keys, old_rows
from ..exceptions import KeyEncodingError, StoreError
from ..typing import Record, Store, StoreFactory
from ._clock import SYSTEM_CLOCK, Clock
from ._columns import check_key_columns
from ._csv import open_csv
from ._file_store import given_path
from ._json import open_json
from ._parquet import open_parquet
from ._postgres import PostgresStore
from ._schema import CODEC, identity, is_meta, meta_value
from ._sqlite import open_sqlite
from ._table import WholeStore, delete_selected

__all__ = [
    "CsvBackend",
    "JsonBackend",
    "ParquetBackend",
    "PostgresBackend",
    "SqliteBackend",
    "StoreBackend",
]


class StoreBackend:
    """A store addressed with ordinary Python values (`stet.typing.Backend`).

    Args:
        store: The store, or (for the named subclasses) its path.
        codec: Encodes and decodes key values (the default key rules).
        clock: What times claims' leases, when a path is given.
    """

    #: Opens the store when a subclass is given a path.
    opener: ClassVar[StoreFactory | None] = None

    def __init__(
        self,
        store: Store | str | os.PathLike[str],
        *,
        codec: KeyCodec | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if isinstance(store, str | os.PathLike):
            opener = type(self).opener
            if opener is None:
                raise TypeError(
                    "StoreBackend takes a Store; for a path, use stet.backends.get_backend(path)"
                )
            store = opener(given_path(store), clock=clock)
        self.store: Store = store
        self.codec = codec if codec is not None else KeyCodec()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r})"

    @property
    def location(self) -> str:
        """Where the store is, as shown in messages."""
        return self.store.location

    @property
    def path(self) -> Path:
        """The store's file (a store without one, PostgreSQL, has none)."""
        path = getattr(self.store, "path", None)
        if not isinstance(path, str):
            raise AttributeError(
                f"{self.location} has no file, so no .path; its address is .location"
            )
        return Path(path)

    def exists(self) -> bool:
        """True once the store has been created."""
        return self.store.exists()

    def flush(self) -> None:
        """Move records a store buffers into its main file.

        Only the Parquet store buffers (in ``STORE.journal.csv``); stet does
        this by itself in batches and when the process exits. Call it to
        make `pandas.read_parquet` see every record right now.
        """
        self.store.flush()

    def _encode_key(self, key: Mapping[str, object]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        if not isinstance(key, Mapping):
            raise TypeError(f"a key must be a mapping of parameter names to values, got {key!r}")
        names = list(key)
        check_key_columns(names, self.store.limits, store=self.location)
        cols = tuple(sorted(names))
        values: list[str] = []
        for col in cols:
            try:
                values.append(self.codec.encode(key[col]))
            except KeyEncodingError as exc:
                raise exc.for_parameter(col) from None
        return cols, tuple(values)

    def has(self, key: Mapping[str, object], *, function: str | None = None) -> bool:
        """True if a record matches ``key``.

        A record matches when it holds each given column with the given
        value: all its key columns, or some of them, as in stet 0.0.x (a
        record of ``x=2, y=3`` makes ``has({"x": 2})`` true). A decorated
        function's own lookups are exact.

        Args:
            key: Parameter names and values.
            function: Only records of this function (and records without a
                function); None looks at every function.
        """
        cols, values = self._encode_key(key)
        return self.store.matches(function, cols, values)

    def record(self, key: Mapping[str, object], *, function: str | None = None) -> bool:
        """Record ``key`` as done; return False if it already was.

        Args:
            key: Parameter names and values.
            function: The function the record belongs to; None records it
                for every function whose key columns match.
        """
        cols, values = self._encode_key(key)
        return self.store.add(function or "", cols, [values]) == 1

    def remove(self, key: Mapping[str, object], *, function: str | None = None) -> int:
        """Remove every record matching ``key`` (see `has`); return how many.

        A string that matches nothing where a record holds the number (or
        bool, or None) it spells, as stet 0.0.x stored values, is refused
        with the call to write instead.

        Args:
            key: Parameter names and values, all or some of a record's key columns.
            function: Only this function's records; None removes the key for
                every function.

        Raises:
            KeyEncodingError: ``key`` holds such a string.
        """
        return self.remove_matching(key, function, type(self).__name__ + ".remove({key})")

    def remove_matching(self, key: Mapping[str, object], function: str | None, call: str) -> int:
        """`remove`, naming ``call`` (with ``{key}`` for the key) in its hint."""
        cols, values = self._encode_key(key)
        legacy = [
            canonical_from_legacy(v) if isinstance(v, str) else None for v in map(key.get, cols)
        ]
        meant = tuple(t if t is not None else v for t, v in zip(legacy, values, strict=True))
        spelt = 0  # records that ``meant`` matches
        # A class value that exclude= reached into was keyed as a mapping by
        # key rules 2 ({"lr": 0.1} for Adam(lr=0.1)); such records still skip
        # the call (stet._old_texts), so they go too: only those rules' records.
        olds = [tuple(o[c] for c in cols) for o in old_keys(dict(zip(cols, values, strict=True)))]

        def doomed(record: Record) -> bool:
            nonlocal spelt
            fn, c, v = identity(record, self.location)
            if function is not None and fn != function:
                return False
            if meant != values and _matches(c, v, cols, meant):
                spelt += 1
            if olds and record.get(CODEC) in OLD_VERSIONS:
                return any(_matches(c, v, cols, held) for held in (values, *olds))
            return _matches(c, v, cols, values)

        def select(whole: WholeStore) -> Any:
            nonlocal spelt
            if meant != values:
                spelt += int(_matching_rows(whole, function, cols, meant).sum())
            rows = _matching_rows(whole, function, cols, values)
            if olds:
                old = old_rows(whole.column(CODEC))
                for held in olds:
                    rows |= old & _matching_rows(whole, function, cols, held)
            return rows

        removed = delete_selected(self.store, select, doomed)
        if removed or not spelt:
            return removed
        typed = dict(key)
        changed = [c for c, m, v in zip(cols, meant, values, strict=True) if m != v]
        for col in changed:
            typed[col] = self._decode(meant[cols.index(col)])
        given = ", ".join(f"{c}={key[c]!r}" for c in changed)
        holds = ", ".join(f"{c}={typed[c]!r}" for c in changed)
        raise KeyEncodingError(
            "str",
            changed[0],
            reason=f"no record has {given}, but {spelt} record(s) have {holds}; key values "
            "keep their type now (stet 0.0.x compared them as text), so write "
            + call.replace("{key}", repr(typed)),
        )

    def clear(self) -> None:
        """Remove every record.

        The store's file is deleted (a Parquet store's journal too), as
        stet 0.0.x did; a SQLite or PostgreSQL store, and a store reached
        through a symbolic link, are emptied in place instead. The lock file
        and the claims of running workers stay, so a sweep running meanwhile
        loses nothing it records afterwards.
        """
        self.store.clear()

    def load(self) -> list[dict[str, object]]:
        """Every record, with key values decoded to Python values.

        Metadata comes as ``_stet_timestamp`` (aware datetime),
        ``_stet_duration`` (float), and texts for the other ``_stet_`` columns.
        """
        out: list[dict[str, object]] = []
        for row in self.store.records():
            _, cols, values = identity(row, self.location)
            record: dict[str, object] = {
                c: self._decode(t) for c, t in zip(cols, values, strict=True)
            }
            for col, text in row.items():
                if is_meta(col):
                    record[col] = meta_value(col, text)
            out.append(record)
        return out

    def _decode(self, text: str) -> object:
        try:
            return self.codec.decode(text)
        except ValueError as exc:
            raise StoreError(self.location, f"a key cell cannot be read: {exc}") from None


def _matches(
    cols: tuple[str, ...], texts: tuple[str, ...], wanted: tuple[str, ...], values: tuple[str, ...]
) -> bool:
    """True if a record of ``cols``/``texts`` holds each ``wanted`` column's value.

    An empty key matches only records with no key columns (a function
    without parameters), never every record.
    """
    if not wanted:
        return not cols
    held = dict(zip(cols, texts, strict=True))
    return all(held.get(c) == v for c, v in zip(wanted, values, strict=True))


#: pyarrow.compute, untyped here: its stubs' overloads do not cover chunked arrays and str.
pc: Any = _pc


def _matching_rows(
    whole: WholeStore, function: str | None, wanted: tuple[str, ...], values: tuple[str, ...]
) -> Any:
    """`_matches` of every record of a whole store (and of ``function``), as a numpy mask."""
    rows = np.ones(len(whole), dtype=bool)
    if function is not None:
        rows &= pc.equal(whole.functions, function).to_numpy(zero_copy_only=False)
    if not wanted:
        for name in whole.keys:
            rows &= whole.column(name).is_null().to_numpy(zero_copy_only=False)
    for name, text in zip(wanted, values, strict=True):
        same = pc.fill_null(pc.equal(whole.column(name), text), False)
        rows &= same.to_numpy(zero_copy_only=False)
    return rows


class CsvBackend(StoreBackend):
    """A store in a CSV file (``.csv``), the default.

    Opens in a spreadsheet and in `pandas.read_csv`: one column per key
    parameter holding the value's canonical text, then the ``_stet_``
    metadata columns.

    Example:
        >>> import tempfile, os
        >>> store = CsvBackend(os.path.join(tempfile.mkdtemp(), "runs.csv"))
        >>> store.record({"alpha": 0.1, "seed": 3})
        True
        >>> store.has({"alpha": 0.1, "seed": 3})
        True
    """

    opener = staticmethod(open_csv)


class JsonBackend(StoreBackend):
    """A store in a JSON file (``.json``): an array of record objects.

    Needs nothing beyond the standard library to read: `json.load` gives a
    list of dicts, `pandas.read_json` a DataFrame.
    """

    opener = staticmethod(open_json)


class SqliteBackend(StoreBackend):
    """A store in a SQLite database (``.sqlite``, ``.db``), standard library only.

    Records are rows of the ``stet_records`` table; query it with any SQLite
    tool. The database uses write-ahead logging, which needs every process
    on one machine (use PostgreSQL across machines).
    """

    opener = staticmethod(open_sqlite)


class ParquetBackend(StoreBackend):
    """A store in a Parquet file (``.parquet``): string columns, read by pandas/Arrow.

    New records go to ``STORE.journal.csv`` next to it and are folded into
    the Parquet file in batches and when the process exits; stet reads both.
    """

    opener = staticmethod(open_parquet)


class PostgresBackend(StoreBackend):
    """A store in a PostgreSQL database, shared by workers on many machines.

    Args:
        url: ``postgresql://user[:password]@host[:port]/database[?table=NAME]``;
            missing parts come from libpq's environment (``PGHOST``...).
        codec: The codec used to encode and decode key values.

    Writing a record is one statement (one round trip to the server);
    before a run, one small query looks for records other workers added;
    a skip of a key this process has seen recorded asks nothing. Passwords
    never appear in messages, reprs or `status`. It has no file, so no
    `path`: its password-free URL is `location`. `clear` empties the table.
    """

    def __init__(
        self,
        url: str | Store,
        *,
        codec: KeyCodec | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        store = PostgresStore(url, clock=clock) if isinstance(url, str) else url
        super().__init__(store, codec=codec)

"""The tables of a PostgreSQL store: what they hold, creating them, migrating them.

``NAME``
    One row per record: a text column per key parameter (the codec's
    canonical text), ``_stet_function`` ('' for a record of no function),
    ``_stet_timestamp`` (timestamptz), ``_stet_duration`` (double),
    ``_stet_host``, ``_stet_code``, ``_stet_codec``, and two columns of
    stet's own: ``_stet_key``, the key as JSON of sorted {column: text},
    unique together with the function (by their digests, so a key of any
    length fits the index), so recording is idempotent; and ``_stet_seq``,
    the change number of the write that added the row.
``NAME_meta``
    One row: a change counter every write increments, and a generation
    every deletion increments.
``NAME_claims``
    Claims in progress, with expiry times from the server's clock.

The first use in each process creates what is missing, checks that a table
of that name is stet's, and migrates a store of an earlier layout, in one
transaction under an advisory lock: a process killed midway leaves the
store as it was, and the next one finds the work done.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, Final

from ..exceptions import StoreError
from ._columns import META_PREFIX, ColumnLimits, check_column_name, check_key_columns
from ._pg_driver import psycopg
from ._pg_retry import Connection
from ._schema import FUNCTION, TIMESTAMP

__all__ = [
    "CLAIM_IDENTITY",
    "KEY",
    "PG_LIMITS",
    "RECORD_IDENTITY",
    "RECORD_MATCH",
    "SEQ",
    "Schema",
    "key_json",
]

KEY: Final = "_stet_key"
SEQ: Final = "_stet_seq"
#: PostgreSQL keeps the first 63 bytes of a longer name (NAMEDATALEN - 1)
#: and would silently cut a longer parameter name, whose records would then
#: never match the parameter again.
PG_LIMITS: Final = ColumnLimits(max_bytes=63)


def key_json(cols: Sequence[str], values: Sequence[str]) -> str:
    """The ``_stet_key`` text of a key: JSON of sorted {column: text}."""
    return json.dumps(
        dict(zip(cols, values, strict=True)),
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )


def _digest(text: str) -> str:
    """SQL for the SHA-256 of a text column or parameter.

    A text becomes bytes through bytea's escape input with every backslash
    doubled (PostgreSQL has no immutable text-to-bytea function, and an
    index needs one); ``md5`` would be simpler but is refused by servers in
    FIPS mode.
    """
    return f"sha256(replace({text}, E'\\\\', E'\\\\\\\\')::bytea)"


#: What makes a record unique: digests of its function and its key, so a key
#: of any length fits in the index (a btree entry holds at most ~2.7 KB).
RECORD_IDENTITY: Final = f"({_digest('_stet_function')}, {_digest('_stet_key')})"
RECORD_MATCH: Final = (
    f"{_digest('_stet_function')} = {_digest('%s::text')} "
    f"AND {_digest('_stet_key')} = {_digest('%s::text')}"
)
CLAIM_IDENTITY: Final = f"({_digest('function')}, {_digest('key')})"
#: The unique constraints of stores made before digests, as
#: ``pg_get_constraintdef`` shows them; the first use migrates them.
_OLD_RECORD_KEY: Final = "UNIQUE (_stet_function, _stet_key)"
_OLD_CLAIM_KEY: Final = "PRIMARY KEY (function, key)"


def _exists(conn: psycopg.Connection[Any], relation: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (relation,)).fetchone()
    return row is not None and bool(row[0])


class Schema:
    """The tables of one store, and what this process knows of them.

    Args:
        connection: The store's connection (for its table name and errors).
    """

    def __init__(self, connection: Connection) -> None:
        sql = psycopg.sql
        self.connection = connection
        self.location = connection.location
        self.table = t = connection.target.table
        self.records = sql.Identifier(t)
        self.meta = sql.Identifier(t + "_meta")
        self.claims = sql.Identifier(t + "_claims")
        self.ready = False  # tables known to exist (this process made sure)
        self.columns: set[str] = set()

    def exists(self, conn: psycopg.Connection[Any]) -> bool:
        """True if the records table exists."""
        return _exists(conn, self.table)

    def ensure(self, conn: psycopg.Connection[Any]) -> None:
        """Create the tables if missing (once per process), check them, migrate them."""
        if self.ready:
            return
        sql = psycopg.sql
        t = self.table
        with conn.transaction():
            # Serializes concurrent first uses (CREATE ... IF NOT EXISTS alone
            # can still collide in the catalog) and migrations.
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ("stet " + t,))
            conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} ("
                    "_stet_function text NOT NULL DEFAULT '', "
                    "_stet_timestamp timestamptz, _stet_duration double precision, "
                    "_stet_host text, _stet_code text, _stet_codec text, "
                    "_stet_key text NOT NULL, _stet_seq bigint NOT NULL)"
                ).format(self.records)
            )
            self.columns = self.read_columns(conn)
            for needed in (KEY, SEQ, FUNCTION, TIMESTAMP):
                if needed not in self.columns:
                    raise self.foreign(f"no {needed} column")
            conn.execute(
                sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (_stet_seq)").format(
                    sql.Identifier(t + "_seq"), self.records
                )
            )
            self._unique_by_digest(conn, t, t + "_record_key", RECORD_IDENTITY, _OLD_RECORD_KEY)
            conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (id integer PRIMARY KEY CHECK (id = 1), "
                    "format text NOT NULL, generation bigint NOT NULL, version bigint NOT NULL)"
                ).format(self.meta)
            )
            conn.execute(
                sql.SQL(
                    "INSERT INTO {} VALUES (1, 'stet 1', 0, 0) ON CONFLICT (id) DO NOTHING"
                ).format(self.meta)
            )
            conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (function text NOT NULL, key text NOT NULL, "
                    "owner text NOT NULL, epoch bigint NOT NULL, expires timestamptz NOT NULL, "
                    "lease double precision NOT NULL, since timestamptz NOT NULL)"
                ).format(self.claims)
            )
            claims = t + "_claims"
            self._unique_by_digest(conn, claims, t + "_claims_key", CLAIM_IDENTITY, _OLD_CLAIM_KEY)
            # Claims are looked up by their key text; a hash index holds any length.
            if not _exists(conn, t + "_claims_find"):
                conn.execute(
                    sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} USING hash (key)").format(
                        sql.Identifier(t + "_claims_find"), self.claims
                    )
                )
        self.ready = True

    def _unique_by_digest(
        self, conn: psycopg.Connection[Any], table: str, index: str, identity: str, old: str
    ) -> None:
        """Make ``table`` unique by the digests ``identity``, dropping the ``old`` constraint.

        Stores made by earlier versions were unique by the texts themselves,
        whose btree index refuses a key of more than about 2.7 KB. Run inside the
        first-use transaction (under its advisory lock): the migration
        commits whole or not at all, and the next process finds it done.
        """
        sql = psycopg.sql
        # CREATE INDEX locks out writers even when the index exists: only
        # when it is missing.
        if not _exists(conn, index):
            conn.execute(
                sql.SQL("CREATE UNIQUE INDEX IF NOT EXISTS {} ON {} " + identity).format(
                    sql.Identifier(index), sql.Identifier(table)
                )
            )
        row = conn.execute(
            "SELECT i.indrelid = to_regclass(%s) FROM pg_index i "
            "WHERE i.indexrelid = to_regclass(%s)",
            (table, index),
        ).fetchone()
        if row is None or not row[0]:
            raise self.connection.error(
                f"the name {index} is taken by another table or index in this database, "
                "so stet cannot index its store; use ?table= to pick another name"
            )
        for (name,) in conn.execute(
            "SELECT conname FROM pg_constraint WHERE conrelid = to_regclass(%s) "
            "AND pg_get_constraintdef(oid) = %s",
            (table, old),
        ).fetchall():
            conn.execute(
                sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                    sql.Identifier(table), sql.Identifier(name)
                )
            )

    def foreign(self, missing: str) -> StoreError:
        """The error for a table of the store's name that stet did not make."""
        return self.connection.error(
            f"table {self.table} exists but has {missing}, so it "
            "is not a stet store; it is left untouched (use ?table= to pick another name)"
        )

    def read_columns(self, conn: psycopg.Connection[Any]) -> set[str]:
        """The records table's columns, each checked to be one stet writes."""
        rows = conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) "
            "AND attnum > 0 AND NOT attisdropped",
            (self.table,),
        ).fetchall()
        names = {r[0] for r in rows}
        for name in names:
            if name not in (KEY, SEQ):
                check_column_name(name, self.location)
        return names

    def add_columns(self, conn: psycopg.Connection[Any], names: Iterable[str]) -> None:
        """Add a text column for each of ``names`` the records table lacks."""
        missing = [n for n in names if n not in self.columns]
        if not missing:
            return
        sql = psycopg.sql
        self.columns = self.read_columns(conn)
        for name in missing:
            if name not in self.columns:
                check_column_name(name, self.location)
                if not name.startswith(META_PREFIX):
                    check_key_columns([name], PG_LIMITS, store=self.location)
                conn.execute(
                    sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} text").format(
                        self.records, sql.Identifier(name)
                    )
                )
                self.columns.add(name)

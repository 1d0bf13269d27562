"""Reading and writing a PostgreSQL store's records.

Writes take the ``NAME_meta`` row's lock (by incrementing its change
counter), so change numbers commit in order: a process that has read every
row up to number N only ever needs rows above N, and checking for news is
one tiny query. A first read, and a read after a deletion (which moves the
generation on), reads the whole table through COPY into Arrow.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

import attrs

from .._lazy import pa, pa_csv
from ._new_records import NewRecords
from ._pg_copy import copy_chunks
from ._pg_driver import psycopg
from ._pg_retry import Connection, Retry
from ._pg_schema import KEY, RECORD_IDENTITY, RECORD_MATCH, SEQ, Schema, key_json
from ._records import Batch, Columns, Cursor, Record
from ._schema import DURATION, FUNCTION, TIMESTAMP

__all__ = ["PgCursor", "Rows"]

#: Rows written by one multi-row INSERT; larger batches go through COPY.
_INSERT_ROWS: Final = 200
#: New records of shared metadata (mark_done's) sent column by column past this.
_COPY_ROWS: Final = _INSERT_ROWS
_ISO: Final = """'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'"""


@attrs.frozen
class PgCursor:
    """How far a reader has read: the generation and the last change number."""

    generation: int
    version: int


def _text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _timestamp(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        return None  # a hand-written time stet cannot read: stored as NULL
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)


def _duration(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _marks(columns: Sequence[str]) -> list[Any]:
    sql = psycopg.sql
    casts = {TIMESTAMP: "%s::timestamptz", DURATION: "%s::float8"}
    return [sql.SQL(casts.get(c, "%s::text")) for c in columns]


class Rows:
    """The records table's statements.

    Args:
        connection: Runs them (with retries).
        schema: Creates the tables and columns they need.
    """

    def __init__(self, connection: Connection, schema: Schema) -> None:
        self.connection = connection
        self.schema = schema

    def scan(
        self, cursor: Cursor | None, *, every_column: bool = False
    ) -> tuple[Batch, Cursor | None, bool]:
        """What was recorded since ``cursor``: ``(rows, new cursor, whole store?)``.

        The rows are every record when the third item is true (no cursor,
        or records were deleted since), else only those added since.
        ``every_column`` reads the metadata columns too.
        """

        def op(conn: psycopg.Connection[Any]) -> tuple[Batch, Cursor | None, bool]:
            try:
                row = conn.execute(
                    psycopg.sql.SQL("SELECT generation, version FROM {} WHERE id = 1").format(
                        self.schema.meta
                    )
                ).fetchone()
            except psycopg.errors.UndefinedTable:
                self.schema.ready = False
                # One snapshot for both: another process may create the store
                # between the query above and this one.
                found = conn.execute(
                    "SELECT to_regclass(%s) IS NOT NULL, to_regclass(%s) IS NOT NULL",
                    (self.schema.table, self.schema.table + "_meta"),
                ).fetchone()
                records, meta = found if found is not None else (False, False)
                if records and meta:  # created meanwhile: read it
                    raise Retry from None
                if records:  # a table of that name, but not stet's
                    raise self.schema.foreign(f"no {self.schema.table}_meta table") from None
                return [], None, True
            if row is None:
                raise self.connection.error(f"table {self.schema.table}_meta has lost its row")
            now = PgCursor(int(row[0]), int(row[1]))
            if now == cursor:
                return [], cursor, False
            if isinstance(cursor, PgCursor) and cursor.generation == now.generation:
                return self._read_since(conn, cursor.version, now.version), now, False
            return self._read_all(conn, now.version, every_column), now, True

        return self.connection.run("read the store", op)

    def _read_since(self, conn: psycopg.Connection[Any], since: int, upto: int) -> list[Record]:
        cur = conn.execute(
            psycopg.sql.SQL("SELECT * FROM {} WHERE _stet_seq > %s AND _stet_seq <= %s").format(
                self.schema.records
            ),
            (since, upto),
        )
        names = [d.name for d in cur.description or ()]
        out: list[Record] = []
        for values in cur.fetchall():
            row: Record = {}
            for name, value in zip(names, values, strict=True):
                text = _text(value)
                if text is None or name in (KEY, SEQ) or (name == FUNCTION and not text):
                    continue
                row[name] = text
            out.append(row)
        return out

    def _read_all(self, conn: psycopg.Connection[Any], upto: int, every_column: bool) -> Batch:
        """Every record up to change ``upto``, through COPY into Arrow (a big store reads fast)."""
        sql = psycopg.sql
        names = sorted(self.schema.read_columns(conn) - {KEY, SEQ})
        if not every_column:
            names = [n for n in names if n[:6] != "_stet_" or n in (FUNCTION, "_stet_codec")]
        select = []
        for name in names:
            ident = sql.Identifier(name)
            if name == TIMESTAMP:
                expr = sql.SQL("to_char({} AT TIME ZONE 'UTC', " + _ISO + ")").format(ident)
            elif name == FUNCTION:
                expr = sql.SQL("NULLIF({}, '')").format(ident)
            else:
                expr = sql.SQL("{}::text").format(ident)
            select.append(sql.SQL("{} AS {}").format(expr, ident))
        query = sql.SQL(
            "COPY (SELECT {} FROM {} WHERE _stet_seq <= {}) TO STDOUT (FORMAT csv, HEADER true)"
        ).format(sql.SQL(", ").join(select), self.schema.records, sql.Literal(upto))
        buffer = io.BytesIO()
        with conn.cursor() as cur, cur.copy(query) as copy:
            for chunk in copy:
                buffer.write(chunk)
        data = buffer.getvalue()
        table = pa_csv.read_csv(
            io.BytesIO(data),
            read_options=pa_csv.ReadOptions(use_threads=False),
            convert_options=pa_csv.ConvertOptions(
                column_types={n: pa.string() for n in names},
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
                null_values=[""],
            ),
        )
        return Columns.of_arrow(table)

    # -- writing --------------------------------------------------------------

    def insert(self, rows: Sequence[Record]) -> tuple[int, list[int]]:
        """Add rows not yet recorded (by function and key).

        Returns how many were new, and the change number of each write.
        """
        if isinstance(rows, NewRecords) and len(rows) > _COPY_ROWS:
            return self._insert_new(rows)
        groups: dict[tuple[str, ...], list[Record]] = {}
        for row in rows:
            groups.setdefault(tuple(row), []).append(row)

        def op(conn: psycopg.Connection[Any]) -> tuple[int, list[int]]:
            self.schema.ensure(conn)
            added = 0
            versions: list[int] = []
            for names, group in groups.items():
                self.schema.add_columns(conn, names)
                if len(group) <= _INSERT_ROWS:
                    new, version = self.insert_values(conn, names, group)
                else:
                    new, version = self._insert_copy(conn, names, group)
                added += new
                versions.append(version)
            return added, versions

        return self.connection.run("write to the store", op)

    def _values(self, names: tuple[str, ...], row: Record) -> list[object]:
        keys = sorted(n for n in names if n[:6] != "_stet_")
        out: list[object] = [self._meta_value(name, row[name]) for name in names]
        out.append(key_json(keys, [row[k] for k in keys]))
        return out

    def insert_values(
        self, conn: psycopg.Connection[Any], names: tuple[str, ...], rows: Sequence[Record]
    ) -> tuple[int, int]:
        """One statement (one round trip): take a change number, insert, skip duplicates.

        Returns how many rows were new, and the change number.
        """
        sql = psycopg.sql
        columns = [*names, KEY]
        marks = sql.SQL("({})").format(sql.SQL(", ").join(_marks(columns)))
        query = sql.SQL(
            "WITH v AS (UPDATE {meta} SET version = version + 1 WHERE id = 1 "
            "RETURNING version) "
            ", ins AS (INSERT INTO {records} ({columns}, _stet_seq) "
            "SELECT d.*, v.version FROM v, (VALUES {values}) AS d "
            "ON CONFLICT " + RECORD_IDENTITY + " DO NOTHING RETURNING 1) "
            "SELECT (SELECT count(*) FROM ins), (SELECT version FROM v)"
        ).format(
            meta=self.schema.meta,
            records=self.schema.records,
            columns=sql.SQL(", ").join(map(sql.Identifier, columns)),
            values=sql.SQL(", ").join([marks] * len(rows)),
        )
        params = [v for row in rows for v in self._values(names, row)]
        result = conn.execute(query, params).fetchone()
        if result is None or result[1] is None:
            raise self.connection.error(f"table {self.schema.table}_meta has lost its row")
        return int(result[0]), int(result[1])

    def _insert_copy(
        self, conn: psycopg.Connection[Any], names: tuple[str, ...], rows: Sequence[Record]
    ) -> tuple[int, int]:
        """Many rows: COPY into a scratch table, then one INSERT ... SELECT."""
        sql = psycopg.sql
        columns = sql.SQL(", ").join(map(sql.Identifier, [*names, KEY]))
        with conn.transaction():
            bump = "UPDATE {} SET version = version + 1 WHERE id = 1 RETURNING version"
            version = conn.execute(sql.SQL(bump).format(self.schema.meta)).fetchone()
            assert version is not None
            conn.execute(
                sql.SQL(
                    "CREATE TEMPORARY TABLE stet_incoming ON COMMIT DROP AS "
                    "SELECT {} FROM {} WITH NO DATA"
                ).format(columns, self.schema.records)
            )
            with (
                conn.cursor() as cur,
                cur.copy(sql.SQL("COPY stet_incoming ({}) FROM STDIN").format(columns)) as copy,
            ):
                for row in rows:
                    copy.write_row([*self._values(names, row)])
            cur = conn.execute(
                sql.SQL(
                    "INSERT INTO {} ({columns}, _stet_seq) SELECT {columns}, %s "
                    "FROM stet_incoming ON CONFLICT " + RECORD_IDENTITY + " DO NOTHING"
                ).format(self.schema.records, columns=columns),
                (version[0],),
            )
            return max(cur.rowcount, 0), int(version[0])

    def _insert_new(self, rows: NewRecords) -> tuple[int, list[int]]:
        """Many records of shared metadata: their key columns through COPY, the rest once.

        As `_insert_copy`, column by column and with no dict per record:
        ``COPY`` fills a scratch table with the key texts and ``_stet_key``
        (CSV made by the `csv` module), and one ``INSERT ... SELECT`` adds
        the metadata as parameters. The table's unique index decides what
        is new (``ON CONFLICT DO NOTHING``), so a record another process
        added meanwhile is neither doubled nor counted.
        """
        sql = psycopg.sql
        meta = list(rows.meta)
        incoming = sql.SQL(", ").join(map(sql.Identifier, [*rows.key_names, KEY]))
        params: list[object] = [self._meta_value(name, rows.meta[name]) for name in meta]

        def op(conn: psycopg.Connection[Any]) -> tuple[int, list[int]]:
            self.schema.ensure(conn)
            self.schema.add_columns(conn, rows.names)
            with conn.transaction():
                bump = "UPDATE {} SET version = version + 1 WHERE id = 1 RETURNING version"
                version = conn.execute(sql.SQL(bump).format(self.schema.meta)).fetchone()
                if version is None:
                    raise self.connection.error(f"table {self.schema.table}_meta has lost its row")
                conn.execute(
                    sql.SQL(
                        "CREATE TEMPORARY TABLE stet_incoming ON COMMIT DROP AS "
                        "SELECT {} FROM {} WITH NO DATA"
                    ).format(incoming, self.schema.records)
                )
                copy_in = sql.SQL("COPY stet_incoming ({}) FROM STDIN (FORMAT csv)")
                with conn.cursor() as cur, cur.copy(copy_in.format(incoming)) as copy:
                    for chunk in copy_chunks(rows):
                        copy.write(chunk)
                cur = conn.execute(
                    sql.SQL(
                        "INSERT INTO {} ({incoming}, {meta}, _stet_seq) "
                        "SELECT {incoming}, {marks}, %s FROM stet_incoming "
                        "ON CONFLICT " + RECORD_IDENTITY + " DO NOTHING"
                    ).format(
                        self.schema.records,
                        incoming=incoming,
                        meta=sql.SQL(", ").join(map(sql.Identifier, meta)),
                        marks=sql.SQL(", ").join(_marks(meta)),
                    ),
                    [*params, version[0]],
                )
                return max(cur.rowcount, 0), [int(version[0])]

        return self.connection.run("write to the store", op)

    @staticmethod
    def _meta_value(name: str, text: str) -> object:
        """A cell as its column takes it: the time and duration parsed, others text."""
        if name == TIMESTAMP:
            return _timestamp(text)
        if name == DURATION:
            return _duration(text)
        return text

    def delete(self, keys: Sequence[tuple[str, str]] | None, upto: int | None) -> int:
        """Delete records: those of ``(function, key json)`` pairs, or all (None).

        Only rows up to change ``upto`` (what the caller read) are deleted, so
        a record another process adds meanwhile stays.
        """
        sql = psycopg.sql

        def op(conn: psycopg.Connection[Any]) -> int:
            try:
                with conn.transaction():
                    conn.execute(
                        sql.SQL(
                            "UPDATE {} SET generation = generation + 1, version = version + 1 "
                            "WHERE id = 1"
                        ).format(self.schema.meta)
                    )
                    limit = (
                        sql.SQL("")
                        if upto is None
                        else sql.SQL(" AND _stet_seq <= {}").format(sql.Literal(upto))
                    )
                    if keys is None:
                        cur = conn.execute(
                            sql.SQL("DELETE FROM {} WHERE true{}").format(
                                self.schema.records, limit
                            )
                        )
                        return max(cur.rowcount, 0)
                    removed = 0
                    with conn.cursor() as cur:
                        cur.executemany(
                            sql.SQL("DELETE FROM {} WHERE " + RECORD_MATCH + "{}").format(
                                self.schema.records, limit
                            ),
                            keys,
                        )
                        removed = max(cur.rowcount, 0)
                    return removed
            except psycopg.errors.UndefinedTable:
                self.schema.ready = False
                return 0

        return self.connection.run("delete records", op)

    # -- claims ---------------------------------------------------------------

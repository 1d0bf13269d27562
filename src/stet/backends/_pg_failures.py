"""The failed runs of a PostgreSQL store: the table ``NAME_failures``.

A table of its own, made on the first failure, so nothing that reads the
records table ``NAME`` (stet 0.0.x, a SQL query of the finished runs)
sees a failure as a finished run. Each write is one transaction.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC
from typing import Any, Final

from ._failures import Failure
from ._pg_driver import psycopg
from ._pg_retry import Connection
from ._pg_schema import Schema, key_json

__all__ = ["FailuresTable"]

_COLUMNS: Final = "function, key, type, message, traceback, host, duration, time, attempt"


class FailuresTable:
    """The statements on a store's ``NAME_failures`` table.

    Args:
        connection: Runs them (with retries).
        schema: Names the records table the failures table is named after.
    """

    def __init__(self, connection: Connection, schema: Schema) -> None:
        self.connection = connection
        self.name = schema.table + "_failures"
        self.table = psycopg.sql.Identifier(self.name)
        self._ready = False

    def _ensure(self, conn: psycopg.Connection[Any]) -> None:
        if self._ready:
            return
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ("stet " + self.name,))
            conn.execute(
                psycopg.sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (function text NOT NULL, key text NOT NULL, "
                    "type text NOT NULL, message text NOT NULL, traceback text NOT NULL, "
                    "host text NOT NULL, duration double precision, time timestamptz NOT NULL, "
                    "attempt integer NOT NULL)"
                ).format(self.table)
            )
            conn.execute(
                psycopg.sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} USING hash (key)").format(
                    psycopg.sql.Identifier(self.name + "_key"), self.table
                )
            )
        self._ready = True

    def _exists(self, conn: psycopg.Connection[Any]) -> bool:
        row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (self.name,)).fetchone()
        return row is not None and bool(row[0])

    def add(self, failure: Failure) -> None:
        def op(conn: psycopg.Connection[Any]) -> None:
            self._ensure(conn)
            conn.execute(
                psycopg.sql.SQL(
                    f"INSERT INTO {{}} ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
                ).format(self.table),
                (
                    failure.function,
                    key_json(failure.cols, failure.values),
                    failure.type,
                    failure.message,
                    failure.traceback,
                    failure.host,
                    failure.duration,
                    failure.time,
                    failure.attempt,
                ),
            )

        self.connection.run("record a failure", op)

    def _select(self, where: str, params: Sequence[Any]) -> list[Failure]:
        def op(conn: psycopg.Connection[Any]) -> list[Failure]:
            if not self._ready and not self._exists(conn):
                return []
            statement = psycopg.sql.SQL(
                f"SELECT {_COLUMNS} FROM {{}} {where} ORDER BY time, ctid"
            ).format(self.table)
            return [_failure(row) for row in conn.execute(statement, params).fetchall()]

        return self.connection.run("read the failures", op)

    def all(self) -> list[Failure]:
        return self._select("", ())

    def of(self, function: str, cols: tuple[str, ...], values: tuple[str, ...]) -> list[Failure]:
        return self._select("WHERE function = %s AND key = %s", (function, key_json(cols, values)))

    def forget(self, doomed: Callable[[Failure], bool]) -> int:
        def op(conn: psycopg.Connection[Any]) -> int:
            if not self._exists(conn):
                return 0
            with conn.transaction():
                rows = conn.execute(
                    psycopg.sql.SQL(f"SELECT ctid::text, {_COLUMNS} FROM {{}} FOR UPDATE").format(
                        self.table
                    )
                ).fetchall()
                gone = [row[0] for row in rows if doomed(_failure(row[1:]))]
                if gone:
                    conn.execute(
                        psycopg.sql.SQL("DELETE FROM {} WHERE ctid = ANY(%s::tid[])").format(
                            self.table
                        ),
                        (gone,),
                    )
                return len(gone)

        return self.connection.run("forget failures", op)


def _failure(row: Sequence[Any]) -> Failure:
    function, key, type_, message, trace, host, duration, time, attempt = row
    texts: dict[str, str] = json.loads(key)
    cols = tuple(sorted(texts))
    return Failure(
        function, cols, tuple(texts[c] for c in cols), type_, message, trace, host,
        duration, time.astimezone(UTC).isoformat(timespec="microseconds"), attempt,
    )  # fmt: skip

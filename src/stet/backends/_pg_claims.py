"""The claims of a PostgreSQL store: each claim operation is one SQL statement.

A claim's expiry is computed by the server: its ``now()`` plus the lease,
so the workers' clocks never matter. The store's `stet.typing.Clock` adds
only its `~stet.typing.Clock.ahead` offset to the server's time in these
statements (zero for the real clock): a test clock moved forward makes a
claim expire without waiting for it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any, Final

from ._claims import Claim, ClaimId, owner
from ._clock import Clock
from ._pg_driver import psycopg
from ._pg_retry import Connection, Retry
from ._pg_rows import Rows
from ._pg_schema import CLAIM_IDENTITY, Schema, key_json
from ._records import Record

__all__ = ["ClaimsTable"]

#: A claim as read back: (function, key, owner, epoch, seconds left, lease, age).
_COLUMNS: Final = (
    "function, key, owner, epoch, extract(epoch FROM expires - {now}), lease, "
    "extract(epoch FROM {now} - since)"
)
_CLAIM: Final = (
    "INSERT INTO {table} AS c (function, key, owner, epoch, expires, lease, since) "
    "VALUES (%s, %s, %s, 1, {now} + make_interval(secs => %s), %s, {now}) "
    "ON CONFLICT " + CLAIM_IDENTITY + " DO UPDATE SET owner = EXCLUDED.owner, "
    "epoch = c.epoch + 1, expires = EXCLUDED.expires, lease = EXCLUDED.lease, "
    "since = EXCLUDED.since WHERE c.expires <= {now} "
    "RETURNING " + _COLUMNS
)
_RENEW: Final = (
    "UPDATE {table} SET expires = {now} + make_interval(secs => lease) "
    "WHERE function = %s AND key = %s AND owner = %s AND epoch = %s "
    "RETURNING " + _COLUMNS
)
_DROP: Final = "DELETE FROM {table} WHERE function = %s AND key = %s AND owner = %s AND epoch = %s"


class ClaimsTable:
    """The statements on a store's ``NAME_claims`` table.

    Args:
        connection: Runs them (with retries).
        schema: Creates the tables.
        rows: Writes the record of a completed claim, in the same transaction.
        clock: Gives the offset added to the server's time (`Clock.ahead`)
            and the wall-clock time claims' expiries are shown in.
    """

    def __init__(self, connection: Connection, schema: Schema, rows: Rows, clock: Clock) -> None:
        self.connection = connection
        self.schema = schema
        self.rows = rows
        self.clock = clock

    def _sql(self, statement: str) -> psycopg.sql.Composed:
        """``statement`` on the claims table, with ``{now}`` the server's time by this clock."""
        sql = psycopg.sql
        ahead = self.clock.ahead()
        if ahead == 0:
            now: psycopg.sql.Composable = sql.SQL("now()")
        elif math.isfinite(ahead):
            now = sql.SQL("(now() + make_interval(secs => {}))").format(sql.Literal(float(ahead)))
        else:
            raise ValueError(f"{self.clock!r}.ahead() is {ahead!r}, not a number of seconds")
        return sql.SQL(statement).format(table=self.schema.claims, now=now)

    def _claim(self, row: Sequence[Any]) -> Claim:
        """A claim from (function, key, owner, epoch, seconds left, lease, age)."""
        function, key, who, epoch, left, lease, age = row
        now = self.clock.now().wall
        texts = json.loads(key)
        cols = tuple(sorted(texts))
        return Claim(
            function,
            cols,
            tuple(texts[c] for c in cols),
            who,
            int(epoch),
            now + float(left),
            float(lease),
            now - float(age),
        )

    def load(self) -> dict[ClaimId, Claim]:
        """Every claim in the table, live or expired."""

        def op(conn: psycopg.Connection[Any]) -> dict[ClaimId, Claim]:
            try:
                rows = conn.execute(self._sql("SELECT " + _COLUMNS + " FROM {table}")).fetchall()
            except psycopg.errors.UndefinedTable:
                return {}
            claims = [self._claim(r) for r in rows]
            return {c.id: c for c in claims}

        return self.connection.run("read claims", op)

    def claim(
        self,
        function: str,
        cols: tuple[str, ...],
        values: tuple[str, ...],
        lease: float,
        who: str | None = None,
    ) -> tuple[bool, Claim | None]:
        """Claim a key unless another live claim holds it: ``(won, claim)``.

        ``claim`` is the new claim, or the one in the way. Expiry is the
        server's ``now()`` plus the lease, whatever the clocks of the
        workers say.
        """
        key = key_json(cols, values)
        me = owner() if who is None else who

        def op(conn: psycopg.Connection[Any]) -> tuple[bool, Claim | None]:
            self.schema.ensure(conn)
            row = conn.execute(self._sql(_CLAIM), (function, key, me, lease, lease)).fetchone()
            if row is not None:
                return True, self._claim(row)
            current = conn.execute(
                self._sql("SELECT " + _COLUMNS + " FROM {table} WHERE function = %s AND key = %s"),
                (function, key),
            ).fetchone()
            if current is None:  # released between the two statements: try again
                raise Retry
            return False, self._claim(current)

        return self.connection.run("claim a run", op)

    def renew(self, claims: Sequence[Claim]) -> list[Claim]:
        """Extend claims still held by their owner (same epoch); return them renewed."""

        def op(conn: psycopg.Connection[Any]) -> list[Claim]:
            renewed = []
            for claim in claims:
                row = conn.execute(self._sql(_RENEW), _identity(claim)).fetchone()
                if row is not None:
                    renewed.append(self._claim(row))
            return renewed

        return self.connection.run("renew claims", op)

    def finish(self, claim: Claim, rows: Sequence[Record]) -> bool:
        """In one transaction: drop ``claim`` if still held and record ``rows``.

        Returns False (and writes nothing) if the claim was taken over.
        """
        names = tuple(rows[0]) if rows else ()

        def op(conn: psycopg.Connection[Any]) -> bool:
            self.schema.ensure(conn)
            self.schema.add_columns(conn, names)
            with conn.transaction():
                gone = conn.execute(self._sql(_DROP + " RETURNING 1"), _identity(claim)).fetchone()
                if gone is None:
                    return False
                if rows:
                    self.rows.insert_values(conn, names, rows)
                return True

        return self.connection.run("record a claimed run", op)

    def release(self, claim: Claim) -> None:
        """Drop ``claim`` if this owner still holds it."""

        def op(conn: psycopg.Connection[Any]) -> None:
            conn.execute(self._sql(_DROP), _identity(claim))

        self.connection.run("release a claim", op)


def _identity(claim: Claim) -> tuple[str, str, str, int]:
    return (claim.function, key_json(claim.cols, claim.values), claim.owner, claim.epoch)

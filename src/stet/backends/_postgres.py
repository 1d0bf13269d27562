"""PostgreSQL store: one table of records that many machines share.

Selected by a URL, ``postgresql://user@host:5432/db`` (or ``postgres://``),
with an optional ``?table=NAME`` (default ``stet_records``); whatever the
URL leaves out comes from libpq's environment variables (``PGHOST``,
``PGUSER``, ``PGPASSWORD``...) and ``~/.pgpass``. Needs psycopg 3
(``pip install "stet[postgres]"``).

`PostgresStore` is composed of parts, one module each: the URL
(`._pg_url`), the connection and its retries (`._pg_retry`), the tables
(`._pg_schema`), the records' statements (`._pg_rows`) and the claims'
(`._pg_claims`); it keeps the keys it has seen in an `IndexedReader`, as
the file stores do.

No file lock is involved: the unique constraint and transactions make
every operation safe against other processes on any machine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import attrs

from .._lazy import np, pa
from ._claims import Claim, ClaimId, ClaimState, heartbeat
from ._clock import SYSTEM_CLOCK, Clock
from ._columns import check_key_columns
from ._failures import Failure
from ._index import Packed, pack
from ._pg_claims import ClaimsTable
from ._pg_failures import FailuresTable
from ._pg_retry import Connection
from ._pg_rows import PgCursor, Rows
from ._pg_schema import PG_LIMITS, Schema, key_json
from ._pg_url import parse_url
from ._reader import IndexedReader
from ._records import Batch, Cursor, Record, TableRecords, as_records
from ._schema import identity
from ._table import Selection, WholeStore, arrow_of

__all__ = ["PostgresStore"]


class PostgresStore:
    """A `stet.typing.ClaimingStore` in a PostgreSQL database, shared by many machines.

    Args:
        url: ``postgresql://user[:password]@host[:port]/database[?table=NAME]``;
            missing parts come from libpq's environment (``PGHOST``...).
        clock: Leases are timed by the server's clock (so that workers'
            clocks need not agree); the clock adds only its
            `~stet.typing.Clock.ahead` offset to the server's time (zero
            for the real clock; a test clock moved forward expires claims
            without waiting) and gives the wall-clock time claims' expiries
            are shown in.

    Writing a record is one statement (one round trip to the server);
    before a run, one small query looks for records other workers added;
    a skip of a key this process has seen recorded asks nothing. Passwords
    never appear in messages, reprs or `status`.
    """

    #: A parameter name of more than 63 bytes is refused (the server would cut it).
    limits = PG_LIMITS

    def __init__(self, url: str, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._connection = Connection(parse_url(url))
        self._schema = Schema(self._connection)
        self._rows = Rows(self._connection, self._schema)
        self._claims = ClaimsTable(self._connection, self._schema, self._rows, clock)
        self._failures = FailuresTable(self._connection, self._schema)
        self.location = self._connection.location  # never the password
        self.clock = clock
        self._checked: set[tuple[str, ...]] = set()  # key columns that fit the server
        self._reader: IndexedReader[Cursor] = IndexedReader(
            self.location,
            self._scan,
            before_fork=self._connection.before_fork,
            in_child=self._connection.after_fork,
            source=self.records,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r})"

    # -- lookups --------------------------------------------------------------

    def exists(self) -> bool:
        return self._connection.run("look for the store", self._schema.exists)

    def refresh(self) -> None:
        self._reader.refresh()

    def _scan(self, cursor: Cursor | None) -> tuple[list[Batch], Cursor | None, bool]:
        batch, cursor, complete = self._rows.scan(cursor)
        return [batch], cursor, complete

    def knows(self, function: str, cols: tuple[str, ...], key: Packed) -> bool:
        return self._reader.index.knows(function, cols, key)

    def is_done(self, function: str, cols: tuple[str, ...], key: Packed) -> bool:
        if self.knows(function, cols, key):
            return True
        # A key not known to be done is about to run: refuse, before it runs,
        # a parameter name the server would truncate (and so never match).
        self._check_fits(cols)
        self.refresh()
        return self.knows(function, cols, key)

    def _check_fits(self, cols: tuple[str, ...]) -> None:
        if cols not in self._checked:
            check_key_columns(cols, self.limits, store=self.location)
            self._checked.add(cols)

    def matches(self, function: str | None, cols: tuple[str, ...], values: tuple[str, ...]) -> bool:
        return self._reader.matches(function, cols, values)

    def check_can_hold(self, cols: Sequence[str]) -> None:
        self._check_fits(tuple(sorted(cols)))

    def prefer_order(self, names: Sequence[str]) -> None:
        self._reader.prefer_order(names)

    # -- writing --------------------------------------------------------------

    def add(
        self,
        function: str,
        cols: tuple[str, ...],
        keys: Iterable[tuple[str, ...]],
        *,
        duration: float | None = None,
        code: str | None = None,
    ) -> int:
        # The database decides what is new (ON CONFLICT), so the count is
        # right even when another worker recorded a key a moment ago.
        self._check_fits(cols)
        with self._reader.mutex:
            self.refresh()
            # Rows of texts, not a dict per record: mark_done writes a million.
            rows, fresh = self._reader.fresh_rows(function, cols, keys, duration, code)
            if not rows:
                return 0
            added = self._insert(rows)
            self._reader.index.add(function, cols, fresh)
            return added

    def merge(self, records: Iterable[Record]) -> int:
        with self._reader.mutex:
            return self._reader.merge(records, self._check_fits, self._insert)

    def _insert(self, records: Sequence[Record]) -> int:
        """Insert records; how many were new.

        The cursor moves past our own writes if nobody else wrote in
        between: then the next look for news is one query that finds
        nothing new, instead of reading back what this process just wrote.
        """
        added, versions = self._rows.insert(records)
        cursor = self._reader.cursor
        if isinstance(cursor, PgCursor) and versions == list(
            range(cursor.version + 1, cursor.version + 1 + len(versions))
        ):
            self._reader.cursor = attrs.evolve(cursor, version=versions[-1])
        return added

    def flush(self, timeout: float | None = None) -> None:
        pass  # every record is in the table as soon as it is written

    # -- whole-store operations ------------------------------------------------

    def records(self) -> list[Record]:
        with self._reader.mutex:
            batch, _, _ = self._rows.scan(None, every_column=True)
            return as_records(batch)

    def delete(self, doomed: Callable[[Record], bool]) -> int:
        with self._reader.mutex:
            batch, cursor, _ = self._rows.scan(None, every_column=True)
            return self._delete_records(
                [record for record in as_records(batch) if doomed(record)], cursor
            )

    def delete_rows(self, select: Selection) -> int:
        """`delete` of the records ``select`` picks, column by column, in one statement."""
        with self._reader.mutex:
            batch, cursor, _ = self._rows.scan(None, every_column=True)
            table = arrow_of(batch)
            doomed = np.asarray(select(WholeStore(self.location, table)), dtype=bool)
            # Only the doomed become dicts.
            return self._delete_records(TableRecords(table.filter(pa.array(doomed))), cursor)

    def _delete_records(self, doomed: Iterable[Record], cursor: Cursor | None) -> int:
        """Delete these records of the scan at ``cursor`` in one statement, then read anew.

        By the texts as stored: a record of older key rules holds them as
        written then, and its ``_stet_key`` was made of them. The mutex is held.
        """
        keys = []
        for record in doomed:
            function, cols, _ = identity(record, self.location)
            keys.append((function, key_json(cols, tuple(record[c] for c in cols))))
        removed = 0
        if keys:
            assert isinstance(cursor, PgCursor)
            removed = self._rows.delete(keys, cursor.version)
        self._reader.reread()
        return removed

    def clear(self, *, in_place: bool = False) -> int:
        """Delete every record in one statement (the tables stay; claims in progress stay)."""
        with self._reader.mutex:
            removed = self._rows.delete(None, None)
            self._reader.reread()
            return removed

    # -- claims, timed by the server's clock ---------------------------------

    def claim(
        self,
        function: str,
        cols: tuple[str, ...],
        values: tuple[str, ...],
        lease: float,
        *,
        owner: str | None = None,
    ) -> tuple[ClaimState, Claim | None]:
        packed = pack(values)
        if self.is_done(function, cols, packed):
            return "done", None
        won, claim = self._claims.claim(function, cols, values, lease, owner)
        if not won:
            return "busy", claim
        assert claim is not None
        # A worker that finished the key a moment ago dropped its claim in the
        # same transaction that recorded it: look again, now that we hold it.
        self.refresh()
        if self.knows(function, cols, packed):
            self._claims.release(claim)
            return "done", None
        if owner is None:
            heartbeat.hold(self, claim)
        return "claimed", claim

    def renew(self, claims: Sequence[Claim]) -> list[Claim]:
        return self._claims.renew(claims)

    def complete(
        self, claim: Claim, *, duration: float | None = None, code: str | None = None
    ) -> bool:
        heartbeat.drop(self, claim)
        with self._reader.mutex:
            records, fresh = self._reader.new_records(
                claim.function, claim.cols, [claim.values], duration, code
            )
            if not self._claims.finish(claim, records):
                return False
            self._reader.index.add(claim.function, claim.cols, fresh)
            return True

    def release(self, claim: Claim) -> None:
        heartbeat.drop(self, claim)
        self._claims.release(claim)

    def claims(self) -> dict[ClaimId, Claim]:
        # A claim on a recorded key is finished (its worker was killed after
        # try_claim, before releasing it): not in progress.
        self.refresh()
        return {
            i: c
            for i, c in self._claims.load().items()
            if not self.knows(c.function, c.cols, pack(c.values))
        }

    # -- failures (a table of their own, NAME_failures) ----------------------------

    def add_failure(self, failure: Failure) -> None:
        scrub = self._connection.target.scrub  # this URL's password, wherever it shows
        self._failures.add(
            attrs.evolve(
                failure, message=scrub(failure.message), traceback=scrub(failure.traceback)
            )
        )

    def failures(self) -> list[Failure]:
        return self._failures.all()

    def failures_of(
        self, function: str, cols: tuple[str, ...], values: tuple[str, ...]
    ) -> list[Failure]:
        return self._failures.of(function, cols, values)

    def forget_failures(self, doomed: Callable[[Failure], bool] | None = None) -> int:
        return self._failures.forget(doomed or (lambda failure: True))

"""PostgreSQL store: one table of records that many machines share.

Selected by a URL, ``postgresql://user@host:5432/db`` (or ``postgres://``),
with an optional ``?table=NAME`` (default ``stet_records``); whatever the
URL leaves out comes from libpq's environment variables (``PGHOST``,
``PGUSER``, ``PGPASSWORD``...) and ``~/.pgpass``. Needs psycopg 3
(``pip install "stet[postgres]"``).

The store is three tables, created on first use:

``NAME``
    One row per record: a text column per key parameter (the codec's
    canonical text), ``_stet_function`` ('' for a record of no function),
    ``_stet_timestamp`` (timestamptz), ``_stet_duration`` (double),
    ``_stet_host``, ``_stet_code``, ``_stet_codec``, and two columns of
    stet's own: ``_stet_key``, the key as JSON of sorted {column: text},
    unique together with the function, so recording is idempotent
    (``INSERT ... ON CONFLICT DO NOTHING``); and ``_stet_seq``, the change
    number of the write that added the row.
``NAME_meta``
    One row: a change counter every write increments, and a generation
    every deletion increments. Writes take this row's lock, so change
    numbers commit in order: a process that has read every row up to
    number N only ever needs rows above N, and checking for news is one
    tiny query.
``NAME_claims``
    Claims in progress, with expiry times from the server's clock.

No file lock is involved: the unique constraint and transactions make
every operation safe against other processes on any machine.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import re
import threading
import time
import urllib.parse
import weakref
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, TypeVar

import attrs

from .._lazy import pa, pa_csv
from ..exceptions import StoreError
from ._claims import Claim, ClaimId, ClaimState, heartbeat, owner
from ._clock import SYSTEM_CLOCK, Clock
from ._columns import NO_LIMITS, ColumnLimits, check_column_name, check_key_columns
from ._index import KeyIndex, Packed, pack
from ._process import track
from ._records import Batch, Columns, Cursor, Record, as_records
from ._schema import DURATION, FUNCTION, TIMESTAMP, identity, new_records

if TYPE_CHECKING:
    import psycopg

__all__ = ["PostgresStore", "describe", "is_url", "parse_url"]

SCHEMES: Final = ("postgresql://", "postgres://")
DEFAULT_TABLE: Final = "stet_records"
KEY: Final = "_stet_key"
SEQ: Final = "_stet_seq"
_TABLE_NAME: Final = re.compile(r"[a-z_][a-z0-9_]{0,49}\Z")
#: Rows written by one multi-row INSERT; larger batches go through COPY.
_INSERT_ROWS: Final = 200
#: An operation that meets a transient error (connection lost, server
#: restarting) is tried again, with pauses doubling from FIRST_PAUSE up to
#: MAX_PAUSE, for at most ``STET_RETRY_SECONDS`` (default 10).
FIRST_PAUSE: Final = 0.25
MAX_PAUSE: Final = 5.0
#: Attempts at an operation that keeps losing a race with other workers.
RACES: Final = 6


#: PostgreSQL keeps the first 63 bytes of a longer name (NAMEDATALEN - 1).
MAX_COLUMN_BYTES: Final = 63


def check_column_length(name: str, location: str) -> str:
    """Return ``name`` if the server can hold it as a column name, else raise `StoreError`.

    The server would silently cut a longer name to 63 bytes, and records
    under the cut name would never match the parameter again.
    """
    size = len(name.encode())
    if size > MAX_COLUMN_BYTES:
        raise StoreError(
            location,
            f"parameter {name!r} is {size} bytes long, and PostgreSQL cuts column "
            f"names to {MAX_COLUMN_BYTES} bytes, so its runs could never be skipped; "
            "rename the parameter, or leave it out of the key (key=[...] or exclude=[...])",
        )
    return name


def retry_seconds() -> float:
    """How long to keep trying an unreachable server (``STET_RETRY_SECONDS``, default 10)."""
    try:
        return max(0.0, float(os.environ.get("STET_RETRY_SECONDS", "10")))
    except ValueError:
        return 10.0


_ISO: Final = """'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'"""
_T = TypeVar("_T")


def is_url(store: str) -> bool:
    """True if ``store`` names a PostgreSQL store rather than a file."""
    return store.lower().startswith(SCHEMES)


@attrs.frozen(repr=False)
class Target:
    """Where a PostgreSQL store is.

    Attributes:
        conninfo: The URL libpq connects with (``table`` removed). Holds
            the password if the URL did: never shown.
        table: The records table's name.
        shown: The URL with any password replaced by ``***``.
        secrets: Every text of the URL that is or holds a password, as
            written and decoded, to scrub from error messages.
    """

    conninfo: str
    table: str
    shown: str
    secrets: tuple[str, ...]

    def __repr__(self) -> str:
        return f"Target({self.shown!r})"

    def where(self) -> str:
        """``database D on host H`` (from the URL or libpq's environment)."""
        from psycopg.conninfo import conninfo_to_dict

        params = conninfo_to_dict(self.conninfo)
        host = str(params.get("host") or os.environ.get("PGHOST") or "localhost")
        port = params.get("port") or os.environ.get("PGPORT")
        user = params.get("user") or os.environ.get("PGUSER")
        database = params.get("dbname") or os.environ.get("PGDATABASE") or user or "(default)"
        return f"database {database!s} on host {host}{f':{port}' if port else ''}"

    def scrub(self, text: str) -> str:
        """``text`` without any password in it (the URL's, or ``PGPASSWORD``)."""
        return _scrub(text, (*self.secrets, os.environ.get("PGPASSWORD", "")))


#: Connection parameters whose values are passwords.
_SECRET_PARAMETERS: Final = ("password", "sslpassword")


def _scrub(text: str, secrets: Iterable[str]) -> str:
    variants: set[str] = set()
    for secret in secrets:
        if secret:
            variants.update((secret, urllib.parse.quote(secret, safe=""), _unquote(secret)))
    for variant in sorted(variants - {""}, key=len, reverse=True):
        text = text.replace(variant, "***")
    return text


def _unquote(text: str) -> str:
    # libpq decodes %XX and nothing else ('+' stays '+', unlike a form).
    return urllib.parse.unquote(text, errors="surrogateescape")


def _ambiguous(scheme: str, found: str) -> ValueError:
    return ValueError(
        f"a {scheme}:// store URL has {found}, so libpq and the URL standard read its "
        "user name, password or host differently; it is not shown, since it may hold "
        "a password. Percent-encode these characters in the user name, password and "
        "database name: @ as %40, / as %2F, ? as %3F, # as %23, % as %25"
    )


def parse_url(url: str) -> Target:
    """Split a store URL into what libpq needs and the table name.

    The URL is read as libpq reads it: the user info ends at the first
    ``@`` (unless a ``/`` comes first), the host list at the next ``/`` or
    ``?``. A URL that other readers would split elsewhere (an unencoded
    ``@``, ``/``, ``?`` or ``#`` in a password) is refused, since parts of
    its password would appear as a host, port or database name: the only
    ``@`` may be the one that ends the user info, and no ``#`` is allowed.

    Raises:
        ValueError: The table name is not a plain lowercase SQL name, the
            URL is ambiguous, or libpq cannot parse it (the message never
            shows a password).
    """
    scheme, _, rest = url.partition("://")
    if "#" in rest:
        raise _ambiguous(scheme, "a '#'")
    stops = [i for i in (rest.find("@"), rest.find("/")) if i >= 0]
    stop = min(stops, default=len(rest))
    userinfo: str | None = None
    after = rest
    if stop < len(rest) and rest[stop] == "@":
        userinfo, after = rest[:stop], rest[stop + 1 :]
        if "?" in userinfo:
            raise _ambiguous(scheme, "a '?' before its '@'")
    ends = [i for i in (after.find("/"), after.find("?")) if i >= 0]
    end = min(ends, default=len(after))
    hosts, tail = after[:end], after[end:]
    path, has_query, query = tail.partition("?")
    user, colon, password = (userinfo or "").partition(":")
    if rest.count("@") > (0 if userinfo is None else 1):
        # An '@' that does not end the user info may end a password that
        # holds an '@', '/' or '?': whatever follows may be part of it.
        raise _ambiguous(scheme, "an '@' that does not end its user name and password")
    secrets = [password] if colon else []
    table = DEFAULT_TABLE
    kept: list[str] = []
    shown_items: list[str] = []
    for item in query.split("&") if has_query else ():
        name, _, value = item.partition("=")
        if _unquote(name) == "table":
            table = _unquote(value)
            shown_items.append(item)
            continue
        kept.append(item)
        if _unquote(name) in _SECRET_PARAMETERS:
            secrets.append(value)
            shown_items.append(f"{name}=***")
        else:
            shown_items.append(item)
    auth = "" if userinfo is None else f"{user}{':***' if colon else ''}@"
    shown_query = f"?{'&'.join(shown_items)}" if has_query else ""
    shown = f"{scheme}://{auth}{hosts}{path}{shown_query}"
    # Until libpq has read the query, a piece of it may be a piece of a
    # password (an unencoded '&' in one): messages leave it out.
    guarded = bool(secrets)  # the URL gives a password, even an empty one
    secrets = [s for s in secrets if s]
    unsure = f"{scheme}://{auth}{hosts}{path}{'?...' if has_query else ''}" if guarded else shown
    if not _TABLE_NAME.match(table):
        raise ValueError(
            f"store {unsure!r}: table={table!r} is not a table name stet uses; "
            "use up to 50 lowercase letters, digits and underscores, starting with a letter"
        )
    kept_query = f"?{'&'.join(kept)}" if kept else ""
    auth = "" if userinfo is None else f"{userinfo}@"
    conninfo = f"{scheme}://{auth}{hosts}{path}{kept_query}"
    target = Target(conninfo, table, shown, tuple(secrets))
    try:
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:
        raise ValueError(
            f"store {unsure!r} is a PostgreSQL store, which needs psycopg 3: "
            "pip install 'stet[postgres]'"
        ) from None
    try:
        params = conninfo_to_dict(conninfo)
    except Exception as exc:  # psycopg.ProgrammingError: libpq's parse error
        problem = " ".join(target.scrub(str(exc)).split())
        if guarded:  # libpq quotes a piece of the URL, which may be a piece of the password
            problem = re.sub(r'"[^"]*"', '"***"', problem)
        raise ValueError(
            f"store {unsure!r} is not a PostgreSQL URL libpq understands: {problem}"
        ) from None
    found = {str(params[n]) for n in _SECRET_PARAMETERS if params.get(n)}
    if found - {_unquote(s) for s in secrets}:
        raise _ambiguous(scheme, "a password where libpq does not expect one")
    ports = str(params.get("port") or "")
    if not all(p.isdigit() for p in ports.split(",") if p):
        # "user:secret/db" (no '@'): libpq takes the password for a port.
        raise _ambiguous(scheme, "a port that is not a number")
    return target


@attrs.frozen
class _PgCursor:
    generation: int
    version: int


class _Retry(Exception):
    """Raised inside an operation to have it run again from the start."""


def key_json(cols: Sequence[str], values: Sequence[str]) -> str:
    """The ``_stet_key`` text of a key: JSON of sorted {column: text}."""
    return json.dumps(
        dict(zip(cols, values, strict=True)),
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )


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


class PgFormat:
    """The SQL behind `PostgresBackend`: a connection, retries, and every statement."""

    def __init__(self, url: str) -> None:
        from psycopg import sql

        self.sql = sql
        self.target = parse_url(url)
        self.location = self.target.shown
        t = self.target.table
        self.records = sql.Identifier(t)
        self.meta = sql.Identifier(t + "_meta")
        self.claims_table = sql.Identifier(t + "_claims")
        self._conn: psycopg.Connection[Any] | None = None
        self._mutex = threading.RLock()
        self._ready = False  # tables known to exist (this process made sure)
        # A store that is dropped (or the process exiting) closes its connection.
        self._open: list[psycopg.Connection[Any] | None] = [None]
        weakref.finalize(self, _close_quietly, self._open)
        self._columns: set[str] = set()

    # -- connection and errors ----------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict

        conn = self._conn
        if conn is not None and not conn.closed:
            return conn
        options: dict[str, Any] = {"autocommit": True}
        params = conninfo_to_dict(self.target.conninfo)
        if "connect_timeout" not in params and "PGCONNECT_TIMEOUT" not in os.environ:
            options["connect_timeout"] = 10
        if "application_name" not in params and "PGAPPNAME" not in os.environ:
            options["application_name"] = "stet"
        conn = self._conn = psycopg.connect(self.target.conninfo, **options)
        self._open[0] = conn
        return conn

    def close(self) -> None:
        """Close the connection (the next operation opens a new one)."""
        with self._mutex:
            if self._conn is not None:
                try:
                    self._conn.close()
                finally:
                    self._conn = None

    def before_fork(self) -> None:
        # A connection must not cross a fork: a child that closed its copy
        # would end the parent's session. The parent reconnects when needed.
        self.close()

    def after_fork(self) -> None:
        # Forget (never close) whatever the parent had open: closing it here
        # would end the parent's session.
        self._conn = None
        self._open[0] = None
        self._mutex = threading.RLock()

    def error(self, problem: str) -> StoreError:
        return StoreError(self.location, self.target.scrub(problem))

    def run(self, what: str, op: Callable[[psycopg.Connection[Any]], _T]) -> _T:
        """Run ``op`` on the connection, retrying transient failures a few times.

        ``op`` must be safe to repeat: every statement stet sends is
        idempotent or runs in one transaction.

        Raises:
            StoreError: The server cannot be reached, or refused the
                operation; names host and database, never the password.
        """
        import psycopg

        pause = FIRST_PAUSE
        deadline = time.monotonic() + retry_seconds()
        attempt = races = 0
        while True:
            attempt += 1
            with self._mutex:
                try:
                    return op(self._connect())
                except _Retry:
                    races += 1
                    if races < RACES:
                        continue
                    raise self.error(
                        f"cannot {what}: other workers kept changing it ({races} attempts)"
                    ) from None
                except psycopg.Error as exc:
                    reason = _reason(exc)
                    connection = _connection_failure(exc)
                    if connection or (self._conn is not None and self._conn.broken):
                        self._drop_broken()
                    if not _transient(exc, reason):
                        # A limit, a constraint, a refusal: trying again would
                        # give the same answer, so say at once what it was.
                        hint = "; check that the server runs and the URL is right"
                        raise self.error(
                            f"cannot {what}: {self.target.where()}: {reason}"
                            f"{hint if connection else ''}"
                        ) from None
                    wait = pause * (0.5 + random.random())
                    if time.monotonic() + wait > deadline:
                        hint = (
                            "check that the server runs and the URL is right"
                            if connection
                            else "other workers kept conflicting with it"
                        )
                        tries = f" (tried {attempt} times)" if attempt > 1 else ""
                        raise self.error(
                            f"cannot {what}: {self.target.where()}: {reason}{tries}; {hint}"
                        ) from None
            time.sleep(wait)
            pause = min(pause * 2, MAX_PAUSE)

    def _drop_broken(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # broken: nothing to tell the server
                conn.close()

    # -- schema -------------------------------------------------------------

    def exists(self) -> bool:
        def op(conn: psycopg.Connection[Any]) -> bool:
            row = conn.execute("SELECT to_regclass(%s)", (self.target.table,)).fetchone()
            return row is not None and row[0] is not None

        return self.run("look for the store", op)

    def _ensure(self, conn: psycopg.Connection[Any]) -> None:
        """Create the tables if missing (once per process), check them, migrate them."""
        if self._ready:
            return
        sql = self.sql
        t = self.target.table
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
            self._columns = self._read_columns(conn)
            for needed in (KEY, SEQ, FUNCTION, TIMESTAMP):
                if needed not in self._columns:
                    raise self._foreign(f"no {needed} column")
            conn.execute(
                sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (_stet_seq)").format(
                    sql.Identifier(t + "_seq"), self.records
                )
            )
            self._unique_by_digest(conn, t, t + "_record_key", _RECORD_IDENTITY, _OLD_RECORD_KEY)
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
                ).format(self.claims_table)
            )
            claims = t + "_claims"
            self._unique_by_digest(conn, claims, t + "_claims_key", _CLAIM_IDENTITY, _OLD_CLAIM_KEY)
            # Claims are looked up by their key text; a hash index holds any length.
            if not _exists(conn, t + "_claims_find"):
                conn.execute(
                    sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} USING hash (key)").format(
                        sql.Identifier(t + "_claims_find"), self.claims_table
                    )
                )
        self._ready = True

    def _unique_by_digest(
        self, conn: psycopg.Connection[Any], table: str, index: str, identity: str, old: str
    ) -> None:
        """Make ``table`` unique by the digests ``identity``, dropping the ``old`` constraint.

        Stores made by earlier versions were unique by the texts themselves,
        whose btree index refuses a key of more than about 2.7 KB. Run inside the
        first-use transaction (under its advisory lock): the migration
        commits whole or not at all, and the next process finds it done.
        """
        sql = self.sql
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
            raise self.error(
                f"the name {index} is taken by another table or index in this database, "
                "so stet cannot index its store; use ?table= to pick another name"
            )
        for (name,) in conn.execute(
            "SELECT conname FROM pg_constraint WHERE conrelid = to_regclass(%s) "
            "AND pg_get_constraintdef(oid) = %s",
            (table, old),
        ).fetchall():
            _drop_constraint(
                conn,
                sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                    sql.Identifier(table), sql.Identifier(name)
                ),
            )

    def _foreign(self, missing: str) -> StoreError:
        return self.error(
            f"table {self.target.table} exists but has {missing}, so it "
            "is not a stet store; it is left untouched (use ?table= to pick another name)"
        )

    def _read_columns(self, conn: psycopg.Connection[Any]) -> set[str]:
        rows = conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) "
            "AND attnum > 0 AND NOT attisdropped",
            (self.target.table,),
        ).fetchall()
        names = {r[0] for r in rows}
        for name in names:
            if name not in (KEY, SEQ):
                check_column_name(name, self.location)
        return names

    def _add_columns(self, conn: psycopg.Connection[Any], names: Iterable[str]) -> None:
        missing = [n for n in names if n not in self._columns]
        if not missing:
            return
        self._columns = self._read_columns(conn)
        for name in missing:
            if name not in self._columns:
                check_column_name(name, self.location)
                check_column_length(name, self.location)
                conn.execute(
                    self.sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} text").format(
                        self.records, self.sql.Identifier(name)
                    )
                )
                self._columns.add(name)

    # -- reading --------------------------------------------------------------

    def scan(
        self, cursor: Cursor | None, *, every_column: bool = False
    ) -> tuple[Batch, Cursor | None, bool]:
        def op(conn: psycopg.Connection[Any]) -> tuple[Batch, Cursor | None, bool]:
            import psycopg

            try:
                row = conn.execute(
                    self.sql.SQL("SELECT generation, version FROM {} WHERE id = 1").format(
                        self.meta
                    )
                ).fetchone()
            except psycopg.errors.UndefinedTable:
                self._ready = False
                # One snapshot for both: another process may create the store
                # between the query above and this one.
                found = conn.execute(
                    "SELECT to_regclass(%s) IS NOT NULL, to_regclass(%s) IS NOT NULL",
                    (self.target.table, self.target.table + "_meta"),
                ).fetchone()
                records, meta = found if found is not None else (False, False)
                if records and meta:  # created meanwhile: read it
                    raise _Retry from None
                if records:  # a table of that name, but not stet's
                    raise self._foreign(f"no {self.target.table}_meta table") from None
                return [], None, True
            if row is None:
                raise self.error(f"table {self.target.table}_meta has lost its row")
            now = _PgCursor(int(row[0]), int(row[1]))
            if now == cursor:
                return [], cursor, False
            if isinstance(cursor, _PgCursor) and cursor.generation == now.generation:
                return self._read_since(conn, cursor.version, now.version), now, False
            return self._read_all(conn, now.version, every_column), now, True

        return self.run("read the store", op)

    def _read_since(self, conn: psycopg.Connection[Any], since: int, upto: int) -> list[Record]:
        cur = conn.execute(
            self.sql.SQL("SELECT * FROM {} WHERE _stet_seq > %s AND _stet_seq <= %s").format(
                self.records
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
        sql = self.sql
        names = sorted(self._read_columns(conn) - {KEY, SEQ})
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
        ).format(sql.SQL(", ").join(select), self.records, sql.Literal(upto))
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
        groups: dict[tuple[str, ...], list[Record]] = {}
        for row in rows:
            groups.setdefault(tuple(row), []).append(row)

        def op(conn: psycopg.Connection[Any]) -> tuple[int, list[int]]:
            self._ensure(conn)
            added = 0
            versions: list[int] = []
            for names, group in groups.items():
                self._add_columns(conn, names)
                if len(group) <= _INSERT_ROWS:
                    new, version = self._insert_values(conn, names, group)
                else:
                    new, version = self._insert_copy(conn, names, group)
                added += new
                versions.append(version)
            return added, versions

        return self.run("write to the store", op)

    def _values(self, names: tuple[str, ...], row: Record) -> list[object]:
        keys = sorted(n for n in names if n[:6] != "_stet_")
        out: list[object] = []
        for name in names:
            text = row[name]
            if name == TIMESTAMP:
                out.append(_timestamp(text))
            elif name == DURATION:
                out.append(_duration(text))
            else:
                out.append(text)
        out.append(key_json(keys, [row[k] for k in keys]))
        return out

    def _insert_values(
        self, conn: psycopg.Connection[Any], names: tuple[str, ...], rows: Sequence[Record]
    ) -> tuple[int, int]:
        """One statement (one round trip): take a change number, insert, skip duplicates.

        Returns how many rows were new, and the change number.
        """
        sql = self.sql
        columns = [*names, KEY]
        marks = sql.SQL("({})").format(sql.SQL(", ").join(_marks(columns)))
        query = sql.SQL(
            "WITH v AS (UPDATE {meta} SET version = version + 1 WHERE id = 1 "
            "RETURNING version) "
            ", ins AS (INSERT INTO {records} ({columns}, _stet_seq) "
            "SELECT d.*, v.version FROM v, (VALUES {values}) AS d "
            "ON CONFLICT " + _RECORD_IDENTITY + " DO NOTHING RETURNING 1) "
            "SELECT (SELECT count(*) FROM ins), (SELECT version FROM v)"
        ).format(
            meta=self.meta,
            records=self.records,
            columns=sql.SQL(", ").join(map(sql.Identifier, columns)),
            values=sql.SQL(", ").join([marks] * len(rows)),
        )
        params = [v for row in rows for v in self._values(names, row)]
        result = conn.execute(query, params).fetchone()
        if result is None or result[1] is None:
            raise self.error(f"table {self.target.table}_meta has lost its row")
        return int(result[0]), int(result[1])

    def _insert_copy(
        self, conn: psycopg.Connection[Any], names: tuple[str, ...], rows: Sequence[Record]
    ) -> tuple[int, int]:
        """Many rows: COPY into a scratch table, then one INSERT ... SELECT."""
        sql = self.sql
        columns = sql.SQL(", ").join(map(sql.Identifier, [*names, KEY]))
        with conn.transaction():
            bump = "UPDATE {} SET version = version + 1 WHERE id = 1 RETURNING version"
            version = conn.execute(sql.SQL(bump).format(self.meta)).fetchone()
            assert version is not None
            conn.execute(
                sql.SQL(
                    "CREATE TEMPORARY TABLE stet_incoming ON COMMIT DROP AS "
                    "SELECT {} FROM {} WITH NO DATA"
                ).format(columns, self.records)
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
                    "FROM stet_incoming ON CONFLICT " + _RECORD_IDENTITY + " DO NOTHING"
                ).format(self.records, columns=columns),
                (version[0],),
            )
            return max(cur.rowcount, 0), int(version[0])

    def delete(self, keys: Sequence[tuple[str, str]] | None, upto: int | None) -> int:
        """Delete records: those of ``(function, key json)`` pairs, or all (None).

        Only rows up to change ``upto`` (what the caller read) are deleted, so
        a record another process adds meanwhile stays.
        """
        sql = self.sql

        def op(conn: psycopg.Connection[Any]) -> int:
            import psycopg

            try:
                with conn.transaction():
                    conn.execute(
                        sql.SQL(
                            "UPDATE {} SET generation = generation + 1, version = version + 1 "
                            "WHERE id = 1"
                        ).format(self.meta)
                    )
                    limit = (
                        sql.SQL("")
                        if upto is None
                        else sql.SQL(" AND _stet_seq <= {}").format(sql.Literal(upto))
                    )
                    if keys is None:
                        cur = conn.execute(
                            sql.SQL("DELETE FROM {} WHERE true{}").format(self.records, limit)
                        )
                        return max(cur.rowcount, 0)
                    removed = 0
                    with conn.cursor() as cur:
                        cur.executemany(
                            sql.SQL("DELETE FROM {} WHERE " + _RECORD_MATCH + "{}").format(
                                self.records, limit
                            ),
                            keys,
                        )
                        removed = max(cur.rowcount, 0)
                    return removed
            except psycopg.errors.UndefinedTable:
                self._ready = False
                return 0

        return self.run("delete records", op)

    # -- claims ---------------------------------------------------------------

    def _claim(self, row: Sequence[Any], function: str | None = None) -> Claim:
        """A claim from (function, key, owner, epoch, seconds left, lease, age)."""
        fn, key, who, epoch, left, lease, age = row
        now = time.time()
        cols = tuple(sorted(json.loads(key)))
        values = tuple(json.loads(key)[c] for c in cols)
        return Claim(
            fn if function is None else function,
            cols,
            values,
            who,
            int(epoch),
            now + float(left),
            float(lease),
            now - float(age),
        )

    _CLAIM_COLUMNS: Final = (
        "function, key, owner, epoch, extract(epoch FROM expires - now()), lease, "
        "extract(epoch FROM now() - since)"
    )

    def load_claims(self) -> dict[ClaimId, Claim]:
        def op(conn: psycopg.Connection[Any]) -> dict[ClaimId, Claim]:
            import psycopg

            try:
                rows = conn.execute(
                    self.sql.SQL("SELECT " + self._CLAIM_COLUMNS + " FROM {}").format(
                        self.claims_table
                    )
                ).fetchall()
            except psycopg.errors.UndefinedTable:
                return {}
            claims = [self._claim(r) for r in rows]
            return {c.id: c for c in claims}

        return self.run("read claims", op)

    def try_claim(
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
        sql = self.sql
        key = key_json(cols, values)
        me = owner() if who is None else who

        def op(conn: psycopg.Connection[Any]) -> tuple[bool, Claim | None]:
            self._ensure(conn)
            row = conn.execute(
                sql.SQL(
                    "INSERT INTO {table} AS c (function, key, owner, epoch, expires, lease, since) "
                    "VALUES (%s, %s, %s, 1, now() + make_interval(secs => %s), %s, now()) "
                    "ON CONFLICT " + _CLAIM_IDENTITY + " DO UPDATE SET owner = EXCLUDED.owner, "
                    "epoch = c.epoch + 1, expires = EXCLUDED.expires, lease = EXCLUDED.lease, "
                    "since = EXCLUDED.since WHERE c.expires <= now() "
                    "RETURNING " + self._CLAIM_COLUMNS
                ).format(table=self.claims_table),
                (function, key, me, lease, lease),
            ).fetchone()
            if row is not None:
                return True, self._claim(row)
            current = conn.execute(
                sql.SQL(
                    "SELECT " + self._CLAIM_COLUMNS + " FROM {} WHERE function = %s AND key = %s"
                ).format(self.claims_table),
                (function, key),
            ).fetchone()
            if current is None:  # released between the two statements: try again
                raise _Retry
            return False, self._claim(current)

        return self.run("claim a run", op)

    def renew(self, claims: Sequence[Claim]) -> list[Claim]:
        """Extend claims still held by their owner (same epoch); return them renewed."""
        sql = self.sql

        def op(conn: psycopg.Connection[Any]) -> list[Claim]:
            renewed = []
            for claim in claims:
                row = conn.execute(
                    sql.SQL(
                        "UPDATE {} SET expires = now() + make_interval(secs => lease) "
                        "WHERE function = %s AND key = %s AND owner = %s AND epoch = %s "
                        "RETURNING " + self._CLAIM_COLUMNS
                    ).format(self.claims_table),
                    (claim.function, key_json(claim.cols, claim.values), claim.owner, claim.epoch),
                ).fetchone()
                if row is not None:
                    renewed.append(self._claim(row))
            return renewed

        return self.run("renew claims", op)

    def finish(self, claim: Claim, rows: Sequence[Record]) -> bool:
        """In one transaction: drop ``claim`` if still held and record ``rows``.

        Returns False (and writes nothing) if the claim was taken over.
        """
        sql = self.sql
        key = key_json(claim.cols, claim.values)
        names = tuple(rows[0]) if rows else ()

        def op(conn: psycopg.Connection[Any]) -> bool:
            self._ensure(conn)
            self._add_columns(conn, names)
            with conn.transaction():
                gone = conn.execute(
                    sql.SQL(
                        "DELETE FROM {} WHERE function = %s AND key = %s AND owner = %s "
                        "AND epoch = %s RETURNING 1"
                    ).format(self.claims_table),
                    (claim.function, key, claim.owner, claim.epoch),
                ).fetchone()
                if gone is None:
                    return False
                if rows:
                    self._insert_values(conn, names, rows)
                return True

        return self.run("record a claimed run", op)

    def release(self, claim: Claim) -> None:
        """Drop ``claim`` if this owner still holds it."""

        def op(conn: psycopg.Connection[Any]) -> None:
            conn.execute(
                self.sql.SQL(
                    "DELETE FROM {} WHERE function = %s AND key = %s AND owner = %s AND epoch = %s"
                ).format(self.claims_table),
                (claim.function, key_json(claim.cols, claim.values), claim.owner, claim.epoch),
            )

        self.run("release a claim", op)


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
_RECORD_IDENTITY: Final = f"({_digest('_stet_function')}, {_digest('_stet_key')})"
_RECORD_MATCH: Final = (
    f"{_digest('_stet_function')} = {_digest('%s::text')} "
    f"AND {_digest('_stet_key')} = {_digest('%s::text')}"
)
_CLAIM_IDENTITY: Final = f"({_digest('function')}, {_digest('key')})"
#: The unique constraints of stores made before digests, as
#: ``pg_get_constraintdef`` shows them; the first use migrates them.
_OLD_RECORD_KEY: Final = "UNIQUE (_stet_function, _stet_key)"
_OLD_CLAIM_KEY: Final = "PRIMARY KEY (function, key)"


def _exists(conn: psycopg.Connection[Any], relation: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (relation,)).fetchone()
    return row is not None and bool(row[0])


def _drop_constraint(conn: psycopg.Connection[Any], statement: Any) -> None:
    """Drop an old constraint (a seam for the test that kills a migration midway)."""
    conn.execute(statement)


#: Failures that another attempt will not cure, although psycopg reports
#: them as operational errors.
_PERMANENT: Final = (
    "authentication failed",
    "no password supplied",
    "does not exist",
    "permission denied",
    "not permitted",
    "could not translate host name",
    "invalid",
)


def _close_quietly(holder: list[Any]) -> None:
    conn, holder[0] = holder[0], None
    if conn is not None:
        with contextlib.suppress(Exception):
            conn.close()


def _reason(exc: BaseException) -> str:
    """psycopg's message in one line (its first line holds the server's words)."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


#: SQLSTATEs after which the same operation may well succeed: the server
#: is shutting down, restarting or full of connections, or the transaction
#: lost a race with another (serialization failure, deadlock).
_TRANSIENT_STATES: Final = frozenset({"57P01", "57P02", "57P03", "53300", "40001", "40P01"})


def _connection_failure(exc: BaseException) -> bool:
    """True for a failure of the connection itself, rather than of a statement."""
    import psycopg

    state = getattr(exc, "sqlstate", None)
    if state is not None:
        return bool(state.startswith("08") or state in ("57P01", "57P02", "57P03", "53300"))
    # No SQLSTATE: libpq's own report of a connection that failed or broke.
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)


def _transient(exc: BaseException, reason: str) -> bool:
    """True if trying the operation again may succeed.

    Only a lost or refused connection and a lost race qualify; anything
    the server said about the statement (a program limit, a constraint, a
    permission) is answered the same way every time.
    """
    state = getattr(exc, "sqlstate", None)
    if state is not None:
        return bool(state.startswith("08") or state in _TRANSIENT_STATES)
    if not _connection_failure(exc):
        return False
    lowered = reason.lower()
    return not any(p in lowered for p in _PERMANENT)


def _marks(columns: Sequence[str]) -> list[Any]:
    from psycopg import sql

    casts = {TIMESTAMP: "%s::timestamptz", DURATION: "%s::float8"}
    return [sql.SQL(casts.get(c, "%s::text")) for c in columns]


class PostgresStore:
    """A `stet.typing.ClaimingStore` in a PostgreSQL database, shared by many machines.

    Args:
        url: ``postgresql://user[:password]@host[:port]/database[?table=NAME]``;
            missing parts come from libpq's environment (``PGHOST``...).
        clock: Unused for leases, which the server's clock times (so that
            workers' clocks need not agree); kept for the `Store` contract.

    Writing a record is one statement (one round trip to the server);
    before a run, one small query looks for records other workers added;
    a skip of a key this process has seen recorded asks nothing. Passwords
    never appear in messages, reprs or `status`.
    """

    limits: ColumnLimits = NO_LIMITS

    def __init__(self, url: str, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._pg = PgFormat(url)
        self.location = self._pg.location  # never the password
        self.clock = clock
        self._index = KeyIndex(self.location)
        self._order: dict[tuple[str, ...], tuple[str, ...]] = {}
        self._checked: set[tuple[str, ...]] = set()  # key columns that fit the server
        self._cursor: Cursor | None = None
        self._mutex = threading.RLock()
        track(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r})"

    # -- processes ------------------------------------------------------------

    def pause_for_fork(self) -> bool:
        if not self._mutex.acquire(timeout=5):
            return False
        self._pg.before_fork()
        return True

    def resume_after_fork(self) -> None:
        self._mutex.release()

    def reset_in_child(self) -> None:
        self._mutex = threading.RLock()
        self._pg.after_fork()

    # -- lookups --------------------------------------------------------------

    def exists(self) -> bool:
        return self._pg.exists()

    def refresh(self) -> None:
        with self._mutex:
            batch, cursor, complete = self._pg.scan(self._cursor)
            if complete:
                self._index.rebuild(batch)
            else:
                self._index.ingest(batch)
            self._cursor = cursor

    def knows(self, function: str, cols: tuple[str, ...], key: Packed) -> bool:
        return self._index.knows(function, cols, key)

    def is_done(self, function: str, cols: tuple[str, ...], key: Packed) -> bool:
        if self._index.knows(function, cols, key):
            return True
        # A key not known to be done is about to run: refuse, before it runs,
        # a parameter name the server would truncate (and so never match).
        self._check_lengths(cols)
        self.refresh()
        return self._index.knows(function, cols, key)

    def _check_lengths(self, cols: tuple[str, ...]) -> None:
        if cols not in self._checked:
            for col in cols:
                check_column_length(col, self.location)
            self._checked.add(cols)

    def matches(self, function: str | None, cols: tuple[str, ...], values: tuple[str, ...]) -> bool:
        self.refresh()
        return self._index.matches(function, cols, values)

    def check_can_hold(self, cols: Sequence[str]) -> None:
        self._check_lengths(tuple(sorted(cols)))

    def prefer_order(self, names: Sequence[str]) -> None:
        order = tuple(names)
        self._order.setdefault(tuple(sorted(order)), order)

    # -- writing --------------------------------------------------------------

    def _records_of(
        self,
        function: str,
        cols: tuple[str, ...],
        keys: Iterable[tuple[str, ...]],
        duration: float | None,
        code: str | None,
    ) -> tuple[list[Record], dict[Packed, tuple[str, ...]]]:
        fresh = self._index.fresh(function, cols, keys)
        order = self._order.get(cols)
        records = new_records(
            function, cols, fresh.values(), order=order, duration=duration, code=code
        )
        return records, fresh

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
        self._check_lengths(cols)
        with self._mutex:
            self.refresh()
            records, fresh = self._records_of(function, cols, keys, duration, code)
            if not records:
                return 0
            added, versions = self._pg.insert(records)
            self._index.add(function, cols, fresh)
            self._advance(versions)
            return added

    def merge(self, records: Iterable[Record]) -> int:
        with self._mutex:
            self.refresh()
            added, new = self._index.unseen(records, self._check_new_group)
            if not added:
                return 0
            self._pg.insert(added)
            for (function, cols), keys in new.items():
                self._index.add(function, cols, keys)
            return len(added)

    def _check_new_group(self, cols: tuple[str, ...]) -> None:
        check_key_columns(cols, self.limits, store=self.location)
        self._check_lengths(cols)

    def _advance(self, versions: list[int]) -> None:
        """Move the cursor past our own writes, if nobody else wrote in between.

        Then the next look for news is one query that finds nothing new,
        instead of reading back what this process just wrote.
        """
        cursor = self._cursor
        if isinstance(cursor, _PgCursor) and versions == list(
            range(cursor.version + 1, cursor.version + 1 + len(versions))
        ):
            self._cursor = attrs.evolve(cursor, version=versions[-1])

    def flush(self, timeout: float | None = None) -> None:
        pass  # every record is in the table as soon as it is written

    # -- whole-store operations ------------------------------------------------

    def records(self) -> list[Record]:
        with self._mutex:
            batch, _, _ = self._pg.scan(None, every_column=True)
            return as_records(batch)

    def delete(self, doomed: Callable[[Record], bool]) -> int:
        with self._mutex:
            batch, cursor, _ = self._pg.scan(None, every_column=True)
            keys: list[tuple[str, str]] = []
            for record in as_records(batch):
                if doomed(record):
                    # By the texts as stored: a record of older key rules holds
                    # them as written then, and its _stet_key was made of them.
                    function, cols, _ = identity(record, self.location)
                    keys.append((function, key_json(cols, tuple(record[c] for c in cols))))
            removed = 0
            if keys:
                assert isinstance(cursor, _PgCursor)
                removed = self._pg.delete(keys, cursor.version)
            self._cursor = None
            self.refresh()
            return removed

    def clear(self, *, in_place: bool = False) -> int:
        """Delete every record in one statement (the tables stay; claims in progress stay)."""
        with self._mutex:
            removed = self._pg.delete(None, None)
            self._cursor = None
            self.refresh()
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
        won, claim = self._pg.try_claim(function, cols, values, lease, owner)
        if not won:
            return "busy", claim
        assert claim is not None
        # A worker that finished the key a moment ago dropped its claim in the
        # same transaction that recorded it: look again, now that we hold it.
        self.refresh()
        if self._index.knows(function, cols, packed):
            self._pg.release(claim)
            return "done", None
        if owner is None:
            heartbeat.hold(self, claim)
        return "claimed", claim

    def renew(self, claims: Sequence[Claim]) -> list[Claim]:
        return self._pg.renew(claims)

    def complete(
        self, claim: Claim, *, duration: float | None = None, code: str | None = None
    ) -> bool:
        heartbeat.drop(self, claim)
        with self._mutex:
            records, fresh = self._records_of(
                claim.function, claim.cols, [claim.values], duration, code
            )
            if not self._pg.finish(claim, records):
                return False
            self._index.add(claim.function, claim.cols, fresh)
            return True

    def release(self, claim: Claim) -> None:
        heartbeat.drop(self, claim)
        self._pg.release(claim)

    def claims(self) -> dict[ClaimId, Claim]:
        # A claim on a recorded key is finished (its worker was killed after
        # try_claim, before releasing it): not in progress.
        self.refresh()
        return {
            i: c
            for i, c in self._pg.load_claims().items()
            if not self._index.knows(c.function, c.cols, pack(c.values))
        }


def describe(store: str) -> str:
    """The store URL with any password hidden (for messages about it)."""
    try:
        return parse_url(store).shown
    except ValueError:
        return "(a PostgreSQL URL)"

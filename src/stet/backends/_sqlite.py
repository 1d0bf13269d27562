"""SQLite store: one ``stet_records`` table, read incrementally by rowid.

Key columns are TEXT holding the codec's canonical text; a NULL means the
record has no such column. Another process's commits are noticed through
``PRAGMA data_version`` without reading any rows; deletions bump a
generation number in ``stet_meta`` so that readers reload everything.
The connection to the database at the path, and making its tables, are
`._sqlite_file`'s; this module reads and writes records and claims.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final

import attrs

from .._lazy import np, pa
from ..exceptions import StoreError
from ._claims import Claim, ClaimId
from ._clock import SYSTEM_CLOCK, Clock
from ._columns import ColumnLimits, check_column_name
from ._file_store import FileStore
from ._files import real_path
from ._new_records import NewRecords
from ._records import Batch, Columns, Cursor, Record
from ._schema import CODEC, DURATION, FUNCTION, TIMESTAMP, is_meta
from ._sqlite_file import META, SqliteFile, quote
from ._sqlite_journals import TABLE

__all__ = ["SQLITE_LIMITS", "open_sqlite"]

CLAIMS: Final = "stet_claims"
#: Reads of at least this many rows are indexed from columns.
_BULK_ROWS: Final = 10_000
#: Writes of at least this many new records put their metadata in the statement.
_LITERAL_META_ROWS: Final = 1_000
#: Records committed between two checkpoints ahead of the lock (`_checkpoint`).
_CHECKPOINT_COMMITS: Final = 500


@attrs.frozen
class _SqliteCursor:
    inode: tuple[int, int]
    connection: int  # data_version counts per connection
    data_version: int
    generation: int
    max_rowid: int
    columns: tuple[str, ...]


def _claim_key(cols: tuple[str, ...], values: tuple[str, ...]) -> str:
    return json.dumps(dict(zip(cols, values, strict=True)), sort_keys=True)


class _SqliteFormat:
    def __init__(self, path: str) -> None:
        self.path = real_path(path)
        self.location = self.path
        self._db = SqliteFile(self.path)
        # The cursor the last look under the lock found current (see `unchanged`).
        self._checked: _SqliteCursor | None = None
        self._commits = 0  # records committed since this connection's last checkpoint

    def fold(self, cursor: Cursor | None) -> Cursor | None:
        return cursor  # nothing buffered

    def before_fork(self) -> None:
        # SQLite connections must not cross a fork: the parent reconnects on
        # its next use (the cursor then reads what changed meanwhile).
        self._db.close()

    def after_fork(self) -> None:
        # Whatever is left (a fork outside os.fork's hooks) is not used here.
        self._db.drop()

    def load(self) -> dict[ClaimId, Claim]:
        """The claims in the ``stet_claims`` table (`ClaimRecords`)."""
        try:
            conn = self._db.connect()
            if conn is None:
                return {}
            rows = conn.execute(
                f"SELECT function, key, owner, epoch, expires, lease, since FROM {CLAIMS}"
            ).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return {}
            raise self._db.error(f"cannot be read: {exc}") from None
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
            raise self._db.error(f"cannot be read: {exc}") from None
        claims: dict[ClaimId, Claim] = {}
        for function, key, owner, epoch, expires, lease, since in rows:
            try:
                claim = Claim.from_json(
                    {
                        "function": function,
                        "key": json.loads(key),
                        "owner": owner,
                        "epoch": epoch,
                        "expires": expires,
                        "lease": lease,
                        "since": since,
                    }
                )
            except (ValueError, TypeError, KeyError) as exc:
                raise self._db.error(
                    f"table {CLAIMS} holds a row stet cannot read ({exc})"
                ) from None
            claims[claim.id] = claim
        return claims

    def save(self, put: Iterable[Claim], drop: Iterable[ClaimId]) -> None:
        put, drop = list(put), list(drop)
        with self._transaction() as conn:
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {CLAIMS} (function TEXT NOT NULL, "
                "key TEXT NOT NULL, owner TEXT NOT NULL, epoch INTEGER NOT NULL, "
                "expires REAL NOT NULL, lease REAL NOT NULL, since REAL NOT NULL, "
                "PRIMARY KEY (function, key))"
            )
            conn.executemany(
                f"DELETE FROM {CLAIMS} WHERE function = ? AND key = ?",
                [(f, _claim_key(c, v)) for f, c, v in drop],
            )
            conn.executemany(
                f"INSERT OR REPLACE INTO {CLAIMS} VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        c.function,
                        _claim_key(c.cols, c.values),
                        c.owner,
                        c.epoch,
                        c.expires,
                        c.lease,
                        c.since,
                    )
                    for c in put
                ],
            )

    @contextmanager
    def _transaction(self, conn: sqlite3.Connection | None = None) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` on the store's connection (``conn``, or
        the one `SqliteFile.ready` gives), rolled back on any error; SQLite's errors
        (then or in the body) name the store."""
        conn = self._db.ready() if conn is None else conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
            raise self._db.error(f"cannot be written: {exc}") from None

    def _cursor_after(
        self,
        conn: sqlite3.Connection,
        max_rowid: int,
        columns: tuple[str, ...],
        known: _SqliteCursor | None = None,
    ) -> _SqliteCursor:
        """The cursor after this connection's commit: ``known``'s change counter and
        generation when nothing else could have changed them, else read anew."""
        if known is not None:
            version, generation = known.data_version, known.generation
        else:
            try:
                version = conn.execute("PRAGMA data_version").fetchone()[0]
                generation = self._generation(conn)
            except sqlite3.DatabaseError as exc:
                raise self._db.error(f"cannot be written: {exc}") from None
        assert self._db.inode is not None
        return _SqliteCursor(
            self._db.inode, self._db.serial, version, generation, max_rowid, columns
        )

    def _columns(self, conn: sqlite3.Connection) -> tuple[str, ...]:
        cols = tuple(r[1] for r in conn.execute(f"PRAGMA table_info({TABLE})"))
        if TIMESTAMP not in cols:
            raise self._db.error(f"table {TABLE} has no {TIMESTAMP} column")
        for col in cols:
            check_column_name(col, self.path)
        return cols

    @staticmethod
    def _generation(conn: sqlite3.Connection) -> int:
        try:
            row = conn.execute(f"SELECT value FROM {META} WHERE name='generation'").fetchone()
        except sqlite3.OperationalError:  # a stet 0.0.x store has no meta table
            return 0
        return int(row[0]) if row else 0

    def scan(
        self, cursor: Cursor | None, *, every_column: bool = False
    ) -> tuple[Batch, Cursor | None, bool]:
        try:
            conn = self._db.connect()
            if conn is None or not self._db.has_table(conn):
                return [], None, True
            version = conn.execute("PRAGMA data_version").fetchone()[0]
            same_file = isinstance(cursor, _SqliteCursor) and cursor.inode == self._db.inode
            if (
                same_file
                and cursor.connection == self._db.serial  # type: ignore[union-attr]
                and cursor.data_version == version  # type: ignore[union-attr]
            ):
                return [], cursor, False
            conn.execute("BEGIN")  # one snapshot for every query below
            try:
                generation = self._generation(conn)
                columns = self._columns(conn)
                incremental = same_file and cursor.generation == generation  # type: ignore[union-attr]
                since = cursor.max_rowid if incremental else 0  # type: ignore[union-attr]
                count, top = conn.execute(
                    f"SELECT count(*), max(rowid) FROM {TABLE} WHERE rowid > ?", (since,)
                ).fetchone()
                records: Batch
                if count >= _BULK_ROWS:
                    records = self._read_columns(conn, columns, since, top, count, every_column)
                else:
                    records = self._read_rows(conn, columns, since)
            finally:
                if conn.in_transaction:  # an error may have rolled it back already
                    conn.execute("COMMIT")
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
            raise self._db.error(f"cannot be read: {exc}") from None
        assert self._db.inode is not None
        max_rowid = top if top is not None else since
        new = _SqliteCursor(
            self._db.inode, self._db.serial, version, generation, max_rowid, columns
        )
        return records, new, not incremental

    def _read_rows(
        self, conn: sqlite3.Connection, columns: tuple[str, ...], since: int
    ) -> list[Record]:
        select = ", ".join(quote(c) for c in columns)
        result = conn.execute(
            f"SELECT {select} FROM {TABLE} WHERE rowid > ? ORDER BY rowid", (since,)
        ).fetchall()
        return [self._row(columns, r) for r in result]

    def _read_columns(
        self,
        conn: sqlite3.Connection,
        columns: tuple[str, ...],
        since: int,
        top: int,
        count: int,
        every_column: bool,
    ) -> Columns:
        """Many rows, one column at a time (only what the index needs, unless asked)."""
        wanted = [c for c in columns if every_column or not is_meta(c) or c in (FUNCTION, CODEC)]
        reader = conn.cursor()
        reader.row_factory = lambda _, row: row[0]
        window = f"FROM {TABLE} WHERE rowid > ? AND rowid <= ?"
        data: dict[str, list[str | None]] = {}
        for name in wanted:
            if name in (FUNCTION, CODEC):
                # A metadata column with one value throughout is not fetched.
                distinct = reader.execute(
                    f"SELECT DISTINCT {quote(name)} {window} LIMIT 2", (since, top)
                ).fetchall()
                if len(distinct) == 1:
                    data[name] = distinct * count
                    continue
            values = reader.execute(
                f"SELECT {quote(name)} {window} ORDER BY rowid", (since, top)
            ).fetchall()
            # TEXT columns give str; only the REAL duration needs converting.
            if name == DURATION:
                values = [v if v is None or type(v) is str else self._text(name, v) for v in values]
            data[name] = values
        return Columns(wanted, count, data.__getitem__)

    def _row(self, columns: tuple[str, ...], values: tuple[object, ...]) -> Record:
        return {
            col: value if isinstance(value, str) else self._text(col, value)
            for col, value in zip(columns, values, strict=True)
            if value is not None
        }

    def _text(self, col: str, value: object) -> str:
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, float):
            return repr(value)
        raise self._db.error(f"column {col!r} holds a {type(value).__name__}, not text")

    def unchanged(self, cursor: Cursor | None) -> bool:
        # What a scan looks at first, without its layers: the same file at
        # the path (a stat) and no commit by another connection since.
        self._checked = None
        if not isinstance(cursor, _SqliteCursor) or cursor.connection != self._db.serial:
            return False
        try:
            conn = self._db.connect()
            if conn is None or self._db.serial != cursor.connection:
                return False
            same = conn.execute("PRAGMA data_version").fetchone()[0] == cursor.data_version
        except (StoreError, sqlite3.DatabaseError):
            return False  # the scan that follows says what is wrong
        if same:  # the write that follows under the lock need not look at the path again
            self._checked = cursor
        return bool(same)

    def encode(self, rows: Sequence[Record], cursor: Cursor | None) -> object:
        # The INSERT and its rows, made before the lock is taken, for new
        # records whose columns the store has (the usual record of a run).
        if self._commits >= _CHECKPOINT_COMMITS:
            self._checkpoint()
        if not isinstance(rows, NewRecords) or not isinstance(cursor, _SqliteCursor):
            return None
        if not all(c in cursor.columns for c in rows.names):
            return None
        return _insert_of(rows)

    def _checkpoint(self) -> None:
        """Copy the write-ahead log into the database, before the store's lock is taken.

        SQLite does this itself at a commit once the log is long, which held
        stet's lock for the ``fsync`` of a checkpoint every few hundred records;
        the connection's own checkpoint is set further off (`_sqlite_file`) and
        this one comes first, as often. A checkpoint runs beside other writers
        (``PASSIVE``), and a failed one is left to the next.
        """
        self._commits = 0
        conn = self._db.conn
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def append(
        self, rows: Sequence[Record], cursor: Cursor | None, encoded: object = None
    ) -> Cursor:
        prepared = encoded if isinstance(encoded, _Insert) else None
        return self._write(rows, cursor, replace=False, prepared=prepared)

    def rewrite(self, rows: Sequence[Record], cursor: Cursor | None) -> Cursor:
        return self._write(rows, cursor, replace=True)

    def remove(self, table: pa.Table, doomed: Any, cursor: Cursor | None) -> Cursor:
        """Delete the rows ``doomed`` of the last scan by their rowids, in one transaction."""
        assert isinstance(cursor, _SqliteCursor)
        with self._transaction() as conn:
            ids = conn.execute(
                f"SELECT rowid FROM {TABLE} WHERE rowid <= ? ORDER BY rowid",
                (cursor.max_rowid,),
            ).fetchall()
            if len(ids) != len(doomed):  # the lock keeps stet's writers out: someone else
                raise self._db.error("changed while records were being removed; try again")
            picked = np.flatnonzero(doomed).tolist()
            conn.executemany(f"DELETE FROM {TABLE} WHERE rowid = ?", [ids[i] for i in picked])
            _bump_generation(conn)
            max_rowid = conn.execute(f"SELECT max(rowid) FROM {TABLE}").fetchone()[0] or 0
        return self._cursor_after(conn, max_rowid, cursor.columns)

    def _write(
        self,
        rows: Sequence[Record],
        cursor: Cursor | None,
        *,
        replace: bool,
        prepared: _Insert | None = None,
    ) -> Cursor:
        # The caller holds the lock and has just read the store: a cursor of
        # this connection knows the columns, change counter and generation.
        known = (
            cursor
            if isinstance(cursor, _SqliteCursor)
            and cursor.inode == self._db.inode
            and cursor.connection == self._db.serial
            else None
        )
        if known is None or (
            prepared is not None and not all(c in known.columns for c in prepared.names)
        ):
            prepared = None
        checked, self._checked = self._checked, None
        if prepared is not None:  # the lock is held for the INSERT alone
            assert known is not None
            # Looked at under this lock a moment ago (`unchanged`): this connection.
            ready = self._db.conn if checked is known else None
            with self._transaction(ready) as conn:
                conn.executemany(prepared.sql, prepared.values)
                max_rowid = conn.execute(f"SELECT max(rowid) FROM {TABLE}").fetchone()[0]
            self._commits += 1
            return self._cursor_after(conn, max_rowid or 0, known.columns, known)
        with self._transaction() as conn:
            heads = [dict.fromkeys(rows.names)] if isinstance(rows, NewRecords) else rows
            if known is not None and all(c in known.columns for row in heads for c in row):
                columns = list(known.columns)
            else:
                columns = list(self._columns(conn))
            for row in heads:
                for col in row:
                    if col not in columns:
                        check_column_name(col, self.path)
                        conn.execute(f"ALTER TABLE {TABLE} ADD COLUMN {quote(col)} TEXT")
                        columns.append(col)
            if replace:
                conn.execute(f"DELETE FROM {TABLE}")
                _bump_generation(conn)
            by_columns: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
            if isinstance(rows, NewRecords):
                insert = _insert_of(rows)
                conn.executemany(insert.sql, insert.values)
            for row in () if isinstance(rows, NewRecords) else rows:
                by_columns.setdefault(tuple(row), []).append(tuple(row.values()))
            for cols, values in by_columns.items():
                conn.executemany(_insert_sql(cols), values)
            max_rowid = conn.execute(f"SELECT max(rowid) FROM {TABLE}").fetchone()[0] or 0
        return self._cursor_after(conn, max_rowid, tuple(columns), known if not replace else None)


def _bump_generation(conn: sqlite3.Connection) -> None:
    """Tell readers to read everything again: records were removed (in a transaction)."""
    conn.execute(f"CREATE TABLE IF NOT EXISTS {META} (name TEXT PRIMARY KEY, value TEXT)")
    conn.execute(
        f"INSERT INTO {META} VALUES ('generation', '1') ON CONFLICT(name) "
        "DO UPDATE SET value = CAST(value AS INTEGER) + 1"
    )


@attrs.frozen
class _Insert:
    """An INSERT of new records made ahead of the lock (see `_SqliteFormat.encode`)."""

    names: tuple[str, ...]
    sql: str
    values: Sequence[tuple[str, ...]]


def _insert_sql(cols: Sequence[str], fixed: Sequence[str] = ()) -> str:
    """An INSERT of ``cols`` with a parameter each, then ``fixed`` (SQL texts) after them."""
    names = ", ".join(quote(c) for c in cols)
    values = ", ".join([*("?" for _ in cols[: len(cols) - len(fixed)]), *fixed])
    return f"INSERT INTO {TABLE} ({names}) VALUES ({values})"


def _insert_of(rows: NewRecords) -> _Insert:
    """The INSERT of new records.

    A few records bind every cell (one statement, prepared once, whatever
    the time). Many (`stet.mark_done`) bind only their key texts: the
    metadata every record shares is written into the statement as SQL
    texts, so no row of eight cells is built and bound a million times.
    """
    meta = list(rows.meta.values())
    if len(rows) < _LITERAL_META_ROWS or any("\0" in v for v in meta):
        return _Insert(rows.names, _insert_sql(rows.names), rows.rows(rows.names))
    texts = ["'" + v.replace("'", "''") + "'" for v in meta]
    return _Insert(rows.names, _insert_sql(rows.names, texts), rows.keys)


#: rowid and its aliases name SQLite's own row number, which reading what
#: is new relies on; column names ignore case.
SQLITE_LIMITS: Final = ColumnLimits(
    case_insensitive=True, reserved=frozenset({"rowid", "oid", "_rowid_"})
)


def open_sqlite(path: str, *, clock: Clock = SYSTEM_CLOCK) -> FileStore:
    """The SQLite store at ``path`` (absolute); its claims live in its own table."""
    format = _SqliteFormat(path)
    return FileStore(path, format, claim_records=format, limits=SQLITE_LIMITS, clock=clock)

"""SQLite store: one ``stet_records`` table, read incrementally by rowid.

Key columns are TEXT holding the codec's canonical text; a NULL means the
record has no such column. Another process's commits are noticed through
``PRAGMA data_version`` without reading any rows; deletions bump a
generation number in ``stet_meta`` so that readers reload everything.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import stat
from collections.abc import Iterable, Sequence
from typing import Final

import attrs

from ..exceptions import StoreError
from ._claims import Claim, ClaimId
from ._clock import SYSTEM_CLOCK, Clock
from ._columns import ColumnLimits, check_column_name
from ._file_store import FileStore
from ._files import real_path
from ._fs import sqlite_journal_mode
from ._records import Batch, Columns, Cursor, Record
from ._schema import CODEC, DURATION, FUNCTION, META_COLUMNS, TIMESTAMP, is_meta
from ._sqlite_journals import SIDE_FILES, TABLE, foreign_journals, set_aside_orphans

__all__ = ["SQLITE_LIMITS", "open_sqlite"]

META: Final = "stet_meta"
CLAIMS: Final = "stet_claims"
#: Reads of at least this many rows are indexed from columns.
_BULK_ROWS: Final = 10_000
#: Files SQLite keeps beside a database, named after the database's path.

logger: Final = logging.getLogger("stet")


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


def _quote(name: str) -> str:
    # Names are checked identifiers (check_column_name) before they get here.
    return '"' + name + '"'


class _SqliteFormat:
    def __init__(self, path: str) -> None:
        self.path = real_path(path)
        self.location = self.path
        self._conn: sqlite3.Connection | None = None
        self._inode: tuple[int, int] | None = None
        self._has_table = False  # the open database has stet's tables
        self._stet_file: tuple[int, int] | None = None  # a file known to hold stet's table
        self._serial = 0  # which connection; data_version is only comparable within one

    def fold(self, cursor: Cursor | None) -> Cursor | None:
        return cursor  # nothing buffered

    def before_fork(self) -> None:
        # SQLite connections must not cross a fork: the parent reconnects on
        # its next use (the cursor then reads what changed meanwhile).
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def after_fork(self) -> None:
        # Whatever is left (a fork outside os.fork's hooks) is not used here.
        self._conn = None

    def load(self) -> dict[ClaimId, Claim]:
        """The claims in the ``stet_claims`` table (`ClaimRecords`)."""
        try:
            conn = self._connect()
            if conn is None:
                return {}
            rows = conn.execute(
                f"SELECT function, key, owner, epoch, expires, lease, since FROM {CLAIMS}"
            ).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return {}
            raise self._error(f"cannot be read: {exc}") from None
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
            raise self._error(f"cannot be read: {exc}") from None
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
                raise self._error(f"table {CLAIMS} holds a row stet cannot read ({exc})") from None
            claims[claim.id] = claim
        return claims

    def save(self, put: Iterable[Claim], drop: Iterable[ClaimId]) -> None:
        put, drop = list(put), list(drop)
        conn = self._ready()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
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
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
            raise self._error(f"cannot be written: {exc}") from None

    def _error(self, problem: str) -> StoreError:
        return StoreError(self.path, problem)

    def _connect(self, *, locked: bool = False) -> sqlite3.Connection | None:
        """The connection to the database at the path, or None while it has no file.

        A file of 0 bytes (what ``sqlite3.connect(path)`` leaves) is an
        empty store too, and gets no connection: opening it would replay a
        write-ahead log another database left beside it (see
        `_set_aside_orphans`). So is a file with no tables beside which lie
        another database's journal files (`_foreign_journals`): a reader
        gets no connection, and a writer (``locked``) renames them first.
        """
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._disconnect()
            return None
        except OSError as exc:
            raise self._error(f"cannot be read: {exc.strerror or exc}") from None
        if not stat.S_ISREG(st.st_mode):  # stat, never open: SQLite would block on a FIFO
            raise self._error(
                "is not a regular file (a directory, FIFO or device), so it cannot be a "
                "stet store; it is left untouched (give the store the path of a file)"
            )
        inode = (st.st_dev, st.st_ino)
        if self._conn is not None and inode == self._inode:
            return self._conn
        self._disconnect()
        if st.st_size == 0:
            return None
        if inode != self._stet_file and foreign_journals(self.path):
            if not locked:
                return None
            set_aside_orphans(self.path, "holds no tables")
        # The header is checked by SQLite itself, not by opening the file here:
        # closing any descriptor of the database drops every POSIX lock this
        # process holds on it, including those of its other open connections,
        # and then another process may reset the write-ahead log under them.
        try:
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=60
            )
            conn.execute("PRAGMA synchronous=NORMAL")
            tables = {
                r[0]
                for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
                if not r[0].startswith("sqlite_")
            }
            # Someone else's views or triggers make a foreign database too.
            others = conn.execute(
                "SELECT count(*) FROM sqlite_master WHERE type IN ('view', 'trigger')"
            ).fetchone()[0]
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
            if "file is not a database" in str(exc):
                raise self._error(
                    "is not a SQLite database (wrong file header); it is left untouched"
                ) from None
            raise self._error(f"cannot be opened as SQLite: {exc}") from None
        if (tables or others) and TABLE not in tables:
            conn.close()
            raise self._error(
                f"has no {TABLE} table (tables: {sorted(tables)}), so it is not a "
                "stet store; it is left untouched"
            )
        # A database without tables is an empty store; its tables are made
        # by the first write (`_ready`).
        self._conn, self._inode, self._has_table = conn, inode, TABLE in tables
        if self._has_table:
            self._stet_file = inode
        self._serial += 1
        return conn

    def _disconnect(self) -> None:
        """Let go of a database that is no longer at the path (moved, replaced)."""
        conn, self._conn, self._has_table = self._conn, None, False
        if conn is None:
            return
        # Its last commits may still be in its write-ahead log, which is
        # named after the path: copy them into the database itself (wherever
        # it was moved), so that the log left at the path holds nothing of it.
        with contextlib.suppress(sqlite3.Error):
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        with contextlib.suppress(sqlite3.Error):
            conn.close()

    def _table_exists(self, conn: sqlite3.Connection) -> bool:
        """True once stet's table is in an open database that had none."""
        if not self._has_table:
            row = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (TABLE,)
            ).fetchone()
            self._has_table = row is not None
            if self._has_table:
                self._stet_file = self._inode
        return self._has_table

    def _ready(self) -> sqlite3.Connection:
        """A connection to the store with its tables made if missing (lock held)."""
        conn = self._connect(locked=True)
        if conn is None:
            self._create()
            conn = self._connect(locked=True)
            assert conn is not None
        elif not self._table_exists(conn):
            self._create_tables(conn)
        return conn

    def _columns(self, conn: sqlite3.Connection) -> tuple[str, ...]:
        cols = tuple(r[1] for r in conn.execute(f"PRAGMA table_info({TABLE})"))
        if TIMESTAMP not in cols:
            raise self._error(f"table {TABLE} has no {TIMESTAMP} column")
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
            conn = self._connect()
            if conn is None or not self._table_exists(conn):
                return [], None, True
            version = conn.execute("PRAGMA data_version").fetchone()[0]
            same_file = isinstance(cursor, _SqliteCursor) and cursor.inode == self._inode
            if (
                same_file
                and cursor.connection == self._serial  # type: ignore[union-attr]
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
            raise self._error(f"cannot be read: {exc}") from None
        assert self._inode is not None
        max_rowid = top if top is not None else since
        new = _SqliteCursor(self._inode, self._serial, version, generation, max_rowid, columns)
        return records, new, not incremental

    def _read_rows(
        self, conn: sqlite3.Connection, columns: tuple[str, ...], since: int
    ) -> list[Record]:
        select = ", ".join(_quote(c) for c in columns)
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
                    f"SELECT DISTINCT {_quote(name)} {window} LIMIT 2", (since, top)
                ).fetchall()
                if len(distinct) == 1:
                    data[name] = distinct * count
                    continue
            values = reader.execute(
                f"SELECT {_quote(name)} {window} ORDER BY rowid", (since, top)
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
        raise self._error(f"column {col!r} holds a {type(value).__name__}, not text")

    def _create(self) -> None:
        """Make the store's file (lock held; the path has none, or an empty one).

        The database is built beside the path and renamed onto it, so a
        reader sees no store or a whole one.
        """
        tmp = f"{self.path}.{os.getpid()}.tmp"
        try:
            for leftover in (tmp, *(tmp + suffix for suffix in SIDE_FILES)):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(leftover)  # of a killed creation by a process of this pid
            conn = sqlite3.connect(tmp, isolation_level=None)
            try:
                conn.execute(f"PRAGMA journal_mode={sqlite_journal_mode(self.path)}")
                for statement in _schema():
                    conn.execute(statement)
            finally:
                conn.close()
            set_aside_orphans(self.path, "is missing or empty")
            os.replace(tmp, self.path)
        except (OSError, sqlite3.Error) as exc:
            raise self._error(f"cannot be created: {exc}") from None

    def _create_tables(self, conn: sqlite3.Connection) -> None:
        """Make stet's tables in a database that has no tables (lock held)."""
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _schema(if_missing=True):
                    conn.execute(statement)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            # Write-ahead logging as in a store stet made, if no one else is
            # reading right now (the store works in the other modes too).
            conn.execute("PRAGMA busy_timeout = 100")
            with contextlib.suppress(sqlite3.OperationalError):
                conn.execute(f"PRAGMA journal_mode={sqlite_journal_mode(self.path)}")
            conn.execute("PRAGMA busy_timeout = 60000")
            # A database already in WAL mode got the tables in its log: copy
            # them into the file, so that the file itself is a stet store
            # before any record is written (see `_foreign_journals`).
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
            raise self._error(f"cannot be written: {exc}") from None
        self._has_table, self._stet_file = True, self._inode

    def append(self, rows: Sequence[Record], cursor: Cursor | None) -> Cursor:
        return self._write(rows, cursor, replace=False)

    def rewrite(self, rows: Sequence[Record], cursor: Cursor | None) -> Cursor:
        return self._write(rows, cursor, replace=True)

    def _write(self, rows: Sequence[Record], cursor: Cursor | None, *, replace: bool) -> Cursor:
        conn = self._ready()
        # The caller holds the lock and has just read the store: a cursor of
        # this connection knows the columns, change counter and generation.
        known = (
            cursor
            if isinstance(cursor, _SqliteCursor)
            and cursor.inode == self._inode
            and cursor.connection == self._serial
            else None
        )
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                if known is not None and all(c in known.columns for row in rows for c in row):
                    columns = list(known.columns)
                else:
                    columns = list(self._columns(conn))
                for row in rows:
                    for col in row:
                        if col not in columns:
                            check_column_name(col, self.path)
                            conn.execute(f"ALTER TABLE {TABLE} ADD COLUMN {_quote(col)} TEXT")
                            columns.append(col)
                if replace:
                    conn.execute(f"DELETE FROM {TABLE}")
                    conn.execute(
                        f"CREATE TABLE IF NOT EXISTS {META} (name TEXT PRIMARY KEY, value TEXT)"
                    )
                    conn.execute(
                        f"INSERT INTO {META} VALUES ('generation', '1') ON CONFLICT(name) "
                        "DO UPDATE SET value = CAST(value AS INTEGER) + 1"
                    )
                by_columns: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
                for row in rows:
                    by_columns.setdefault(tuple(row), []).append(tuple(row.values()))
                for cols, values in by_columns.items():
                    names = ", ".join(_quote(c) for c in cols)
                    marks = ", ".join("?" for _ in cols)
                    conn.executemany(f"INSERT INTO {TABLE} ({names}) VALUES ({marks})", values)
                max_rowid = conn.execute(f"SELECT max(rowid) FROM {TABLE}").fetchone()[0] or 0
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            if known is not None and not replace:
                version, generation = known.data_version, known.generation
            else:
                version = conn.execute("PRAGMA data_version").fetchone()[0]
                generation = self._generation(conn)
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
            raise self._error(f"cannot be written: {exc}") from None
        assert self._inode is not None
        return _SqliteCursor(
            self._inode, self._serial, version, generation, max_rowid, tuple(columns)
        )


def _schema(if_missing: bool = False) -> list[str]:
    """The statements that make a new store's tables and meta rows."""
    columns = ", ".join(f"{_quote(c)} {'REAL' if c == DURATION else 'TEXT'}" for c in META_COLUMNS)
    create = "CREATE TABLE IF NOT EXISTS" if if_missing else "CREATE TABLE"
    insert = "INSERT OR IGNORE" if if_missing else "INSERT"
    return [
        f"{create} {TABLE} ({columns})",
        f"{create} {META} (name TEXT PRIMARY KEY, value TEXT)",
        f"{insert} INTO {META} VALUES ('generation', '0'), ('format', 'stet 1')",
    ]


#: rowid and its aliases name SQLite's own row number, which reading what
#: is new relies on; column names ignore case.
SQLITE_LIMITS: Final = ColumnLimits(
    case_insensitive=True, reserved=frozenset({"rowid", "oid", "_rowid_"})
)


def open_sqlite(path: str, *, clock: Clock = SYSTEM_CLOCK) -> FileStore:
    """The SQLite store at ``path`` (absolute); its claims live in its own table."""
    format = _SqliteFormat(path)
    return FileStore(path, format, claim_records=format, limits=SQLITE_LIMITS, clock=clock)

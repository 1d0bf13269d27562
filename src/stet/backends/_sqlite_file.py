"""The SQLite database at a store's path: one connection, and stet's tables.

`SqliteFile` connects to whatever database the path names now (a store
moved, deleted or replaced gets a new connection), refuses a file that is
not a stet store before SQLite touches it, and makes the tables on the
first write. The records' reads and writes are `._sqlite`'s.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import urllib.parse
from typing import Final

from ..exceptions import StoreError
from ._fs import sqlite_journal_mode
from ._schema import DURATION, META_COLUMNS
from ._sqlite_journals import SIDE_FILES, TABLE, foreign_journals, set_aside_orphans

__all__ = ["META", "SqliteFile", "quote"]

#: stet's table of facts about the store (its generation, its format).
META: Final = "stet_meta"
#: Pages of write-ahead log past which a commit checkpoints (SQLite's default
#: is 1,000; stet's writers checkpoint sooner, ahead of the lock).
WAL_BACKSTOP_PAGES: Final = 4_000


def quote(name: str) -> str:
    # Names are checked identifiers (check_column_name) before they get here.
    return '"' + name + '"'


class SqliteFile:
    """The connection to the SQLite database at ``path`` (a real path).

    Attributes:
        conn: The open connection, if any.
        inode: The file it is connected to, as ``(device, inode)``.
        serial: Which connection this is (``PRAGMA data_version`` is only
            comparable within one).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.conn: sqlite3.Connection | None = None
        self.inode: tuple[int, int] | None = None
        self.serial = 0
        self._has_tables = False  # the open database has stet's tables
        self._stet_file: tuple[int, int] | None = None  # a file known to hold stet's table

    def close(self) -> None:
        """Close the connection (SQLite connections must not cross a fork)."""
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def drop(self) -> None:
        """Forget the connection unused (in a forked child: it is the parent's)."""
        self.conn = None

    def error(self, problem: str) -> StoreError:
        return StoreError(self.path, problem)

    def connect(self, *, locked: bool = False) -> sqlite3.Connection | None:
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
            self.disconnect()
            return None
        except OSError as exc:
            raise self.error(f"cannot be read: {exc.strerror or exc}") from None
        if not stat.S_ISREG(st.st_mode):  # stat, never open: SQLite would block on a FIFO
            raise self.error(
                "is not a regular file (a directory, FIFO or device), so it cannot be a "
                "stet store; it is left untouched (give the store the path of a file)"
            )
        inode = (st.st_dev, st.st_ino)
        if self.conn is not None and inode == self.inode:
            return self.conn
        self.disconnect()
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
            conn = _connect(self.path)
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
                raise self.error(
                    "is not a SQLite database (wrong file header); it is left untouched"
                ) from None
            raise self.error(f"cannot be opened as SQLite: {exc}") from None
        if (tables or others) and TABLE not in tables:
            conn.close()
            raise self.error(
                f"has no {TABLE} table (tables: {sorted(tables)}), so it is not a "
                "stet store; it is left untouched"
            )
        # A database without tables is an empty store; its tables are made
        # by the first write (`_ready`).
        self.conn, self.inode, self._has_tables = conn, inode, TABLE in tables
        if self._has_tables:
            self._stet_file = inode
        self.serial += 1
        return conn

    def disconnect(self) -> None:
        """Let go of a database that is no longer at the path (moved, replaced)."""
        conn, self.conn, self._has_tables = self.conn, None, False
        if conn is None:
            return
        # Its last commits may still be in its write-ahead log, which is
        # named after the path: copy them into the database itself (wherever
        # it was moved), so that the log left at the path holds nothing of it.
        with contextlib.suppress(sqlite3.Error):
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        with contextlib.suppress(sqlite3.Error):
            conn.close()

    def has_table(self, conn: sqlite3.Connection) -> bool:
        """True once stet's table is in an open database that had none."""
        if not self._has_tables:
            row = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (TABLE,)
            ).fetchone()
            self._has_tables = row is not None
            if self._has_tables:
                self._stet_file = self.inode
        return self._has_tables

    def ready(self) -> sqlite3.Connection:
        """A connection to the store with its tables made if missing (lock held)."""
        conn = self.connect(locked=True)
        if conn is None:
            self._create()
            conn = self.connect(locked=True)
            assert conn is not None
        elif not self.has_table(conn):
            self._create_tables(conn)
        return conn

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
            raise self.error(f"cannot be created: {exc}") from None

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
            raise self.error(f"cannot be written: {exc}") from None
        self._has_tables, self._stet_file = True, self.inode


def _connect(path: str) -> sqlite3.Connection:
    """A connection to the database at ``path``; read-only where its folder is.

    SQLite cannot open a database in write-ahead-log mode on a read-only
    mount (it needs to make the ``-shm`` index beside it), so there the
    store is read as it stands (``immutable``): it answers what it holds,
    and a record is refused before the run by the lock file (see
    `FileStore.is_done`).
    """
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=60)
    try:
        conn.execute("PRAGMA synchronous=NORMAL")
        # Writers checkpoint before taking the store's lock (`_sqlite`); SQLite's
        # own checkpoint at a commit, under the lock, is then only a backstop.
        conn.execute(f"PRAGMA wal_autocheckpoint={WAL_BACKSTOP_PAGES}")
        conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        return conn
    except sqlite3.OperationalError:
        conn.close()
        if os.access(os.path.dirname(path) or ".", os.W_OK):
            raise
    uri = "file:" + urllib.parse.quote(os.path.abspath(path))
    for mode in ("mode=ro", "immutable=1"):
        conn = sqlite3.connect(
            f"{uri}?{mode}", uri=True, isolation_level=None, check_same_thread=False, timeout=60
        )
        try:
            conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
            return conn
        except sqlite3.OperationalError:
            conn.close()
            if mode == "immutable=1":
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _schema(if_missing: bool = False) -> list[str]:
    """The statements that make a new store's tables and meta rows."""
    columns = ", ".join(f"{quote(c)} {'REAL' if c == DURATION else 'TEXT'}" for c in META_COLUMNS)
    create = "CREATE TABLE IF NOT EXISTS" if if_missing else "CREATE TABLE"
    insert = "INSERT OR IGNORE" if if_missing else "INSERT"
    return [
        f"{create} {TABLE} ({columns})",
        f"{create} {META} (name TEXT PRIMARY KEY, value TEXT)",
        f"{insert} INTO {META} VALUES ('generation', '0'), ('format', 'stet 1')",
    ]

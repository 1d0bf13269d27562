"""Journal files SQLite would replay into a store that is not theirs.

SQLite names a database's write-ahead log (``-wal``), its shared index
(``-shm``) and its rollback journal (``-journal``) after the database's
path, and replays whatever it finds there into the database it opens. A
store killed while writing, then moved away or deleted, would so hand its
last records to a new store at the same path. Before the first connection
to a file not known to hold stet's table, `foreign_journals` tells whether
the files beside it belong to another database, and `set_aside_orphans`
renames them (never deletes them).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sqlite3
import tempfile
import time
from typing import Final

__all__ = ["SIDE_FILES", "TABLE", "foreign_journals", "set_aside_orphans"]

logger: Final = logging.getLogger("stet")

#: stet's table of records.
TABLE: Final = "stet_records"
#: The files SQLite keeps beside a database.
SIDE_FILES: Final = ("-wal", "-shm", "-journal")


def foreign_journals(path: str) -> bool:
    """True if journal files beside a table-less database are another database's.

    SQLite replays a write-ahead log (or rolls back a journal) found at
    the path into whatever database it opens there. Before the first
    connection to a file not known to hold stet's table, the file is
    read as it lies on disk (``immutable=1``: no journal is looked at,
    and SQLite keeps the locks of this process's other connections). A
    file holding tables owns its journals (or is reported as someone
    else's database). For one holding none, the journal is applied to a
    private copy, and judged by what it brings (`_own_creation`).
    """
    wal, journal = path + "-wal", path + "-journal"
    side = wal if os.path.lexists(wal) else journal
    if not os.path.lexists(side):
        return False
    with tempfile.TemporaryDirectory(prefix="stet-sqlite-") as tmp:
        copy = os.path.join(tmp, "copy.sqlite")
        try:
            with contextlib.closing(sqlite3.connect(f"file:{path}?immutable=1", uri=True)) as disk:
                if disk.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                    return False
                with contextlib.closing(sqlite3.connect(copy)) as target:
                    disk.backup(target)  # the file as it lies, through SQLite's descriptor
            with open(copy, "rb") as f:
                header = f.read(100)
            shutil.copyfile(side, copy + side[len(path) :])
        except (OSError, sqlite3.Error):
            return False  # unreadable as it lies: the ordinary open says what is wrong
        return not _own_creation(header, copy, wal=side == wal)


def set_aside_orphans(path: str, state: str) -> None:
    """Rename the journal files another database left at the path (lock held).

    SQLite names a database's write-ahead log, its shared index and its
    rollback journal after the database's path, and replays a log it
    finds there into whatever database it opens. A store killed while
    writing, then moved away or deleted, would so hand its last records
    to a new store at the same path, which would then skip runs it never
    ran. The files are renamed, never deleted: put the old database back
    at the path and rename them back, and its last records return.
    """
    found = [path + s for s in SIDE_FILES if os.path.lexists(path + s)]
    if not found:
        return
    stamp = time.strftime("%Y%m%dT%H%M%S")
    moved: list[str] = []
    for name in found:
        backup, n = f"{name}.orphaned-{stamp}", 1
        while os.path.lexists(backup):
            backup, n = f"{name}.orphaned-{stamp}-{n}", n + 1
        os.rename(name, backup)
        moved.append(backup)
    logger.warning(
        "[stet] %s: the database at this path %s, yet %s lay beside it: "
        "an earlier database's journal files (moved away, deleted or killed while "
        "writing). SQLite would replay them into the new store, so they were renamed "
        "to %s. To recover that database's last records, put it back at this path "
        "and rename the files back.",
        path,
        state,
        ", ".join(found),
        ", ".join(moved),
    )


def _own_creation(header: bytes, copy: str, *, wal: bool) -> bool:
    """True unless the journal beside ``copy`` would bring another database's stet table.

    ``header`` is the first 100 bytes of the table-less database file, and
    the journal lies beside its private copy. A journal that does not fit
    the file (the copy is damaged once it is applied) is another
    database's. One that brings no table of stet's is left to the ordinary
    open (nothing to adopt; someone else's tables are reported there). A
    rollback journal restores the state before a write, so one that brings
    stet's table into a database that has none was never this database's.
    A write-ahead log that brings it is this database's own only if the file
    is in WAL mode, the result is intact, and the log's first page continues
    the file's: the same user version and application id, and a schema
    cookie no older than the file's (a schema only moves forward).
    """
    try:
        with contextlib.closing(sqlite3.connect(copy)) as conn:
            names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            if TABLE not in names:
                return True
            if not wal or header[18] != 2:
                return False
            if conn.execute("PRAGMA quick_check").fetchall() != [("ok",)]:
                return False
            after = conn.execute("PRAGMA schema_version").fetchone()[0]
            user = conn.execute("PRAGMA user_version").fetchone()[0]
            application = conn.execute("PRAGMA application_id").fetchone()[0]
    except sqlite3.DatabaseError:
        return False
    big = int.from_bytes
    return bool(
        after >= big(header[40:44], "big")
        and user == big(header[60:64], "big", signed=True)
        and application == big(header[68:72], "big", signed=True)
    )

"""Hostile paths: symlinks, FIFOs, directories, moved files, orphaned SQLite journals.

A store's path is whatever the user typed, and the filesystem under it may
change while a sweep runs. Whatever is there, stet either uses the one
store the path names or raises `StoreError` naming the file, before the
function runs; it never creates an empty store in place of a missing one,
never hangs, and never hands one database's records to another.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from multiprocessing.synchronize import Event
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import stet
from stet.backends import SqliteBackend, StoreBackend, get_backend, new_store

from .conftest import STORE_EXTENSIONS

FORK = multiprocessing.get_context("fork")


@pytest.fixture(params=STORE_EXTENSIONS)
def ext(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _fresh(path: Path | str) -> StoreBackend:
    """A new store object for ``path``, sharing nothing with those opened before."""
    return StoreBackend(new_store(str(path)))


def _linked(tmp_path: Path, ext: str) -> tuple[Path, Path]:
    """A store with one record in data/, and a symlink to it in the working folder."""
    real = tmp_path / "data" / f"runs.{ext}"
    real.parent.mkdir()
    _fresh(real).record({"x": 0}, function="f")
    link = tmp_path / f"link.{ext}"
    link.symlink_to(real)
    return real, link


# -- symlinks --------------------------------------------------------------


def test_a_link_and_its_target_are_one_store(tmp_path: Path, ext: str) -> None:
    real, link = _linked(tmp_path, ext)
    assert get_backend(link) is get_backend(real)
    get_backend(link).record({"x": 1}, function="f")
    assert _fresh(real).has({"x": 1}, function="f")


def test_rewriting_a_store_through_a_link_rewrites_the_target_and_keeps_the_link(
    tmp_path: Path, ext: str
) -> None:
    real, link = _linked(tmp_path, ext)
    store = _fresh(link)
    store.record({"x": 1}, function="f")
    store.record({"y": 1}, function="g")  # a new column: CSV rewrites the file
    store.remove({"x": 0}, function="f")  # a rewrite in every file store
    store.flush()  # Parquet folds its journal into the file
    assert link.is_symlink()
    assert os.readlink(link) == str(real)
    target = _fresh(real)
    assert target.has({"x": 1}, function="f")
    assert target.has({"y": 1}, function="g")
    assert not target.has({"x": 0}, function="f")
    leftovers = {p.name for p in tmp_path.iterdir()} - {"data", link.name}
    assert leftovers == set(), "side files (lock, journal, claims) belong beside the target"


def _hold_lock(link: str, held: Event, release: Event) -> None:
    with stet.backends.open_store(link)._locked():  # type: ignore[attr-defined]
        held.set()
        release.wait()


def test_writers_through_a_link_and_through_the_real_name_take_one_lock(
    tmp_path: Path, ext: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real, link = _linked(tmp_path, ext)
    held, release = FORK.Event(), FORK.Event()
    child = FORK.Process(target=_hold_lock, args=(str(link), held, release))
    child.start()
    try:
        assert held.wait(60)
        monkeypatch.setenv("STET_LOCK_TIMEOUT", "0.2")
        # The child holds the lock through the link for as long as this
        # takes, so the write through the real name must wait and give up.
        with pytest.raises(stet.StoreError, match="could not take the lock"):
            _fresh(real).record({"x": 1}, function="f")
    finally:
        release.set()
        child.join(60)
    assert child.exitcode == 0
    _fresh(real).record({"x": 1}, function="f")


def _write_many(path: str, start: int, count: int) -> None:
    store = _fresh(path)
    for i in range(start, start + count):
        store.record({"x": i}, function="f")
        if i % 10 == 0:  # a new column each time: the CSV store rewrites itself
            store.record({f"c{i}": i}, function=f"g{i}")
        if i % 15 == 0:
            store.flush()  # a Parquet fold rewrites the file


def test_two_processes_writing_through_a_link_and_the_real_name_lose_nothing(
    tmp_path: Path, ext: str
) -> None:
    real, link = _linked(tmp_path, ext)
    count = 120
    writers = [
        FORK.Process(target=_write_many, args=(str(name), start, count))
        for name, start in ((link, 1000), (real, 2000))
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(300)
        assert writer.exitcode == 0
    assert link.is_symlink()
    store = _fresh(real)
    store.flush()
    recorded = {r["x"] for r in store.load() if "x" in r}
    assert recorded == {0, *range(1000, 1000 + count), *range(2000, 2000 + count)}
    print(f"\n  {ext}: {2 * count} records through a link and the real name, all kept")


def test_a_link_to_nothing_is_an_error_never_a_new_store(tmp_path: Path, ext: str) -> None:
    missing = tmp_path / "unmounted" / f"runs.{ext}"
    link = tmp_path / f"runs.{ext}"
    link.symlink_to(missing)
    runs: list[int] = []

    @stet.once(store=str(link))
    def run(x: int) -> None:
        runs.append(x)

    with pytest.raises(stet.StoreError) as info:
        run(1)
    assert runs == []
    message = str(info.value)
    assert str(link) in message
    assert str(missing) in message
    assert "does not exist" in message
    assert not missing.parent.exists()
    assert link.is_symlink()


def test_a_folder_reached_through_a_link_to_nothing_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "results").symlink_to(tmp_path / "gone")
    with pytest.raises(stet.StoreError, match=r"results to .*gone, which does not exist"):
        get_backend(tmp_path / "results" / "runs.csv")
    assert not (tmp_path / "gone").exists()


def test_a_symlink_loop_is_a_store_error_naming_the_path(tmp_path: Path, ext: str) -> None:
    a, b = tmp_path / f"a.{ext}", tmp_path / f"b.{ext}"
    a.symlink_to(b)
    b.symlink_to(a)
    with pytest.raises(stet.StoreError, match="loop of symbolic links") as info:
        get_backend(a)
    assert info.value.path == str(a)


# -- things that are not files -----------------------------------------------


def test_a_directory_given_as_the_store_is_a_store_error(tmp_path: Path, ext: str) -> None:
    path = tmp_path / f"runs.{ext}"
    path.mkdir()
    with pytest.raises(stet.StoreError, match="is a directory, not a regular file") as info:
        get_backend(path).has({"x": 1})
    assert info.value.path == str(path)


_FIFO_SCRIPT = textwrap.dedent(
    """
    import os, sys
    import stet
    from stet.backends import StoreBackend, new_store

    ext, where = sys.argv[1], sys.argv[2]
    path = os.path.abspath("runs." + ext)
    if where == "store":
        os.mkfifo(path)
        store = StoreBackend(new_store(path))  # refused when opened
    else:
        store = StoreBackend(new_store(path))
        store.record({"x": 1})
        side = {"swapped": path, "claims": path + ".claims.json",
                "journal": path + ".journal.csv"}[where]
        if os.path.exists(side):
            os.unlink(side)
        os.mkfifo(side)
    if where == "claims":
        store.store.claims()
    else:
        store.has({"x": 2})
        store.record({"x": 2})
    print("no error")
    """
)


#: Where a FIFO is put, per store: the store file (before or after it was
#: opened) and its side files.
_FIFO_CASES = [
    *((ext, where) for ext in STORE_EXTENSIONS for where in ("store", "swapped")),
    *((ext, "claims") for ext in ("csv", "json", "parquet")),
    ("parquet", "journal"),
]


@pytest.mark.parametrize(("ext", "where"), _FIFO_CASES, ids=[f"{e}-{w}" for e, w in _FIFO_CASES])
def test_a_fifo_in_place_of_a_store_file_is_refused_and_never_blocks(
    tmp_path: Path, ext: str, where: str
) -> None:
    # In a child process: a blocking open of a FIFO would hang this test run.
    result = subprocess.run(
        [sys.executable, "-c", _FIFO_SCRIPT, ext, where],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0, result.stdout
    assert "StoreError" in result.stderr
    assert "named pipe (FIFO)" in result.stderr or "not a regular file" in result.stderr


# -- files moved while in use --------------------------------------------------


def test_a_store_moved_away_while_open_is_kept_whole_and_a_new_one_starts(
    tmp_path: Path, ext: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / f"runs.{ext}"
    store = get_backend(path)
    store.record({"x": 1}, function="f")
    moved = tmp_path / "archive" / f"old.{ext}"
    moved.parent.mkdir()
    path.rename(moved)
    # The path names the store: a file moved away takes its records with it.
    assert not store.has({"x": 1}, function="f")
    with caplog.at_level(logging.WARNING, logger="stet"):
        store.record({"x": 2}, function="f")
    copy = tmp_path / "copy" / moved.name
    copy.parent.mkdir()
    shutil.copyfile(moved, copy)  # the moved file alone, without side files
    assert _fresh(copy).has({"x": 1}, function="f")
    assert not _fresh(copy).has({"x": 2}, function="f")
    assert _fresh(path).has({"x": 2}, function="f")
    assert not _fresh(path).has({"x": 1}, function="f")


# -- SQLite: orphaned journals, empty files ------------------------------------


def _record_and_die(path: str, keys: int) -> None:
    store = SqliteBackend(path)
    for x in range(keys):
        store.record({"x": x}, function="f")
    os._exit(0)  # like SIGKILL: no connection is closed, the log is not checkpointed


def _table_less_copy(source: Path, target: Path, *, drop: bool) -> None:
    """Put at ``target`` a database with no tables, made away from any log."""
    made = target.with_name("made-elsewhere.sqlite")
    if drop:  # the old store's own pages, its tables dropped: every page the log names exists
        shutil.copyfile(source, made)
    conn = sqlite3.connect(made)
    if drop:
        tables = conn.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
        for (table,) in tables:
            conn.execute(f"DROP TABLE {table}")
    else:
        conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    made.rename(target)


@pytest.mark.parametrize(
    "fate", ["moved", "deleted", "emptied", "replaced-by-table-less", "replaced-by-tables-dropped"]
)
def test_a_new_sqlite_store_never_replays_another_databases_log(
    tmp_path: Path, fate: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "runs.sqlite"
    child = FORK.Process(target=_record_and_die, args=(str(path), 50))
    child.start()
    child.join(120)
    assert child.exitcode == 0
    wal = Path(f"{path}-wal")
    assert wal.stat().st_size > 0, "the records are in the write-ahead log"
    old = tmp_path / "old.sqlite"
    shutil.copyfile(path, old)
    if fate == "moved":
        path.rename(tmp_path / "elsewhere.sqlite")
    elif fate == "deleted":
        path.unlink()
    elif fate == "emptied":
        path.write_bytes(b"")
    else:
        path.rename(tmp_path / "elsewhere.sqlite")
        _table_less_copy(old, path, drop=fate.endswith("dropped"))
        assert wal.exists()
    # A reader (no lock) sees an empty store and moves nothing.
    assert _fresh(path).load() == []
    assert wal.exists()

    runs: list[int] = []

    @stet.once(store=str(path), quiet=True)
    def run(x: int) -> None:
        runs.append(x)

    with caplog.at_level(logging.WARNING, logger="stet"):
        for x in range(50):
            run(x)
    assert runs == list(range(50)), "never-run keys were skipped"
    backups = sorted(p.name for p in tmp_path.glob("runs.sqlite-*.orphaned-*"))
    assert [b.split(".orphaned-")[0] for b in backups] == ["runs.sqlite-shm", "runs.sqlite-wal"]
    (warning,) = [r.getMessage() for r in caplog.records if "orphaned" in r.getMessage()]
    assert str(wal) in warning
    assert all(b in warning for b in backups)
    # Nothing was deleted: the old database and its renamed log hold every record.
    restored = tmp_path / "restored"
    restored.mkdir()
    shutil.copyfile(old, restored / "runs.sqlite")
    for backup in backups:
        suffix = backup.split(".orphaned-")[0].removeprefix("runs.sqlite")
        shutil.copyfile(tmp_path / backup, restored / f"runs.sqlite{suffix}")
    recovered = SqliteBackend(restored / "runs.sqlite")
    assert all(recovered.has({"x": x}, function="f") for x in range(50))


def test_a_sqlite_file_of_zero_bytes_is_an_empty_store(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    sqlite3.connect(path).close()  # leaves a file of 0 bytes
    assert path.stat().st_size == 0
    store = get_backend(path)
    assert not store.has({"x": 1})
    assert store.load() == []
    assert store.record({"x": 1}, function="f")
    assert _fresh(path).has({"x": 1}, function="f")


@pytest.mark.parametrize("mode", ["delete", "wal"])
def test_a_sqlite_database_without_tables_is_an_empty_store_made_in_place(
    tmp_path: Path, mode: str
) -> None:
    path = tmp_path / "runs.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA journal_mode={mode}")
        conn.execute("PRAGMA user_version = 7")
    conn.close()
    inode = path.stat().st_ino
    store = get_backend(path)
    assert not store.has({"x": 1})
    assert stet.backends.claims_in(store.store) == {}
    assert store.record({"x": 1}, function="f")
    assert _fresh(path).has({"x": 1}, function="f")
    assert path.stat().st_ino == inode
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (7,)
    conn.close()


def _in_log_and_die(path: str, statements: list[str]) -> None:
    """Run statements in a WAL-mode database and die before any checkpoint."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    for statement in statements:
        conn.execute(statement)
    os._exit(0)  # like SIGKILL: the connection is never closed


def _tables_in_file(path: Path) -> list[str]:
    """The tables of the database file alone, its log not applied."""
    with sqlite3.connect(f"file:{path}?immutable=1", uri=True) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master")]
    conn.close()
    return tables


def _wal_mode_table_less(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA user_version = 7")
    conn.close()


def test_records_in_the_log_of_a_store_made_in_a_table_less_wal_database_survive_a_kill(
    tmp_path: Path,
) -> None:
    """The store's own log is never set aside, even right after the first record."""
    path = tmp_path / "runs.sqlite"
    _wal_mode_table_less(path)
    for keys in (1, 20):  # killed after the first record, then after more
        child = FORK.Process(target=_record_and_die, args=(str(path), keys))
        child.start()
        child.join(120)
        assert child.exitcode == 0
        assert Path(f"{path}-wal").stat().st_size > 0, "the records are in the log"
        assert "stet_records" in _tables_in_file(path), "the table was made in the file itself"
        store = _fresh(path)
        assert all(store.has({"x": x}, function="f") for x in range(keys))
        assert store.record({"x": -keys}, function="f")
    assert not list(tmp_path.glob("*.orphaned-*"))


def test_a_store_whose_table_was_made_only_in_its_log_keeps_its_records(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A store some earlier release made in a WAL-mode file, killed before any checkpoint."""
    path = tmp_path / "runs.sqlite"
    _wal_mode_table_less(path)
    statements = [
        "CREATE TABLE stet_records (x TEXT, _stet_timestamp TEXT)",
        "INSERT INTO stet_records VALUES ('1', '2024-01-01T00:00:00+00:00')",
    ]
    child = FORK.Process(target=_in_log_and_die, args=(str(path), statements))
    child.start()
    child.join(120)
    assert child.exitcode == 0
    assert _tables_in_file(path) == [], "the table is only in the log"
    with caplog.at_level(logging.WARNING, logger="stet"):
        assert _fresh(path).has({"x": 1})
        assert _fresh(path).record({"x": 2})
        assert _fresh(path).has({"x": 1})
    assert not list(tmp_path.glob("*.orphaned-*"))
    assert not caplog.records


@pytest.mark.parametrize("where", ["file", "log"])
def test_the_log_of_someone_elses_database_is_never_moved(tmp_path: Path, where: str) -> None:
    path = tmp_path / "runs.sqlite"
    if where == "log":
        _wal_mode_table_less(path)
    else:
        with sqlite3.connect(path) as conn:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("CREATE TABLE theirs (a)")
        conn.close()
    statements = ["CREATE TABLE IF NOT EXISTS theirs (a)", "INSERT INTO theirs VALUES (1)"]
    child = FORK.Process(target=_in_log_and_die, args=(str(path), statements))
    child.start()
    child.join(120)
    assert child.exitcode == 0
    with pytest.raises(stet.StoreError, match=r"no stet_records table \(tables: \['theirs'\]\)"):
        get_backend(path).record({"x": 1})
    assert not list(tmp_path.glob("*.orphaned-*"))
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT a FROM theirs").fetchall() == [(1,)]
    conn.close()


def test_a_sqlite_database_with_only_someone_elses_view_is_still_foreign(
    tmp_path: Path,
) -> None:
    path = tmp_path / "runs.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE VIEW answer AS SELECT 42")
    conn.close()
    with pytest.raises(stet.StoreError, match="no stet_records table"):
        get_backend(path).record({"x": 1})


# -- values in files and settings ----------------------------------------------


def test_a_parquet_footer_mark_that_is_not_utf8_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "runs.parquet"
    table = pa.table({"x": ["1"], "_stet_timestamp": ["t"]})
    pq.write_table(table.replace_schema_metadata({b"stet.folded_journal": b"\xff\xfe"}), path)
    with pytest.raises(stet.StoreError, match="not text") as info:
        get_backend(path).has({"x": 1})
    assert info.value.path == str(path)


def test_parquet_footer_metadata_of_other_tools_may_be_any_bytes(tmp_path: Path) -> None:
    path = tmp_path / "runs.parquet"
    table = pa.table({"x": ["1"], "_stet_timestamp": ["t"]})
    pq.write_table(table.replace_schema_metadata({b"their.tool": b"\xff\xfe"}), path)
    assert get_backend(path).has({"x": 1})


@pytest.mark.parametrize("lease", [float("inf"), float("nan"), 1e300, 10**400, 0, -1.0])
def test_a_lease_that_is_not_a_finite_positive_time_is_refused(lease: float) -> None:
    with pytest.raises(ValueError, match="lease must be a finite, positive") as info:
        stet.Once(store="runs.csv", claim=True, lease=lease)
    assert repr(lease)[:20] in str(info.value)


def test_a_lease_of_inf_in_a_settings_file_is_refused() -> None:
    with pytest.raises(ValueError, match="lease") as info:
        stet.Once.from_dict({"store": "runs.csv", "claim": True, "lease": float("inf")})
    assert "inf" in str(info.value)


@pytest.mark.parametrize("closed_by", ["the next read", "a fork"])
@pytest.mark.parametrize("fate", ["deleted", "moved"])
def test_a_stale_sqlite_connection_leaves_a_new_stores_log_alone(
    tmp_path: Path, fate: str, closed_by: str
) -> None:
    """A process still connected to a store removed by hand never harms the store made after it.

    SQLite names a database's write-ahead log after its path, and the last
    connection to close deletes the log of that name. The stale connection
    is closed when its process next reads the store (or forks); by then the
    log at the path is the new store's, holding records not yet copied into
    its file. SQLite itself skips the checkpoint and the delete when the
    connection's file has moved or been deleted; this keeps that so.
    """
    path = tmp_path / "runs.sqlite"
    stale = new_store(path)
    stale.add("run", ("x",), [("1",)])
    stale.refresh()  # holds a connection to the first database
    for suffix in ("", "-wal", "-shm"):
        side = Path(f"{path}{suffix}")
        if fate == "deleted":
            side.unlink()
        else:
            side.rename(tmp_path / f"elsewhere.sqlite{suffix}")
    writer = new_store(path)  # another process makes a new store and records a run
    writer.add("run", ("x",), [("2",)])
    assert Path(f"{path}-wal").stat().st_size > 0, "the new record is in the new log"
    if closed_by == "a fork":  # before a fork every store closes its connection
        child = FORK.Process(target=_nothing)
        child.start()
        child.join(120)
        assert child.exitcode == 0
    stale.refresh()
    assert stale.knows("run", ("x",), "2")
    assert not stale.knows("run", ("x",), "1")
    assert new_store(path).is_done("run", ("x",), "2"), "the new store's record is still there"


def _nothing() -> None:
    pass

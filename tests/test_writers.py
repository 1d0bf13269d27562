"""Writers hold a file store's lock for the write alone, and lose nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stet import StoreError
from stet.backends import get_backend


def _counting(monkeypatch: pytest.MonkeyPatch, name: str) -> list[Any]:
    calls: list[Any] = []
    real = getattr(os, name)

    def counted(*args: Any) -> Any:
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(os, name, counted)
    return calls


def test_a_json_append_writes_over_its_own_closing_bracket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer appending to a JSON store it wrote last neither reads nor cuts
    the closing bracket under the lock: its longer write covers it."""
    path = tmp_path / "runs.json"
    backend = get_backend(path)
    backend.record({"x": 0})
    truncated = _counting(monkeypatch, "ftruncate")
    read = _counting(monkeypatch, "read")
    for x in range(1, 5):
        backend.record({"x": x})
    assert truncated == []
    assert read == []
    assert [r["x"] for r in json.loads(path.read_text())] == ["0", "1", "2", "3", "4"]


_SPACE = st.text(alphabet=" \n\t\r", max_size=4)


@settings(max_examples=40, deadline=None)
@given(before=_SPACE, after=_SPACE, same_size=st.booleans())
def test_a_json_store_whose_end_was_edited_by_hand_stays_valid(
    tmp_path_factory: pytest.TempPathFactory, before: str, after: str, same_size: bool
) -> None:
    """Whatever whitespace a hand edit leaves around the closing bracket (of
    the same length as stet's or not), the next appends keep every record
    and the file one JSON array."""
    path = tmp_path_factory.mktemp("edited") / "runs.json"
    writer = get_backend(path)
    writer.record({"x": 0})
    writer.record({"x": 1})
    whole = path.read_bytes()
    assert whole.endswith(b"\n]\n")
    end = ("]" + after + "  ")[:3] if same_size else before + "]" + after
    path.write_bytes(whole[:-3] + end.encode())
    writer.record({"x": 2})
    get_backend(path).record({"x": 3})
    writer.record({"x": 4})
    assert [r["x"] for r in json.loads(path.read_text())] == ["0", "1", "2", "3", "4"]


@pytest.mark.parametrize("ext", ["csv", "json", "sqlite", "parquet"])
@settings(max_examples=25, deadline=None)
@given(steps=st.lists(st.tuples(st.integers(0, 1), st.integers(0, 5)), min_size=1, max_size=14))
def test_interleaved_writers_record_each_key_once(
    tmp_path_factory: pytest.TempPathFactory, ext: str, steps: list[tuple[int, int]]
) -> None:
    """Two store objects of one file (two writers) recording keys in any
    interleaving: each writer looks at the file before it writes (one stat,
    or SQLite's change counter), so a key one wrote is never written again
    by the other, and no key is lost."""
    path = tmp_path_factory.mktemp("interleaved") / f"runs.{ext}"
    cls = type(get_backend(path))
    writers = [cls(path), cls(path)]
    first: dict[int, int] = {}
    for who, x in steps:
        added = writers[who].record({"x": x})
        assert added == (x not in first)
        first.setdefault(x, who)
    written = [r["x"] for r in cls(path).load()]
    assert sorted(written) == sorted(first)  # type: ignore[type-var]


@pytest.mark.parametrize("ext", ["csv", "json"])
def test_a_store_rewritten_in_place_by_hand_is_read_afresh(tmp_path: Path, ext: str) -> None:
    """A writer reads what others appended through the descriptor it keeps;
    a file rewritten in place (same inode, other bytes before the writer's
    place, even a longer file) is read from the start instead."""
    path = tmp_path / f"runs.{ext}"
    cls = type(get_backend(path))
    writer, other = cls(path), cls(path)
    for x in range(3):
        writer.record({"x": x, "s": "a"})
    size = path.stat().st_size
    other.record({"x": 9, "s": "b"})  # the writer reads this through its descriptor
    assert writer.has({"x": 9, "s": "b"})
    old, new = (b'"a"', b'"AAA"') if ext == "json" else (b"\na,", b"\nAAA,")
    edited = path.read_bytes().replace(old, new)
    assert len(edited) > size
    with open(path, "r+b") as f:  # the same file, rewritten
        f.write(edited)
    writer.record({"x": 4, "s": "b"})
    got = sorted((r["x"], r["s"]) for r in cls(path).load())
    assert got == [(0, "AAA"), (1, "AAA"), (2, "AAA"), (4, "b"), (9, "b")]


def _looks_at(monkeypatch: pytest.MonkeyPatch, name: str, path: Path) -> list[Any]:
    """The calls of ``os.<name>`` (stat, fstat) from now on: all of fstat's, stat's of ``path``."""
    calls: list[Any] = []
    real = getattr(os, name)
    target = os.path.realpath(path)

    def counted(*args: Any, **kwargs: Any) -> Any:
        if name == "fstat" or str(args[0]) == target:
            calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(os, name, counted)
    return calls


@pytest.mark.parametrize(
    ("ext", "call"), [("csv", "fstat"), ("json", "fstat"), ("parquet", "fstat"), ("sqlite", "stat")]
)
def test_a_record_looks_at_the_store_once_under_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ext: str, call: str
) -> None:
    """Once the look under the lock found the store as this writer left it, the append
    does not look again (CSV, JSON, Parquet's journal: one ``fstat`` a record, for the
    state after the write; SQLite: one ``stat`` of the database a record)."""
    path = tmp_path / f"runs.{ext}"
    backend = get_backend(path)
    backend.record({"x": 0})
    looks = _looks_at(monkeypatch, call, path)
    for x in range(1, 11):
        backend.record({"x": x})
    assert len(looks) <= 12  # was two a record
    assert sorted(int(r["x"]) for r in get_backend(path).store.records()) == list(range(11))


def test_sqlite_checkpoints_its_log_before_taking_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer copies the write-ahead log into the database every few hundred records
    itself, ahead of the store's lock, so SQLite's checkpoint at a commit (an fsync
    under the lock) does not come; every record is kept."""
    import sqlite3

    from stet.backends import _sqlite

    monkeypatch.setattr(_sqlite, "_CHECKPOINT_COMMITS", 5)
    path = tmp_path / "runs.sqlite"
    store = get_backend(path).store
    checkpoint = _sqlite._SqliteFormat._checkpoint
    locked: list[int] = []

    def watched(self: Any) -> None:
        locked.append(store._lock._depth)  # type: ignore[attr-defined]
        checkpoint(self)

    monkeypatch.setattr(_sqlite._SqliteFormat, "_checkpoint", watched)
    for x in range(40):
        store.add("f", ("x",), [(str(x),)])
    assert locked
    assert set(locked) == {0}
    with sqlite3.connect(path) as db:
        _, frames, _ = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    assert frames < 20  # the log restarted after a checkpoint, not 40 commits long
    assert len(get_backend(path).store.records()) == 40


@pytest.mark.parametrize("ext", ["csv", "json"])
def test_a_file_moved_over_the_store_as_a_writer_opens_it_is_not_written_into(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ext: str
) -> None:
    """A backup moved over the store by hand between the look under the lock and the
    append (here as a forked writer opens its own descriptor) was written into at the
    old end, over the backup's own records."""
    from stet.backends import _appended, _files

    path, backup = tmp_path / f"runs.{ext}", tmp_path / f"backup.{ext}"
    get_backend(backup).record({"x": 0})
    store = get_backend(path).store
    store.add("", ("x",), [("0",)])
    get_backend(backup).store.add("", ("x",), [(str(x),) for x in range(1, 30)])
    kept = sorted(r["x"] for r in get_backend(backup).store.records())
    store._format.after_fork()  # type: ignore[attr-defined]  # a child opens its own descriptor
    real = _files.open_regular

    def moved_in_first(*args: Any) -> Any:
        os.replace(backup, path)  # the user's mv, just then
        return real(*args)

    monkeypatch.setattr(_appended, "open_regular", moved_in_first)
    with pytest.raises(StoreError, match="replaced by another file"):
        store.add("", ("x",), [("100",)])
    monkeypatch.undo()
    assert sorted(r["x"] for r in get_backend(path).store.records()) == kept
    assert store.add("", ("x",), [("100",)]) == 1  # not taken for recorded; now written
    assert sorted(r["x"] for r in get_backend(path).store.records()) == sorted([*kept, "100"])

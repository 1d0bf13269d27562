"""``stet reset --where`` and ``stet.reset(key_dict=...)`` remove records column by column.

They used to ask `Store.delete` of each record (a dict per record, then a
rewrite from the dicts); the built-in stores now pick the records from the
whole store's columns and remove them in one pass (`delete_rows`). These
properties check, on arbitrary stores of every kind (several functions,
stet 0.0.x and key-rules-1 records, a shared directory with the same run in
two writers' files), that both ways leave the same store: the same records,
the same bytes, the same answers from the process's index.
"""

from __future__ import annotations

import contextlib
import csv
import io
import multiprocessing
import os
import shutil
import signal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import stet
import stet.testing
from stet import _cli, _cli_commands
from stet._inspect import matching_rows
from stet.backends import _csv, _json, _sqlite, _table_text, get_backend, open_store
from stet.backends._csv import format_rows, header_for
from stet.backends._file_store import FileStore
from stet.backends._index import pack
from stet.backends._registry import new_store
from stet.backends._schema import identity
from stet.backends._table import delete_selected, whole_store
from stet.backends._table_text import _CSV_SPECIAL, _JSON_SPECIAL
from stet.exceptions import StetError
from tests.conftest import new_pg_store
from tests.raw_rows import append_as_written
from tests.test_inspect import CANONICAL, records

KINDS = ["csv", "json", "sqlite", "parquet", "stetdir"]
SETTINGS = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
WHERE_TEXTS = [*CANONICAL[:6], "007", "1.50", "x y", "a,b", 'q"t', "l\nf"]


def _write(root: Path | str, kind: str, files: list[list[dict[str, str]]]) -> str:
    """A store of these records (for a shared directory, one settled file per list).

    For PostgreSQL, ``root`` is the server's URL of a new table.
    """
    store = str(root) if kind == "postgresql" else str(Path(root) / f"s.{kind}")
    if kind == "stetdir":
        os.makedirs(os.path.join(store, "records"))
        for number, rows in enumerate(files):
            header = header_for(rows, ())
            data = ",".join(header).encode() + b"\n" + format_rows(rows, header)
            Path(store, "records", f"compacted-{number}.csv").write_bytes(data)
    else:
        append_as_written(store, [r for rows in files for r in rows])
    return store


def _contents(store: str) -> Any:
    """What a store holds on disk, as a reader and as bytes where the bytes are the contract."""
    try:
        records: Any = open_store(store).records() if os.path.lexists(store) else None
        if store.startswith("postgresql://") or store.endswith(".sqlite"):
            # A table has no order (SQLite's rewrite inserts records by their
            # columns; a delete by row id keeps the rest where they were).
            records = sorted(map(sorted, map(dict.items, open_store(store).records())))
    except StetError as exc:
        records = str(exc).replace(store, "STORE")
    if os.path.isdir(store):
        # Its files are read by column name (records/*.csv as one table): the
        # rows of each file are compared, not the order of its columns.
        folder = Path(store, "records")
        files = [list(csv.DictReader(io.StringIO(p.read_text()))) for p in folder.iterdir()]
        return records, sorted(str([sorted(row.items()) for row in rows]) for rows in files)
    if store.endswith((".csv", ".json")) and os.path.exists(store):
        return records, Path(store).read_bytes()
    return records, None


def _copies(
    tmp_path: Path, kind: str, files: list[list[dict[str, str]]], server: Any = None
) -> tuple[str, str]:
    if server is not None:
        return _write(new_pg_store(server), kind, files), _write(new_pg_store(server), kind, files)
    for path in tmp_path.iterdir():
        (shutil.rmtree if path.is_dir() else os.unlink)(path)
    (tmp_path / "ref").mkdir()
    (tmp_path / "new").mkdir()
    return _write(tmp_path / "ref", kind, files), _write(tmp_path / "new", kind, files)


def _record_by_record(store: Any, select: Any, doomed: Any, whole: Any = None) -> int:
    return int(store.delete(doomed))


@pytest.fixture(params=[False, True], ids=["small", "bulk"])
def bulk(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Bulk: the stores read even a few records as columns, as they read a big store."""
    if request.param:
        monkeypatch.setattr(_csv, "_BULK_BYTES", 0)
        monkeypatch.setattr(_json, "_BULK_BYTES", 0)
        monkeypatch.setattr(_sqlite, "_BULK_ROWS", 1)
    return bool(request.param)


def _files() -> Any:
    return st.lists(st.lists(records(), min_size=1, max_size=8), min_size=1, max_size=3)


@pytest.mark.parametrize("kind", KINDS)
@SETTINGS
@given(
    files=_files(),
    function=st.sampled_from([None, "", "f"]),
    stale=st.booleans(),
    where=st.dictionaries(st.sampled_from(["a", "b"]), st.sampled_from(WHERE_TEXTS), max_size=2),
)
def test_reset_where_leaves_the_store_the_record_by_record_path_leaves(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    bulk: bool,
    kind: str,
    files: list[list[dict[str, str]]],
    function: str | None,
    stale: bool,
    where: dict[str, str],
) -> None:
    ref, new = _copies(tmp_path, kind, files)
    argv = [*(f"--where={k}={v}" for k, v in where.items()), "--yes"]
    argv += ["--function", function] if function is not None else []
    argv += ["--stale-code"] if stale else []
    if not where and function is None and not stale:
        argv += ["--function", "f"]  # not the whole store: that is clear(), not a selection
    outcomes = []
    for store, deleting in ((ref, _record_by_record), (new, delete_selected)):
        monkeypatch.setattr(_cli_commands, "delete_selected", deleting)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = _cli.main(["reset", store, *argv])
        shown = (out.getvalue() + err.getvalue()).replace(store, "STORE")
        outcomes.append((code, shown, _contents(store)))
    assert outcomes[1] == outcomes[0]


class _RecordByRecord:
    """A store that removes records only through `Store.delete` (the reference path)."""

    delete_rows = None

    def __init__(self, store: Any) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


@pytest.mark.parametrize("kind", [*KINDS, "postgresql"])
@SETTINGS
@given(
    files=_files(),
    function=st.sampled_from([None, "", "f"]),
    key=st.dictionaries(
        st.sampled_from(["a", "b"]),
        st.sampled_from([0, 1, 0.5, 1e-05, "adam", "007", None, True, "1.50", "3"]),
        max_size=2,
    ),
)
def test_reset_of_a_key_removes_what_the_record_by_record_path_removes(
    tmp_path: Path,
    bulk: bool,
    kind: str,
    files: list[list[dict[str, str]]],
    function: str | None,
    key: dict[str, object],
    request: pytest.FixtureRequest,
) -> None:
    server = request.getfixturevalue("pg_server") if kind == "postgresql" else None
    ref, new = _copies(tmp_path, kind, files, server)
    outcomes = []
    for store, reference in ((ref, True), (new, False)):
        backend = get_backend(store)
        opened = backend.store
        watcher = new_store(store)  # another process's view, read before the reset
        with contextlib.suppress(StetError):
            watcher.refresh()
        if reference:
            backend.store = _RecordByRecord(opened)
        try:
            removed: Any = backend.remove_matching(key, function, "stet.reset({key})")
        except (StetError, ValueError, TypeError) as exc:
            removed = (type(exc).__name__, str(exc).replace(store, "STORE"))
        knows = []
        for record in [r for rows in files for r in rows]:
            try:
                fn, cols, values = identity(record, store)
            except StetError:
                continue
            with contextlib.suppress(StetError):
                watcher.refresh()
            knows.append(
                (opened.knows(fn, cols, pack(values)), watcher.knows(fn, cols, pack(values)))
            )
        outcomes.append((removed, knows, _contents(store)))
    assert outcomes[1] == outcomes[0]


def test_reset_where_of_a_big_csv_store_rewrites_it_as_record_by_record(tmp_path: Path) -> None:
    """A store past the size read as columns, cells that need quotes among them."""

    @stet.once(store=str(tmp_path / "big.csv"), quiet=True)
    def work(alpha: str, seed: int) -> None:
        pass

    rows = [{"alpha": a, "seed": s} for a in ("x", "a,b", 'q"t', "l\nf") for s in range(6_000)]
    stet.mark_done(work, rows)
    ref = str(tmp_path / "ref.csv")
    shutil.copyfile(tmp_path / "big.csv", ref)
    backend = get_backend(ref)
    backend.store = _RecordByRecord(backend.store)
    assert backend.remove_matching({"alpha": "a,b"}, None, "stet.reset({key})") == 6_000
    assert get_backend(tmp_path / "big.csv").remove({"alpha": "a,b"}) == 6_000
    assert _contents(str(tmp_path / "big.csv")) == _contents(ref)
    assert stet.read(tmp_path / "big.csv")["alpha"].value_counts().to_dict() == {
        "x": 6_000,
        'q"t': 6_000,
        "l\nf": 6_000,
    }


def test_a_store_with_delete_rows_is_asked_for_columns_not_records(tmp_path: Path) -> None:
    """The built-in stores take the column-wise path (else the speed-up is gone unnoticed)."""
    for kind in KINDS:
        store = _write(tmp_path / kind, kind, [[{"a": "1", "_stet_timestamp": "t"}]])
        opened = open_store(store)
        assert callable(getattr(opened, "delete_rows", None)), kind

        def refuse(doomed: Any, kind: str = kind) -> int:
            raise AssertionError(f"{kind}: record by record")

        opened.delete = refuse  # type: ignore[method-assign]
        assert delete_selected(opened, lambda whole: [True], lambda record: True) == 1


def _reset_killed(store: str, when: str) -> None:
    """``stet reset --where alpha=x``, killed by SIGKILL as it replaces the store's file."""
    replace, rename = os.replace, os.rename

    def dying(real: Any) -> Any:
        def move(source: str, target: str) -> None:
            if when == "after":
                real(source, target)
            os.kill(os.getpid(), signal.SIGKILL)

        return move

    os.replace, os.rename = dying(replace), dying(rename)  # this child only
    _cli.main(["reset", store, "--where", "alpha=x", "--yes"])


@pytest.mark.parametrize("kind", ["csv", "json", "parquet", "stetdir"])
@pytest.mark.parametrize("when", ["before", "after"])
def test_a_reset_where_killed_midway_removed_all_or_nothing_and_kept_the_failures(
    tmp_path: Path, bulk: bool, kind: str, when: str
) -> None:
    store = str(tmp_path / f"s.{kind}")

    @stet.once(store=store, quiet=True)
    def work(alpha: str, seed: int) -> None:
        if seed < 0:
            raise ValueError("a failed run")

    stet.mark_done(work, [{"alpha": a, "seed": s} for a in ("x", "y") for s in range(500)])
    with pytest.raises(ValueError, match="a failed run"):
        work("x", -1)
    stet.testing.fresh_process()  # the shared directory's writer seals its file
    failed = stet.failures(store)
    child = multiprocessing.get_context("fork").Process(target=_reset_killed, args=(store, when))
    child.start()
    child.join()
    assert child.exitcode == -signal.SIGKILL
    left = stet.read(store)["alpha"].value_counts().to_dict()
    # A shared directory's reset takes effect when the folded files go, after
    # the new file is in place: killed between the two, it did not happen.
    took_effect = when == "after" and kind != "stetdir"
    assert left == ({"y": 500} if took_effect else {"x": 500, "y": 500})
    assert stet.failures(store).equals(failed)


def _reset_a1(opened: Any, whole: Any) -> int:
    """``reset --where a=1`` of an opened store, given its read from before the lock."""
    return delete_selected(
        opened,
        lambda now: matching_rows(now, None, {"a": "1"}, None),
        lambda record: record.get("a") == "1",
        whole=whole,
    )


@pytest.mark.parametrize("kind", ["csv", "json", "parquet"])
@pytest.mark.parametrize("change", ["append", "replace"])
def test_reset_where_judges_a_store_changed_after_its_first_read_as_it_is_then(
    tmp_path: Path, bulk: bool, kind: str, change: str
) -> None:
    """A record added, or the file replaced, between the count and the lock is
    judged too: the first read is used again only for a store still as it saw it."""
    f = {"_stet_function": "f", "_stet_timestamp": "2026-01-01T00:00:00+00:00"}
    store = _write(tmp_path, kind, [[{"a": "1", **f}, {"a": "2", **f}]])
    opened = open_store(store)
    whole = whole_store(opened)
    if change == "append":
        append_as_written(store, [{"a": "1", **f, "_stet_function": "g"}, {"a": "3", **f}])
    else:  # another file moved in by hand: the same size, another inode
        other = _write(tmp_path / "other", kind, [[{"a": "1", **f}, {"a": "3", **f}]])
        os.replace(other, store)
    assert _reset_a1(opened, whole) == (2 if change == "append" else 1)
    assert sorted(r["a"] for r in open_store(store).records()) == (
        ["2", "3"] if change == "append" else ["3"]
    )
    opened.refresh()
    assert opened.knows("f", ("a",), pack(("3",)))
    assert not opened.knows("f", ("a",), pack(("1",)))


@pytest.mark.parametrize("kind", ["csv", "json", "parquet"])
def test_reset_where_reads_an_unchanged_store_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bulk: bool, kind: str
) -> None:
    """The read that counted the records is the one the removal works from
    (a store of a million records is not read twice); the index follows it."""
    f = {"_stet_function": "f", "_stet_timestamp": "2026-01-01T00:00:00+00:00"}
    store = _write(tmp_path, kind, [[{"a": "1", **f}, {"a": "2", **f}]])
    opened = open_store(store)
    whole = whole_store(opened)
    assert isinstance(opened, FileStore)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the store was read again")

    monkeypatch.setattr(opened._format, "scan", refuse)
    assert _reset_a1(opened, whole) == 1
    monkeypatch.undo()
    assert [r["a"] for r in open_store(store).records()] == ["2"]
    assert opened.knows("f", ("a",), pack(("2",)))
    assert not opened.knows("f", ("a",), pack(("1",)))


@given(cells=st.lists(st.text(), max_size=12), cut=st.integers(0, 4), large=st.booleans())
def test_a_rewrite_joins_in_arrow_exactly_the_cells_that_need_no_quoting(
    cells: list[str], cut: int, large: bool
) -> None:
    """The byte lookup that says a column's cells need no quotes or escapes
    agrees with the regular expression it replaced, on sliced columns too."""
    whole = pa.array(cells, pa.large_string() if large else pa.string())
    column = pa.chunked_array([whole.slice(min(cut, len(cells)))], whole.type)
    for special, form in ((_CSV_SPECIAL, r'[,"[:cntrl:]]'), (_JSON_SPECIAL, r'["\\[:cntrl:]]')):
        expected = not pc.any(pc.match_substring_regex(column, form)).as_py()
        assert _table_text._plain(column, special) == expected


def test_an_index_left_to_build_later_never_answers_from_nothing() -> None:
    """After a rewrite the index is built on the first lookup; a store that
    cannot be read then is an error at every lookup, never an empty index
    (which would run recorded keys again)."""
    from stet.backends._reader import IndexedReader

    readable = [True]
    records = [{"x": "1", "_stet_function": "run"}]

    def scan(cursor: object) -> Any:
        if not readable[0]:
            raise OSError("the store cannot be read")
        return [records], None, True

    reader: IndexedReader[Any] = IndexedReader("demo", scan)
    reader.reset(lambda: records, None)
    assert reader.index.knows("run", ("x",), "1")
    assert not reader.index.knows("run", ("x",), "2")
    reader.reread_later()
    readable[0] = False
    for _ in range(2):
        with pytest.raises(OSError, match="cannot be read"):
            reader.index.knows("run", ("x",), "1")
    readable[0] = True
    assert reader.index.knows("run", ("x",), "1")

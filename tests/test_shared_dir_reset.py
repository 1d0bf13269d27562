"""``stet reset --where`` of a shared directory works from the read that counted.

Its fold read every file again under the compaction lock; the read made
before the lock (to count and ask) is used again when the files are the
same files, each as it was read, and anything a writer appended meanwhile
is read and judged as it is then.
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stet import _cli
from stet._inspect import matching_rows
from stet.backends import _csv, _shared_dir, _shared_kept, open_store
from stet.backends._index import pack
from stet.backends._shared_kept import FoldedRecords
from stet.backends._table import delete_selected, whole_store
from tests.test_csv_kept import TEXTS, raw_stores
from tests.test_reset_where import _write

BOM = "\ufeff".encode()

F = {"_stet_function": "f", "_stet_timestamp": "2026-01-01T00:00:00+00:00"}


def _reset_a1(opened: Any, whole: Any) -> int:
    """``reset --where a=1`` of an opened store, given its read from before the lock."""
    return delete_selected(
        opened,
        lambda now: matching_rows(now, None, {"a": "1"}, None),
        lambda record: record.get("a") == "1",
        whole=whole,
    )


def test_a_reset_where_reads_an_unchanged_shared_directory_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _write(tmp_path, "stetdir", [[{"a": "1", **F}, {"a": "2", **F}], [{"a": "4", **F}]])
    opened = open_store(store)
    whole = whole_store(opened)

    def refuse(*args: Any) -> Any:
        raise AssertionError("the files were read again")

    monkeypatch.setattr(_shared_dir, "read_once_each", refuse)
    assert _reset_a1(opened, whole) == 1
    monkeypatch.undo()
    assert sorted(r["a"] for r in open_store(store).records()) == ["2", "4"]


def _append_then_exit(store: str, wrote: Any, go: Any) -> None:
    """A writer that records a=3, waits, records a=1 and dies without sealing its file."""
    writer = open_store(store)
    writer.add("g", ("a",), [("3",)])
    wrote.set()
    go.wait()
    writer.add("g", ("a",), [("1",)])
    os._exit(0)


def test_a_record_appended_after_the_first_read_is_judged_too(tmp_path: Path) -> None:
    """A writer that appended between the count and the lock, then exited: its
    file changed, so it is read again, and its new record is removed as well."""
    store = _write(tmp_path, "stetdir", [[{"a": "1", **F}, {"a": "2", **F}]])
    context = multiprocessing.get_context("fork")
    wrote, go = context.Event(), context.Event()
    child = context.Process(target=_append_then_exit, args=(store, wrote, go))
    child.start()
    try:
        assert wrote.wait(60)
        opened = open_store(store)
        whole = whole_store(opened)
        assert sorted(map(str, whole.table.column("a").to_pylist())) == ["1", "2", "3"]
    finally:
        go.set()
        child.join()
    assert child.exitcode == 0
    assert _reset_a1(opened, whole) == 2
    assert sorted(r["a"] for r in open_store(store).records()) == ["2", "3"]
    opened.refresh()
    assert opened.knows("g", ("a",), pack(("3",)))
    assert not opened.knows("g", ("a",), pack(("1",)))


def _contents(store: Path) -> list[bytes]:
    """The records files' bytes (their names hold random tokens)."""
    return sorted(p.read_bytes() for p in (store / "records").iterdir())


@pytest.mark.parametrize("bulk", [False, True], ids=["small", "bulk"])
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(files=st.lists(raw_stores(), min_size=1, max_size=3), pick=st.data())
def test_a_fold_writes_the_bytes_the_spelling_fold_writes(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    bulk: bool,
    files: list[tuple[bytes, list[str]]],
    pick: st.DataObject,
) -> None:
    """Kept lines copied from settled files of any shape (quotes, line breaks in
    quotes, blank lines, torn tails, older key rules, a run in two files)."""
    if bulk:
        monkeypatch.setattr(_csv, "_BULK_BYTES", 0)
    texts = [t for _, held in files for t in held]
    where = pick.draw(st.sampled_from(texts) | st.sampled_from(TEXTS))
    stores = []
    for name in ("ref", "new"):
        store = tmp_path / name / "s.stetdir"
        if store.exists():
            shutil.rmtree(store)
        for sub in ("records", "tmp", "claims"):
            (store / sub).mkdir(parents=True)
        for number, (data, _) in enumerate(files):
            (store / "records" / f"compacted-{number}.csv").write_bytes(data.removeprefix(BOM))
        stores.append(store)
    outcomes = []
    for store, spelling in zip(stores, (True, False), strict=True):
        with monkeypatch.context() as patched:
            if spelling:
                patched.setattr(FoldedRecords, "_copied", lambda self, header: None)
            code, shown, _ = _reset_dir(store, [f"--where=a={where}"])
        outcomes.append((code, shown, _contents(store)))
    assert outcomes[1] == outcomes[0]


def _reset_dir(store: Path, argv: list[str]) -> tuple[int, str, None]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = _cli.main(["reset", str(store), *argv, "--yes"])
    return code, out.getvalue().replace(str(store), "STORE"), None


def test_a_fold_copies_the_kept_lines_of_plain_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two settled files of plain lines: nothing is spelled again."""
    store = _write(
        tmp_path,
        "stetdir",
        [[{"a": "1", **F}, {"a": "2", **F}], [{"a": "3", **F}, {"a": "4", **F, "_stet_host": "h"}]],
    )

    def refuse(*args: Any) -> bytes:
        raise AssertionError("records spelled again")

    monkeypatch.setattr(_shared_kept, "format_rows", refuse)
    monkeypatch.setattr(_csv, "_BULK_BYTES", 0)
    code, _, _ = _reset_dir(Path(store), ["--where=a=1"])
    assert code == 0
    monkeypatch.undo()
    assert sorted(r["a"] for r in open_store(store).records()) == ["2", "3", "4"]

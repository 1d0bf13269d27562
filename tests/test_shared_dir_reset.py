"""``stet reset --where`` of a shared directory works from the read that counted.

Its fold read every file again under the compaction lock; the read made
before the lock (to count and ask) is used again when the files are the
same files, each as it was read, and anything a writer appended meanwhile
is read and judged as it is then.
"""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path
from typing import Any

import pytest

from stet._inspect import matching_rows
from stet.backends import _shared_dir, open_store
from stet.backends._index import pack
from stet.backends._table import delete_selected, whole_store
from tests.test_reset_where import _write

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

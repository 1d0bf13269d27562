"""Adding a store is one `stet.backends.register` call; the registry refuses what it cannot use."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

import stet
from stet.backends import StoreBackend, get_backend, register, registered, unregister
from stet.typing import Clock, ColumnLimits, Store

from .memory_store import SCHEME as MEMORY
from .memory_store import MemoryStore


class NotedBackend(StoreBackend):
    """A value-level class of one's own, for ``register(backend=...)``."""


@pytest.fixture
def memo_extension() -> Iterator[list[str]]:
    """``.memo`` files opened as memory stores; yields the locations the factory got."""
    opened: list[str] = []

    def factory(location: str, /, *, clock: Clock) -> Store:
        opened.append(location)
        return MemoryStore(MEMORY + location, clock=clock)

    register(".memo", factory, backend=NotedBackend)
    try:
        yield opened
    finally:
        unregister(".memo")


def test_a_registered_extension_opens_its_store(memo_extension: list[str]) -> None:
    assert ".memo" in registered()
    backend = get_backend("runs.memo")
    assert type(backend) is NotedBackend
    assert memo_extension == [os.path.abspath("runs.memo")], "the factory gets an absolute path"
    assert backend.record({"x": 1})
    assert type(get_backend("RUNS.MEMO")) is NotedBackend, "an extension ignores case"

    @stet.once(store="runs.memo", quiet=True)
    def run(x: int) -> int:
        return x

    assert run(1) is None, "the decorator uses the registered store"
    assert run(2) == 2


def test_once_with_a_registered_scheme_runs_then_skips(
    registered_memory: str, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[int] = []
    once = stet.Once(store="memory://x")

    @once
    def run(seed: int) -> int:
        calls.append(seed)
        return seed

    assert run(1) == 1
    assert run(1) is None
    assert "[stet] Skipping run(seed=1)" in capsys.readouterr().out
    assert calls == [1]
    summary = stet.status(store="memory://x")
    assert summary.records == 1
    out = capsys.readouterr().out
    assert "[stet] Store: memory://x" in out
    assert "[stet] 1 completed experiments recorded" in out
    assert stet.status(store="MEMORY://x").records == 1, "a scheme ignores case"


def test_a_store_registered_twice_is_refused_naming_the_first(registered_memory: str) -> None:
    with pytest.raises(ValueError, match=r"'\.csv' is registered already \(by <function open_csv"):
        register(".CSV", MemoryStore)
    with pytest.raises(ValueError, match="'memory://' is registered already"):
        register("Memory://", MemoryStore)
    assert type(get_backend("runs.csv")).__name__ == "CsvBackend", "the first one stays"


@pytest.mark.parametrize("name", ["csv", "memory", ".", "", "://", "a/b", ".a/b", "mem ory://"])
def test_a_name_that_is_neither_an_extension_nor_a_scheme_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="give an extension with its dot") as caught:
        register(name, MemoryStore)
    assert repr(name) in str(caught.value)
    assert name not in registered()


def test_an_unknown_extension_lists_every_registered_store(
    registered_memory: str, memo_extension: list[str]
) -> None:
    with pytest.raises(ValueError, match=r"Unsupported store extension '\.nope'") as caught:
        stet.Once(store="runs.nope")
    message = str(caught.value)
    for name in [".csv", ".json", ".sqlite", ".db", ".parquet", "postgresql://", ".memo", MEMORY]:
        assert name in message


def test_a_stores_check_refuses_a_location_before_anything_runs(registered_memory: str) -> None:
    with pytest.raises(ValueError, match="names no store: write memory://NAME"):
        stet.Once(store="memory://")


def test_an_unregistered_store_is_unsupported_again(registered_memory: str) -> None:
    unregister(MEMORY)
    with pytest.raises(ValueError, match="Unsupported store"):
        stet.Once(store="memory://x")


def test_a_registered_describe_hides_what_messages_must_not_show() -> None:
    register("secret://", MemoryStore, describe=lambda url: url.replace("hunter2", "***"))
    try:
        once = stet.Once(store="secret://user:hunter2@x")
        assert "hunter2" not in repr(once)
        assert "secret://user:***@x" in repr(once)
    finally:
        unregister("secret://")


def test_registered_limits_are_checked_when_a_function_is_decorated() -> None:
    register("short://", MemoryStore, limits=ColumnLimits(max_bytes=4))
    try:
        with pytest.raises(ValueError, match="'seconds' is 7 bytes long"):

            @stet.once(store="short://x")
            def run(seconds: int) -> None: ...

    finally:
        unregister("short://")


def test_a_multi_part_extension_opens_its_store_and_the_longest_registered_one_wins() -> None:
    class Gz(StoreBackend):
        """The backend of ``.gz`` stores."""

    register(".tar.gz", MemoryStore, backend=NotedBackend)
    register(".gz", MemoryStore, backend=Gz)
    try:
        assert type(get_backend("runs.tar.gz")) is NotedBackend
        assert type(get_backend("RUNS.TAR.GZ")) is NotedBackend, "an extension ignores case"
        assert type(get_backend("runs.gz")) is Gz
        assert type(get_backend("runs.star.gz")) is Gz, "an extension starts at a dot"
        with pytest.raises(ValueError, match="Unsupported store extension"):
            stet.Once(store="folder/.gz")  # a hidden file's name is no extension
    finally:
        unregister(".tar.gz")
        unregister(".gz")

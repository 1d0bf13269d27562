"""Shared fixtures: hypothesis profiles, a fresh working directory, stores."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

import stet.testing
from stet.backends import register, unregister

from . import pg_server as pg_server_module
from .fuse_mount import FuseMount, Mounts
from .memory_store import SCHEME as MEMORY
from .memory_store import MemoryStore, check_location, forget_all

settings.register_profile("dev", max_examples=60, deadline=None)
settings.register_profile(
    "ci",
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("thorough", max_examples=3000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

#: STET_SOAK=N runs the soak tests (marked ``soak``) at N times their full
#: size; unset, they run at a quick size, so that every test still runs.
_SOAK = os.environ.get("STET_SOAK", "").strip()


def soak(quick: int, full: int) -> int:
    """A soak test's size: ``quick`` by default, ``full`` times STET_SOAK when set."""
    if not _SOAK:
        return quick
    if not _SOAK.isdigit() or int(_SOAK) < 1:
        raise pytest.UsageError(f"STET_SOAK={_SOAK!r}: give a whole number from 1")
    return full * int(_SOAK)


#: Every file store, by extension; ids read as the store kind.
STORE_EXTENSIONS = ["csv", "json", "sqlite", "parquet"]
#: Every store kind: the file stores and PostgreSQL.
STORE_KINDS = [*STORE_EXTENSIONS, "postgresql"]


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test runs in its own directory with no stores open from before."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("STET_QUIET", raising=False)
    stet.testing.fresh_process()
    yield
    stet.testing.fresh_process()


@pytest.fixture(scope="session")
def pg_server() -> pg_server_module.Server:
    """A PostgreSQL server on 127.0.0.1 for the whole test session.

    Skipped only where the server is not installed and ``CI`` is not set;
    in CI a missing server fails the tests (``.ci/run`` installs it).
    """
    return pg_server_module.shared()


@pytest.fixture
def mount_fuse(tmp_path: Path) -> Iterator[Mounts]:
    """Mounts of the FUSE test filesystem (tests/fuse_fs.py), all unmounted afterwards.

    ``mount_fuse.mount(lock_errno="EOPNOTSUPP", attr_timeout=60)`` mounts one;
    they are unmounted when the test ends, whether it passed or not.
    """
    mounts = Mounts(tmp_path)
    try:
        yield mounts
    finally:
        mounts.unmount_all()


@pytest.fixture
def fuse_mount(mount_fuse: Mounts) -> FuseMount:
    """A mounted FUSE test filesystem: no flock, attributes cached for 2 s."""
    return mount_fuse.mount()


_tables = itertools.count()


def new_pg_store(server: pg_server_module.Server) -> str:
    """The URL of a not-yet-created PostgreSQL store (a table of its own)."""
    return server.url(f"t{os.getpid()}_{next(_tables)}")


@pytest.fixture
def pg_store(pg_server: pg_server_module.Server) -> str:
    """The URL of a not-yet-created PostgreSQL store."""
    return new_pg_store(pg_server)


def kind(store: str) -> str:
    """The store's kind, for test output: its extension, or postgresql."""
    return "postgresql" if store.startswith("postgresql://") else Path(store).suffix[1:]


def shown(store: str) -> str:
    """How messages name a store: the absolute path of a file, a URL as given."""
    return store if store.startswith("postgresql://") else str(Path(store).resolve())


def sibling(store: str, name: str) -> str:
    """Another store of the same kind next to ``store`` (a table, for PostgreSQL)."""
    if store.startswith("postgresql://"):
        return store + "_" + name
    return str(Path(store).with_name(name + Path(store).suffix))


@pytest.fixture(params=STORE_KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A not-yet-created store of each kind: a file path, or a PostgreSQL URL."""
    if request.param == "postgresql":
        return new_pg_store(request.getfixturevalue("pg_server"))
    return str(tmp_path / f"runs.{request.param}")


@pytest.fixture
def registered_memory() -> Iterator[str]:
    """The in-memory test store (tests/memory_store.py), registered under memory://.

    Unregistered afterwards, its records forgotten, whatever the test did.
    """
    register(MEMORY, MemoryStore, check=check_location)
    try:
        yield MEMORY
    finally:
        unregister(MEMORY)
        forget_all()

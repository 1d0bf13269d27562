"""Shared fixtures: hypothesis profiles, a fresh working directory, stores."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

import stet.backends
from stet._report import reporter

settings.register_profile("dev", max_examples=60, deadline=None)
settings.register_profile(
    "ci",
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("thorough", max_examples=3000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

#: Every file store, by extension; ids read as the store kind.
STORE_EXTENSIONS = ["csv", "json", "sqlite", "parquet"]


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test runs in its own directory with no stores open from before."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("STET_QUIET", raising=False)
    stet.backends._open.clear()
    reporter.reset()
    yield
    stet.backends._open.clear()
    reporter.reset()


@pytest.fixture(params=STORE_EXTENSIONS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The path of a not-yet-created store of each kind."""
    return str(tmp_path / f"runs.{request.param}")

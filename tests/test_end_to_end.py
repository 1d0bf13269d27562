"""Key values recorded in one process are skipped in another, on every store."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import stet

from . import strategies as S
from .conftest import STORE_EXTENSIONS

_WRITER = """
import pickle, sys
import stet
stores, values = pickle.load(sys.stdin.buffer)
for store in stores:
    @stet.once(store=store, quiet=True, name="experiment")
    def experiment(value, seed):
        return 1

    print(sum(experiment(v, seed=0) == 1 for v in values))
"""


def _reader(store: str, ran: list[Any]) -> Any:
    @stet.once(store=store, quiet=True, name="experiment")
    def experiment(value: Any, seed: int) -> int:
        ran.append(value)
        return 1

    return experiment


@settings(max_examples=8)
@given(values=st.lists(S.keyable, min_size=1, max_size=10))
def test_runs_recorded_by_another_process_are_skipped_here(
    tmp_path_factory: Any, values: list[Any]
) -> None:
    codec = stet.KeyCodec()
    distinct = {codec.encode(v) for v in values}
    root = str(Path(__file__).parent.parent)
    # One writer process records into every store (starting a process is
    # most of this test's time, above all on a loaded machine).
    stores = [str(tmp_path_factory.mktemp("e2e") / f"runs.{ext}") for ext in STORE_EXTENSIONS]
    env = {**os.environ, "PYTHONHASHSEED": "123", "PYTHONPATH": root}
    done = subprocess.run(
        [sys.executable, "-c", _WRITER],
        input=pickle.dumps((stores, values)),
        capture_output=True,
        env=env,
        check=True,
    )
    assert [int(n) for n in done.stdout.split()] == [len(distinct)] * len(stores)
    for store in stores:
        ran: list[Any] = []
        experiment = _reader(store, ran)

        for v in values:
            assert experiment(v, seed=0) is None
        assert ran == []
        assert experiment(values[0], seed=1) == 1  # another seed is another run
        frame = stet.read(store)
        assert {codec.encode(v) for v in frame["value"]} == distinct

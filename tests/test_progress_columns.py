"""`stet.progress` of a big grid: ints matched by value, the latest runs found without a full sort.

A grid column of ints is numbered by its values (not cast to texts and
parsed back) against a store column whose texts are all ints' own, and
by texts otherwise; the ETA's latest timed runs are picked from those at
or after the most-th latest time. Both give the answers of the paths they
stand in for.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import stet
import stet.testing
from stet._inspect import latest_timed, runs_of
from stet.backends import open_store
from stet.backends._schema import CODEC, CURRENT, FUNCTION, TIMESTAMP
from stet.backends._table import whole_store
from tests.raw_rows import append_as_written
from tests.test_inspect import _outcome, _write, records

SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
#: Texts of an int column as a store may hold them: ints' own, and others that are not.
INT_TEXTS = ["7", "-7", "0", "007", "-0", "'7", "7.0", "9223372036854775808", "x", "+7"]


@SETTINGS
@given(
    alphas=st.lists(st.integers(-(2**63), 2**63 - 1) | st.sampled_from([0, 7, -7]), max_size=8),
    unsigned=st.lists(st.integers(0, 2**64 - 1) | st.just(7), max_size=8),
    use_unsigned=st.booleans(),
    held=st.lists(st.tuples(st.sampled_from(INT_TEXTS), st.integers(0, 2)), max_size=6),
)
def test_progress_of_an_int_grid_counts_as_its_rows_do(
    tmp_path: Path,
    alphas: list[int],
    unsigned: list[int],
    use_unsigned: bool,
    held: list[tuple[str, int]],
) -> None:
    store = tmp_path / f"p{len(list(tmp_path.iterdir()))}.csv"

    @stet.once(store=str(store), quiet=True)
    def run(alpha: Any, seed: Any) -> None: ...

    run(7, 0)
    function = open_store(str(store)).records()[0][FUNCTION]
    stamp = "2026-01-01T00:00:00+00:00"
    append_as_written(
        str(store),
        [
            {"alpha": a, "seed": str(s), FUNCTION: function, TIMESTAMP: stamp, CODEC: CURRENT}
            for a, s in held
        ],
    )
    # As a new process sees the store (this one's index may not have caught
    # up with records appended behind its back through another store object).
    stet.testing.fresh_process()
    values = unsigned if use_unsigned else alphas
    frame = pd.DataFrame(
        {
            "alpha": np.array(values, dtype=np.uint64 if use_unsigned else np.int64),
            "seed": np.arange(len(values)) % 3,
        }
    )
    rows = frame.to_dict("records")
    with contextlib.redirect_stdout(io.StringIO()):
        by_columns = _outcome(lambda: stet.progress(run, frame))
        by_rows = _outcome(lambda: stet.progress(run, rows))
    assert by_columns == by_rows
    if by_rows[0] == "ok" and len(frame):
        assert by_columns[1].grid().text(80) == by_rows[1].grid().text(80)


@given(rows=st.lists(records(), min_size=1, max_size=30), most=st.integers(1, 6))
@SETTINGS
def test_the_latest_timed_runs_are_those_of_a_sort_of_them_all(
    tmp_path: Path, rows: list[dict[str, str]], most: int
) -> None:
    store = _write(tmp_path, "csv", rows, False)
    try:
        whole = whole_store(open_store(store))
    except stet.StoreError:
        return
    for function in ("", "f", "g"):
        picked = runs_of(whole, function)
        everything = latest_timed(whole, picked, len(whole) + 1)  # every timed run, sorted
        assert latest_timed(whole, picked, most) == everything[-most:]

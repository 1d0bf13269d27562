"""``stet export STORE FILE.csv`` writes the file pandas' ``to_csv`` writes, column by column.

It used to be ``stet.read(store).to_csv(file, index=False)``, which formats
every cell in Python; `stet._export.csv_of` makes the same bytes from whole
columns. These properties check it on arbitrary stores: any key value stet
can key, older stores' texts, odd timestamps and durations.
"""

from __future__ import annotations

import contextlib
import io
import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import stet
from stet import _cli
from stet._export import csv_of
from tests import strategies as S
from tests.raw_rows import append_as_written
from tests.test_inspect import STAMPS, records

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _exported(tmp_path: Path, store: str) -> tuple[bytes, bytes]:
    """(what ``stet export`` wrote, what ``to_csv`` of `stet.read` writes)."""
    out = tmp_path / "out.csv"
    with contextlib.redirect_stdout(io.StringIO()):
        assert _cli.main(["export", store, str(out)]) == 0
    expected = io.StringIO()
    stet.read(store).to_csv(expected, index=False)
    return out.read_bytes(), expected.getvalue().encode()


_stores = itertools.count()


def _fresh(tmp_path: Path, kind: str) -> str:
    """A new store's path (a store once opened stays open in this process)."""
    return str(tmp_path / f"s{next(_stores)}.{kind}")


@SETTINGS
@given(
    values=st.lists(st.tuples(S.keyable, S.keyable), min_size=1, max_size=8),
    kind=st.sampled_from(["csv", "parquet"]),
)
@example(values=[(1, "a"), (1.0, "b"), (True, "c"), (np.float64(0.5), None)], kind="csv")
@example(values=[(float("nan"), 'q"t,x'), (-0.0, "l\nf"), (2**70, "c\rr")], kind="csv")
def test_export_writes_what_to_csv_writes_for_any_key_values(
    tmp_path: Path, values: list[tuple[Any, Any]], kind: str
) -> None:
    store = _fresh(tmp_path, kind)

    @stet.once(store=store, quiet=True)
    def work(alpha: Any, beta: Any) -> None:
        pass

    for alpha, beta in values:
        work(alpha, beta)
    got, expected = _exported(tmp_path, store)
    assert got == expected


@SETTINGS
@given(rows=st.lists(records(), min_size=1, max_size=12))
@example(
    rows=[
        {"a": "1", "_stet_timestamp": STAMPS[0], "_stet_codec": "2"},
        {"a": "2", "_stet_timestamp": "0999-01-02T03:04:05.120+00:00", "_stet_codec": "2"},
        {"a": "3", "_stet_timestamp": "1969-12-31T23:59:59.5+00:00", "_stet_codec": "2"},
    ]
)
def test_export_writes_what_to_csv_writes_for_older_and_odd_records(
    tmp_path: Path, rows: list[dict[str, str]]
) -> None:
    store = _fresh(tmp_path, "csv")
    append_as_written(store, rows)
    try:
        stet.read(store)
    except (stet.StetError, ValueError):
        return  # a store that cannot be read is not exported either
    got, expected = _exported(tmp_path, store)
    assert got == expected


def test_a_store_of_numbers_and_words_is_exported_column_by_column(tmp_path: Path) -> None:
    """The sweep's usual store takes the column-wise way (else it silently gets slow)."""
    store = str(tmp_path / "s.csv")

    @stet.once(store=store, quiet=True)
    def work(alpha: float, seed: int, method: str, fast: bool) -> None:
        pass

    for seed in range(3):
        work(0.1 * seed, seed, "adam,sgd", seed == 1)
    frame = stet.read(store)
    assert csv_of(frame) is not None
    assert csv_of(frame) == frame.to_csv(index=False).encode()


@pytest.mark.parametrize(
    "column",
    [
        pd.Series([1.5, 2.5], dtype="float32"),
        pd.Series(pd.to_datetime(["2026-01-01", "2026-01-02"])),
        pd.Series(pd.to_datetime(["2026-01-01", "2026-01-02"], utc=True)).dt.tz_convert(
            "Europe/Paris"
        ),
        pd.Series([1, None], dtype="Int64"),
    ],
    ids=["float32", "naive time", "other zone", "nullable int"],
)
def test_columns_of_other_kinds_are_left_to_pandas(column: pd.Series[Any]) -> None:
    frame = pd.DataFrame({"x": column, "y": [1, 2]})
    assert csv_of(frame) is None
    assert csv_of(pd.DataFrame({"y": [1, 2]})) is None, "one column: the csv module's own way"

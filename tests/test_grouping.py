"""`WholeStore.grouped` tells runs apart as Arrow's grouping by the texts does.

The inspection tools count a store's runs by it; it groups by numbers
(each column dictionary-encoded) rather than by the texts, which is faster.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from stet.backends._table import WholeStore, arrow_of
from tests.test_inspect import records


def _reference(whole: WholeStore, rows: Any) -> set[tuple[Any, ...]]:
    table = whole.table.select(list(whole.keys)).append_column("__function", whole.functions)
    table = table.append_column("__row", pa.array(np.arange(len(whole)), pa.int64()))
    if rows is not None:
        table = table.filter(pa.array(rows))
    grouped = table.group_by(["__function", *whole.keys]).aggregate([("__row", "min")])
    return {tuple(r[c] for c in sorted(r)) for r in grouped.to_pylist()}


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(records(), min_size=1, max_size=16), data=st.data())
def test_grouping_by_numbers_finds_the_runs_and_first_rows_grouping_by_texts_does(
    rows: list[dict[str, str]], data: st.DataObject
) -> None:
    whole = WholeStore("s", arrow_of(rows))
    mask = data.draw(st.none() | st.lists(st.booleans(), min_size=len(rows), max_size=len(rows)))
    got = whole.grouped(None if mask is None else np.array(mask, dtype=bool))
    assert got.num_rows == len({tuple(sorted(r.items())) for r in got.to_pylist()})
    assert {tuple(r[c] for c in sorted(r)) for r in got.to_pylist()} == _reference(whole, mask)


def test_many_wide_columns_are_renumbered_before_their_product_overflows() -> None:
    n = 3_000
    columns = {f"k{i}": pa.array([str((r * (i + 7)) % n) for r in range(n)]) for i in range(8)}
    table = pa.table({**columns, "_stet_timestamp": pa.array(["t"] * n)})
    whole = WholeStore("s", table)
    assert whole.grouped().num_rows == len(_reference(whole, None)) == n
    doubled = WholeStore("s", pa.concat_tables([table, table]))
    assert np.sort(doubled.grouped().column("__row_min").to_numpy()).tolist() == list(range(n))

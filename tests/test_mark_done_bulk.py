"""mark_done's column-wise path: exactly the keys and records of the row-by-row one."""

from __future__ import annotations

import itertools
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import stet
from stet import _rows_bulk
from stet._codec import KeyCodec
from stet._rows import _grid_keys, _keys_row_by_row, _runner_of
from stet._rows_bulk import bulk_keys
from stet.backends import _json, _pg_rows, _sqlite
from stet.backends._index import KeyIndex, pack, pack_all
from stet.backends._key_columns import KeyColumns
from stet.backends._new_records import NewRecords
from stet.backends._reader import IndexedReader
from stet.backends._records import Record, repeated, strings
from stet.backends._schema import TIMESTAMP

from . import strategies as S
from .conftest import sibling


def _ints(t: Any) -> st.SearchStrategy[Any]:
    info = np.iinfo(t)
    return st.integers(int(info.min), int(info.max))


#: Typed columns (a numpy dtype each) and the values they hold.
_TYPED: list[tuple[Any, st.SearchStrategy[Any]]] = [
    (np.int8, _ints(np.int8)),
    (np.int64, _ints(np.int64)),
    (np.uint8, _ints(np.uint8)),
    (np.uint64, _ints(np.uint64)),
    (np.float16, st.floats(width=16)),
    (np.float32, st.floats(width=32)),
    (np.float64, S.python_floats),
    (np.longdouble, S.long_doubles),
    (np.bool_, st.booleans()),
]

#: A value of any scalar kind a sweep's grid holds, mixed within a column.
mixed_values = st.one_of(
    S.python_ints,
    S.python_floats,
    S.numpy_ints,
    S.numpy_floats,
    S.long_doubles,
    S.bools,
    S.strings,
    st.none(),
)


@st.composite
def grids(draw: st.DrawFn) -> tuple[Any, int]:
    """Rows of (a, b[, c]) as a DataFrame or a list of dicts, and how many to record first."""
    n = draw(st.integers(0, 8))
    columns: dict[str, Any] = {}
    for name in ("a", "b", "c"):
        if name == "c" and draw(st.booleans()):
            continue  # c has a default
        if draw(st.booleans()):
            dtype, values = draw(st.sampled_from(_TYPED))
            columns[name] = np.array(draw(st.lists(values, min_size=n, max_size=n)), dtype=dtype)
        else:
            columns[name] = draw(st.lists(mixed_values, min_size=n, max_size=n))
    if draw(st.booleans()):
        rows: Any = pd.DataFrame(columns)
    else:
        rows = [{k: v[i] for k, v in columns.items()} for i in range(n)]
        if rows and draw(st.booleans()):
            rows = [*rows, rows[0]]  # a duplicate row
    return rows, draw(st.integers(0, n))


def _sweep(store: str) -> Any:
    @stet.once(store=store, quiet=True, name="run")
    def run(a: Any, b: Any, c: Any = 3) -> None: ...

    return run


def _by_column(keys: list[tuple[str, ...]]) -> KeyColumns:
    return KeyColumns([list(column) for column in zip(*keys, strict=True)])


def _listed(keys: KeyColumns | None) -> list[tuple[str, ...]] | None:
    return None if keys is None else list(keys)


#: An object column holding a numpy long double: DataFrame rows give it as a float.
_BOXED = pd.DataFrame({"a": [np.longdouble(0.5) + np.finfo(np.longdouble).eps, "s"], "b": [1, 2]})


@settings(max_examples=200)
@given(grids())
@example((_BOXED, 0))
def test_column_wise_keys_are_the_row_by_row_keys(grid: tuple[Any, int]) -> None:
    """Whatever the grid, mark_done, pending and progress key each row as a call would."""
    rows, _ = grid
    runner = _runner_of(_sweep("unused.csv"))
    try:
        expected = _keys_row_by_row(runner, rows)
    except Exception as exc:  # the same error either way
        with pytest.raises(type(exc)):
            _grid_keys(runner, rows)
        return
    assert _listed(bulk_keys(runner, rows)) in (None, expected)
    assert list(_grid_keys(runner, rows)) == expected


@pytest.mark.parametrize(
    "rows",
    [
        pd.DataFrame({"a": np.arange(5), "b": np.linspace(-1, 1, 5)}),
        pd.DataFrame({"a": ["x", "1", "a,b"] * 2, "b": [True, False] * 3, "c": [0.1, -0.0] * 3}),
        [{"a": i, "b": f"s{i}", "c": i / 3} for i in range(5)],
        [{"a": np.int32(i), "b": float("nan")} for i in range(5)],
    ],
    ids=["ints-floats", "str-bool-float", "dicts", "numpy-nan"],
)
def test_common_grids_take_the_column_wise_path(rows: Any) -> None:
    """The common grids are encoded whole (the differential test would pass vacuously
    if the fast path always gave way)."""
    runner = _runner_of(_sweep("unused.csv"))
    assert _listed(bulk_keys(runner, rows)) == _keys_row_by_row(runner, rows)


def test_a_generator_of_rows_is_read_once() -> None:
    runner = _runner_of(_sweep("unused.csv"))
    rows = ({"a": i, "b": i} for i in range(3))
    assert list(_grid_keys(runner, rows)) == [("0", "0", "3"), ("1", "1", "3"), ("2", "2", "3")]


def test_an_unkeyable_value_is_still_named_by_its_row() -> None:
    runner = _runner_of(_sweep("unused.csv"))
    frame = pd.DataFrame({"a": [1, 2, 3], "b": [1, object(), 3]})
    with pytest.raises(stet.KeyEncodingError, match="row 1"):
        _grid_keys(runner, frame)


def _records(store: str) -> list[list[tuple[str, str]]]:
    records = stet.backends.open_store(store).records()
    return [[(c, t) for c, t in r.items() if c != TIMESTAMP] for r in records]


_stores = itertools.count()


def _as_dicts(fresh: tuple[NewRecords, Any]) -> tuple[list[Record], Any]:
    return list(fresh[0]), fresh[1]


@settings(max_examples=12, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(grid=grids())
def test_mark_done_writes_the_records_of_row_by_row_adds(
    store: str, grid: tuple[Any, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On every store kind: the same records (texts, columns, order) and the same count,
    rows already recorded and duplicates skipped, as adding the rows one by one as
    record dicts (the formats' general path)."""
    rows, first = grid
    monkeypatch.setattr(_pg_rows, "_COPY_ROWS", 0)  # PostgreSQL: through COPY however few
    monkeypatch.setattr(_sqlite, "_LITERAL_META_ROWS", 0)  # SQLite: metadata in the statement
    number = next(_stores)
    fast, slow = sibling(store, f"fast{number}"), sibling(store, f"slow{number}")
    slow_runner = _runner_of(_sweep(slow))
    try:
        reference = _keys_row_by_row(slow_runner, rows)
    except Exception:  # errors are compared in the test above
        return
    fast_run = _sweep(fast)
    stet.mark_done(fast_run, rows.iloc[:first] if isinstance(rows, pd.DataFrame) else rows[:first])
    added = stet.mark_done(fast_run, rows)
    rows_of = IndexedReader.fresh_rows
    with monkeypatch.context() as patch:
        patch.setattr(IndexedReader, "fresh_rows", lambda *a: _as_dicts(rows_of(*a)))
        for key in reference[:first]:
            slow_runner.store.add("run", slow_runner.cols, [key])
        expected = sum(slow_runner.store.add("run", slow_runner.cols, [key]) for key in reference)
    assert added == expected
    if reference:
        assert _records(fast) == _records(slow)


@given(st.integers(1, 3).flatmap(lambda w: st.lists(st.tuples(*[st.text("ab\x1f")] * w))))
def test_keys_packed_in_one_pass_are_packed_as_one_by_one(keys: list[tuple[str, ...]]) -> None:
    """A text holding the separator keeps its key a tuple, however many keys are packed."""
    width = len(keys[0]) if keys else 1
    assert pack_all(keys, width) == [pack(values) for values in keys]


@given(st.one_of(st.none(), S.strings), st.integers(0, 40))
def test_a_column_of_one_text_repeated_is_the_column_appended_cell_by_cell(
    text: str | None, count: int
) -> None:
    """The metadata column of records written together (Parquet) holds exactly its text
    in every row, whatever the text."""
    made = repeated(text, count)
    made.validate(full=True)
    assert made.equals(strings([text] * count))


def test_a_function_of_no_key_parameters_is_marked_done_once(
    store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its one run is recorded, then skipped; marking it again adds nothing."""
    monkeypatch.setattr(_pg_rows, "_COPY_ROWS", 0)  # PostgreSQL: through COPY
    calls: list[int] = []

    @stet.once(store=store, quiet=True)
    def setup() -> None:
        calls.append(1)

    assert stet.mark_done(setup, [{}]) == 1
    assert stet.mark_done(setup, [{}]) == 0
    setup()
    assert calls == []
    assert len(stet.backends.open_store(store).records()) == 1


@given(st.lists(S.python_floats, min_size=64, max_size=200))
def test_a_long_float_column_gets_the_texts_of_one_by_one(values: list[float]) -> None:
    """A float column of a big import is written in one pass (repr, then the whole
    numbers found by numpy): the texts of encoding each value alone."""
    assert _rows_bulk._encoded(values, KeyCodec().encode) == list(map(KeyCodec().encode, values))


#: Key texts, mostly of characters JSON leaves alone (numbers, words), some not.
_KEY_TEXTS = st.one_of(st.text("ab1.-é", max_size=5), S.strings)


@given(
    st.integers(1, 3).flatmap(
        lambda w: st.lists(st.tuples(*[_KEY_TEXTS] * w), min_size=2, max_size=20)
    ),
    st.dictionaries(st.sampled_from(["_stet_function", "_stet_host", "_stet_code"]), S.strings),
)
def test_json_lines_of_many_new_records_are_those_of_each_record(
    keys: list[tuple[str, ...]], meta: dict[str, str]
) -> None:
    """A JSON store's lines for records written together (pieces joined in one pass
    where no text needs escaping) are the bytes of formatting each record alone."""
    names = tuple(f"k{i}" for i in range(len(keys[0])))
    rows = NewRecords(names, keys, {**meta, TIMESTAMP: "2026-01-01T00:00:00+00:00"})
    expected = ",\n".join(map(_json._format_row, rows)).encode("utf-8")
    assert _json._format_body(rows) == expected


@pytest.mark.parametrize("name", ["o'brien", "it''s", "a'); DROP TABLE stet_records; --", "é ü"])
def test_sqlite_writes_any_function_name_into_a_big_import(
    tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many records written together carry their metadata in the SQL statement:
    a function name of quotes (or SQL) is stored as given, and nothing else runs."""
    monkeypatch.setattr(_sqlite, "_LITERAL_META_ROWS", 2)
    store = tmp_path / "runs.sqlite"

    @stet.once(store=store, name=name, quiet=True)
    def run(x: int) -> None: ...

    assert stet.mark_done(run, [{"x": x} for x in range(3)]) == 3
    functions = [r["_stet_function"] for r in stet.backends.open_store(str(store)).records()]
    assert functions == [name] * 3


#: Key texts with the separator `pack` cannot join, and repeats.
_PACKED_TEXTS = st.sampled_from(["1", "2", "a\x1fb", "", "é"])


@given(
    st.integers(1, 3).flatmap(
        lambda w: st.lists(st.tuples(*[_PACKED_TEXTS] * w), min_size=1, max_size=12)
    ),
    st.data(),
)
def test_keys_held_column_by_column_are_as_new_as_keys_held_row_by_row(
    keys: list[tuple[str, ...]], data: st.DataObject
) -> None:
    """An import's keys given column by column (mark_done of a DataFrame) leave out the
    same keys already recorded and repeated, in the same order, as keys given row by row."""
    width = len(keys[0])
    cols = tuple(f"k{i}" for i in range(width))
    index = KeyIndex("here")
    recorded = data.draw(st.lists(st.sampled_from(keys)))
    index.add(data.draw(st.sampled_from(["run", ""])), cols, [pack(k) for k in recorded])
    expected = index.fresh("run", cols, keys)
    fresh = index.fresh_columns("run", cols, _by_column(keys))
    assert list(fresh) == list(expected)
    assert list(fresh.rows) == list(expected.values())
    assert fresh.unique in (None, set(expected))
    assert {p: fresh[p] for p in fresh} == expected


@given(
    st.integers(1, 3).flatmap(
        lambda w: st.lists(st.tuples(*[_KEY_TEXTS] * w), min_size=2, max_size=20)
    ),
    st.permutations(range(3)),
)
def test_json_lines_of_an_import_held_column_by_column_are_those_of_each_record(
    keys: list[tuple[str, ...]], order: list[int]
) -> None:
    """The lines of a big import (its columns whole, possibly in the store's own
    order) are the bytes of formatting each record alone."""
    names = tuple(f"k{i}" for i in range(len(keys[0])))
    meta = {"_stet_function": "run", TIMESTAMP: "2026-01-01T00:00:00+00:00"}
    written = tuple(names[i] for i in order if i < len(names))
    rows = NewRecords.ordered(names, _by_column(keys), meta, written)
    expected = NewRecords.ordered(names, keys, meta, written)
    assert list(rows) == list(expected)
    assert _json._format_body(rows) == ",\n".join(map(_json._format_row, expected)).encode()


def test_a_big_import_writes_the_records_of_the_row_by_row_path(
    store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On every store kind, a DataFrame of 1,500 rows (repeats, some recorded before)
    gives the records and count that the same rows read one by one do."""
    monkeypatch.setattr(_pg_rows, "_COPY_ROWS", 0)
    seeds = np.arange(1_500) % 1_200
    frame = pd.DataFrame({"b": seeds, "a": np.where(seeds % 3 == 0, 'x,"y"', "plain")})
    fast, slow = _sweep(sibling(store, "fast")), _sweep(sibling(store, "slow"))
    for run in (fast, slow):
        stet.mark_done(run, frame.iloc[::7])
    added = stet.mark_done(fast, frame)
    assert bulk_keys(_runner_of(fast), frame) is not None  # the column-wise path
    one_by_one = [  # not plain dicts: read row by row
        OrderedDict((str(k), v) for k, v in row.items()) for row in frame.to_dict("records")
    ]
    assert added == stet.mark_done(slow, one_by_one)
    assert _records(sibling(store, "fast")) == _records(sibling(store, "slow"))


@given(st.lists(st.one_of(st.text("ab1.-", max_size=4), S.strings, st.none()), min_size=64))
def test_a_long_column_of_texts_is_the_column_appended_cell_by_cell(
    texts: list[str | None],
) -> None:
    """A long key column laid out in Arrow's buffers at once (ASCII, no nulls) holds
    exactly what appending each text gives, and any other column is appended."""
    builder = pa.lib.StringBuilder()
    try:
        builder.append_values(texts)
    except Exception as exc:  # a lone surrogate: the same error either way
        with pytest.raises(type(exc)):
            strings(texts)
        return
    made = strings(texts)
    made.validate(full=True)
    assert made.equals(builder.finish())
    assert strings([t or "" for t in texts]).to_pylist() == [t or "" for t in texts]


def test_a_store_of_the_protocol_alone_takes_an_import_held_column_by_column(
    registered_memory: str,
) -> None:
    """A third-party store (stet.typing.Store, tests/memory_store.py) is handed the keys
    of a big import as `KeyColumns`, which it only iterates: each run is recorded once,
    the store's own and repeated rows skipped, and the calls skip them all."""
    calls: list[tuple[Any, Any]] = []

    @stet.once(store=f"{registered_memory}bulk", quiet=True)
    def run(a: Any, b: Any, c: int = 3) -> None:
        calls.append((a, b))

    run('x, "y"', 0)
    frame = pd.DataFrame({"a": ['x, "y"', "é", "", "é"] * 20, "b": [0, 1.5, 2, 1.5] * 20})
    frame["extra"] = "ignored"
    assert bulk_keys(_runner_of(run), frame) is not None  # the column-wise path
    assert stet.mark_done(run, frame) == 2
    for a, b in [('x, "y"', 0), ("é", 1.5), ("", 2)]:
        run(a, b)
    assert calls == [('x, "y"', 0)]
    assert stet.mark_done(run, frame) == 0

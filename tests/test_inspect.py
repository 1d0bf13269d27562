"""The column-wise inspection (status, progress, read) gives the record-by-record answers.

`stet._inspect` computes over a whole store as one Arrow table; the
reference path here is the record-by-record code it replaced (a dict per
record, `identity` per record). For arbitrary stores, of several functions,
of records of every key-rules era (stet 0.0.x without ``_stet_codec``,
version 1, today's), with odd timestamps and durations and a torn last
line, both give the same answer, or both refuse the store.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import stet
from stet._inspect import frame_of, function_facts, latest_code, latest_timed, runs_of
from stet._progress import estimate, estimate_timed
from stet.backends import get_backend, open_store
from stet.backends._schema import (
    CODE,
    CODEC,
    CURRENT,
    DURATION,
    FUNCTION,
    HOST,
    TIMESTAMP,
    identity,
)
from stet.backends._table import WholeStore, arrow_of, whole_store
from stet.exceptions import StoreError
from tests.raw_rows import append_as_written

HOUR_AGO = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
CODEC_ = stet.KeyCodec()
CANONICAL = [
    CODEC_.encode(v)
    for v in (0, 1, -3, 0.5, 1e-05, "adam", "007", None, True, [1, 2], {"a": 1}, 2**70, "=x")
]
LEGACY = ["007", "1.50", "True", "None", "x y", "1e-05", "nan", "3", "-0"]
V1 = ["=a", "-x", "3", "'007"]
STAMPS = [
    "2026-12-01T10:00:00.000001+00:00",
    "2026-12-01T10:00:00+00:00",
    "2026-12-01T12:00:00+02:00",
    "2026-12-01T08:00:00.5",
    "2026-12-01 10:00:00",
    "2026-12-01T09:59:59.999999+00:00",
    "2026-12-01T10:00Z",
    "2026-12-01T10:00:00+0200",
    "2026-12-01T10:00:00.1234567+00:00",
    "2026-12-01 11:00:00-01:30",
    "2026-12-01",
    "2026-12-01T25:00:00+00:00",
]
DURATIONS = ["0.500000", "1e3", "-1.000000", "nan", "x", " 2", "0.250000"]


@st.composite
def records(draw: st.DrawFn) -> dict[str, str]:
    era = draw(st.sampled_from(["now", "v1", "0.0.x"]))
    texts = {"now": CANONICAL, "v1": CANONICAL + V1, "0.0.x": LEGACY}[era]
    record: dict[str, str] = {}
    for col in draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, unique=True)):
        record[col] = draw(st.sampled_from(texts))
    function = draw(st.sampled_from(["", "f", "g"]))
    if function:
        record[FUNCTION] = function
    if draw(st.integers(0, 3)):
        record[TIMESTAMP] = draw(st.sampled_from(STAMPS))
    if draw(st.booleans()):
        record[DURATION] = draw(st.sampled_from(DURATIONS))
    record[HOST] = "h"
    if draw(st.booleans()):
        record[CODE] = draw(st.sampled_from(["c1", "c2"]))
    if era != "0.0.x":
        record[CODEC] = CURRENT if era == "now" else "1"
    return record


# -- the record-by-record reference ---------------------------------------------


def _last(stamps: Iterable[str]) -> datetime | None:
    parsed = []
    for text in stamps:
        try:
            stamp = datetime.fromisoformat(text)
        except ValueError:
            continue
        parsed.append(stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC))
    return max(parsed) if parsed else None


def _after(text: str, moment: datetime) -> bool:
    stamp = _last([text])
    return stamp is not None and stamp >= moment


def reference_latest(rows: list[dict[str, str]], location: str) -> dict[str, str]:
    newest: dict[str, tuple[str, str]] = {}
    for row in rows:
        code = row.get(CODE)
        if code is None:
            continue
        function = identity(row, location)[0]
        stamp = row.get(TIMESTAMP, "")
        if function not in newest or stamp >= newest[function][0]:
            newest[function] = (stamp, code)
    return {function: code for function, (_, code) in newest.items()}


def reference_facts(rows: list[dict[str, str]], location: str) -> dict[str, tuple[Any, ...]]:
    keys: dict[str, set[tuple[tuple[str, ...], tuple[str, ...]]]] = {}
    stamps: dict[str, list[str]] = {}
    for row in rows:
        function, cols, values = identity(row, location)
        keys.setdefault(function, set()).add((cols, values))
        if TIMESTAMP in row:
            stamps.setdefault(function, []).append(row[TIMESTAMP])
    latest = reference_latest(rows, location)
    older: dict[str, set[tuple[str, ...]]] = {}
    for row in rows:
        function, _, values = identity(row, location)
        code = row.get(CODE)
        if code is not None and code != latest.get(function):
            older.setdefault(function, set()).add(values)
    return {
        fn: (
            len(keys[fn]),
            _last(stamps.get(fn, [])),
            {c for cols, _ in keys[fn] for c in cols},
            sum(1 for s in stamps.get(fn, []) if _after(s, HOUR_AGO)),
            len(older.get(fn, ())),
        )
        for fn in keys
    }


def _column(values: list[Any]) -> pd.Series[Any]:
    kinds = {type(v) for v in values}
    if len(kinds) == 1 and kinds <= {int, float, bool, str}:
        return pd.Series(values)
    return pd.Series(values, dtype=object)


def reference_read(store: str) -> pd.DataFrame:
    loaded = get_backend(store).load()
    columns: dict[str, None] = {}
    for record in loaded:
        columns.update(dict.fromkeys(c for c in record if not c.startswith("_stet_")))
    meta: dict[str, None] = {}
    for record in loaded:
        meta.update(dict.fromkeys(c for c in record if c.startswith("_stet_")))
    data = {c: _column([r.get(c) for r in loaded]) for c in [*columns, *meta]}
    frame = pd.DataFrame(data, index=pd.RangeIndex(len(loaded)))
    if TIMESTAMP in frame:
        frame[TIMESTAMP] = pd.to_datetime(frame[TIMESTAMP], utc=True, format="ISO8601")
    return frame


def _outcome(compute: Any) -> Any:
    try:
        return ("ok", compute())
    except (StoreError, ValueError, TypeError) as exc:
        return ("error", type(exc).__name__)


def _write(tmp: Path, kind: str, rows: list[dict[str, str]], torn: bool) -> str:
    store = str(tmp / f"s.{kind}")
    for path in tmp.iterdir():
        path.unlink()
    append_as_written(store, rows)
    if torn and kind in ("csv", "json"):
        with open(store, "ab") as f:  # a writer killed half-way through its record
            f.write(b"0.5,3" if kind == "csv" else b'{"a": "0.')
    return store


KINDS = ["csv", "json", "sqlite", "parquet"]
SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.mark.parametrize("kind", KINDS)
@SETTINGS
@given(rows=st.lists(records(), min_size=1, max_size=12), torn=st.booleans())
def test_status_facts_are_the_record_by_record_ones(
    tmp_path: Path, kind: str, rows: list[dict[str, str]], torn: bool
) -> None:
    store = _write(tmp_path, kind, rows, torn)
    table = open_store(store)
    expected = _outcome(lambda: reference_facts(table.records(), table.location))

    def fast() -> dict[str, tuple[Any, ...]]:
        facts = function_facts(whole_store(table), HOUR_AGO)
        return {
            fn: (f.records, f.last_run, set(f.key_columns), f.last_hour, f.older_code)
            for fn, f in facts.items()
        }

    got = _outcome(fast)
    assert got == expected
    if expected[0] == "ok":
        latest = latest_code(whole_store(table))
        assert latest == reference_latest(table.records(), table.location)
        shown = function_facts(whole_store(table), HOUR_AGO)
        for fn, facts in expected[1].items():
            # The same instant in the same offset as written (status prints it).
            assert repr(shown[fn].last_run) == repr(facts[1])


@pytest.mark.parametrize("kind", KINDS)
@SETTINGS
@given(rows=st.lists(records(), min_size=1, max_size=12), torn=st.booleans())
def test_read_gives_the_record_by_record_frame(
    tmp_path: Path, kind: str, rows: list[dict[str, str]], torn: bool
) -> None:
    store = _write(tmp_path, kind, rows, torn)
    expected = _outcome(lambda: reference_read(store))
    got = _outcome(lambda: frame_of(whole_store(open_store(store)), CODEC_.decode))
    assert got[0] == expected[0], (got, expected)
    if expected[0] == "error":
        assert got == expected
        return
    pd.testing.assert_frame_equal(got[1], expected[1], check_exact=True)


@pytest.mark.parametrize("kind", KINDS)
@SETTINGS
@given(rows=st.lists(records(), min_size=1, max_size=12))
def test_progress_estimates_from_the_same_runs(
    tmp_path: Path, kind: str, rows: list[dict[str, str]]
) -> None:
    store = _write(tmp_path, kind, rows, False)
    table = open_store(store)
    try:
        records_ = table.records()
    except StoreError:
        with pytest.raises(StoreError):
            whole_store(table)
        return
    for function in ("", "f", "g"):
        mine = [r for r in records_ if identity(r, table.location)[0] == function]
        whole = whole_store(table)
        picked = runs_of(whole, function)
        assert estimate_timed(latest_timed(whole, picked, 200)) == estimate(mine)


def test_a_whole_store_from_records_and_from_arrow_is_the_same() -> None:
    rows = [{"a": "1", TIMESTAMP: STAMPS[0]}, {"b": "x", FUNCTION: "f", CODEC: CURRENT}]
    by_records = WholeStore("here", arrow_of(rows))
    assert by_records.table.column("a").to_pylist() == ["1", None]
    assert by_records.functions.to_pylist() == ["", "f"]


def test_a_newer_key_rules_version_is_refused_naming_the_store() -> None:
    rows = [{"a": "1", CODEC: CURRENT}, {"a": "2", CODEC: "99"}]
    with pytest.raises(StoreError, match="newer") as caught:
        WholeStore("/data/runs.csv", arrow_of(rows))
    assert "/data/runs.csv" in str(caught.value)


def test_status_of_a_store_without_records_of_a_function_is_empty() -> None:
    assert function_facts(WholeStore("here", arrow_of([])), HOUR_AGO) == {}
    assert timedelta(0) == timedelta(0)


def reference_explain(table: Any, function: str, wanted: dict[str, str]) -> Any:
    """What ``stet why`` answered record by record: (done, records, differences, stamp)."""
    from stet._explain import _distance

    best: list[tuple[str, str | None, str | None]] | None = None
    differences: list[tuple[str, str | None, str | None]]
    best_score = (0, 0.0)
    records_ = 0
    for row in table.records():
        fn, cols, values = identity(row, table.location)
        if fn not in (function, ""):
            continue
        records_ += 1
        recorded = dict(zip(cols, values, strict=True))
        differences = [
            (name, text, recorded.get(name))
            for name, text in wanted.items()
            if recorded.get(name) != text
        ]
        differences += [(name, None, text) for name, text in recorded.items() if name not in wanted]
        if not differences:
            return (True, 1, (), row.get(TIMESTAMP))
        score = (len(differences), sum(_distance(d[1], d[2]) for d in differences))
        if best is None or score < best_score:
            best, best_score = differences, score
    return (False, records_, tuple(best or ()), None)


@pytest.mark.parametrize("kind", ["csv", "sqlite"])
@SETTINGS
@given(
    rows=st.lists(records(), min_size=1, max_size=12),
    function=st.sampled_from(["", "f", "g"]),
    wanted=st.dictionaries(
        st.sampled_from(["a", "b", "c", "d"]), st.sampled_from(CANONICAL[:6]), max_size=3
    ),
)
def test_why_finds_the_record_by_record_nearest(
    tmp_path: Path, kind: str, rows: list[dict[str, str]], function: str, wanted: dict[str, str]
) -> None:
    from stet._explain import explain_texts

    table = open_store(_write(tmp_path, kind, rows, False))
    expected = _outcome(lambda: reference_explain(table, function, wanted))

    def fast() -> Any:
        got = explain_texts(table, function, wanted, "run()")
        differences = tuple((d.parameter, d.here, d.recorded) for d in got.differences)
        return (got.done, got.records, differences, got.recorded_at)

    assert _outcome(fast) == expected


@SETTINGS
@given(
    files=st.lists(st.lists(records(), min_size=0, max_size=6), min_size=1, max_size=3),
    repeat=st.booleans(),
)
def test_a_shared_directory_reads_one_record_per_run_as_its_records_do(
    tmp_path: Path, files: list[list[dict[str, str]]], repeat: bool
) -> None:
    from stet.backends._csv import format_rows, header_for

    store = tmp_path / f"s{len(list(tmp_path.iterdir()))}.stetdir"
    stet.backends.open_store(str(store)).clear()
    (store / "records").mkdir(parents=True, exist_ok=True)
    if repeat:  # two writers recorded the same runs
        files = [*files, files[0]]
    for number, rows in enumerate(files):
        header = header_for(rows, ())
        data = ",".join(header).encode() + b"\n" + format_rows(rows, header)
        (store / "records" / f"compacted-{number}.csv").write_bytes(data)
    table = open_store(str(store))
    expected = _outcome(lambda: reference_read(str(store)))
    got = _outcome(lambda: frame_of(whole_store(table), CODEC_.decode))
    assert got[0] == expected[0], (got, expected)
    if expected[0] == "ok":
        pd.testing.assert_frame_equal(got[1], expected[1], check_exact=True)
        facts = _outcome(lambda: reference_facts(table.records(), table.location))
        mine = function_facts(whole_store(table), HOUR_AGO)
        assert (
            facts[0] == "error"
            or {
                fn: (f.records, f.last_run, set(f.key_columns), f.last_hour, f.older_code)
                for fn, f in mine.items()
            }
            == facts[1]
        )


GRID_VALUES = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=4),
)


@st.composite
def grid_frames(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(0, 12))
    columns: dict[str, Any] = {}
    for name in ("alpha", "seed"):
        kind = draw(st.sampled_from(["int", "float", "bool", "str", "mixed"]))
        if kind == "int":
            columns[name] = draw(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=n, max_size=n))
        elif kind == "float":
            columns[name] = draw(st.lists(st.floats(), min_size=n, max_size=n))
        elif kind == "bool":
            columns[name] = draw(st.lists(st.booleans(), min_size=n, max_size=n))
        elif kind == "str":
            columns[name] = draw(st.lists(st.text(max_size=4), min_size=n, max_size=n))
        else:
            columns[name] = pd.Series(
                draw(st.lists(GRID_VALUES, min_size=n, max_size=n)), dtype=object
            )
    frame = pd.DataFrame(columns)
    frame["extra"] = 0
    return frame


@SETTINGS
@given(frame=grid_frames(), done=st.lists(st.integers(0, 11), max_size=6))
@example(frame=pd.DataFrame({"alpha": ["a\x1fb", "a"], "seed": ["c", "\x1fb\x1fc"]}), done=[0, 1])
def test_progress_of_a_dataframe_grid_counts_as_its_rows_do(
    tmp_path: Path, frame: pd.DataFrame, done: list[int]
) -> None:
    import contextlib
    import io

    store = tmp_path / f"p{len(list(tmp_path.iterdir()))}.csv"

    @stet.once(store=str(store), quiet=True)
    def run(alpha: Any, seed: Any) -> None: ...

    rows = frame.to_dict("records")
    for i in done:
        if i < len(rows):
            run(rows[i]["alpha"], rows[i]["seed"])
    with contextlib.redirect_stdout(io.StringIO()):
        by_columns = _outcome(lambda: stet.progress(run, frame))
        by_rows = _outcome(lambda: stet.progress(run, rows))
    assert by_columns == by_rows
    if by_rows[0] == "ok" and len(frame):
        assert by_columns[1].grid().text(80) == by_rows[1].grid().text(80)


@pytest.mark.parametrize("kind", ["csv", "parquet"])
@SETTINGS
@given(
    rows=st.lists(records(), min_size=1, max_size=12),
    function=st.sampled_from([None, "", "f"]),
    stale=st.booleans(),
    where=st.dictionaries(
        st.sampled_from(["a", "b"]), st.sampled_from([*CANONICAL[:6], "007"]), max_size=2
    ),
)
def test_reset_where_counts_the_records_it_removes(
    tmp_path: Path,
    kind: str,
    rows: list[dict[str, str]],
    function: str | None,
    stale: bool,
    where: dict[str, str],
) -> None:
    from stet._inspect import count_matching

    table = open_store(_write(tmp_path, kind, rows, False))
    try:
        records_ = table.records()
        latest = reference_latest(records_, table.location) if stale else {}
    except StoreError:
        return

    def chosen(row: dict[str, str]) -> bool:
        fn, cols, values = identity(row, table.location)
        keys = dict(zip(cols, values, strict=True))
        if function is not None and fn != function:
            return False
        if stale and row.get(CODE) in (None, latest.get(fn)):
            return False
        return all(keys.get(name) == text for name, text in where.items())

    expected = _outcome(lambda: sum(chosen(r) for r in records_))
    got = _outcome(
        lambda: count_matching(whole_store(table), function, where, latest if stale else None)
    )
    assert got == expected


INT_LIKE = st.one_of(
    st.integers(-(2**64), 2**64).map(str),
    st.text(alphabet="0123456789-+xXbBoO _e", min_size=1, max_size=6),
    st.sampled_from(["0", "-0", "007", "-007", "0x1", "00", "+1", " 1", "1 "]),
)


@given(cells=st.lists(INT_LIKE, max_size=8), cut=st.integers(0, 3), large=st.booleans())
def test_a_column_is_read_as_ints_exactly_when_each_text_is_the_ints_own(
    cells: list[str], cut: int, large: bool
) -> None:
    """Key texts that are ints' own texts become ints (read, grouped by value);
    ``"007"``, ``"0x1"``, ``"-0"`` or ``"+1"`` stay texts, as the round trip
    through Arrow's texts of the numbers said before."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from stet.backends._table import canonical_ints

    whole = pa.array(cells, pa.large_string() if large else pa.string())
    column = pa.chunked_array([whole.slice(min(cut, len(cells)))], whole.type)
    try:
        numbers = pc.cast(column, pa.int64())
        same = pc.all(pc.equal(pc.cast(numbers, column.type), column)).as_py() is not False
        expected = numbers.to_numpy() if same else None
    except pa.ArrowInvalid:
        expected = None
    got = canonical_ints(column)
    if expected is None:
        assert got is None
    else:
        assert got is not None
        assert np.array_equal(got, expected)

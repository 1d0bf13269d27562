"""What the inspection tools compute over a whole store, column by column.

`stet.status`, `stet.progress`, `stet.read` (and so ``stet show`` and
``stet export``) and ``stet why`` read every record of a store. They used
to build a dict and a Python value per cell; here they work on the store as
one Arrow table (`.backends._table.WholeStore`): runs are counted by hash
grouping, times parsed in C, and key texts decoded once per distinct text
of a column, so they cost about what reading the file with pyarrow costs.
The answers are the record-by-record ones (tests check it differentially).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import PurePath
from typing import Any, Final

import attrs

from ._codec import Encoded
from ._lazy import np, pa, pd
from ._lazy import pc as _pc
from .backends._schema import CODE, DURATION, TIMESTAMP, is_meta, meta_value
from .backends._table import (
    DURATION_FORM,
    STAMP_FORM,
    WholeStore,
    canonical_ints,
    cast_stamps,
    parse_stamps,
    stamp_of,
)
from .exceptions import StoreError

#: pyarrow.compute, untyped here: its stubs' overloads do not cover the mix of
#: chunked arrays, arrays and Python scalars these whole-column steps pass.
pc: Any = _pc

__all__ = [
    "FunctionFacts",
    "count_matching",
    "frame_columns",
    "frame_of",
    "function_facts",
    "latest_code",
    "latest_timed",
    "matching_rows",
    "recent_runs",
    "runs_of",
]

#: `parse_stamps`' mark of a cell that is no time.
MISSING: Final = -(2**63)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _instant(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


@attrs.frozen
class FunctionFacts:
    """What `stet.status` says of one function's records."""

    records: int
    last_run: datetime | None
    key_columns: tuple[str, ...]
    last_hour: int
    older_code: int


def _codes(whole: WholeStore) -> tuple[Any, list[str]]:
    """Each record's function as a number, and the functions by number (first seen first)."""
    encoded = pc.dictionary_encode(whole.functions.combine_chunks())
    return encoded.indices.to_numpy(zero_copy_only=False), encoded.dictionary.to_pylist()


def function_facts(whole: WholeStore, hour_ago: datetime) -> dict[str, FunctionFacts]:
    """Per function with records, in order of its first record: what status shows."""
    if len(whole) == 0:
        return {}
    codes, names = _codes(whole)
    distinct = whole.grouped()
    counts = dict(
        zip(
            *(c.to_pylist() for c in pc.value_counts(distinct.column("__function")).flatten()),
            strict=True,
        )
    )
    columns: dict[str, dict[str, None]] = {name: {} for name in names}
    for function, cols in whole.patterns():
        columns[function].update(dict.fromkeys(cols))
    stamps = whole.stamps
    frame = pd.DataFrame({"f": codes, "s": stamps})
    timed = frame[frame["s"] != MISSING]
    newest = timed.groupby("f")["s"].idxmax()  # the first record of the latest instant
    hour = int((hour_ago - _EPOCH) / timedelta(microseconds=1))
    recent = frame[frame["s"] >= hour].groupby("f").size()
    texts = whole.column(TIMESTAMP)
    older = _older_code(whole, codes, names)
    out = {}
    for number, name in enumerate(names):
        last = None
        if number in newest.index:
            last = stamp_of(texts[int(newest[number])].as_py())
        out[name] = FunctionFacts(
            records=counts.get(name, 0),
            last_run=last,
            key_columns=tuple(columns[name]),
            last_hour=int(recent.get(number, 0)),
            older_code=older.get(name, 0),
        )
    return out


def latest_code(whole: WholeStore) -> dict[str, str]:
    """Each function's ``_stet_code`` on its newest record that has one.

    Newest by the timestamp's text (a record without one sorts first), the
    later record of equal texts winning, as the record-by-record path does.
    """
    if CODE not in whole.table.column_names or len(whole) == 0:
        return {}
    codes, names = _codes(whole)
    code = whole.column(CODE)
    has = code.is_valid().to_numpy(zero_copy_only=False)
    if not has.any():
        return {}
    stamps = pc.fill_null(whole.column(TIMESTAMP), "")
    frame = pd.DataFrame(
        {
            "f": codes[has],
            "s": pc.filter(stamps, pc.is_valid(code)).to_numpy(zero_copy_only=False),
            "c": pc.drop_null(code).to_numpy(zero_copy_only=False),
        }
    )
    # Python's order of str is code point order: compare as UTF-32 code points.
    frame["s"] = frame["s"].astype(object)
    last = frame.sort_values(["f", "s"], kind="stable").groupby("f").tail(1)
    return {names[int(f)]: str(c) for f, c in zip(last["f"], last["c"], strict=True)}


def _older_code(whole: WholeStore, codes: Any, names: list[str]) -> dict[str, int]:
    """Per function, distinct key values of records made by code other than its latest."""
    latest = latest_code(whole)
    if not latest and CODE not in whole.table.column_names:
        return {}
    code = whole.column(CODE).to_numpy(zero_copy_only=False)
    expected = np.array([latest.get(name) for name in names], dtype=object)[codes]
    rows = np.flatnonzero(pd.notna(code) & (code != expected))
    older: dict[str, set[tuple[str, ...]]] = {}
    keys = sorted(whole.keys)
    for record, row in zip(whole.records(rows.tolist()), rows.tolist(), strict=True):
        values = tuple(record[k] for k in keys if k in record)
        older.setdefault(names[codes[row]], set()).add(values)
    return {name: len(v) for name, v in older.items()}


def runs_of(whole: WholeStore, function: str) -> Any:
    """A boolean numpy mask of one function's records."""
    return pc.equal(whole.functions, function).to_numpy(zero_copy_only=False)


def recent_runs(whole: WholeStore, rows: Any, hour_ago: datetime) -> int:
    """How many of these records finished at or after ``hour_ago``."""
    hour = int((hour_ago - _EPOCH) / timedelta(microseconds=1))
    return int(np.count_nonzero(whole.stamps[rows] >= hour))


def latest_timed(whole: WholeStore, rows: Any, most: int) -> list[tuple[datetime, float]]:
    """The ``most`` latest timed runs among these records: (finish time, seconds), sorted.

    Timed: a duration ``float()`` reads, not negative nor NaN, and a time.
    Durations are read only of the records at or after the ``most``-th
    latest time (more, if too few of those are timed).
    """
    if DURATION not in whole.table.column_names:
        return []
    column = whole.column(DURATION)
    stamps = whole.stamps
    candidates = np.flatnonzero(
        rows & (stamps != MISSING) & column.is_valid().to_numpy(zero_copy_only=False)
    )
    want = most
    while True:
        picked = candidates
        if 0 < want < len(candidates):
            latest = np.partition(stamps[candidates], -want)[-want]
            picked = candidates[stamps[candidates] >= latest]
        durations = _durations(pc.take(column, pa.array(picked, pa.int64())))
        timed = durations >= 0  # (not NaN)
        if most <= 0 or int(timed.sum()) >= most or len(picked) == len(candidates):
            break
        want *= 4
    picked, durations = picked[timed], durations[timed]
    order = np.lexsort((durations, stamps[picked]))[-most:]
    return [(_instant(int(stamps[picked[k]])), float(durations[k])) for k in order]


def _durations(column: Any) -> Any:
    """Each cell as ``float()`` reads it (NaN where it does not); stet's form parsed by Arrow."""
    durations = np.full(len(column), np.nan)
    form = pc.fill_null(pc.match_substring_regex(column, DURATION_FORM), False)
    fast = form.to_numpy(zero_copy_only=False)
    if fast.any():
        durations[fast] = pc.cast(pc.filter(column, form), pa.float64()).to_numpy()
    for i in np.flatnonzero(~fast):
        try:
            durations[i] = float(column[int(i)].as_py())
        except ValueError:
            continue
    return durations


# -- read ---------------------------------------------------------------------

#: Decoded values one object may stand for in many cells (never changed in place).
_SHAREABLE: Final = (int, float, bool, str, bytes, type(None), PurePath, Encoded)


def _series(values: list[Any], index: Any, has_null: bool) -> pd.Series[Any]:
    """The column of cells ``values[index]`` (null index: absent), typed as `stet.read` types it."""
    kinds = {type(v) for v in values}
    if has_null:
        kinds.add(type(None))
    positions = pc.fill_null(index, len(values)).to_numpy(zero_copy_only=False)
    if len(kinds) == 1 and kinds <= {int, float, bool, str}:
        return pd.Series(values).take(positions).reset_index(drop=True)
    pool = np.empty(len(values) + 1, dtype=object)
    pool[: len(values)] = values
    pool[len(values)] = None
    return pd.Series(pool[positions], dtype=object)


def _encoded(column: Any) -> tuple[list[str], Any]:
    """The distinct texts of a column and each cell's index into them (null: absent)."""
    encoded = pc.dictionary_encode(column.combine_chunks())
    return encoded.dictionary.to_pylist(), encoded.indices


def _key_series(column: Any, decode: Callable[[str], object], location: str) -> Any:
    numbers = canonical_ints(column)
    if numbers is not None:
        return pd.Series(numbers)

    def checked(text: str) -> object:
        try:
            return decode(text)
        except ValueError as exc:
            raise StoreError(location, f"a key cell cannot be read: {exc}") from None

    distinct, index = _encoded(column)
    values = [checked(t) for t in distinct]
    if all(isinstance(v, (*_SHAREABLE, np.generic)) for v in values):
        return _series(values, index, column.null_count > 0)
    cells = [None if t is None else checked(t) for t in column.to_pylist()]
    return pd.Series(cells, dtype=object)


def _meta_series(name: str, column: Any) -> Any:
    micros = cast_stamps(column) if name == TIMESTAMP else None
    if micros is None and name == TIMESTAMP and _all_match(column, STAMP_FORM):
        micros = parse_stamps(column)
        if np.count_nonzero(micros != MISSING) != len(column) - column.null_count:
            micros = None  # a cell that is no time: as the record-by-record path does
    if micros is not None:
        stamps: Any = pd.Series(micros.astype("datetime64[us]")).dt.tz_localize(UTC)
        stamps[micros == MISSING] = pd.NaT
        sample = pc.drop_null(column)[0].as_py()
        kind = pd.to_datetime(
            pd.Series([meta_value(TIMESTAMP, sample)], dtype=object), utc=True, format="ISO8601"
        ).dtype
        return stamps.astype(kind)
    if name == DURATION and not column.null_count:
        try:  # the numbers Arrow reads, float() reads as the same numbers
            return pd.Series(pc.cast(column, pa.float64()).to_numpy())
        except pa.ArrowInvalid:
            pass
    distinct, index = _encoded(column)
    values = [meta_value(name, t) for t in distinct]
    return _series(values, index, column.null_count > 0)


def _all_match(column: Any, form: str) -> bool:
    present = pc.drop_null(column)
    return len(present) > 0 and bool(pc.all(pc.match_substring_regex(present, form)).as_py())


def frame_columns(whole: WholeStore) -> tuple[list[str], list[str]]:
    """The key and meta columns of `frame_of`'s frame, in its order.

    Key columns as the functions' patterns name them; meta columns in the
    order of the first record holding each (the file's order among ties).
    """
    keys: dict[str, None] = {}
    for _, cols in whole.patterns():
        keys.update(dict.fromkeys(cols))
    table = whole.table
    firsts = []
    for position, name in enumerate(table.column_names):
        if is_meta(name) and table.column(name).null_count < len(whole):
            first = pc.index(pc.is_valid(table.column(name)), True).as_py()
            firsts.append((first, position, name))
    return list(keys), [name for _, _, name in sorted(firsts)]


def frame_of(whole: WholeStore, decode: Callable[[str], object]) -> pd.DataFrame:
    """The store as `stet.read` returns it: one row per record, keys decoded."""
    keys, meta = frame_columns(whole)
    table = whole.table
    data = {name: _key_series(table.column(name), decode, whole.location) for name in keys}
    data.update({name: _meta_series(name, table.column(name)) for name in meta})
    frame = pd.DataFrame(data, index=pd.RangeIndex(len(whole)))
    if TIMESTAMP in frame and not isinstance(frame[TIMESTAMP].dtype, pd.DatetimeTZDtype):
        frame[TIMESTAMP] = pd.to_datetime(frame[TIMESTAMP], utc=True, format="ISO8601")
    return frame


def count_matching(
    whole: WholeStore,
    function: str | None,
    where: dict[str, str],
    latest: dict[str, str] | None,
) -> int:
    """How many records ``stet reset --where`` removes (see `matching_rows`)."""
    return int(matching_rows(whole, function, where, latest).sum())


def matching_rows(
    whole: WholeStore,
    function: str | None,
    where: dict[str, str],
    latest: dict[str, str] | None,
) -> Any:
    """A boolean numpy mask of the records ``stet reset --where`` removes.

    Those of ``function`` (None: any), whose key columns hold the texts of
    ``where``, and, given each function's ``latest`` code, made by another.
    """
    rows = np.ones(len(whole), dtype=bool)
    if function is not None:
        rows &= pc.equal(whole.functions, function).to_numpy(zero_copy_only=False)
    if latest is not None:
        codes, names = _codes(whole)
        code = whole.column(CODE).to_numpy(zero_copy_only=False)
        expected = np.array([latest.get(name) for name in names], dtype=object)
        rows &= pd.notna(code) & (code != expected[codes])
    for name, text in where.items():
        same = pc.fill_null(pc.equal(whole.column(name), text), False)
        rows &= same.to_numpy(zero_copy_only=False)
    return rows

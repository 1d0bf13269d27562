"""Looking after a store: status, reset, read, and importing finished work."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

from ._html import html_table
from ._lazy import is_dataframe, pd
from ._once import DEFAULT_STORE
from ._runner import Runner, display
from .backends import get_backend, open_store
from .backends._claims import claims_by_function
from .backends._registry import claims_in, is_url
from .backends._schema import CODE, FUNCTION, TIMESTAMP, identity, is_meta
from .exceptions import KeyEncodingError
from .typing import CompactingStore, Record, Store

__all__ = [
    "FunctionStatus",
    "StoreStatus",
    "compact",
    "mark_done",
    "read",
    "reset",
    "status",
]


@attrs.frozen
class FunctionStatus:
    """What a store holds for one function.

    Attributes:
        function: The function's name in the store; ``""`` for records
            without one (they count for every function with their key).
        records: Distinct finished runs.
        last_run: When the newest of them finished, or None.
        key_columns: The key parameters of its records.
        last_hour: How many finished in the hour before the status was taken.
        older_code: How many were made by a version of the function's code
            other than the one of its newest record (``_stet_code``).
        running: Claims in progress (``claim=True``): keys a live worker
            is running now.
        expired_claims: Claims whose worker stopped renewing them (it died
            or was stopped); another worker takes such a key over.
    """

    function: str
    records: int
    last_run: datetime | None
    key_columns: tuple[str, ...]
    last_hour: int = 0
    older_code: int = 0
    running: int = 0
    expired_claims: int = 0

    def _repr_html_(self) -> str:
        return html_table(_STATUS_HEADER, [_status_row(self)])


@attrs.frozen
class StoreStatus:
    """A store's summary, as `stet.status` prints it.

    Attributes:
        store: The store's location.
        records: Distinct finished runs over all functions.
        last_run: When the newest finished, or None.
        key_columns: Every key column in the store.
        functions: One entry per function, sorted by name.
    """

    store: str
    records: int
    last_run: datetime | None
    key_columns: tuple[str, ...]
    functions: tuple[FunctionStatus, ...]

    def _repr_html_(self) -> str:
        last = f", last run {self.last_run.isoformat()}" if self.last_run else ""
        caption = f"stet store {self.store}: {self.records:,} completed experiments recorded{last}"
        return html_table(_STATUS_HEADER, map(_status_row, self.functions), caption=caption)


_STATUS_HEADER = (
    "function",
    "records",
    "last run",
    "key columns",
    "last hour",
    "running",
    "expired claims",
    "older code",
)


def _status_row(f: FunctionStatus) -> tuple[object, ...]:
    """A function's status as a row of `_STATUS_HEADER` (the Jupyter table)."""
    return (
        f.function or "(records without a function)",
        f"{f.records:,}",
        f.last_run.isoformat() if f.last_run else "",
        ", ".join(f.key_columns),
        f"{f.last_hour:,}",
        f"{f.running:,}",
        f"{f.expired_claims:,}",
        f"{f.older_code:,}",
    )


def _existing(store: str | os.PathLike[str], *, claims: bool = False) -> Store:
    table = open_store(store)
    if not table.exists() and not (claims and claims_in(table)):
        raise FileNotFoundError(
            f"stet store not found: {table.location} (nothing has been recorded "
            "there yet, or the path is wrong)"
        )
    return table


def _last(stamps: Iterable[str]) -> datetime | None:
    parsed: list[datetime] = []
    for text in stamps:
        try:
            stamp = datetime.fromisoformat(text)
        except ValueError:
            continue
        parsed.append(stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC))
    return max(parsed) if parsed else None


def _store_argument(
    store: str | os.PathLike[str], store_path: str | os.PathLike[str] | None
) -> str | os.PathLike[str]:
    """The store named by ``store`` or by ``store_path``, stet 0.0.x's name for it."""
    if store_path is None:
        return store
    if os.fspath(store) != DEFAULT_STORE:
        raise TypeError(
            f"got two stores, store={os.fspath(store)!r} and store_path="
            f"{os.fspath(store_path)!r}; give one (store_path is the 0.0.x name of store)"
        )
    return store_path


def status(
    store: str | os.PathLike[str] = DEFAULT_STORE,
    *,
    store_path: str | os.PathLike[str] | None = None,
) -> StoreStatus:
    """Print and return a summary of a store.

    Prints the store, how many runs are recorded, the last one, and the key
    columns, then one line per function when the store holds several, and
    the claims in progress when workers use ``claim=True``.

    Args:
        store: The store.
        store_path: The same, by its stet 0.0.x name.

    Raises:
        FileNotFoundError: There is no store at ``store``.
        StoreError: The store cannot be read.
    """
    table = _existing(_store_argument(store, store_path), claims=True)
    rows = table.records()
    claims = claims_by_function(claims_in(table), time.time())
    keys: dict[str, set[tuple[tuple[str, ...], tuple[str, ...]]]] = {fn: set() for fn in claims}
    stamps: dict[str, list[str]] = {}
    for row in rows:
        function, cols, values = identity(row, table.location)
        keys.setdefault(function, set()).add((cols, values))
        if TIMESTAMP in row:
            stamps.setdefault(function, []).append(row[TIMESTAMP])
    latest = _latest_code(table, rows)
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    older: dict[str, set[tuple[str, ...]]] = {}
    for row in rows:
        function, _, values = identity(row, table.location)
        code = row.get(CODE)
        if code is not None and code != latest.get(function):
            older.setdefault(function, set()).add(values)
    functions = tuple(
        FunctionStatus(
            function=fn,
            records=len(keys[fn]),
            last_run=_last(stamps.get(fn, [])),
            key_columns=_columns(c for c, _ in keys[fn]),
            last_hour=sum(1 for s in stamps.get(fn, []) if _after(s, hour_ago)),
            older_code=len(older.get(fn, ())),
            running=claims.get(fn, (0, 0))[0],
            expired_claims=claims.get(fn, (0, 0))[1],
        )
        for fn in sorted(keys)
    )
    result = StoreStatus(
        store=table.location,
        records=sum(f.records for f in functions),
        last_run=_last(s for ss in stamps.values() for s in ss),
        key_columns=_columns(c for f in keys.values() for c, _ in f),
        functions=functions,
    )
    _print_status(result)
    return result


def _latest_code(table: Store, rows: list[Record]) -> dict[str, str]:
    """Each function's code hash on its newest record that has one."""
    newest: dict[str, tuple[str, str]] = {}
    for row in rows:
        code = row.get(CODE)
        if code is None:
            continue
        function = identity(row, table.location)[0]
        stamp = row.get(TIMESTAMP, "")
        if function not in newest or stamp >= newest[function][0]:
            newest[function] = (stamp, code)
    return {function: code for function, (_, code) in newest.items()}


def _after(text: str, moment: datetime) -> bool:
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        return False
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)) >= moment


def _columns(groups: Iterable[tuple[str, ...]]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for cols in groups:
        seen.update(dict.fromkeys(cols))
    return tuple(seen)


def _print_status(s: StoreStatus) -> None:
    print(f"[stet] Store: {s.store}")
    print(f"[stet] {s.records} completed experiments recorded")
    if s.last_run is not None:
        print(f"[stet] Last run: {s.last_run.isoformat()}")
    print(f"[stet] Key columns: {', '.join(s.key_columns) or '(none)'}")
    recent = sum(f.last_hour for f in s.functions)
    if recent:
        print(f"[stet] {recent} finished in the last hour")
    if len(s.functions) > 1:
        for f in s.functions:
            name = f.function or "(records without a function)"
            last = f" (last run {f.last_run.isoformat()})" if f.last_run else ""
            print(
                f"[stet]   {name}: {f.records} recorded{last}; key columns: "
                f"{', '.join(f.key_columns) or '(none)'}"
            )
    for f in s.functions:
        if f.running or f.expired_claims:
            expired = (
                f"; {f.expired_claims} claim(s) expired (their worker stopped; the key "
                "runs again when a worker reaches it)"
                if f.expired_claims
                else ""
            )
            print(f"[stet] {f.function or '(no function)'}: {f.running} running now{expired}")
    for f in s.functions:
        if f.older_code:
            name = f.function or "(records without a function)"
            print(
                f"[stet] {name}: {f.older_code} record(s) made by an older version of its "
                "code (stet reset STORE --function NAME --stale-code forgets them)"
            )


def compact(store: str | os.PathLike[str]) -> int:
    """Fold a shared-directory store's many writer files into one.

    After a big array job ``records/`` holds a file per task; compaction
    reads the files whose writers are gone (sealed at exit, or of a process
    of this machine that no longer runs) and writes their runs, once each,
    to one ``records/compacted-*.csv``, which appears whole before the
    folded files are deleted. It is safe while writers run (their files are
    left alone) and if killed at any instant (at worst runs are in two
    files, which readers count once and the next compaction folds).

    Args:
        store: A shared-directory store (``*.stetdir``).

    Returns:
        How many files were folded (0: nothing to do).

    Raises:
        FileNotFoundError: There is no store at ``store``.
        ValueError: The store is of a kind that is one file already.

    Example:
        >>> import os, tempfile, stet
        >>> path = os.path.join(tempfile.mkdtemp(), "runs.stetdir")
        >>> @stet.once(store=path, quiet=True)
        ... def run(seed: int) -> None: ...
        >>> for seed in range(3):
        ...     run(seed)
        >>> stet.backends.open_store(path).flush()  # what this process's exit does
        >>> stet.compact(path)  # doctest: +ELLIPSIS
        [stet] Folded 1 file(s) of ...runs.stetdir into one
        1
    """
    table = _existing(store)
    if not isinstance(table, CompactingStore):
        raise ValueError(
            f"{table.location} is one file already; only a shared-directory store "
            "(*.stetdir) is compacted"
        )
    folded = table.compact()
    if folded:
        print(f"[stet] Folded {folded} file(s) of {table.location} into one")
    else:
        print(
            f"[stet] Nothing to fold in {table.location}: its files are one already, "
            "or still being written"
        )
    return folded


def reset(
    store: str | os.PathLike[str] = DEFAULT_STORE,
    key_dict: Mapping[str, object] | None = None,
    *,
    function: str | None = None,
    stale_code: bool = False,
    store_path: str | os.PathLike[str] | None = None,
) -> int:
    """Forget finished runs so that they run again.

    With no ``key_dict``, clears the whole store, asking ``[y/N]`` first when
    standard input is a terminal: the store's file is deleted, as in stet
    0.0.x (see `StoreBackend.clear` for the stores emptied in place), and a store
    that does not exist is left as it is. With ``function``, only that
    function's records go. With a ``key_dict`` of ordinary values, every
    record whose listed columns hold these values goes: all of a run's key
    parameters, or some of them for every run that shares those.

    Args:
        store: The store.
        key_dict: The runs to forget: key parameters and their values.
        function: Only this function's records.
        stale_code: Only records made by a version of their function's code
            other than the newest record's (see `StoreStatus`).
        store_path: ``store``, by its stet 0.0.x name.

    Returns:
        How many records were removed.

    Raises:
        FileNotFoundError: There is no store at ``store`` (with ``key_dict``,
            ``function`` or ``stale_code``).
        KeyEncodingError: ``key_dict`` gives a string, as stet 0.0.x took
            them (``{"alpha": "0.1"}``), that matches no record while the
            value it spells (``0.1``) does; the message shows the call to write.
    """
    store = _store_argument(store, store_path)
    if key_dict is None and function is None and not stale_code:
        return _clear(store)
    table = _existing(store)
    if key_dict is not None:
        words = [f"{os.fspath(store)!r}"] if os.fspath(store) != DEFAULT_STORE else []
        words.append("key_dict={key}")
        if function is not None:
            words.append(f"function={function!r}")
        call = f"stet.reset({', '.join(words)})"
        removed = get_backend(store).remove_matching(key_dict, function, call)
        shown = ", ".join(f"{k}={display(v)}" for k, v in key_dict.items())
        if removed:
            print(f"[stet] Removed {removed} record(s) of {shown} from {table.location}")
        else:
            print(f"[stet] No record of {shown} in {table.location}")
        return removed
    if stale_code:
        return _reset_stale(table, function)
    if not _confirm(f"{function}'s records", table):
        return 0
    removed = table.delete(lambda record: record.get(FUNCTION, "") == function)
    print(f"[stet] Store cleared: {table.location} ({function})")
    return removed


def _confirm(what: str, table: Store) -> bool:
    if sys.stdin is not None and sys.stdin.isatty():
        answer = input(f"[stet] Clear {what} from {table.location}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("[stet] Aborted.")
            return False
    return True


def _clear(store: str | os.PathLike[str]) -> int:
    table = open_store(store)
    if not table.exists():
        print(f"[stet] No store at {table.location}; nothing to clear")
        return 0
    if not _confirm("all records", table):
        return 0
    linked = not is_url(os.fspath(store)) and os.path.islink(os.fspath(store))
    removed = table.clear(in_place=linked)
    print(f"[stet] Store cleared: {table.location}")
    return removed


def _reset_stale(table: Store, function: str | None) -> int:
    latest = _latest_code(table, table.records())

    def stale(record: Record) -> bool:
        name = identity(record, table.location)[0]
        code = record.get(CODE)
        if function is not None and name != function:
            return False
        return code is not None and code != latest.get(name)

    removed = table.delete(stale)
    print(f"[stet] Removed {removed} record(s) made by older code from {table.location}")
    return removed


def read(store: str | os.PathLike[str] = DEFAULT_STORE) -> pd.DataFrame:
    """The store's records as a DataFrame, one row per record.

    Key columns hold the decoded values (numbers as numbers, strings as
    strings; a column that mixes kinds, or that some records lack, is of
    dtype object with None where absent). ``_stet_timestamp`` is a tz-aware
    UTC datetime column.

    Raises:
        FileNotFoundError: There is no store at ``store``.
    """
    _existing(store)
    records = get_backend(store).load()
    columns: dict[str, None] = {}
    for record in records:
        columns.update(dict.fromkeys(c for c in record if not is_meta(c)))
    meta: dict[str, None] = {}
    for record in records:
        meta.update(dict.fromkeys(c for c in record if is_meta(c)))
    data = {c: _column([r.get(c) for r in records]) for c in [*columns, *meta]}
    frame = pd.DataFrame(data, index=pd.RangeIndex(len(records)))
    if TIMESTAMP in frame:
        frame[TIMESTAMP] = pd.to_datetime(frame[TIMESTAMP], utc=True, format="ISO8601")
    return frame


def _column(values: list[Any]) -> pd.Series[Any]:
    kinds = {type(v) for v in values}
    if len(kinds) == 1 and kinds <= {int, float, bool, str}:
        return pd.Series(values)
    return pd.Series(values, dtype=object)


def _runner_of(func: Callable[..., Any]) -> Runner:
    runner = getattr(func, "__stet__", None)
    if not isinstance(runner, Runner):
        raise TypeError(f"needs a function decorated with @stet.once, got {func!r}")
    return runner


def _grid_keys(runner: Runner, rows: pd.DataFrame | Iterable[Any]) -> list[tuple[str, ...]]:
    """The key texts of each row (defaults applied), naming the row of any problem."""
    records: Iterable[Any] = rows.to_dict("records") if is_dataframe(rows) else rows
    defaults = {
        name: p.default
        for name, p in runner.signature.parameters.items()
        if p.default is not p.empty
    }
    keys: list[tuple[str, ...]] = []
    for number, row in enumerate(records):
        if isinstance(row, tuple | list):
            keys.append(_positional_key(runner, number, row))
            continue
        if not isinstance(row, Mapping):
            raise TypeError(
                f"row {number} is a {type(row).__name__}; give each row as a mapping of "
                f"parameter names to values, or a tuple of values in the order of "
                f"{runner.label}{runner.signature}, or pass a pandas DataFrame"
            )
        arguments: dict[str, Any] = {}
        for name in runner.cols:
            if name in row:
                arguments[name] = row[name]
            elif name in defaults:
                arguments[name] = defaults[name]
            else:
                raise ValueError(
                    f"row {number} has no value for key parameter {name!r} of "
                    f"{runner.label} (columns: {sorted(map(str, row))})"
                )
        try:
            keys.append(runner.encode_key(arguments))
        except KeyEncodingError as exc:
            raise KeyEncodingError(
                exc.value_type, exc.parameter, f"row {number}{exc.where}", exc.reason
            ) from None
    return keys


def _positional_key(runner: Runner, number: int, row: Sequence[Any]) -> tuple[str, ...]:
    """The key texts of a row given as values in the function's parameter order."""
    try:
        arguments = runner.arguments(tuple(row), {})
    except TypeError as exc:
        raise TypeError(
            f"row {number} {tuple(row)!r} does not fit {runner.label}{runner.signature}: {exc}"
        ) from None
    try:
        return runner.encode_key(arguments)
    except KeyEncodingError as exc:
        raise KeyEncodingError(
            exc.value_type, exc.parameter, f"row {number}{exc.where}", exc.reason
        ) from None


def mark_done(func: Callable[..., Any], rows: pd.DataFrame | Iterable[Mapping[str, Any]]) -> int:
    """Record existing results as finished runs of a decorated function.

    Each row gives the values of the function's key parameters (extra
    columns are ignored; a missing parameter takes its default). All rows
    are written in one transaction, so importing 100,000 takes seconds.

    Args:
        func: A function decorated with `stet.once`.
        rows: A DataFrame or an iterable of mappings.

    Returns:
        How many runs were newly recorded (ones already there are skipped).

    Raises:
        TypeError: ``func`` is not decorated with `stet.once`.
        ValueError: A row lacks a key parameter that has no default.
        KeyEncodingError: A value cannot be keyed.
    """
    runner = _runner_of(func)
    keys = _grid_keys(runner, rows)
    added = runner.store.add(runner.name, runner.cols, keys)
    if not runner.config.quiet:
        print(f"[stet] Marked {added} run(s) of {runner.label} as done in {runner.store.location}")
    return added

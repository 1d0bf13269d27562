"""`stet.status`: what a store holds, per function, as a summary to print or read."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import attrs

from ._failures_api import FailureCount, count_failures, failures_in
from ._html import html_table
from ._inspect import FunctionFacts, function_facts
from ._once import DEFAULT_STORE
from ._store_arg import existing_store, store_argument
from .backends import open_store
from .backends._claims import claims_by_function
from .backends._registry import claims_in
from .backends._schema import CODE, TIMESTAMP, identity
from .backends._table import whole_store
from .typing import Failure, Record, Store

__all__ = ["FunctionStatus", "StoreStatus", "latest_code", "status"]


@attrs.frozen
class FunctionStatus:
    """What a store holds for one function.

    Attributes:
        function: The function's name in the store; ``""`` for records
            without one (they count for every function with their key).
        records: Distinct finished runs.
        last_run: When the newest of them finished, or None.
        key_columns: The key parameters of its records; of its newest
            failure while none of its runs has finished.
        last_hour: How many finished in the hour before the status was taken.
        older_code: How many were made by a version of the function's code
            other than the one of its newest record (``_stet_code``).
        running: Claims in progress (``claim=True``): keys a live worker
            is running now.
        expired_claims: Claims whose worker stopped renewing them (it died
            or was stopped); another worker takes such a key over.
        failed: Calls that raised (failures recorded beside the store).
        failed_keys: Distinct keys among them.
    """

    function: str
    records: int
    last_run: datetime | None
    key_columns: tuple[str, ...]
    last_hour: int = 0
    older_code: int = 0
    running: int = 0
    expired_claims: int = 0
    failed: int = 0
    failed_keys: int = 0

    def _repr_html_(self) -> str:
        return html_table(_STATUS_HEADER, [_status_row(self)])


@attrs.frozen
class StoreStatus:
    """A store's summary, as `stet.status` prints it.

    Attributes:
        store: The store's location.
        records: Distinct finished runs over all functions.
        last_run: When the newest finished, or None.
        key_columns: Every key column in the store (those of functions with
            only failures too).
        functions: One entry per function, sorted by name.
        failed: Calls that raised, over all functions (see `stet.failures`).
        failed_keys: Distinct keys among them.
    """

    store: str
    records: int
    last_run: datetime | None
    key_columns: tuple[str, ...]
    functions: tuple[FunctionStatus, ...]
    failed: int = 0
    failed_keys: int = 0

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
    "failed",
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
        f"{f.failed:,}",
    )


def status(
    store: str | os.PathLike[str] = DEFAULT_STORE,
    *,
    store_path: str | os.PathLike[str] | None = None,
) -> StoreStatus:
    """Print and return a summary of a store.

    Prints the store, how many runs are recorded, the last one, and the key
    columns, then one line per function when the store holds several, the
    claims in progress when workers use ``claim=True``, and how many calls
    failed (``N failed (M distinct keys)``; `stet.failures` lists them).

    Args:
        store: The store.
        store_path: The same, by its stet 0.0.x name.

    Raises:
        FileNotFoundError: There is no store at ``store``.
        StoreError: The store cannot be read.
    """
    table = open_store(store_argument(store, store_path))
    found = failures_in(table)
    failed = count_failures(found)
    if not failed:  # a store with only failures in it yet is there
        table = existing_store(store_argument(store, store_path), claims=True)
    claims = claims_by_function(claims_in(table), time.time())
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    facts = function_facts(whole_store(table), hour_ago) if table.exists() else {}
    none = FunctionFacts(records=0, last_run=None, key_columns=(), last_hour=0, older_code=0)
    functions = tuple(
        FunctionStatus(
            function=fn,
            records=facts.get(fn, none).records,
            last_run=facts.get(fn, none).last_run,
            key_columns=facts.get(fn, none).key_columns or _failed_columns(found, fn),
            last_hour=facts.get(fn, none).last_hour,
            older_code=facts.get(fn, none).older_code,
            running=claims.get(fn, (0, 0))[0],
            expired_claims=claims.get(fn, (0, 0))[1],
            failed=failed.get(fn, FailureCount()).failures,
            failed_keys=failed.get(fn, FailureCount()).keys,
        )
        for fn in sorted({*claims, *facts, *failed})
    )
    lasts = [f.last_run for f in facts.values() if f.last_run is not None]
    result = StoreStatus(
        store=table.location,
        records=sum(f.records for f in functions),
        last_run=max(lasts) if lasts else None,
        key_columns=_columns(f.key_columns for f in functions),
        functions=functions,
        failed=sum(f.failed for f in functions),
        failed_keys=sum(f.failed_keys for f in functions),
    )
    _print_status(result)
    return result


def latest_code(table: Store, rows: list[Record]) -> dict[str, str]:
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


def _failed_columns(found: list[Failure], function: str) -> tuple[str, ...]:
    """The key columns of ``function``'s newest failure (none without one)."""
    mine = [f for f in found if f.function == function]
    return max(mine, key=lambda f: f.time).cols if mine else ()


def _key_columns(columns: tuple[str, ...], records: int, of: str) -> str:
    """What a status line shows for these key columns: where they come from without records."""
    if records:
        return ", ".join(columns) or "(none)"
    if columns:
        return f"{', '.join(columns)} (of {of} failures; no run has finished yet)"
    return "(none yet: no run has finished)"


def _columns(groups: Iterable[tuple[str, ...]]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for cols in groups:
        seen.update(dict.fromkeys(cols))
    return tuple(seen)


def _print_status(s: StoreStatus) -> None:
    print(f"[stet] Store: {s.store}")
    print(f"[stet] {s.records} completed experiments recorded")
    if s.failed:
        print(
            f"[stet] {s.failed} failed ({s.failed_keys} distinct keys; "
            "stet failures STORE lists them)"
        )
    if s.last_run is not None:
        print(f"[stet] Last run: {s.last_run.isoformat()}")
    print(f"[stet] Key columns: {_key_columns(s.key_columns, s.records, 'the')}")
    recent = sum(f.last_hour for f in s.functions)
    if recent:
        print(f"[stet] {recent} finished in the last hour")
    if len(s.functions) > 1:
        for f in s.functions:
            name = f.function or "(records without a function)"
            last = f" (last run {f.last_run.isoformat()})" if f.last_run else ""
            failed = f"; {f.failed} failed ({f.failed_keys} distinct keys)" if f.failed else ""
            print(
                f"[stet]   {name}: {f.records} recorded{last}; key columns: "
                f"{_key_columns(f.key_columns, f.records, 'its')}{failed}"
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

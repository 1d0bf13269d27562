"""What failed and why: `failures` lists failed runs, `forget_failures` drops them.

A call that raises leaves a `stet.typing.Failure` beside the store (see
`stet.backends._failures`); these functions read them back for people:
grouped by exception type and message, so 200 crashes of one bug are one
row, with key values decoded by the codec.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import attrs

from ._codec import KeyCodec
from ._lazy import pd
from ._once import DEFAULT_STORE
from .backends import open_store
from .exceptions import KeyEncodingError, StoreError
from .typing import FailingStore, Failure, Store

__all__ = [
    "FailureCount",
    "carry_failures",
    "count_failures",
    "failures",
    "failures_in",
    "forget_failures",
]


@attrs.frozen
class FailureCount:
    """How many calls of one function failed, and how many distinct keys they were."""

    failures: int = 0
    keys: int = 0


def failures_in(table: Store) -> list[Failure]:
    """The failures kept beside ``table``; none for a store that keeps none."""
    return table.failures() if isinstance(table, FailingStore) else []


def carry_failures(source: Store, dest: Store) -> int:
    """Add ``source``'s failures that ``dest`` lacks to ``dest``; return how many.

    A failure already in ``dest`` (the same run, exception, host, time and
    attempt) is not added again, so merging twice adds nothing the second
    time. A ``dest`` that keeps no failures is an error if there are any.
    """
    found = failures_in(source)
    if not found:
        return 0
    if not isinstance(dest, FailingStore):
        raise StoreError(
            dest.location,
            f"keeps no failures, so the {len(found)} failure(s) of {source.location} "
            "cannot be merged into it; merge into a built-in store",
        )
    have = set(dest.failures())
    added = 0
    for failure in found:
        if failure not in have:
            dest.add_failure(failure)
            have.add(failure)
            added += 1
    return added


def count_failures(found: list[Failure]) -> dict[str, FailureCount]:
    """Failures and distinct keys, per function."""
    counts: dict[str, list[Any]] = {}
    for failure in found:
        entry = counts.setdefault(failure.function, [0, set()])
        entry[0] += 1
        entry[1].add((failure.cols, failure.values))
    return {name: FailureCount(n, len(keys)) for name, (n, keys) in sorted(counts.items())}


def _failing(store: str | os.PathLike[str]) -> FailingStore:
    table = open_store(store)
    if not isinstance(table, FailingStore):
        raise StoreError(table.location, "this store keeps no failures (it is not a FailingStore)")
    return table


def _key_text(codec: KeyCodec, failure: Failure) -> str:
    shown = []
    for col, text in zip(failure.cols, failure.values, strict=True):
        try:
            value: object = codec.decode(text)
        except (KeyEncodingError, ValueError):
            value = text
        shown.append(f"{col}={value!r}")
    return ", ".join(shown)


def _time(text: str) -> Any:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return pd.NaT


def failures(
    store: str | os.PathLike[str] = DEFAULT_STORE, *, grouped: bool = True
) -> pd.DataFrame:
    """The failed runs of a store, grouped by exception type and message.

    Grouped (the default), one row per function, exception type and
    message, most frequent first: ``function``, ``type``, ``message``,
    ``failures`` (calls that failed so), ``keys`` (distinct keys among
    them), ``first`` and ``last`` (tz-aware times) and ``example`` (the
    key of the latest, as ``seed=3, alpha=0.1``). With ``grouped=False``,
    one row per failure: its key columns decoded to Python values, then
    ``_stet_function``, ``_stet_type``, ``_stet_message``,
    ``_stet_traceback``, ``_stet_host``, ``_stet_duration``,
    ``_stet_time`` and ``_stet_attempt``.

    Raises:
        FileNotFoundError: Neither a record nor a failure is there.

    Example:
        >>> import stet, tempfile, os
        >>> store = os.path.join(tempfile.mkdtemp(), "runs.csv")
        >>> @stet.once(store=store)
        ... def run(seed: int) -> None:
        ...     raise ValueError("diverged")
        >>> for seed in (1, 2):
        ...     try:
        ...         run(seed)
        ...     except ValueError:
        ...         pass
        >>> stet.failures(store)[["type", "message", "failures", "keys"]]
                 type   message  failures  keys
        0  ValueError  diverged         2     2
    """
    table = open_store(store)
    found = failures_in(table)
    if not found and not table.exists():
        raise FileNotFoundError(
            f"stet store not found: {table.location} (nothing has been recorded "
            "there yet, or the path is wrong)"
        )
    codec = KeyCodec()
    if not grouped:
        rows = []
        for f in found:
            row: dict[str, object] = {}
            for col, text in zip(f.cols, f.values, strict=True):
                row[col] = codec.decode(text)
            row.update(
                _stet_function=f.function, _stet_type=f.type, _stet_message=f.message,
                _stet_traceback=f.traceback, _stet_host=f.host, _stet_duration=f.duration,
                _stet_time=_time(f.time), _stet_attempt=f.attempt,
            )  # fmt: skip
            rows.append(row)
        return pd.DataFrame(rows)
    groups: dict[tuple[str, str, str], list[Failure]] = {}
    for f in found:
        groups.setdefault((f.function, f.type, f.message), []).append(f)
    grouped_rows = []
    for (function, type_, message), members in groups.items():
        members.sort(key=lambda f: f.time)
        grouped_rows.append(
            {
                "function": function,
                "type": type_,
                "message": message,
                "failures": len(members),
                "keys": len({(f.cols, f.values) for f in members}),
                "first": _time(members[0].time),
                "last": _time(members[-1].time),
                "example": _key_text(codec, members[-1]),
            }
        )
    columns = ["function", "type", "message", "failures", "keys", "first", "last", "example"]
    frame = pd.DataFrame(grouped_rows, columns=columns)
    if frame.empty:
        return frame
    frame = frame.sort_values(
        ["failures", "function", "type", "message"], ascending=[False, True, True, True]
    )
    return frame.reset_index(drop=True)


def forget_failures(
    store: str | os.PathLike[str] = DEFAULT_STORE,
    key_dict: Mapping[str, object] | None = None,
    *,
    function: str | None = None,
) -> int:
    """Forget failed runs (all, or those whose key holds ``key_dict``); return how many.

    Records of finished runs are not touched. A key that failed is run
    again by a function with ``Once(retry="never")`` once its failures are
    forgotten. ``key_dict`` is matched as `stet.reset` matches records: a
    subset of the key's columns, values encoded by the codec.
    """
    table = _failing(store)
    wanted: dict[str, str] = {}
    if key_dict is not None:
        codec = KeyCodec()
        for name, value in key_dict.items():
            try:
                wanted[name] = codec.encode(value)
            except KeyEncodingError as exc:
                raise exc.for_parameter(name) from None

    def doomed(failure: Failure) -> bool:
        if function is not None and failure.function != function:
            return False
        texts = dict(zip(failure.cols, failure.values, strict=True))
        return all(texts.get(name) == text for name, text in wanted.items())

    return table.forget_failures(doomed)

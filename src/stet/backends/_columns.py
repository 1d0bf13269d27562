"""The one rule for a store's column names, shared by every store.

Writers (the decorator, the backend classes, ``stet import``, `mark_done`)
check key names with `check_key_columns` before anything runs; readers
accept a column with `check_column_name`. The reader accepts everything a
writer of this or an earlier release could write, so a store written today
is read today and by every later release.

- A key column is a parameter name: a Python identifier (``alpha``,
  ``__x``, ``λ``), or a dotted path of them (``cfg.model.lr``).
- Names starting with ``_stet_`` are stet's own metadata columns: never a key.
- A store may add limits of its own (`ColumnLimits`): SQLite compares column
  names without regard to case, so one key cannot hold ``Alpha`` and
  ``alpha`` there; PostgreSQL keeps at most 63 bytes of a name.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import attrs

from ..exceptions import StoreError
from ._schema import PREFIX as META_PREFIX

__all__ = ["META_PREFIX", "ColumnLimits", "check_column_name", "check_key_columns", "key_problem"]

#: The prefix of stet's metadata columns.


@attrs.frozen
class ColumnLimits:
    """What a store cannot hold in its column names, beyond the shared rule.

    Attributes:
        case_insensitive: Two names that differ only in case are one column.
        max_bytes: The longest name, in UTF-8 bytes, or None for no limit.
    """

    case_insensitive: bool = False
    max_bytes: int | None = None
    reserved: frozenset[str] = frozenset()


NO_LIMITS: Final = ColumnLimits()
# SQLite folds the case of ASCII letters only.
_ASCII_LOWER: Final = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def key_problem(name: object) -> str | None:
    """Why ``name`` cannot be a key column (the shared rule), or None if it can."""
    if not isinstance(name, str):
        return f"is a {type(name).__name__}, not a string"
    if not all(part.isidentifier() for part in name.split(".")):
        return "is not a parameter name (a Python identifier, or a dotted path of them)"
    if name.startswith(META_PREFIX):
        return f"is reserved: names starting with {META_PREFIX} are stet's own columns"
    return None


def check_key_columns(
    names: Iterable[str], limits: ColumnLimits = NO_LIMITS, *, store: str = ""
) -> None:
    """Raise `ValueError` unless every name can be a key column of the store.

    Args:
        names: The key's column names.
        limits: The store's own limits.
        store: The store, for the message.
    """
    seen: dict[str, str] = {}
    what = f"the store {store}" if store else "this store"
    for name in names:
        problem = key_problem(name)
        if problem is not None:
            raise ValueError(
                f"key name {name!r} {problem}; rename the parameter or leave it out of key="
            )
        if limits.max_bytes is not None and len(name.encode("utf-8")) > limits.max_bytes:
            raise ValueError(
                f"key name {name!r} is {len(name.encode('utf-8'))} bytes long, but "
                f"{what} keeps at most {limits.max_bytes} bytes of a column name (it would "
                "cut the name, and the runs would never be skipped); rename the parameter "
                "or leave it out of key="
            )
        folded = name.translate(_ASCII_LOWER) if limits.case_insensitive else name
        if folded in limits.reserved or (
            limits.case_insensitive and folded.startswith(META_PREFIX)
        ):
            raise ValueError(
                f"key name {name!r} is taken by {what}'s own columns (its column names "
                "ignore case); rename the parameter or leave it out of key="
            )
        other = seen.get(folded)
        if other is not None:
            if other == name:
                raise ValueError(f"key name {name!r} appears twice")
            raise ValueError(
                f"key names {other!r} and {name!r} differ only in case, which "
                f"{what} cannot tell apart (SQLite column names ignore case); "
                "rename one of the parameters, or use a CSV, JSON or Parquet store"
            )
        seen[folded] = name


def check_column_name(name: str, path: str) -> str:
    """Return ``name`` if a store may hold such a column, else raise `StoreError`."""
    if name.startswith(META_PREFIX) and name.isidentifier():
        return name
    if key_problem(name) is not None:
        raise StoreError(
            path,
            f"column {name!r} is not a parameter name or a {META_PREFIX} column; "
            "the file was not written by stet or was edited by hand",
        )
    return name

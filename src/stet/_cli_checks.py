"""What a ``stet`` command names, checked before it acts.

The store exists, the function and the key columns are the store's (with a
suggestion when they are not), ``KEY=VALUE`` texts are as a store writes
them. A `Failure` is a message for the user: one line on stderr, exit code 1.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from ._codec import KeyCodec
from .backends import open_store
from .backends._columns import key_problem
from .backends._registry import claims_in, entry
from .backends._table import WholeStore

__all__ = ["Failure", "check_columns", "check_function", "existing", "one_function", "parse_where"]


class Failure(Exception):
    """A user-facing failure: its message goes to stderr, exit code 1."""


def existing(store: str, *, claims: bool = False) -> None:
    try:
        entry(store)
    except ValueError as exc:
        raise Failure(str(exc)) from None
    table = open_store(store)
    if not table.exists() and not (claims and claims_in(table)):
        raise Failure(f"no store at {table.location}")


def _functions(table: WholeStore) -> set[str]:
    """The functions a store holds records of ("" for records without one)."""
    return set(table.functions.unique().to_pylist())


def check_function(table: WholeStore, function: str) -> None:
    """Fail, with a suggestion, if the store holds no records of ``function``."""
    known = _functions(table)
    if function in known or "" in known:
        return
    names = sorted(known)
    close = difflib.get_close_matches(function, names, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise Failure(
        f"{table.location} has no records of function {function!r}; {hint}"
        f"(its functions: {', '.join(map(repr, names)) or 'none'})"
    )


def check_columns(table: WholeStore, names: Iterable[str], function: str | None) -> None:
    """Fail, with a suggestion, if a --where column is not a key column of the store."""
    columns: set[str] = set()
    for fn, cols in table.patterns():
        if function is None or fn in (function, ""):
            columns.update(cols)
    for name in names:
        if name not in columns:
            close = difflib.get_close_matches(name, sorted(columns), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise Failure(
                f"{table.location} has no key column {name!r}; {hint}"
                f"(its key columns: {', '.join(sorted(columns)) or 'none'})"
            )


def one_function(table: WholeStore, function: str | None) -> str:
    """The function named, checked; else the store's only one ("" for none)."""
    if function is not None:
        check_function(table, function)
        return function
    named = sorted(_functions(table) - {""})
    if len(named) > 1:
        raise Failure(
            f"{table.location} holds several functions ({', '.join(map(repr, named))}); "
            "name one with --function"
        )
    return named[0] if named else ""


def parse_where(pairs: list[str]) -> dict[str, str]:
    codec = KeyCodec()
    texts: dict[str, str] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep:
            raise Failure(f"--where takes KEY=VALUE, got {pair!r}")
        problem = key_problem(name)
        if problem is not None:
            raise Failure(f"--where {pair!r}: {name!r} {problem}")
        try:
            codec.decode(text)
        except ValueError:
            raise Failure(
                f"--where {pair!r}: {text!r} is not a value as the store writes it "
                "(strings that look like numbers start with an apostrophe: '007)"
            ) from None
        texts[name] = text
    return texts

"""Changing and reading a store: reset, compact, read, and importing finished work.

`stet.status` is in `stet._status`; the rows `mark_done` takes are read by
`stet._rows`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ._failures_api import failures_in, forget_failures
from ._inspect import frame_of
from ._lazy import pd
from ._once import DEFAULT_STORE
from ._rows import _done_before, _grid_keys, _runner_of
from ._signature import display
from ._status import latest_code
from ._store_arg import existing_store, store_argument
from .backends import get_backend, open_store
from .backends._registry import is_url
from .backends._schema import CODE, FUNCTION, identity
from .backends._table import whole_store
from .typing import CompactingStore, FailingStore, Record, Store

__all__ = ["compact", "mark_done", "read", "reset"]


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
    table = existing_store(store)
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
    failed: bool = False,
    store_path: str | os.PathLike[str] | None = None,
) -> int:
    """Forget finished runs so that they run again (or, with ``failed``, failed runs).

    With no ``key_dict``, clears the whole store, asking ``[y/N]`` first when
    standard input is a terminal: the store's file is deleted, as in stet
    0.0.x (see `StoreBackend.clear` for the stores emptied in place), and a store
    that does not exist is left as it is. With ``function``, only that
    function's records go. With a ``key_dict`` of ordinary values, every
    record whose listed columns hold these values goes: all of a run's key
    parameters, or some of them for every run that shares those.

    Clearing the whole store also forgets its failures (a fresh start);
    ``key_dict``, ``function`` and ``stale_code`` remove records only. With
    ``failed=True`` only failures go (those of ``key_dict`` and
    ``function`` when given, see `forget_failures`), and the records stay.

    Args:
        store: The store.
        key_dict: The runs to forget: key parameters and their values.
        function: Only this function's records.
        stale_code: Only records made by a version of their function's code
            other than the newest record's (see `StoreStatus`).
        failed: Forget failed runs instead of records.
        store_path: ``store``, by its stet 0.0.x name.

    Returns:
        How many records (with ``failed``, failures) were removed.

    Raises:
        FileNotFoundError: There is no store at ``store`` (with ``key_dict``,
            ``function`` or ``stale_code``).
        KeyEncodingError: ``key_dict`` gives a string, as stet 0.0.x took
            them (``{"alpha": "0.1"}``), that matches no record while the
            value it spells (``0.1``) does; the message shows the call to write.
    """
    store = store_argument(store, store_path)
    if failed:
        forgotten = forget_failures(store, key_dict, function=function)
        print(f"[stet] Forgot {forgotten} failure(s) in {open_store(store).location}")
        return forgotten
    if key_dict is None and function is None and not stale_code:
        return _clear(store)
    table = existing_store(store)
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
    failures = failures_in(table)
    if not table.exists() and not failures:
        print(f"[stet] No store at {table.location}; nothing to clear")
        return 0
    if not _confirm("all records" + (" and failures" if failures else ""), table):
        return 0
    linked = not is_url(os.fspath(store)) and os.path.islink(os.fspath(store))
    removed = table.clear(in_place=linked) if table.exists() else 0
    if failures and isinstance(table, FailingStore):
        table.forget_failures()
    print(f"[stet] Store cleared: {table.location}")
    return removed


def _reset_stale(table: Store, function: str | None) -> int:
    latest = latest_code(table, table.records())

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
    existing_store(store)
    backend = get_backend(store)
    return frame_of(whole_store(backend.store), backend.codec.decode)


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
    old: dict[int, tuple[str, ...]] = {}
    keys = _grid_keys(runner, rows, old)
    if old:  # no second record of a run an older stet recorded
        runner.store.refresh()
        before = _done_before(runner, runner.store, old)
        keys = [key for number, key in enumerate(keys) if number not in before]
    added = runner.store.add(runner.name, runner.cols, keys)
    if not runner.config.quiet:
        print(f"[stet] Marked {added} run(s) of {runner.label} as done in {runner.store.location}")
    return added

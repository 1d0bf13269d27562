"""The ``stet`` commands that read or change a store: status, show, reset, why,
merge, compact and export (``stet import`` is in `stet._cli_import`)."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs

from ._api import compact, read
from ._cli_checks import (
    Failure,
    check_columns,
    check_function,
    existing,
    one_function,
    parse_where,
)
from ._cli_failures import reset_failed
from ._codec import KeyCodec
from ._explain import Explanation, explain_texts, recorded_before
from ._export import csv_of, csv_of_store
from ._export_file import write_export
from ._failures_api import carry_failures, failures_in
from ._grid_points import store_grid
from ._inspect import count_matching, frame_of, matching_rows
from ._inspect import latest_code as latest_columns
from ._lazy import pd
from ._status import status
from .backends import get_backend, open_store
from .backends._registry import entry, is_url
from .backends._schema import CODE, FUNCTION, TIMESTAMP, identity, is_meta
from .backends._table import WholeStore, delete_selected, whole_store
from .typing import FailingStore, Record

__all__ = [
    "compact_command",
    "export_command",
    "merge_command",
    "reset_command",
    "show_command",
    "status_command",
    "why_command",
]


def status_command(args: argparse.Namespace) -> int:
    # status() says if there is no store (claims or failures may be all there is yet)
    if not args.json:
        status(args.store)
        return 0
    with contextlib.redirect_stdout(io.StringIO()):
        summary = status(args.store)
    print(json.dumps(attrs.asdict(summary, value_serializer=_plain), indent=2))
    return 0


def _plain(instance: object, field: object, value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _show_grid(args: argparse.Namespace) -> int:
    if args.json:
        raise Failure("--grid draws a picture; leave out --json (stet.progress gives the numbers)")
    names = [name.strip() for name in args.grid.split(",")]
    if len(names) != 2 or not all(names):
        raise Failure(f"--grid takes two key columns, ROWS,COLUMNS; got {args.grid!r}")
    table = open_store(args.store)
    function = one_function(whole_store(table), args.function)
    grid, left_out = store_grid(table, function, names, time.time(), KeyCodec().decode)
    print(grid.text(shutil.get_terminal_size().columns))
    if left_out:
        print(
            f"[stet] {left_out} record(s) of {function or 'the store'} with other key columns "
            "are not in the grid"
        )
    return 0


def show_command(args: argparse.Namespace) -> int:
    existing(args.store)
    if args.grid is not None:
        return _show_grid(args)
    if args.function is not None:
        check_function(whole_store(open_store(args.store)), args.function)
    frame = read(args.store)
    if args.function is not None and FUNCTION in frame:
        frame = frame[frame[FUNCTION] == args.function]
    total = len(frame)
    if TIMESTAMP in frame:
        frame = frame.sort_values(TIMESTAMP, kind="stable")
    if args.limit > 0:
        frame = frame.tail(args.limit)
    if args.json:
        for record in frame.to_dict("records"):
            print(json.dumps({k: _json_value(v) for k, v in record.items() if not _missing(v)}))
        return 0
    frame = frame.dropna(axis="columns", how="all")
    keys = [c for c in frame.columns if not is_meta(c)]
    shown = frame[[*keys, *(c for c in (FUNCTION, TIMESTAMP) if c in frame)]]
    if total == 0:
        print("(no records)")
        return 0
    with pd.option_context("display.max_rows", None, "display.width", 200):
        print(shown.to_string(index=False))
    print(f"({len(shown)} of {total} records)")
    return 0


def _missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # a list or an array: a value
        return False


def _json_value(value: Any) -> Any:
    """A decoded key value as JSON can hold it (repr for what it cannot)."""
    if isinstance(value, datetime | pd.Timestamp):
        return value.isoformat()
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    return str(value)


def reset_command(args: argparse.Namespace) -> int:
    if args.failed:
        if args.stale_code:
            raise Failure("--failed and --stale-code do not go together: failures have no code")
        return reset_failed(args.store, args.function, parse_where(args.where), yes=args.yes)
    existing(args.store)
    table = open_store(args.store)
    where = parse_where(args.where)
    whole = whole_store(table)
    if args.function is not None:
        check_function(whole, args.function)
    check_columns(whole, where, args.function)
    latest = latest_columns(whole) if args.stale_code else {}

    def chosen(row: Record) -> bool:
        function, cols, values = identity(row, table.location)
        keys = dict(zip(cols, values, strict=True))
        if args.function is not None and function != args.function:
            return False
        if args.stale_code and row.get(CODE) in (None, latest.get(function)):
            return False
        return all(keys.get(name) == text for name, text in where.items())

    stale = latest if args.stale_code else None
    count = count_matching(whole, args.function, where, stale)
    if count == 0:
        print("[stet] No record matches; nothing to remove.")
        return 0
    if not args.yes:
        if not sys.stdin.isatty():
            raise Failure(f"would remove {count} record(s); add --yes to do it without asking")
        answer = input(f"[stet] Remove {count} record(s) from {table.location}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("[stet] Aborted.")
            return 0
    if not where and args.function is None and not args.stale_code:
        # Everything: the store's file goes, and its failures, as stet.reset() does.
        linked = not is_url(args.store) and os.path.islink(args.store)
        removed = table.clear(in_place=linked)
        if isinstance(table, FailingStore):
            table.forget_failures()
    else:
        # Picked again from the store as it is under the lock (it may have grown).
        def select(now: WholeStore) -> Any:
            return matching_rows(now, args.function, where, stale)

        removed = delete_selected(table, select, chosen, whole=whole)
    print(f"[stet] Removed {removed} record(s) from {table.location}")
    return 0


def why_command(args: argparse.Namespace) -> int:
    existing(args.store)
    whole = whole_store(open_store(args.store))
    function = one_function(whole, args.function)
    wanted = parse_where(args.key)
    check_columns(whole, wanted, function or None)
    shown = ", ".join(f"{name}={text}" for name, text in wanted.items())
    call = f"{function or 'run'}({shown})"
    explanation = explain_texts(whole, function, wanted, call)
    if not explanation.done:
        finished = recorded_before(whole, function, wanted)
        if finished is not None:  # as a stet of key rules 2 wrote a pruned class value
            explanation = Explanation(call, True, 1, (), finished)
    print(explanation)
    return 0


def merge_command(args: argparse.Namespace) -> int:
    entry(args.dest)
    for source in args.sources:
        try:
            existing(source)
        except Failure:
            if not failures_in(open_store(source)):  # failures alone are merged too
                raise
    dest = open_store(args.dest)
    total = failed = 0
    for source in args.sources:
        table = open_store(source)
        added = dest.merge(table.records())
        carried = carry_failures(table, dest)
        also = f", {carried} new failure(s)" if carried else ""
        print(f"[stet] {source}: {added} new record(s){also}")
        total += added
        failed += carried
    dest.flush()
    also = f" and {failed} failure(s)" if failed else ""
    print(f"[stet] Merged {total} record(s){also} into {dest.location}")
    return 0


def compact_command(args: argparse.Namespace) -> int:
    existing(args.store)
    compact(args.store)
    return 0


def export_command(args: argparse.Namespace) -> int:
    existing(args.store)
    _not_the_store(args.store, args.file)
    suffix = Path(args.file).suffix.lower()
    if suffix == ".csv":
        count = _export_csv(args.store, args.file)
    elif suffix == ".parquet":
        frame = read(args.store)
        count = len(frame)
        keys = [c for c in frame.columns if not is_meta(c)]
        text = frame.astype({c: "string" for c in keys if frame[c].dtype == object})
        write_export(args.file, lambda path: text.to_parquet(path, index=False))
    else:
        raise Failure(f"{args.file}: export writes .csv or .parquet files")
    print(f"[stet] Wrote {count} record(s) to {args.file}")
    failed = len(failures_in(open_store(args.store)))
    if failed:
        print(
            f"[stet] {failed} failure(s) are not exported (export writes finished runs); "
            f"`stet failures {args.store} --all` lists them"
        )
    return 0


def _not_the_store(store: str, file: str) -> None:
    """Refuse to export over the store: itself (by any link), a file in it, its journal."""
    if is_url(store):
        return
    here, there = os.path.realpath(store), os.path.realpath(file)
    same = os.path.exists(there) and os.path.samefile(there, here)
    if same or there in (here, here + ".journal.csv") or there.startswith(here + os.sep):
        raise Failure(
            f"{file}: that is the store {store} itself (or one of its files), which export "
            "would overwrite with a copy stet cannot read back; export to another file"
        )


def _export_csv(store: str, file: str) -> int:
    """Write the store as ``stet.read(store).to_csv(file, index=False)`` would; how many rows."""
    backend = get_backend(store)
    whole = whole_store(backend.store)
    data: bytes | memoryview | None = csv_of_store(whole, backend.codec.decode)
    if data is None:
        frame = frame_of(whole, backend.codec.decode)
        data = csv_of(frame)
        if data is None:
            write_export(file, lambda path: frame.to_csv(path, index=False))
            return len(frame)
    whole_data = data

    def written(path: str) -> None:
        with open(path, "wb") as out:
            out.write(whole_data)

    write_export(file, written)
    return len(whole)

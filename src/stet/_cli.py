"""The ``stet`` command: look after a store from a terminal.

Exit codes: 0 success, 1 failure (missing or damaged store, bad value),
2 usage error. Failures are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import io
import json
import os
import shutil
import sys
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import attrs

from . import _api, _grid
from ._codec import KeyCodec
from ._codec_legacy import canonical_from_legacy
from ._explain import explain_texts
from ._lazy import pc, pd, pq
from ._once import DEFAULT_STORE
from .backends import open_store
from .backends._columns import check_key_columns, key_problem
from .backends._records import ARROW_THREADS
from .backends._registry import claims_in, entry, is_url
from .backends._schema import CODE, FUNCTION, TIMESTAMP, identity, is_meta
from .exceptions import KeyEncodingError, StetError
from .typing import Record

__all__ = ["main"]


class _Failure(Exception):
    """A user-facing failure: its message goes to stderr, exit code 1."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stet", description="Inspect and change stet stores of finished runs."
    )
    parser.add_argument("--version", action="version", version=f"stet {version('stet')}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    status = commands.add_parser("status", help="summary of a store")
    _store_argument(status)
    status.add_argument("--json", action="store_true", help="the summary as JSON, for scripts")

    show = commands.add_parser("show", help="a table of the records")
    _store_argument(show)
    show.add_argument("--function", "-f", help="only this function's records")
    show.add_argument("--limit", "-n", type=int, default=20, help="newest N records (0: all)")
    show.add_argument("--json", action="store_true", help="the records as JSON lines, for scripts")
    show.add_argument(
        "--grid",
        "-g",
        metavar="ROWS,COLUMNS",
        help="which points are done, as a text grid of two key columns' values",
    )

    reset = commands.add_parser("reset", help="forget finished runs so they run again")
    _store_argument(reset)
    reset.add_argument("--yes", "-y", action="store_true", help="do not ask")
    reset.add_argument("--function", "-f", help="only this function's records")
    reset.add_argument(
        "--where",
        "-w",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="only records whose KEY has VALUE, written as in the store (repeatable)",
    )
    reset.add_argument(
        "--stale-code",
        action="store_true",
        help="only records made by older code than the function's newest record",
    )

    merge = commands.add_parser("merge", help="combine stores into one (any format to any)")
    merge.add_argument("sources", nargs="+", metavar="SRC")
    merge.add_argument("dest", metavar="DEST")

    imp = commands.add_parser("import", help="mark results in a CSV/Parquet file as done")
    imp.add_argument("store")
    imp.add_argument("file")
    imp.add_argument("--function", "-f", required=True, help="the function's name in the store")
    imp.add_argument("--key", "-k", required=True, help="key parameters, comma-separated")
    imp.add_argument(
        "--typed",
        action="store_true",
        help="read CSV columns with the types pandas infers (007 becomes 7); "
        "by default each cell's text is the key, as in a store written by hand",
    )

    why = commands.add_parser(
        "why", help="why a run is not skipped: what differs from the nearest record"
    )
    why.add_argument("store")
    why.add_argument(
        "--function", "-f", help="the function's name in the store (needed if it holds several)"
    )
    why.add_argument("key", nargs="+", metavar="KEY=VALUE", help="the run's key, as in the store")

    compact = commands.add_parser(
        "compact", help="fold a shared-directory store's writer files into one"
    )
    compact.add_argument("store")

    export = commands.add_parser("export", help="write the records to a CSV/Parquet file")
    export.add_argument("store")
    export.add_argument("file")
    return parser


def _store_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "store", nargs="?", default=DEFAULT_STORE, help=f"the store (default {DEFAULT_STORE})"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = _parser().parse_args(argv)
    try:
        handler = _COMMANDS[args.command]
        return handler(args)
    except (_Failure, StetError, FileNotFoundError, ValueError) as exc:
        print(f"stet: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stet: interrupted", file=sys.stderr)
        return 130


def _existing(store: str, *, claims: bool = False) -> None:
    try:
        entry(store)
    except ValueError as exc:
        raise _Failure(str(exc)) from None
    table = open_store(store)
    if not table.exists() and not (claims and claims_in(table)):
        raise _Failure(f"no store at {table.location}")


def _status(args: argparse.Namespace) -> int:
    _existing(args.store, claims=True)  # the first runs may be in progress
    if not args.json:
        _api.status(args.store)
        return 0
    with contextlib.redirect_stdout(io.StringIO()):
        summary = _api.status(args.store)
    print(json.dumps(attrs.asdict(summary, value_serializer=_plain), indent=2))
    return 0


def _plain(instance: object, field: object, value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _functions(table: Any) -> set[str]:
    """The functions a store holds records of ("" for records without one)."""
    return {identity(row, table.location)[0] for row in table.records()}


def _check_function(table: Any, function: str) -> None:
    """Fail, with a suggestion, if the store holds no records of ``function``."""
    known = _functions(table)
    if function in known or "" in known:
        return
    names = sorted(known)
    close = difflib.get_close_matches(function, names, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise _Failure(
        f"{table.location} has no records of function {function!r}; {hint}"
        f"(its functions: {', '.join(map(repr, names)) or 'none'})"
    )


def _check_columns(table: Any, names: Iterable[str], function: str | None) -> None:
    """Fail, with a suggestion, if a --where column is not a key column of the store."""
    columns: set[str] = set()
    for row in table.records():
        fn, cols, _ = identity(row, table.location)
        if function is None or fn in (function, ""):
            columns.update(cols)
    for name in names:
        if name not in columns:
            close = difflib.get_close_matches(name, sorted(columns), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise _Failure(
                f"{table.location} has no key column {name!r}; {hint}"
                f"(its key columns: {', '.join(sorted(columns)) or 'none'})"
            )


def _one_function(table: Any, function: str | None) -> str:
    """The function named, checked; else the store's only one ("" for none)."""
    if function is not None:
        _check_function(table, function)
        return function
    named = sorted(_functions(table) - {""})
    if len(named) > 1:
        raise _Failure(
            f"{table.location} holds several functions ({', '.join(map(repr, named))}); "
            "name one with --function"
        )
    return named[0] if named else ""


def _show_grid(args: argparse.Namespace) -> int:
    if args.json:
        raise _Failure("--grid draws a picture; leave out --json (stet.progress gives the numbers)")
    names = [name.strip() for name in args.grid.split(",")]
    if len(names) != 2 or not all(names):
        raise _Failure(f"--grid takes two key columns, ROWS,COLUMNS; got {args.grid!r}")
    table = open_store(args.store)
    function = _one_function(table, args.function)
    grid, left_out = _grid.store_grid(table, function, names, time.time(), KeyCodec().decode)
    print(grid.text(shutil.get_terminal_size().columns))
    if left_out:
        print(
            f"[stet] {left_out} record(s) of {function or 'the store'} with other key columns "
            "are not in the grid"
        )
    return 0


def _show(args: argparse.Namespace) -> int:
    _existing(args.store)
    if args.grid is not None:
        return _show_grid(args)
    if args.function is not None:
        _check_function(open_store(args.store), args.function)
    frame = _api.read(args.store)
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


def _where(pairs: list[str]) -> dict[str, str]:
    codec = KeyCodec()
    texts: dict[str, str] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep:
            raise _Failure(f"--where takes KEY=VALUE, got {pair!r}")
        problem = key_problem(name)
        if problem is not None:
            raise _Failure(f"--where {pair!r}: {name!r} {problem}")
        try:
            codec.decode(text)
        except ValueError:
            raise _Failure(
                f"--where {pair!r}: {text!r} is not a value as the store writes it "
                "(strings that look like numbers start with an apostrophe: '007)"
            ) from None
        texts[name] = text
    return texts


def _reset(args: argparse.Namespace) -> int:
    _existing(args.store)
    table = open_store(args.store)
    where = _where(args.where)
    if args.function is not None:
        _check_function(table, args.function)
    _check_columns(table, where, args.function)
    rows = table.records()
    latest = _api._latest_code(table, rows) if args.stale_code else {}

    def chosen(row: Record) -> bool:
        function, cols, values = identity(row, table.location)
        keys = dict(zip(cols, values, strict=True))
        if args.function is not None and function != args.function:
            return False
        if args.stale_code and row.get(CODE) in (None, latest.get(function)):
            return False
        return all(keys.get(name) == text for name, text in where.items())

    count = sum(chosen(row) for row in rows)
    if count == 0:
        print("[stet] No record matches; nothing to remove.")
        return 0
    if not args.yes:
        if not sys.stdin.isatty():
            raise _Failure(f"would remove {count} record(s); add --yes to do it without asking")
        answer = input(f"[stet] Remove {count} record(s) from {table.location}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("[stet] Aborted.")
            return 0
    if not where and args.function is None and not args.stale_code:
        # Everything: the store's file goes, as stet.reset() does.
        linked = not is_url(args.store) and os.path.islink(args.store)
        removed = table.clear(in_place=linked)
    else:
        removed = table.delete(chosen)
    print(f"[stet] Removed {removed} record(s) from {table.location}")
    return 0


def _why(args: argparse.Namespace) -> int:
    _existing(args.store)
    table = open_store(args.store)
    function = _one_function(table, args.function)
    wanted = _where(args.key)
    _check_columns(table, wanted, function or None)
    shown = ", ".join(f"{name}={text}" for name, text in wanted.items())
    call = f"{function or 'run'}({shown})"
    print(explain_texts(table, function, wanted, call))
    return 0


def _merge(args: argparse.Namespace) -> int:
    entry(args.dest)
    for source in args.sources:
        _existing(source)
    dest = open_store(args.dest)
    total = 0
    for source in args.sources:
        added = dest.merge(open_store(source).records())
        print(f"[stet] {source}: {added} new record(s)")
        total += added
    dest.flush()
    print(f"[stet] Merged {total} record(s) into {dest.location}")
    return 0


def _compact(args: argparse.Namespace) -> int:
    _existing(args.store)
    _api.compact(args.store)
    return 0


def _import_columns(args: argparse.Namespace) -> tuple[str, ...]:
    names = [k.strip() for k in args.key.split(",") if k.strip()]
    if not names:
        raise _Failure(f"--key {args.key!r} names no column")
    try:
        backend = entry(args.store)
        check_key_columns(names, backend.limits, store=args.store)
    except ValueError as exc:
        raise _Failure(f"--key: {exc}") from None
    return tuple(sorted(names))


def _missing_column(path: str, cols: tuple[str, ...], columns: Sequence[str]) -> None:
    missing = [c for c in cols if c not in columns]
    if missing:
        raise _Failure(f"{path} has no column {missing[0]!r} (columns: {list(columns)})")


def _empty_cell(path: str, row: int, column: str) -> _Failure:
    return _Failure(
        f"{path}, data row {row + 1}, column {column!r}: the cell is empty, which is "
        "no key value; fill it in (None for None) or leave the row out"
    )


def _csv_keys(path: str, cols: tuple[str, ...], typed: bool) -> list[tuple[str, ...]]:
    """The key texts of a CSV file's rows: each cell's text read by the codec's
    rule for cells written by hand, or, ``typed``, the values pandas infers."""
    try:
        text = pd.read_csv(path, dtype=str, na_filter=False)
    except UnicodeDecodeError as exc:
        raise _Failure(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except (ValueError, pd.errors.ParserError) as exc:
        raise _Failure(f"{path} cannot be read as CSV: {exc}") from None
    _missing_column(path, cols, list(text.columns))
    rows = list(text[list(cols)].itertuples(index=False, name=None))
    for number, row in enumerate(rows):
        for column, cell in zip(cols, row, strict=True):
            if cell == "":
                raise _empty_cell(path, number, column)
    if not typed:
        return [tuple(canonical_from_legacy(cell) for cell in row) for row in rows]
    frame = pd.read_csv(path, usecols=list(cols))
    return _encoded(path, cols, frame[list(cols)].itertuples(index=False, name=None))


def _parquet_keys(path: str, cols: tuple[str, ...]) -> list[tuple[str, ...]]:
    """The key texts of a Parquet file's rows: its columns carry their types."""
    try:
        _missing_column(path, cols, pq.read_schema(path).names)
        table = pq.read_table(path, columns=list(cols), use_threads=ARROW_THREADS)
    except (OSError, ValueError) as exc:  # pyarrow's errors derive from these
        raise _Failure(f"{path} cannot be read as Parquet: {exc}") from None
    nulls = [
        (pc.index(table.column(c).is_null(), True).as_py(), c)
        for c in table.column_names
        if table.column(c).null_count
    ]
    if nulls:  # the first in reading order, as for a CSV file
        raise _empty_cell(path, *min(nulls, key=lambda n: (n[0], cols.index(n[1]))))
    values = [table.column(c).to_pylist() for c in cols]
    return _encoded(path, cols, zip(*values, strict=True))


def _encoded(
    path: str, cols: tuple[str, ...], rows: Iterable[tuple[object, ...]]
) -> list[tuple[str, ...]]:
    codec = KeyCodec()
    keys: list[tuple[str, ...]] = []
    for number, row in enumerate(rows):
        try:
            keys.append(tuple(codec.encode(value) for value in row))
        except KeyEncodingError as exc:
            raise _Failure(f"{path}, data row {number + 1}: {exc}") from None
    return keys


def _import(args: argparse.Namespace) -> int:
    path: str = args.file
    cols = _import_columns(args)
    if not Path(path).exists():
        raise _Failure(f"no file at {path}")
    if not Path(path).is_file():
        raise _Failure(f"{path} is not a regular file")
    entry(args.store)
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        keys = _csv_keys(path, cols, args.typed)
    elif suffix == ".parquet":
        keys = _parquet_keys(path, cols)
    else:
        raise _Failure(f"{path}: import reads .csv or .parquet files")
    table = open_store(args.store)
    added = table.add(args.function, cols, keys)
    print(f"[stet] Marked {added} run(s) of {args.function} as done in {table.location}")
    return 0


def _export(args: argparse.Namespace) -> int:
    _existing(args.store)
    frame = _api.read(args.store)
    suffix = Path(args.file).suffix.lower()
    if suffix == ".csv":
        frame.to_csv(args.file, index=False)
    elif suffix == ".parquet":
        keys = [c for c in frame.columns if not is_meta(c)]
        text = frame.astype({c: "string" for c in keys if frame[c].dtype == object})
        text.to_parquet(args.file, index=False)
    else:
        raise _Failure(f"{args.file}: export writes .csv or .parquet files")
    print(f"[stet] Wrote {len(frame)} record(s) to {args.file}")
    return 0


_COMMANDS = {
    "status": _status,
    "show": _show,
    "reset": _reset,
    "import": _import,
    "export": _export,
    "why": _why,
    "merge": _merge,
    "compact": _compact,
}

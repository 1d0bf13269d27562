"""``stet import``: mark the rows of a CSV or Parquet file as finished runs."""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence
from pathlib import Path

from ._cli_checks import Failure
from ._codec import KeyCodec
from ._codec_legacy import canonical_from_legacy
from ._lazy import pc, pd, pq
from .backends import open_store
from .backends._columns import check_key_columns
from .backends._records import ARROW_THREADS
from .backends._registry import entry
from .exceptions import KeyEncodingError

__all__ = ["import_command"]


def _import_columns(args: argparse.Namespace) -> tuple[str, ...]:
    names = [k.strip() for k in args.key.split(",") if k.strip()]
    if not names:
        raise Failure(f"--key {args.key!r} names no column")
    try:
        backend = entry(args.store)
        check_key_columns(names, backend.limits, store=args.store)
    except ValueError as exc:
        raise Failure(f"--key: {exc}") from None
    return tuple(sorted(names))


def _missing_column(path: str, cols: tuple[str, ...], columns: Sequence[str]) -> None:
    missing = [c for c in cols if c not in columns]
    if missing:
        raise Failure(f"{path} has no column {missing[0]!r} (columns: {list(columns)})")


def _empty_cell(path: str, row: int, column: str) -> Failure:
    return Failure(
        f"{path}, data row {row + 1}, column {column!r}: the cell is empty, which is "
        "no key value; fill it in (None for None) or leave the row out"
    )


def _csv_keys(path: str, cols: tuple[str, ...], typed: bool) -> list[tuple[str, ...]]:
    """The key texts of a CSV file's rows: each cell's text read by the codec's
    rule for cells written by hand, or, ``typed``, the values pandas infers."""
    try:
        text = pd.read_csv(path, dtype=str, na_filter=False)
    except UnicodeDecodeError as exc:
        raise Failure(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except (ValueError, pd.errors.ParserError) as exc:
        raise Failure(f"{path} cannot be read as CSV: {exc}") from None
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
        raise Failure(f"{path} cannot be read as Parquet: {exc}") from None
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
            raise Failure(f"{path}, data row {number + 1}: {exc}") from None
    return keys


def import_command(args: argparse.Namespace) -> int:
    path: str = args.file
    cols = _import_columns(args)
    if not Path(path).exists():
        raise Failure(f"no file at {path}")
    if not Path(path).is_file():
        raise Failure(f"{path} is not a regular file")
    entry(args.store)
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        keys = _csv_keys(path, cols, args.typed)
    elif suffix == ".parquet":
        keys = _parquet_keys(path, cols)
    else:
        raise Failure(f"{path}: import reads .csv or .parquet files")
    table = open_store(args.store)
    added = table.add(args.function, cols, keys)
    print(f"[stet] Marked {added} run(s) of {args.function} as done in {table.location}")
    return 0

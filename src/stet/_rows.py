"""The rows a user gives a decorated function's helpers, as that function's key texts.

`stet.mark_done`, `stet.progress`, `stet.pending` and `stet.shard` take rows
as mappings, tuples in the function's parameter order, or a DataFrame; this
module turns each into the key texts the decorator would compute, naming
the row of any problem.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ._lazy import is_dataframe, pd
from ._rows_bulk import bulk_keys
from ._runner import Runner
from .exceptions import KeyEncodingError, KeyPathError
from .typing import Store

__all__ = ["_done_before", "_grid_keys", "_runner_of"]


def _runner_of(func: Callable[..., Any]) -> Runner:
    runner = getattr(func, "__stet__", None)
    if not isinstance(runner, Runner):
        raise TypeError(f"needs a function decorated with @stet.once, got {func!r}")
    return runner


def _grid_keys(
    runner: Runner,
    rows: pd.DataFrame | Iterable[Any],
    old: dict[int, tuple[str, ...]] | None = None,
) -> Sequence[tuple[str, ...]]:
    """The key texts of each row (defaults applied), naming the row of any problem.

    ``old`` (if given) receives, by row number, the texts key rules 2 gave
    the rows where they differ (a pruned class value; see `_done_before`).
    """
    if not is_dataframe(rows) and not isinstance(rows, Sequence):
        rows = list(rows)  # read once: a generator cannot be read again below
    keys = bulk_keys(runner, rows)  # None for a key with paths
    if keys is not None:
        return keys
    return _keys_row_by_row(runner, rows, old if runner.pruned else None)


def _done_before(runner: Runner, store: Store, old: dict[int, tuple[str, ...]]) -> set[int]:
    """The rows whose runs a record of key rules 2 or older holds (``store`` just refreshed)."""
    records = runner.old_records
    if records is None:
        return set()
    return {number for number, texts in old.items() if records.holds(store, texts, fresh=True)}


def _keys_row_by_row(
    runner: Runner,
    rows: pd.DataFrame | Iterable[Any],
    old: dict[int, tuple[str, ...]] | None = None,
) -> list[tuple[str, ...]]:
    """`_grid_keys` one row at a time: the reference the column-wise path must match."""
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
            if old is not None:
                arguments = runner.arguments(tuple(row), {})
                values = {c: runner.value_of(arguments, c) for c in runner.pruned}
                _note_old(runner, number, values, keys[-1], old)
            continue
        if not isinstance(row, Mapping):
            raise TypeError(
                f"row {number} is a {type(row).__name__}; give each row as a mapping of "
                f"parameter names to values, or a tuple of values in the order of "
                f"{runner.label}{runner.signature}, or pass a pandas DataFrame"
            )
        values = _column_values(runner, number, row, defaults)
        try:
            keys.append(runner.encode_columns(values))
        except KeyEncodingError as exc:
            raise KeyEncodingError(
                exc.value_type, exc.parameter, f"row {number}{exc.where}", exc.reason
            ) from None
        if old is not None:
            _note_old(runner, number, values, keys[-1], old)
    return keys


def _note_old(
    runner: Runner,
    number: int,
    values: dict[str, Any],
    key: tuple[str, ...],
    old: dict[int, tuple[str, ...]],
) -> None:
    texts = runner.old_key(values, key)
    if texts is not None:
        old[number] = texts


def _column_values(
    runner: Runner, number: int, row: Mapping[str, Any], defaults: dict[str, Any]
) -> dict[str, Any]:
    """The key columns' values of a row of parameters, or of key columns.

    A key path (``cfg.model.lr``) is taken from the row's column of that
    name (as `stet.read` gives it) or else from its parameter's value.
    """
    values: dict[str, Any] = {}
    for name in runner.cols:
        path = runner.paths.get(name)
        if name in row and (path is None or path[0] != name):
            values[name] = row[name]
            continue
        top = name if path is None else path[0]
        if top in row:
            value = row[top]
        elif top in defaults:
            value = defaults[top]
        else:
            raise ValueError(
                f"row {number} has no value for key parameter {name!r} of "
                f"{runner.label} (columns: {sorted(map(str, row))})"
            )
        try:
            values[name] = value if path is None else path[1](value)
        except KeyPathError as exc:
            raise exc.for_call(f"{runner.label}(), row {number}") from None
    return values


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

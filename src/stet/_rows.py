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
from ._runner import Runner
from .exceptions import KeyEncodingError

__all__ = ["_grid_keys", "_runner_of"]


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

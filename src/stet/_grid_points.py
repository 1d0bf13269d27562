"""Counting a sweep's points into a `Grid`, by the values of two key parameters.

`Points` holds the sets `stet.progress` builds and counts them when a grid
is asked for; `store_grid` counts every combination of the values a
store's records hold (``stet show STORE --grid a,b``). Both sort the values
and assemble the cells here; `stet._grid` draws them.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Collection, Mapping, Sequence

from ._grid import Grid, GridCell
from .backends._index import SEP, Packed
from .backends._registry import claims_in
from .backends._schema import TIMESTAMP, identity
from .typing import FailingStore, Store

__all__ = ["Points", "check_names", "store_grid", "unpack"]


def _order(value: object, text: str) -> tuple[int, float | int | str]:
    """Sort numbers numerically (NaN last), then booleans, strings, None, the rest."""
    if isinstance(value, bool):
        return (2, int(value))
    if isinstance(value, int | float):
        return (1, math.inf) if value != value else (0, value)
    if isinstance(value, str):
        return (3, value)
    if value is None:
        return (4, "")
    return (5, text)


def _assemble(
    function: str,
    names: tuple[str, str],
    others: tuple[str, ...],
    counts: Mapping[tuple[str, str], Sequence[int]],
    decode: Callable[[str], object],
    cross: int = 0,
) -> Grid:
    """The grid of the counted cells; with ``cross``, every cell holds that many points."""
    row_texts = {r for r, _ in counts}
    column_texts = {c for _, c in counts}
    rows = sorted(((decode(t), t) for t in row_texts), key=lambda vt: _order(*vt))
    columns = sorted(((decode(t), t) for t in column_texts), key=lambda vt: _order(*vt))
    cells = []
    for _, r in rows:
        line = []
        for _, c in columns:
            done, running, pending, failed = counts.get((r, c), (0, 0, 0, 0))
            if cross:
                pending = cross - done - running - failed
            line.append(GridCell(done, running, pending, failed))
        cells.append(tuple(line))
    return Grid(
        function,
        names[0],
        names[1],
        tuple(v for v, _ in rows),
        tuple(v for v, _ in columns),
        tuple(cells),
        others,
    )


def unpack(key: Packed, width: int) -> tuple[str, ...]:
    """The texts of a key packed by `pack` for ``width`` columns."""
    if isinstance(key, tuple):
        return key
    return (key,) if width == 1 else tuple(key.split(SEP))


class Points:
    """The states of a progress grid's points, kept to draw it on demand.

    Holds the sets `stet.progress` builds anyway (the grid's distinct keys,
    those not done, those running, and those that failed before), so
    keeping them costs no copy. Not
    an attrs class, so that ``attrs.asdict(progress)`` stays the facts.
    """

    __slots__ = ("cols", "decode", "failed", "function", "keys", "names", "pending", "running")

    def __init__(
        self,
        function: str,
        names: tuple[str, ...],
        cols: tuple[str, ...],
        keys: Collection[Packed],
        pending: Collection[Packed],
        running: Collection[Packed],
        decode: Callable[[str], object],
        failed: Collection[Packed] = (),
    ) -> None:
        self.function = function
        self.names = names
        self.cols = cols
        self.keys = keys
        self.pending = pending
        self.running = running
        self.decode = decode
        self.failed = failed

    def grid(self, rows: str | None, columns: str | None) -> Grid:
        """The grid of the points by the values of ``rows`` and ``columns``."""
        names = self._choose(rows, columns)
        at = (self.cols.index(names[0]), self.cols.index(names[1]))
        counts: dict[tuple[str, str], list[int]] = {}
        for key in self.keys:
            texts = unpack(key, len(self.cols))
            cell = counts.setdefault((texts[at[0]], texts[at[1]]), [0, 0, 0, 0])
            if key not in self.pending:
                cell[0] += 1
            elif key in self.running:
                cell[1] += 1
            elif key in self.failed:
                cell[3] += 1
            else:
                cell[2] += 1
        others = tuple(n for n in self.names if n not in names)
        return _assemble(self.function, names, others, counts, self.decode)

    def _choose(self, rows: str | None, columns: str | None) -> tuple[str, str]:
        if rows is None and columns is None:
            if len(self.names) != 2:
                raise ValueError(
                    f"name the two key parameters to draw, as grid(rows=..., columns=...): "
                    f"{self.function} has {len(self.names)} ({', '.join(self.names)})"
                )
            return self.names[0], self.names[1]
        if rows is None or columns is None:
            raise ValueError("give both rows= and columns=, or neither (for two key parameters)")
        check_names(self.function, self.names, (rows, columns))
        return rows, columns


def check_names(function: str, names: Sequence[str], chosen: Sequence[str]) -> None:
    """Fail unless ``chosen`` are two different names among ``names``."""
    if len(chosen) != 2 or chosen[0] == chosen[1]:
        raise ValueError(
            f"a grid takes two different key parameters, one for the rows and one for "
            f"the columns; got {', '.join(map(repr, chosen)) or 'none'}"
        )
    for name in chosen:
        if name not in names:
            close = difflib.get_close_matches(name, names, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ValueError(
                f"{name!r} is not a key parameter of {function or 'the records'}; {hint}"
                f"(key parameters: {', '.join(names) or 'none'})"
            )


def store_grid(
    table: Store, function: str, names: Sequence[str], now: float, decode: Callable[[str], object]
) -> tuple[Grid, int]:
    """The grid of a store's records of ``function``, and the records left out.

    The points are every combination of the values the records (and live
    claims) hold, one value per key column, under the function's current
    key: the key columns of its newest record. Records with other key
    columns are left out, as the decorator would not skip them either.
    """
    mine: list[tuple[str, tuple[str, ...], tuple[str, ...], str]] = []
    for row in table.records():
        fn, cols, values = identity(row, table.location)
        if fn in (function, ""):
            mine.append((fn, cols, values, row.get(TIMESTAMP, "")))
    if not mine:
        raise ValueError(f"{table.location} has no records of {function or 'any function'}")
    named = [m for m in mine if m[0] == function] or mine
    cols = max(named, key=lambda m: m[3])[1]
    check_names(function, cols, names)
    done = {values for _, c, values, _ in mine if c == cols}
    left_out = sum(1 for _, c, _, _ in mine if c != cols)
    running = {
        claim.values
        for claim in claims_in(table).values()
        if claim.function == function and claim.cols == cols and claim.live(now)
    } - done
    failed = (
        {
            failure.values
            for failure in (table.failures() if isinstance(table, FailingStore) else ())
            if failure.function == function and failure.cols == cols
        }
        - done
        - running
    )
    at = (cols.index(names[0]), cols.index(names[1]))
    seen: list[set[str]] = [set() for _ in cols]
    counts: dict[tuple[str, str], list[int]] = {}
    for state, keys in ((0, done), (1, running), (3, failed)):
        for values in keys:
            for i, text in enumerate(values):
                seen[i].add(text)
            counts.setdefault((values[at[0]], values[at[1]]), [0, 0, 0, 0])[state] += 1
    cross = math.prod(len(s) for i, s in enumerate(seen) if i not in at)
    for r in seen[at[0]]:
        for c in seen[at[1]]:
            counts.setdefault((r, c), [0, 0, 0, 0])
    others = tuple(c for c in cols if c not in names)
    grid = _assemble(function, (names[0], names[1]), others, counts, decode, cross)
    return grid, left_out

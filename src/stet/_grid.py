"""Pictures of a sweep: which points of a two-parameter grid are done.

A `Grid` counts, for each pair of values of two key parameters, the sweep's
points there that are done, running (claimed by a live worker) or pending.
It prints as a text grid (``stet show STORE --grid a,b`` prints the same),
draws as a heatmap with matplotlib (an optional dependency, imported only
when drawing), and shows as a coloured table in Jupyter. The points are
counted into a grid by `stet._grid_points`.

A point that is not done and failed before (see ``stet failures``) is
counted as failed, and a cell holding one is drawn as failed, over the
other states, so a crash stands out.
"""

from __future__ import annotations

import enum
import html
import math
import os
import shutil
import textwrap
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

import attrs

from ._signature import display
from .exceptions import MissingDependencyError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["CellState", "Grid", "GridCell"]


class CellState(enum.Enum):
    """What a cell of a `Grid` shows, from the states of its points.

    With two key parameters a cell is one point: done, running, failed or
    pending. With more, a cell holds every combination of the other
    parameters and is done only when all of them are; it is failed when any
    of them is. Code that matches on states should have a default case, as
    more may come.
    """

    DONE = "done"
    PARTLY_DONE = "partly done"
    RUNNING = "running"
    PENDING = "pending"
    FAILED = "failed"
    EMPTY = "not in the grid"


#: The character of each state in the text grid.
CHARS: Final = {
    CellState.DONE: "#",
    CellState.PARTLY_DONE: "+",
    CellState.RUNNING: "~",
    CellState.PENDING: ".",
    CellState.FAILED: "x",
    CellState.EMPTY: " ",
}
#: The colour of each state in the heatmap and the HTML table.
COLOURS: Final = {
    CellState.DONE: "#2e7d32",
    CellState.PARTLY_DONE: "#a5d6a7",
    CellState.RUNNING: "#f9a825",
    CellState.PENDING: "#e0e0e0",
    CellState.FAILED: "#c62828",
    CellState.EMPTY: "#ffffff",
}
#: Cells beyond which the HTML table gives way to a summary.
HTML_CELLS: Final = 10_000
#: Cells up to which the heatmap writes each cell's counts.
ANNOTATED_CELLS: Final = 400


@attrs.frozen
class GridCell:
    """The points of a grid that share one value of each of the two parameters.

    Attributes:
        done: Recorded.
        running: Claimed by a live worker (``claim=True``), not yet recorded.
        pending: None of these.
        failed: Not done, not running, and failed before (each point
            counted once, however often it failed).
    """

    done: int = 0
    running: int = 0
    pending: int = 0
    failed: int = 0

    @property
    def total(self) -> int:
        """How many points the cell holds."""
        return self.done + self.running + self.pending + self.failed

    @property
    def state(self) -> CellState:
        """Failed if any point is; else running if any is; else done, partly done or pending."""
        if self.total == 0:
            return CellState.EMPTY
        if self.failed:
            return CellState.FAILED
        if self.running:
            return CellState.RUNNING
        if self.done == self.total:
            return CellState.DONE
        return CellState.PARTLY_DONE if self.done else CellState.PENDING


@attrs.frozen
class Grid:
    """Which points of a sweep are done, by the values of two key parameters.

    Made by `Progress.grid` (the points of the grid given to
    `stet.progress`) or by ``stet show STORE --grid a,b`` (every
    combination of the values the store's records hold). Values are sorted:
    numbers numerically, then booleans, strings, None, and the rest by their
    key text.

    Attributes:
        function: The function's name in the store.
        rows: The parameter whose values are the rows.
        columns: The parameter whose values are the columns.
        row_values: The rows' values, top to bottom.
        column_values: The columns' values, left to right.
        cells: ``cells[i][j]`` counts the points with ``row_values[i]`` and
            ``column_values[j]``.
        others: The other key parameters, whose combinations each cell counts.
    """

    function: str
    rows: str
    columns: str
    row_values: tuple[object, ...]
    column_values: tuple[object, ...]
    cells: tuple[tuple[GridCell, ...], ...]
    others: tuple[str, ...] = ()

    @property
    def done(self) -> int:
        """Points done, over all cells."""
        return sum(c.done for row in self.cells for c in row)

    @property
    def running(self) -> int:
        """Points running, over all cells."""
        return sum(c.running for row in self.cells for c in row)

    @property
    def pending(self) -> int:
        """Points pending, over all cells."""
        return sum(c.pending for row in self.cells for c in row)

    @property
    def failed(self) -> int:
        """Points failed (not done, not running), over all cells."""
        return sum(c.failed for row in self.cells for c in row)

    @property
    def total(self) -> int:
        """Points in the grid."""
        return self.done + self.running + self.pending + self.failed

    def summary(self) -> str:
        """One line: the counts and what the rows and columns are."""
        name = self.function or "(records without a function)"
        text = (
            f"{name}: {self.done:,} of {self.total:,} done, {self.running:,} running, "
            f"{self.pending:,} pending"
        )
        failed = self.failed
        if failed:
            text += f", {failed:,} failed"
        text += f"; rows {self.rows}, columns {self.columns}"
        if self.others:
            text += f"; each cell holds every {', '.join(self.others)}"
        return text

    def _legend(self) -> list[CellState]:
        shown = {c.state for row in self.cells for c in row}
        if self.others:
            shown.add(CellState.PARTLY_DONE)
        shown.update((CellState.DONE, CellState.RUNNING, CellState.PENDING))
        return [s for s in CellState if s in shown]

    def text(self, width: int | None = None) -> str:
        """The grid as text, one character a cell (see `CHARS`) with a legend.

        Columns are labelled above their cells when the lines fit in
        ``width`` (default: the terminal's); otherwise they are numbered,
        and a key below says which value each number stands for.
        """
        if width is None:
            width = shutil.get_terminal_size().columns
        row_labels = [display(v) for v in self.row_values]
        column_labels = [display(v) for v in self.column_values]
        corner = f"{self.rows} \\ {self.columns}"
        left = max([len(corner), *map(len, row_labels)])
        chars = [[CHARS[c.state] for c in row] for row in self.cells]
        lines = [f"[stet] {self.summary()}"]
        spans = [max(1, len(label)) for label in column_labels]
        if left + sum(2 + s for s in spans) <= width:
            lines.append(corner.ljust(left) + "".join(f"  {label}" for label in column_labels))
            for label, row in zip(row_labels, chars, strict=True):
                cells = "".join(f"  {ch.center(s)}" for ch, s in zip(row, spans, strict=True))
                lines.append(label.ljust(left) + cells)
        else:
            numbers = range(1, len(column_labels) + 1)
            if len(column_labels) >= 10:
                tens = "".join(str(n // 10 % 10) if n % 10 == 0 else " " for n in numbers)
                lines.append(" " * (left + 2) + tens)
            lines.append(corner.ljust(left) + "  " + "".join(str(n % 10) for n in numbers))
            lines.extend(
                label.ljust(left) + "  " + "".join(row)
                for label, row in zip(row_labels, chars, strict=True)
            )
            key = "  ".join(f"{n}={label}" for n, label in zip(numbers, column_labels, strict=True))
            lines.extend(textwrap.wrap(f"{self.columns}: {key}", max(width, 40)))
        legend = "  ".join(
            f"{CHARS[s]} {s.value}" if s is not CellState.EMPTY else f"(blank) {s.value}"
            for s in self._legend()
        )
        lines.append(f"[stet] {legend}")
        return "\n".join(line.rstrip() for line in lines)

    def __str__(self) -> str:
        return self.text()

    def plot(self, path: str | os.PathLike[str] | None = None) -> Figure:
        """Draw the grid as a heatmap; save it to ``path`` if given.

        Rows run top to bottom and columns left to right, as in the text
        grid. Where each cell holds several points (more than two key
        parameters), small grids show ``done/total`` in each cell. The
        figure is closed in pyplot before it is returned, so a notebook
        shows it once (as the cell's value) and a loop of plots holds no
        memory; in a script, pass ``path``.

        Returns:
            The matplotlib ``Figure``.

        Raises:
            MissingDependencyError: matplotlib is not installed
                (``pip install "stet[plot]"``).
            ValueError: The grid has no points.
        """
        try:
            import matplotlib.pyplot as plt
            from matplotlib.colors import ListedColormap
            from matplotlib.patches import Patch
        except ImportError:
            raise MissingDependencyError("matplotlib", "plot", "drawing a grid") from None
        if not self.cells or not self.cells[0]:
            raise ValueError(f"{self.summary()}: there is nothing to draw")
        states = list(CellState)
        codes = [[states.index(c.state) for c in row] for row in self.cells]
        n_rows, n_columns = len(self.row_values), len(self.column_values)
        figure, ax = plt.subplots(
            figsize=(min(16.0, 4.5 + 0.35 * n_columns), min(12.0, 2.5 + 0.35 * n_rows)),
            layout="constrained",
        )
        plt.close(figure)
        ax.imshow(
            codes,
            cmap=ListedColormap([COLOURS[s] for s in states]),
            vmin=-0.5,
            vmax=len(states) - 0.5,
            interpolation="nearest",
            aspect="auto",
        )
        _ticks(ax.set_xticks, [display(v) for v in self.column_values])
        _ticks(ax.set_yticks, [display(v) for v in self.row_values])
        if any(len(display(v)) > 4 for v in self.column_values):
            ax.tick_params(axis="x", labelrotation=90)
        if max(n_rows, n_columns) <= 60:
            ax.set_xticks([j - 0.5 for j in range(1, n_columns)], minor=True)
            ax.set_yticks([i - 0.5 for i in range(1, n_rows)], minor=True)
            ax.grid(which="minor", color="white", linewidth=1)
            ax.tick_params(which="minor", length=0)
        if self.others and n_rows * n_columns <= ANNOTATED_CELLS:
            for i, row in enumerate(self.cells):
                for j, cell in enumerate(row):
                    if cell.total:
                        ax.text(
                            j,
                            i,
                            f"{cell.done}/{cell.total}",
                            ha="center",
                            va="center",
                            fontsize=7,
                            color="white" if cell.state is CellState.DONE else "black",
                        )
        ax.set_xlabel(self.columns)
        ax.set_ylabel(self.rows)
        ax.set_title(self.summary().replace("; ", "\n"), fontsize=9)
        handles = [
            Patch(facecolor=COLOURS[s], edgecolor="#9e9e9e", label=s.value) for s in self._legend()
        ]
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
        if path is not None:
            figure.savefig(os.fspath(path))
        return figure

    def _mark(self, cell: GridCell) -> str:
        """What an HTML cell shows: its counts where it holds several points."""
        return f"{cell.done}/{cell.total}" if self.others else CHARS[cell.state]

    def _repr_html_(self) -> str:
        caption = html.escape(self.summary())
        if len(self.row_values) * len(self.column_values) > HTML_CELLS:
            return f"<p>{caption} (too many cells for a table: use print() or .plot())</p>"
        corner = html.escape(f"{self.rows} \\ {self.columns}")
        head = "".join(f"<th>{html.escape(display(v))}</th>" for v in self.column_values)
        body = []
        for value, row in zip(self.row_values, self.cells, strict=True):
            cells = "".join(
                f'<td style="background:{COLOURS[c.state]};text-align:center" '
                f'title="{c.state.value}: {c.done} done, {c.running} running, '
                f'{c.pending} pending{f", {c.failed} failed" if c.failed else ""}">'
                f"{self._mark(c)}</td>"
                for c in row
            )
            body.append(f"<tr><th>{html.escape(display(value))}</th>{cells}</tr>")
        legend = " ".join(
            f'<span style="background:{COLOURS[s]};padding:0 0.5em">{html.escape(s.value)}</span>'
            for s in self._legend()
        )
        return (
            f"<table><caption>{caption}<br>{legend}</caption>"
            f"<thead><tr><th>{corner}</th>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>"
        )


def _ticks(setter: Callable[..., Any], labels: Sequence[str]) -> None:
    """Label at most about 40 ticks, so that a long axis stays legible."""
    step = max(1, math.ceil(len(labels) / 40))
    positions = range(0, len(labels), step)
    setter(list(positions), labels=[labels[p] for p in positions])

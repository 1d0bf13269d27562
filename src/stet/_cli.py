"""The ``stet`` command: look after a store from a terminal.

Exit codes: 0 success, 1 failure (missing or damaged store, bad value),
2 usage error. Failures are one line on stderr, never a traceback.

The parser and the dispatch; the commands are in `stet._cli_commands` and
`stet._cli_import`, the checks they share in `stet._cli_checks`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import version

from ._cli_checks import Failure
from ._cli_commands import (
    compact_command,
    export_command,
    merge_command,
    reset_command,
    show_command,
    status_command,
    why_command,
)
from ._cli_import import import_command
from ._once import DEFAULT_STORE
from .exceptions import StetError

__all__ = ["main"]


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
    except (Failure, StetError, FileNotFoundError, ValueError) as exc:
        print(f"stet: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stet: interrupted", file=sys.stderr)
        return 130


_COMMANDS = {
    "status": status_command,
    "show": show_command,
    "reset": reset_command,
    "import": import_command,
    "export": export_command,
    "why": why_command,
    "merge": merge_command,
    "compact": compact_command,
}

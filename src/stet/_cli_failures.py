"""``stet failures STORE``: what failed and why, grouped by exception type and message."""

from __future__ import annotations

import argparse
import sys

from ._codec import KeyCodec
from ._failures_api import count_failures, failures_in
from ._once import DEFAULT_STORE
from .backends import open_store
from .typing import FailingStore, Failure

__all__ = ["add_failures_parser", "failures_command", "failures_lines", "reset_failed"]


def _key(failure: Failure, codec: KeyCodec) -> str:
    shown = []
    for col, text in zip(failure.cols, failure.values, strict=True):
        try:
            value: object = codec.decode(text)
        except ValueError:
            value = text
        shown.append(f"{col}={value!r}")
    return ", ".join(shown)


def _first_line(text: str, limit: int = 200) -> str:
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def failures_lines(found: list[Failure], *, every: bool = False) -> list[str]:
    """The lines `stet failures` prints for these failures."""
    codec = KeyCodec()
    counts = count_failures(found)
    total = sum(c.failures for c in counts.values())
    keys = sum(c.keys for c in counts.values())
    lines = [f"[stet] {total} failed ({keys} distinct keys)"]
    if every:
        for f in sorted(found, key=lambda f: f.time):
            took = f" after {f.duration:.3g} s" if f.duration is not None else ""
            lines.append(
                f"[stet] {f.function}({_key(f, codec)}) attempt {f.attempt} on {f.host or '?'} "
                f"at {f.time}{took}: {_first_line(f.summary)}"
            )
        return lines
    groups: dict[tuple[str, str, str], list[Failure]] = {}
    for f in found:
        groups.setdefault((f.function, f.type, f.message), []).append(f)
    ranked = sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))
    for (function, _, _), members in ranked:
        members.sort(key=lambda f: f.time)
        distinct = len({f.values for f in members})
        latest = members[-1]
        lines.append(
            f"[stet] {function}: {len(members)} x {_first_line(latest.summary)} "
            f"({distinct} key{'s' if distinct != 1 else ''}, last {latest.time}; "
            f"e.g. {_key(latest, codec)})"
        )
    return lines


def failures_command(args: argparse.Namespace) -> int:
    """``stet failures STORE [--all] [--function NAME]``."""
    table = open_store(args.store)
    found = failures_in(table)
    if not found and not table.exists():
        raise FileNotFoundError(
            f"stet store not found: {table.location} (nothing has been recorded "
            "there yet, or the path is wrong)"
        )
    if args.function is not None:
        found = [f for f in found if f.function == args.function]
    print(f"[stet] Store: {table.location}")
    for line in failures_lines(found, every=args.all):
        print(line)
    return 0


def add_failures_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``failures`` command's arguments."""
    parser = commands.add_parser("failures", help="what failed and why, grouped by exception")
    parser.add_argument(
        "store", nargs="?", default=DEFAULT_STORE, help=f"the store (default {DEFAULT_STORE})"
    )
    parser.add_argument("--function", "-f", help="only this function's failures")
    parser.add_argument(
        "--all", "-a", action="store_true", help="one line per failure, oldest first"
    )


def reset_failed(store: str, function: str | None, where: dict[str, str], *, yes: bool) -> int:
    """``stet reset STORE --failed``: forget failures (of ``function``, matching ``where``)."""
    table = open_store(store)
    if not isinstance(table, FailingStore):
        raise ValueError(f"{table.location} keeps no failures")

    def chosen(failure: Failure) -> bool:
        if function is not None and failure.function != function:
            return False
        texts = dict(zip(failure.cols, failure.values, strict=True))
        return all(texts.get(name) == text for name, text in where.items())

    count = sum(chosen(f) for f in table.failures())
    if count == 0:
        print("[stet] No failure matches; nothing to forget.")
        return 0
    if not yes:
        if not sys.stdin.isatty():
            raise ValueError(f"would forget {count} failure(s); add --yes to do it without asking")
        answer = input(f"[stet] Forget {count} failure(s) in {table.location}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("[stet] Aborted.")
            return 0
    removed = table.forget_failures(chosen)
    print(f"[stet] Forgot {removed} failure(s) in {table.location}; the records stay")
    return 0

"""Decorated functions at module level, importable by worker processes.

Their stores are relative paths, so each test (which runs in its own
directory) gets fresh stores; every execution of a body is logged to
``executions.log`` in the working directory, one line per run.
"""

from __future__ import annotations

import os

import stet

LOG = "executions.log"


def log_execution(key: object) -> None:
    line = f"{os.getpid()} {key!r}\n".encode()
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def executions() -> list[str]:
    try:
        with open(LOG) as f:
            return [line.split(" ", 1)[1].strip() for line in f]
    except FileNotFoundError:
        return []


@stet.once(store="pool.csv", quiet=True)
def run_csv(x: int) -> int:
    log_execution(x)
    return x * 2


@stet.once(store="pool.json", quiet=True)
def run_json(x: int) -> int:
    log_execution(x)
    return x * 2


@stet.once(store="pool.sqlite", quiet=True)
def run_sqlite(x: int) -> int:
    log_execution(x)
    return x * 2


@stet.once(store="pool.parquet", quiet=True)
def run_parquet(x: int) -> int:
    log_execution(x)
    return x * 2


BY_EXTENSION = {"csv": run_csv, "json": run_json, "sqlite": run_sqlite, "parquet": run_parquet}


def sweep(ext: str, keys: list[int]) -> int:
    """Call the store's function over ``keys``; return how many ran here."""
    func = BY_EXTENSION[ext]
    return sum(func(k) is not None for k in keys)


@stet.once(store="failing.csv", quiet=True)
def fail_csv(x: int) -> None:
    raise ValueError(f"{x} " + "long message " * 300)


@stet.once(store="failing.stetdir", quiet=True)
def fail_shared(x: int) -> None:
    raise ValueError(f"{x} " + "long message " * 300)

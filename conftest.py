"""Run the Python code blocks of README.md and docs/ as tests (Sybil).

Each page runs top to bottom in one namespace, in a fresh temporary working
directory, so its stores start empty. A ```toml or ```yaml block whose first
line is a comment naming a file (``# sweep.toml``, ``# conf/config.yaml``) is
written to that file, so a page can show a config file and then read it.
A ```sql block whose first line is ``-- DuckDB`` runs in DuckDB in the page's
folder and must return at least one row (other SQL blocks are shown only).
Setup a reader need not see lives in ``<!-- invisible-code-block: python -->``
comments; a block that cannot run here (it waits for a terminal, say) is
marked ``<!-- skip: next -->``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from sybil import Example, Sybil
from sybil.parsers.markdown import CodeBlockParser, PythonCodeBlockParser, SkipParser

import stet.testing


def _write_named_file(example: Example) -> None:
    text: str = example.parsed
    first, _, _ = text.partition("\n")
    if first.startswith("# "):
        name = first[2:].strip()
        os.makedirs(os.path.dirname(name) or ".", exist_ok=True)
        with open(name, "w") as f:
            f.write(text)


def _run_duckdb(example: Example) -> None:
    text: str = example.parsed
    if text.partition("\n")[0].strip() != "-- DuckDB":
        return
    import duckdb

    rows = duckdb.sql(text.strip().rstrip(";")).fetchall()
    assert rows, f"the DuckDB query at line {example.line} returned no rows"


def _setup(namespace: dict[str, Any]) -> None:
    namespace["__docs_cwd__"] = os.getcwd()
    namespace["__docs_tmp__"] = tempfile.mkdtemp(prefix="stet-docs-")
    os.chdir(namespace["__docs_tmp__"])
    stet.testing.fresh_process()


def _teardown(namespace: dict[str, Any]) -> None:
    os.chdir(namespace["__docs_cwd__"])
    shutil.rmtree(namespace["__docs_tmp__"], ignore_errors=True)
    stet.testing.fresh_process()


pytest_collect_file = Sybil(
    parsers=[
        PythonCodeBlockParser(),
        CodeBlockParser(language="toml", evaluator=_write_named_file),
        CodeBlockParser(language="yaml", evaluator=_write_named_file),
        CodeBlockParser(language="sql", evaluator=_run_duckdb),
        SkipParser(),
    ],
    patterns=["*.md"],
    setup=_setup,
    teardown=_teardown,
).pytest()

"""psycopg 3, the PostgreSQL store's optional dependency, imported where it is first used.

``import stet`` must stay quick and must work without psycopg installed, so
the PostgreSQL modules take ``psycopg`` from here: a stand-in whose first
attribute access imports the real module (with the submodules stet uses).
This is the one place that imports psycopg at run time; type checkers see
the real module.

Each access looks the modules up in `sys.modules` (a few dictionary
lookups) rather than keeping its own reference, so that a psycopg made
unimportable after the first use, as a test does, is noticed.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Final

__all__ = ["psycopg"]


#: The modules stet uses, all imported before any is used.
_MODULES: Final = ("psycopg", "psycopg.conninfo", "psycopg.errors", "psycopg.sql")


class _OnFirstUse:
    """Stands for the psycopg module; any attribute imports it (ImportError if missing)."""

    def __getattr__(self, name: str) -> object:
        modules = sys.modules
        if any(modules.get(m) is None for m in _MODULES):
            for module in _MODULES:
                importlib.import_module(module)
        return getattr(modules["psycopg"], name)

    def __repr__(self) -> str:
        return "<psycopg, imported on first use>"


if TYPE_CHECKING:
    import psycopg as psycopg
    import psycopg.conninfo
    import psycopg.errors
    import psycopg.sql
else:
    psycopg = _OnFirstUse()

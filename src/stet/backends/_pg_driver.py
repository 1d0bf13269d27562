"""psycopg 3, the PostgreSQL store's optional dependency, imported where it is first used.

``import stet`` must stay quick and must work without psycopg installed, so
the PostgreSQL modules take ``psycopg`` from here: a stand-in that imports
the real module (with the submodules stet uses) on each attribute access.
This is the one place that imports psycopg at run time; type checkers see
the real module.

Importing anew on every access (a dictionary lookup once loaded) rather
than caching means that a psycopg made unimportable after the first use,
as a test does with ``sys.modules``, is noticed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["psycopg"]


class _OnFirstUse:
    """Stands for the psycopg module; any attribute imports it (ImportError if missing)."""

    def __getattr__(self, name: str) -> object:
        import psycopg
        import psycopg.conninfo
        import psycopg.errors
        import psycopg.sql

        return getattr(psycopg, name)

    def __repr__(self) -> str:
        return "<psycopg, imported on first use>"


if TYPE_CHECKING:
    import psycopg as psycopg
    import psycopg.conninfo
    import psycopg.errors
    import psycopg.sql
else:
    psycopg = _OnFirstUse()

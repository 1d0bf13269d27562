"""The stores stet keeps its records in, chosen by a path's extension or a URL's scheme.

Built in: CSV (``.csv``), JSON (``.json``), SQLite (``.sqlite``, ``.db``),
Parquet (``.parquet``), PostgreSQL (``postgresql://``) and the
shared-directory store (a folder named ``*.stetdir``, for cluster nodes
sharing NFS or Lustre). `register` adds a
store of your own (see the how-to "Write your own store").

Two levels: a `stet.typing.Store` holds key texts and is what stet itself
uses (`open_store`); the backend classes (`get_backend`) take ordinary
Python values in ``has``, ``record``, ``remove`` and decode them in
``load``, each satisfying `stet.typing.Backend`.
"""

from __future__ import annotations

from ._backend import (
    CsvBackend,
    JsonBackend,
    ParquetBackend,
    PostgresBackend,
    SqliteBackend,
    StoreBackend,
)
from ._csv import open_csv
from ._index import pack
from ._json import open_json
from ._parquet import open_parquet
from ._pg_schema import PG_LIMITS
from ._pg_url import describe as _describe_url
from ._pg_url import parse_url
from ._postgres import PostgresStore
from ._registry import (
    claims_in,
    describe,
    forget_open,
    get_backend,
    new_store,
    open_store,
    register,
    registered,
    unregister,
)
from ._schema import identity
from ._shared_backend import SharedDirBackend
from ._shared_dir import open_shared_dir
from ._sqlite import SQLITE_LIMITS, open_sqlite

__all__ = [
    "CsvBackend",
    "JsonBackend",
    "ParquetBackend",
    "PostgresBackend",
    "SharedDirBackend",
    "SqliteBackend",
    "StoreBackend",
    "claims_in",
    "describe",
    "forget_open",
    "get_backend",
    "identity",
    "new_store",
    "open_store",
    "pack",
    "register",
    "registered",
    "unregister",
]


def _check_url(url: str) -> None:
    parse_url(url)  # a bad URL or a missing psycopg fails here, not at the first call


register(".csv", open_csv, backend=CsvBackend)
register(".json", open_json, backend=JsonBackend)
register(".sqlite", open_sqlite, backend=SqliteBackend, limits=SQLITE_LIMITS)
register(".db", open_sqlite, backend=SqliteBackend, limits=SQLITE_LIMITS)
register(".parquet", open_parquet, backend=ParquetBackend)
register(".stetdir", open_shared_dir, backend=SharedDirBackend, directory=True)
for _scheme in ("postgresql://", "postgres://"):
    register(
        _scheme,
        PostgresStore,
        backend=PostgresBackend,
        check=_check_url,
        describe=_describe_url,
        limits=PG_LIMITS,
    )

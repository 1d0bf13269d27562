"""The stores stet can keep its records in, chosen by the file's extension
(or, for PostgreSQL, by a ``postgresql://`` URL).

Every backend class takes ordinary Python values in ``has``, ``record``,
``remove``, and ``load`` returns the records with their values decoded;
each satisfies the `stet.typing.Backend` protocol.
"""

from __future__ import annotations

import os
import threading
from typing import Final

from ._base import Table
from ._csv import CsvBackend
from ._files import real_path
from ._json import JsonBackend
from ._parquet import ParquetBackend
from ._postgres import PostgresBackend, is_url, parse_url
from ._sqlite import SqliteBackend

__all__ = [
    "BACKENDS",
    "CsvBackend",
    "JsonBackend",
    "ParquetBackend",
    "PostgresBackend",
    "SqliteBackend",
    "backend_class",
    "get_backend",
    "supported_stores",
]

#: Backend class for each file extension.
BACKENDS: Final[dict[str, type[Table]]] = {
    ext: cls
    for cls in (CsvBackend, JsonBackend, SqliteBackend, ParquetBackend)
    for ext in cls.extensions
}

_open: dict[str, Table] = {}
_open_lock = threading.Lock()


def supported_stores() -> str:
    """The accepted store names, for messages."""
    return ", ".join([*BACKENDS, "postgresql://..."])


def backend_class(store: str | os.PathLike[str]) -> type[Table]:
    """The backend class for a store path or URL.

    Raises:
        ValueError: The extension is not one stet knows (the message lists
            the supported ones), or a PostgreSQL URL is malformed or psycopg
            is not installed.
    """
    text = os.fspath(store)
    if is_url(text):
        parse_url(text)  # a bad URL or a missing psycopg fails here, not at the first call
        return PostgresBackend
    ext = os.path.splitext(text)[1].lower()
    try:
        return BACKENDS[ext]
    except KeyError:
        raise ValueError(
            f"Unsupported store extension {ext or '(none)'!r} in {text!r}: "
            f"the supported stores are {supported_stores()}"
        ) from None


def get_backend(path: str | os.PathLike[str]) -> Table:
    """The store at ``path``, shared by everything in this process that uses it.

    Args:
        path: A store file; its extension picks the backend. Relative paths
            are resolved against the current directory, and symlinks are
            followed: a link and its target are one store. A
            ``postgresql://`` URL opens a `PostgresBackend`.

    Raises:
        ValueError: Unknown extension, or a malformed URL.
        StoreError: The path is a symlink loop, a symlink to nothing, or
            not a regular file (a directory, a FIFO).

    Example:
        >>> import tempfile, os
        >>> store = get_backend(os.path.join(tempfile.mkdtemp(), "runs.sqlite"))
        >>> type(store).__name__
        'SqliteBackend'
    """
    cls = backend_class(path)
    text = os.fspath(path)
    resolved = text if is_url(text) else real_path(text)
    with _open_lock:
        table = _open.get(resolved)
        if table is None or type(table) is not cls:
            given = text if is_url(text) else os.path.abspath(text)
            table = _open[resolved] = cls(given)
        return table

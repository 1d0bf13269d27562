"""The store a maintenance function is given: which one, and that it exists.

Shared by `stet.status`, `stet.reset`, `stet.read` and `stet.compact`.
"""

from __future__ import annotations

import os

from ._once import DEFAULT_STORE
from .backends import open_store
from .backends._registry import claims_in
from .typing import Store

__all__ = ["existing_store", "store_argument"]


def existing_store(store: str | os.PathLike[str], *, claims: bool = False) -> Store:
    table = open_store(store)
    if not table.exists() and not (claims and claims_in(table)):
        raise FileNotFoundError(
            f"stet store not found: {table.location} (nothing has been recorded "
            "there yet, or the path is wrong)"
        )
    return table


def store_argument(
    store: str | os.PathLike[str], store_path: str | os.PathLike[str] | None
) -> str | os.PathLike[str]:
    """The store named by ``store`` or by ``store_path``, stet 0.0.x's name for it."""
    if store_path is None:
        return store
    if os.fspath(store) != DEFAULT_STORE:
        raise TypeError(
            f"got two stores, store={os.fspath(store)!r} and store_path="
            f"{os.fspath(store_path)!r}; give one (store_path is the 0.0.x name of store)"
        )
    return store_path

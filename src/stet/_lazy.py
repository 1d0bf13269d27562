"""pandas, pyarrow and numpy, imported the first time stet uses them.

``import stet`` must cost what a small library costs (``import pandas``
alone takes longer than all of stet), and a worker that only skips must not
pay for pandas. So modules that need one of these write
``from stet._lazy import pa`` instead of ``import pyarrow as pa``: the name
stands for the module and imports it when one of its attributes is first
read (a store is opened, a DataFrame is built). Type checkers see the real
modules.

``stet.__version__`` is read from the installed metadata when first asked
for, since `importlib.metadata` alone costs about as much to import as the
rest of stet.

A value can only be a DataFrame or a numpy scalar if its library is
imported, so `is_dataframe` and `loaded_numpy` answer without importing
anything.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeGuard

__all__ = [
    "is_dataframe",
    "loaded_numpy",
    "np",
    "pa",
    "pa_csv",
    "pa_json",
    "pc",
    "pd",
    "pq",
    "version",
]


class _Module:
    """Stands for a module and imports it when an attribute is first read."""

    def __init__(self, name: str) -> None:
        self.__name = name
        self.__module: ModuleType | None = None

    def __getattr__(self, attribute: str) -> Any:
        # Called only for names not yet copied here: the module's attributes
        # are read through it once, then found directly.
        module = self.__module
        if module is None:
            module = self.__module = importlib.import_module(self.__name)
        value = getattr(module, attribute)
        setattr(self, attribute, value)
        return value

    def __repr__(self) -> str:
        state = "imported" if self.__module is not None else "not imported yet"
        return f"<module {self.__name!r}, {state}, through stet._lazy>"


if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pa_csv
    import pyarrow.json as pa_json
    import pyarrow.parquet as pq
else:
    np = _Module("numpy")
    pd = _Module("pandas")
    pa = _Module("pyarrow")
    pc = _Module("pyarrow.compute")
    pa_csv = _Module("pyarrow.csv")
    pa_json = _Module("pyarrow.json")
    pq = _Module("pyarrow.parquet")


def is_dataframe(value: object) -> TypeGuard[pd.DataFrame]:
    """True if ``value`` is a `pandas.DataFrame` (without importing pandas)."""
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(value, pandas.DataFrame)


def loaded_numpy() -> ModuleType | None:
    """numpy, if something imported it already (else no value can be a numpy one)."""
    return sys.modules.get("numpy")


def version() -> str:
    """stet's version, from the installed package's metadata."""
    metadata = importlib.import_module("importlib.metadata")
    return metadata.version("stet")  # type: ignore[no-any-return]  # a module found at run time

"""stet: make long parameter sweeps resumable.

Decorate an experiment function with `stet.once`; stet records which
parameter combinations finished, in a store you can open with ordinary tools,
and skips them when the script runs again.
"""

from . import _lazy, backends, exceptions, typing
from ._api import compact, mark_done, read, reset
from ._codec import CODEC_VERSION, Encoded, KeyCodec
from ._explain import Difference, Explanation, explain, forget, is_done
from ._grid import CellState, Grid, GridCell
from ._once import Once, once
from ._progress import Progress, progress
from ._status import FunctionStatus, StoreStatus, status
from ._submit import pending, shard
from .exceptions import (
    KeyEncodingError,
    MissingDependencyError,
    ShardError,
    StetError,
    StoreError,
)

__all__ = [
    "CODEC_VERSION",
    "CellState",
    "Difference",
    "Encoded",
    "Explanation",
    "FunctionStatus",
    "Grid",
    "GridCell",
    "KeyCodec",
    "KeyEncodingError",
    "MissingDependencyError",
    "Once",
    "Progress",
    "ShardError",
    "StetError",
    "StoreError",
    "StoreStatus",
    "backends",
    "compact",
    "exceptions",
    "explain",
    "forget",
    "is_done",
    "mark_done",
    "once",
    "pending",
    "progress",
    "read",
    "reset",
    "shard",
    "status",
    "typing",
]


def __getattr__(name: str) -> str:
    if name == "__version__":  # read when asked for: see stet._lazy.version
        return _lazy.version()
    raise AttributeError(f"module 'stet' has no attribute {name!r}")

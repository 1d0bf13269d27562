"""The value-level backend of a shared directory (see `._shared_dir`)."""

from __future__ import annotations

from ._backend import StoreBackend
from ._shared_dir import open_shared_dir

__all__ = ["SharedDirBackend"]


class SharedDirBackend(StoreBackend):
    """A shared-directory store (a folder ``*.stetdir``) for cluster nodes on NFS or Lustre.

    Each writer process appends to a file of its own in ``records/``, so
    machines sharing a network filesystem never write one file, and claims
    are files made atomically there and timed by the file server's clock.
    ``records/*.csv`` reads as one table with pandas, pyarrow or DuckDB.

    Example:
        >>> import tempfile, os
        >>> store = SharedDirBackend(os.path.join(tempfile.mkdtemp(), "runs.stetdir"))
        >>> store.record({"alpha": 0.1, "seed": 3})
        True
        >>> store.has({"alpha": 0.1, "seed": 3}), sorted(os.listdir(store.path))
        (True, ['claims', 'records', 'tmp'])
    """

    opener = staticmethod(open_shared_dir)

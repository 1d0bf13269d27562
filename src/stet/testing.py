"""Helpers for testing code that uses stet.

A test that runs a decorated function, then checks what a later run would
do, wants the later run to start as a new process would: no store open,
no skip messages counted. `fresh_process` gives exactly that, without
starting a process.

Example:
    >>> import stet, stet.testing, tempfile, os
    >>> store = os.path.join(tempfile.mkdtemp(), "runs.csv")
    >>> @stet.once(store=store, quiet=True)
    ... def square(x: int) -> int:
    ...     return x * x
    >>> square(3)
    9
    >>> stet.testing.fresh_process()  # the store is read anew on the next call
    >>> square(3) is None
    True
"""

from __future__ import annotations

from ._report import reporter
from ._runner import forget_stores
from .backends import forget_open

__all__ = ["fresh_process"]


def fresh_process() -> None:
    """Forget the stores open in this process and the skip messages' counts.

    The next call of a decorated function opens its store anew, as the first
    call in a new process does: a relative store path is resolved against
    the working directory of that call. Claims held by this process's
    heartbeat are not touched.
    """
    forget_stores()
    forget_open()
    reporter.reset()

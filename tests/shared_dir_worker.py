"""Writers of a shared-directory store on simulated hosts, for test_shared_dir.py.

Usage: ``python shared_dir_worker.py HOSTS MODE ARGS...``, HOSTS a comma
list of host names. With one host the mode runs in this process; with more,
one child per host is forked from this process (Python and stet imported
once), each with ``STET_HOST`` set to its host, and this process waits for
them all (exit code 1 if one failed). Modes, for the child of index I:

- ``write STORE FIRST COUNT``: records the keys ``FIRST + 1000*I`` onward
  one by one and prints each key once its call has returned (so a test
  that kills the writer knows which records it may expect).
- ``claim STORE GATE``: waits until the file GATE exists, then claims the
  key ``{"key": 0}`` of ``work`` as owner ``STET_HOST`` and prints what it
  got (``claimed``, ``busy`` or ``done``).
- ``sweep STORE KEYS LEASE LOG``: claim_worker.py's claimed sweep.
"""

from __future__ import annotations

import atexit
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence

import stet
from stet.backends import new_store
from stet.typing import ClaimingStore


def write(index: int, store: str, first: str, count: str) -> None:
    @stet.once(store=store, quiet=True, name="work")
    def work(key: int) -> None:
        pass

    start = int(first) + 1000 * index
    for key in range(start, start + int(count)):
        work(key)
        os.write(1, f"{key}\n".encode())  # one write: the children share the pipe


def claim(index: int, store: str, gate: str) -> None:
    table = new_store(store)
    assert isinstance(table, ClaimingStore)
    while not os.path.exists(gate):
        time.sleep(0.002)
    state, _ = table.claim("work", ("key",), ("0",), 600.0, owner=os.environ["STET_HOST"])
    os.write(1, f"{state}\n".encode())  # one write: the children share the pipe


def sweep(index: int, store: str, keys: str, lease: str, log: str) -> None:
    # Beside this file, found when it runs as a script (not when pytest imports it).
    import claim_worker  # type: ignore[import-not-found]

    claim_worker.main([store, keys, lease, "0", log])


MODES: dict[str, Callable[..., None]] = {"write": write, "claim": claim, "sweep": sweep}


def main(argv: Sequence[str]) -> int:
    hosts, mode, *args = argv
    names = hosts.split(",")
    if len(names) == 1:
        os.environ["STET_HOST"] = names[0]
        MODES[mode](0, *args)
        return 0
    pids = []
    for index, host in enumerate(names):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                os.environ["STET_HOST"] = host
                MODES[mode](index, *args)
            except BaseException:
                traceback.print_exc()
                code = 1
            finally:
                atexit._run_exitfuncs()  # what an interpreter's exit runs (seals its file)
                sys.stdout.flush()
                os._exit(code)
        pids.append(pid)
    failed = 0
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        failed |= status != 0
    return int(failed)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

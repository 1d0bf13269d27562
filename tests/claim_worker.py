"""One of several identical workers of a claimed sweep (started by test_claims).

Usage: python claim_worker.py STORE KEYS LEASE SECONDS_PER_RUN LOG [GATE]

It goes over the grid ``0 .. KEYS-1`` with ``claim=True``, again and again
until every key is done: keys another worker was running when this one
passed them are reached on a later pass, which is how a key whose worker
died gets run. Each execution appends ``pid key start-time`` to LOG when
it starts. With GATE, its first run waits until the file GATE exists, so
that a test can signal it while it surely holds a claim.

``python claim_worker.py --fork COUNT ARGS...`` starts COUNT such workers at
once by forking this process (Python and stet are started and imported
once, not COUNT times), prints their pids on one line, and then, for each
pid it reads on stdin, waits for that worker and prints ``PID EXIT_CODE``
(negative for a signal), as `subprocess.Popen.wait` would give.
"""

from __future__ import annotations

import atexit
import os
import sys
import time
import traceback
from collections.abc import Sequence

import stet


def main(argv: Sequence[str]) -> None:
    store, keys, lease, seconds, log = argv[:5]
    gate = argv[5] if len(argv) > 5 else None
    grid = [{"key": k} for k in range(int(keys))]

    @stet.once(store=store, claim=True, lease=float(lease), quiet=True, name="work")
    def work(key: int) -> None:
        line = f"{os.getpid()} {key} {time.time():.6f}\n".encode()
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
        while gate is not None and not os.path.exists(gate):
            time.sleep(0.01)
        time.sleep(float(seconds))

    while True:
        for params in grid:
            work(**params)
        if stet.progress(work, grid).done == len(grid):
            break
        # Keys still claimed elsewhere: look again soon (a quarter lease at most).
        time.sleep(min(float(lease) / 4, 0.25))


def fork_workers(count: int, argv: Sequence[str]) -> None:
    pids = []
    for _ in range(count):
        pid = os.fork()
        if pid == 0:
            _worker(argv)
        pids.append(pid)
    print(*pids, flush=True)
    for line in sys.stdin:
        pid = int(line)
        _, status = os.waitpid(pid, 0)
        print(pid, os.waitstatus_to_exitcode(status), flush=True)


def _worker(argv: Sequence[str]) -> None:
    """Run one worker in a forked child and leave as a finished process would."""
    code = 0
    try:
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(devnull, 1)
        main(argv)
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        atexit._run_exitfuncs()  # what an interpreter's exit runs (stet flushes buffers)
        os._exit(code)


if __name__ == "__main__":
    if sys.argv[1] == "--fork":
        fork_workers(int(sys.argv[2]), sys.argv[3:])
    else:
        main(sys.argv[1:])

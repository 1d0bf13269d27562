"""One of several identical workers of a claimed sweep (started by test_claims).

Usage: python claim_worker.py STORE KEYS LEASE SECONDS_PER_RUN LOG [GATE]

It goes over the grid ``0 .. KEYS-1`` with ``claim=True``, again and again
until every key is done: keys another worker was running when this one
passed them are reached on a later pass, which is how a key whose worker
died gets run. Each execution appends ``pid key start-time`` to LOG when
it starts. With GATE, its first run waits until the file GATE exists, so
that a test can signal it while it surely holds a claim.
"""

from __future__ import annotations

import os
import sys
import time

import stet


def main() -> None:
    store, keys, lease, seconds, log = sys.argv[1:6]
    gate = sys.argv[6] if len(sys.argv) > 6 else None
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


if __name__ == "__main__":
    main()

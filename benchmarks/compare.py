"""Skip and record cost of stet source trees, measured in one run, alternating.

Each round starts one fresh process per tree (``PYTHONPATH`` pointing at its
``src``), in turn (the order rotating from round to round), so every tree
sees the same machine load; the figures are the medians over the rounds of
each process's per-call median, and the ratios are against the first tree.
A skip calls every key once (no value is seen twice); a record is a call
with a new key, including the write.

    python benchmarks/compare.py --tree before=/tmp/perf-before/src
    python benchmarks/compare.py --tree old=OLD/src --tree new=NEW/src --rounds 7

This checkout's ``src`` is added last as ``this`` unless ``--no-this``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_CHILD = """
import json, os, statistics, sys, time

import stet

store, size, calls, fresh = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])

@stet.once(store=store, quiet=True)
def work(alpha, seed):
    return 1

alphas = [i / size for i in range(size)]
if not os.path.exists(store):
    stet.mark_done(work, [{"alpha": alphas[i], "seed": i} for i in range(size)])
work(-1.0, -1)  # open the store (load its index) outside the measurement
clock = time.perf_counter
step = max(1, size // calls)
skip = []
for i in range(0, size, step):
    a = alphas[i]
    start = clock()
    work(a, i)
    skip.append(clock() - start)
record = []
for i in range(fresh, fresh + calls // 4):  # keys no earlier round recorded
    a = -2.0 - i
    start = clock()
    work(a, i)
    record.append(clock() - start)
print(json.dumps({"skip": statistics.median(skip) * 1e6,
                  "record": statistics.median(record) * 1e6}))
"""


def measure(src: Path, store: str, size: int, calls: int, fresh: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, store, str(size), str(calls), str(fresh)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode:
        raise SystemExit(f"measuring {src} on {store} failed:\n{done.stderr}")
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tree", action="append", default=[], help="NAME=SRC, a tree to measure (repeatable)"
    )
    parser.add_argument("--no-this", action="store_true", help="leave this checkout out")
    parser.add_argument("--stores", default="csv,json,sqlite,parquet")
    parser.add_argument("--size", type=int, default=100_000, help="records in each store")
    parser.add_argument("--calls", type=int, default=5_000, help="skips measured per process")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    trees = {name: Path(src).resolve() for name, _, src in (t.partition("=") for t in args.tree)}
    if not args.no_this:
        trees["this"] = ROOT / "src"
    if len(trees) < 2:
        parser.error("give at least two trees to compare")
    results: dict[tuple[str, str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for ext in args.stores.split(","):
            for r in range(args.rounds):
                # Rotate which tree goes first, so none always follows another.
                names = list(trees)
                order = names[r % len(names) :] + names[: r % len(names)]
                for side in order:
                    # Each tree keeps its own store (its own format version), written once.
                    store = os.path.join(tmp, f"{side}.{ext}")
                    figures = measure(trees[side], store, args.size, args.calls, r * args.calls)
                    for metric, value in figures.items():
                        results.setdefault((ext, metric, side), []).append(value)
    names = list(trees)
    first = names[0]
    print(f"{args.size:,} records, {args.rounds} rotating rounds, medians in µs")
    header = "".join(f"{n:>10}" for n in names)
    ratios = "".join(f"{n + '/' + first:>16}" for n in names[1:])
    print(f"{'store':<8} {'metric':<7}{header}{ratios}")
    for ext in args.stores.split(","):
        for metric in ("skip", "record"):
            medians = [statistics.median(results[(ext, metric, n)]) for n in names]
            cells = "".join(f"{m:>10.2f}" for m in medians)
            shown = "".join(f"{m / medians[0]:>15.2f}x" for m in medians[1:])
            print(f"{ext:<8} {metric:<7}{cells}{shown}")


if __name__ == "__main__":
    main()

"""A small, real parameter sweep that can be interrupted and resumed.

It estimates pi by Monte Carlo for a grid of sample sizes and seeds, and
appends each estimate to its own results file (stet never stores results).

    python examples/sweep.py --stop-after 5   # "crashes" after 5 runs
    python examples/sweep.py                  # skips those 5, runs the rest
"""

from __future__ import annotations

import argparse
import csv
import itertools
import sys
from pathlib import Path

import numpy as np

import stet

HERE = Path(__file__).parent
RESULTS = HERE / "sweep_results.csv"

finished_this_session = 0


@stet.once(store=str(HERE / "sweep_store.csv"), key=["n_samples", "seed"])
def estimate_pi(n_samples: int, seed: int, stop_after: int | None = None) -> float:
    """One experiment: estimate pi from n_samples random points."""
    global finished_this_session
    if stop_after is not None and finished_this_session >= stop_after:
        raise SystemExit(f"simulated crash after {stop_after} runs (the cluster's time limit)")
    rng = np.random.default_rng(seed)
    points = rng.random((n_samples, 2))
    estimate = 4.0 * float(np.mean((points**2).sum(axis=1) <= 1.0))
    with RESULTS.open("a", newline="") as f:
        csv.writer(f).writerow([n_samples, seed, estimate])
    finished_this_session += 1
    print(f"ran n_samples={n_samples} seed={seed}: pi ~ {estimate:.4f}")
    return estimate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stop-after", type=int, default=None, help="simulate a crash")
    args = parser.parse_args(argv)
    grid = itertools.product([1_000, 10_000, 100_000], [0, 1, 2, 3])
    for n_samples, seed in grid:
        estimate_pi(n_samples, seed, stop_after=args.stop_after)
    stet.status(HERE / "sweep_store.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Per-call cost of @stet.once against baselines measured in the same run.

Prints, for each store and store size, the median and 90th percentile cost of
a skip (key present) and of a new record, next to a bare function call and a
joblib.Memory cache hit and miss. Speed is judged here, never in the tests.

    python benchmarks/bench.py            # sizes 10, 1,000, 100,000
    python benchmarks/bench.py --quick    # small sizes, a smoke test
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import pandas as pd

import stet
from stet.backends import get_backend

STORES = ["csv", "json", "sqlite", "parquet"]


def timings(call: Callable[[int], Any], keys: range, repeat: int = 1) -> list[float]:
    """Seconds per call of ``call(k)`` for each key."""
    out = []
    clock = time.perf_counter
    for _ in range(repeat):
        for k in keys:
            start = clock()
            call(k)
            out.append(clock() - start)
    return out


def summary(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1e6, ordered[int(0.9 * (len(ordered) - 1))] * 1e6


def prefill(store: str, func: Callable[..., Any], n: int) -> None:
    stet.mark_done(func, pd.DataFrame({"x": range(n)}))


def bench_store(ext: str, size: int, calls: int, root: Path) -> dict[str, float]:
    store = str(root / f"bench_{size}.{ext}")

    @stet.once(store=store, quiet=True)
    def work(x: int) -> int:
        return x

    prefill(store, work, size)
    get_backend(store).sync()
    start = time.perf_counter()
    work(0)  # first call in this process loads the index
    skip = summary(timings(work, range(min(size, calls)), repeat=3))
    fresh = range(size, size + min(calls, 200 if ext == "parquet" else calls))
    record = summary(timings(work, fresh))
    del start
    return {"skip_med": skip[0], "skip_p90": skip[1], "rec_med": record[0], "rec_p90": record[1]}


def baselines(calls: int, root: Path) -> dict[str, tuple[float, float]]:
    def bare(x: int) -> int:
        return x

    memory = joblib.Memory(str(root / "joblib"), verbose=0)
    cached = memory.cache(bare)
    miss = summary(timings(cached, range(calls)))
    hit = summary(timings(cached, range(calls), repeat=3))
    return {
        "bare call": summary(timings(bare, range(calls), repeat=3)),
        "joblib.Memory hit": hit,
        "joblib.Memory miss": miss,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (CI smoke test)")
    args = parser.parse_args()
    sizes = [10, 100] if args.quick else [10, 1_000, 100_000]
    calls = 50 if args.quick else 2_000
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.chdir(root)
        base = baselines(calls, root)
        print(f"{'baseline':<22} {'median µs':>10} {'p90 µs':>10}")
        for name, (med, p90) in base.items():
            print(f"{name:<22} {med:>10.2f} {p90:>10.2f}")
        hit = base["joblib.Memory hit"][0]
        print()
        header = (
            f"{'store':<8} {'records':>9} {'skip µs':>9} {'p90':>8} {'record µs':>10} {'p90':>9}"
        )
        print(header + f" {'joblib hit / skip':>18}")
        for ext in STORES:
            for size in sizes:
                r = bench_store(ext, size, calls, root)
                print(
                    f"{ext:<8} {size:>9,} {r['skip_med']:>9.2f} {r['skip_p90']:>8.2f} "
                    f"{r['rec_med']:>10.1f} {r['rec_p90']:>9.1f} {hit / r['skip_med']:>17.1f}x"
                )


if __name__ == "__main__":
    main()

"""Opening a big store against pyarrow reading its key columns, and a skip against it.

Measures, in one run and fresh processes: pyarrow reading the key columns
of a CSV and a Parquet store of N records (``bench.write_inspect_store``:
``work(alpha, seed)``, seed unique), stet opening the same store (first
call, seconds and resident memory added per record), and the median skip
of keys taken in bulk (the table) against the same keys in a Python set of
packed texts, each key looked up once. Medians of ``--rounds`` rounds.

    python benchmarks/dense.py --records 2200000 --rounds 3
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench

_SKIP = """
import json, sys, time
import numpy as np
import stet
from stet.backends import _dense

store, count, calls = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
codec = stet.KeyCodec()

@stet.once(store=store, quiet=True)
def work(alpha, seed):
    return 1

work(-1.0, -1)  # opens the store: its keys go to the table
index = work.__stet__.store._reader.index
(dense,) = [k for k in index.groups.values() if k.dense]
picks = np.random.default_rng(0).permutation(count)[:calls].tolist()
alphas = [codec.encode(a / 1000) for a in range(1000)]
# Every key in a set of texts (the exact index of a smaller store); asked
# with texts made afresh, as a call makes them.
plain = {f"{alphas[i % 1000]}\\x1f{i}" for i in range(count)}
keys = [f"{alphas[i % 1000]}\\x1f{i}" for i in picks]
out = {}
for name, held in (("table", dense), ("set", plain)):
    times = []
    for key in keys:
        start = time.perf_counter_ns()
        key in held
        times.append(time.perf_counter_ns() - start)
    assert all(key in held for key in keys)
    out[name] = sorted(times)[len(times) // 2] / 1000
times = []
for i in picks:
    alpha = i % 1000 / 1000
    start = time.perf_counter_ns()
    work(alpha, i)
    times.append(time.perf_counter_ns() - start)
out["skip"] = sorted(times)[len(times) // 2] / 1000
print(json.dumps(out))
"""


def _run(code: str, *args: str, tree: str | None = None) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=tree) if tree else None
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True, env=env
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2_200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--kinds", default="csv,parquet")
    parser.add_argument(
        "--tree", action="append", default=[], help="NAME=SRC: also measure stet from SRC"
    )
    args = parser.parse_args()
    n = args.records
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{n:,} records, medians of {args.rounds} rounds")
        print(
            f"{'store, tree':<16} {'arrow s':>8} {'open s':>7} {'/arrow':>7} {'B/rec':>6} "
            f"{'in table µs':>11} {'in set µs':>9} {'skip µs':>8}"
        )
        trees = [("this", None), *(tuple(t.split("=", 1)) for t in args.tree)]
        for kind in args.kinds.split(","):
            store = bench.write_inspect_store(kind, n, Path(tmp) / f"d{n}")
            rows: dict[str, dict[str, list[float]]] = {name: {} for name, _ in trees}
            for _ in range(args.rounds):
                for name, src in trees:
                    row = rows[name]
                    row.setdefault("arrow", []).append(bench.arrow_read(store))
                    o = _run(bench._OPEN, store, tree=src)
                    row.setdefault("open", []).append(o["seconds"])
                    row.setdefault("mb", []).append(o["mb"])
                    s = _run(_SKIP, store, str(n), str(args.calls), tree=src)
                    for what in ("table", "set", "skip"):
                        row.setdefault(what, []).append(s[what])
            for name, row in rows.items():
                m = {what: statistics.median(values) for what, values in row.items()}
                print(
                    f"{kind + ' ' + name:<16} {m['arrow']:>8.2f} {m['open']:>7.2f} "
                    f"{m['open'] / m['arrow']:>6.2f}x {m['mb'] * 2**20 / n:>6.1f} "
                    f"{m['table']:>11.2f} {m['set']:>9.2f} {m['skip']:>8.2f}"
                )


if __name__ == "__main__":
    main()

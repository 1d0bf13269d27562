"""``stet export`` of stet source trees against pyarrow reading the same file, in one run.

The stores are `bench.py`'s inspection stores (``work(alpha, seed)``, alpha
one of 1,000 values, seed unique), written once. Each round starts one
fresh process per tree (``PYTHONPATH`` pointing at its ``src``), in an
order that rotates from round to round, and each process times pyarrow
reading the store's columns, then ``stet export STORE out.csv``; the
figures are medians over the rounds, the ratios to the median of all
pyarrow reads of the store. The trees' files are compared byte for byte.

    python benchmarks/export.py --tree before=/tmp/before/src --records 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_CHILD = """
import contextlib, hashlib, io, json, sys, time
sys.path.insert(0, sys.argv[4])
import bench
from stet import _cli

kind, store, out = sys.argv[1], sys.argv[2], sys.argv[3]
floor = bench.pyarrow_read(kind, store)
with contextlib.redirect_stdout(io.StringIO()):
    start = time.perf_counter()
    _cli.main(["export", store, out])
    seconds = time.perf_counter() - start
with open(out, "rb") as f:
    digest = hashlib.sha256(f.read()).hexdigest()
print(json.dumps({"pyarrow": floor, "export": seconds, "digest": digest}))
"""


def measure(src: Path, kind: str, store: str, out: str) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, kind, store, out, str(ROOT / "benchmarks")],
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
    parser.add_argument("--stores", default="csv,json,sqlite,parquet,stetdir")
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    trees = {name: Path(src).resolve() for name, _, src in (t.partition("=") for t in args.tree)}
    trees["this"] = ROOT / "src"
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench

    names = list(trees)
    print(f"export of {args.records:,} records, {args.rounds} rotating rounds, medians in s")
    head = "".join(f"{n:>16}" for n in names)
    ratios = "".join(f"{n + '/' + names[0]:>14}" for n in names[1:])
    print(f"{'store':<9}{'pyarrow':>9}{head}{ratios}")
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.stores.split(","):
            store = bench.write_inspect_store(kind, args.records, Path(tmp) / "inspect")
            floors: list[float] = []
            times: dict[str, list[float]] = {n: [] for n in names}
            digests: dict[str, set[str]] = {n: set() for n in names}
            for r in range(args.rounds):
                for name in names[r % len(names) :] + names[: r % len(names)]:
                    got = measure(trees[name], kind, store, os.path.join(tmp, "out.csv"))
                    floors.append(float(got["pyarrow"]))  # type: ignore[arg-type]
                    times[name].append(float(got["export"]))  # type: ignore[arg-type]
                    digests[name].add(str(got["digest"]))
            floor = statistics.median(floors)
            medians = [statistics.median(times[n]) for n in names]
            cells = "".join(f"{m:>9.2f} ({m / floor:>4.1f}x)" for m in medians)
            shown = "".join(f"{m / medians[0]:>13.2f}x" for m in medians[1:])
            same = len(set().union(*digests.values())) == 1
            print(f"{kind:<9}{floor:>9.2f}{cells}{shown}" + ("" if same else "  BYTES DIFFER"))
            for path in Path(tmp).iterdir():
                if path.name.startswith("inspect"):
                    if path.is_dir():
                        shutil.rmtree(path)
                    else:
                        path.unlink()


if __name__ == "__main__":
    main()

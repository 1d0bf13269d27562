"""Whole-store tools of two source trees in turn, against pyarrow reading the same file.

``bench.py --only inspection`` measures one tree; on a shared, noisy
machine a change is seen only beside the tree before it, measured in the
same minutes. This runs each tree in a fresh process per store kind (each
tool ``--repeat`` times there, its median), the trees in turn, for
``--rounds`` rounds, and prints each tool's median over the rounds, its
ratio to the median of pyarrow's reads over every round of both trees, and
this tree's over the other's::

    python benchmarks/inspect_trees.py --tree before=/path/to/old/src \\
        --kinds csv,stetdir --ops "reset --where,progress" --records 1000000
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

HERE = Path(__file__).resolve().parent

_ONE = """
import json, os, statistics, sys
src, kind, n, ops, repeat, root = sys.argv[1:7]
sys.path[:0] = [src, {here!r}]
import bench
assert bench.stet.__file__.startswith(src), bench.stet.__file__
from pathlib import Path
root, n, repeat = Path(root), int(n), int(repeat)
os.chdir(root)
name = root / f"inspect{{n}}"
store = str(name.with_suffix("." + kind))
if not os.path.exists(store):
    bench.write_inspect_store(kind, n, name)
out = {{"pyarrow": statistics.median(bench.pyarrow_read(kind, store) for _ in range(repeat))}}
for op in ops.split(","):
    runs = [bench.inspect_op(op, kind, store, n, root) for _ in range(repeat)]
    out[op] = statistics.median(runs)
print(json.dumps(out))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", required=True, help="NAME=SRC of the tree to compare with")
    parser.add_argument("--kinds", default="csv", help="comma-separated store kinds")
    parser.add_argument("--ops", default="reset --where,progress", help="comma-separated tools")
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    other, _, other_src = args.tree.partition("=")
    trees = {other: str(Path(other_src).resolve()), "this": str(HERE.parent / "src")}
    script = _ONE.format(here=str(HERE))
    seen: dict[tuple[str, str], list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as root:
        for _ in range(args.rounds):
            for tree, src in trees.items():
                for kind in args.kinds.split(","):
                    argv = [src, kind, str(args.records), args.ops, str(args.repeat), root]
                    done = subprocess.run(
                        [sys.executable, "-c", script, *argv],
                        capture_output=True,
                        text=True,
                        check=True,
                        env={**os.environ, "PYTHONPATH": src},
                    )
                    seen.setdefault((kind, tree), []).append(json.loads(done.stdout))
    for kind in args.kinds.split(","):
        floor = statistics.median(r["pyarrow"] for t in trees for r in seen[(kind, t)])
        print(f"{kind}: pyarrow {floor:.2f} s")
        for op in args.ops.split(","):
            was = statistics.median(r[op] for r in seen[(kind, other)])
            now = statistics.median(r[op] for r in seen[(kind, "this")])
            print(
                f"  {op:<15} {other} {was:6.2f} s ({was / floor:4.1f}x)  "
                f"this {now:6.2f} s ({now / floor:4.1f}x)  this/{other} {now / was:.2f}"
            )


if __name__ == "__main__":
    main()

"""The benchmark script runs (quick mode), so it cannot rot unnoticed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).parent.parent / "benchmarks" / "bench.py"


def test_the_benchmark_runs_prints_every_store_and_plots(tmp_path: Path) -> None:
    # The plot goes to a temporary folder: the docs' figure comes from a full run.
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--plots", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    rows: tuple[str, ...] = ("bare call", "joblib.Memory hit", "csv", "json", "sqlite", "parquet")
    rows += ("postgresql",)
    rows += ("inspection", "stetdir", "reset --where", "read peak MB")
    rows += ("mark_done of", "pyarrow same file", "each call ~1 ms of CPU work")
    for row in rows:
        assert row in done.stdout
    assert (tmp_path / "benchmark.png").stat().st_size > 10_000

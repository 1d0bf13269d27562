"""The README's demo: a sweep that stops part-way and resumes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd

EXAMPLE = Path(__file__).parent.parent / "examples" / "sweep.py"


def test_the_example_sweep_resumes_where_it_stopped(tmp_path: Path) -> None:
    script = tmp_path / "sweep.py"
    shutil.copy(EXAMPLE, script)
    first = subprocess.run(
        [sys.executable, str(script), "--stop-after", "5"], capture_output=True, text=True
    )
    assert first.returncode != 0
    assert first.stdout.count("ran n_samples=") == 5
    second = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert second.returncode == 0, second.stderr
    assert second.stdout.count("[stet] Skipping estimate_pi(") == 5
    assert second.stdout.count("ran n_samples=") == 7
    assert "[stet] 12 completed experiments recorded" in second.stdout
    results = pd.read_csv(tmp_path / "sweep_results.csv", header=None)
    assert len(results) == 12  # every grid point ran exactly once
    third = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert "ran n_samples=" not in third.stdout

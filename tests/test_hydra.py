"""A Hydra multirun keyed by paths into its config: the second sweep skips what the first ran.

Runs the real ``@hydra.main`` entry point in a subprocess, as a researcher
launches a sweep (``python train.py -m model.lr=0.01,0.1 seed=0,1``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import stet

CONFIG = """\
model:
  lr: 0.01
  depth: 4
seed: 0
run_dir: ${hydra:runtime.output_dir}
out_dir: ???
"""

SCRIPT = """\
import sys
import hydra
import stet
from omegaconf import DictConfig

STORE = sys.argv.pop(1)

@stet.once(store=STORE, key=["cfg.model.lr", "cfg.seed"])
def train(cfg: DictConfig) -> None:
    print("ran", cfg.model.lr, cfg.seed, flush=True)

@stet.once(store=STORE, exclude=["cfg.run_dir", "cfg.out_dir"])
def evaluate(cfg: DictConfig) -> None:
    print("evaluated", cfg.model.lr, cfg.seed, flush=True)

@hydra.main(config_path="conf", config_name="config", version_base=None)
def main(cfg: DictConfig) -> None:
    train(cfg)
    evaluate(cfg)

if __name__ == "__main__":
    main()
"""


def sweep(folder: Path, store: Path, *overrides: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "train.py", str(store), "-m", *overrides],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return [line for line in done.stdout.splitlines() if line.startswith(("ran", "evaluated"))]


def test_a_hydra_multirun_skips_the_runs_of_an_earlier_sweep(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "config.yaml").write_text(CONFIG)
    (tmp_path / "train.py").write_text(SCRIPT)
    store = tmp_path / "runs.csv"
    first = sweep(tmp_path, store, "model.lr=0.01,0.1", "seed=0,1")
    assert sorted(first) == sorted(
        [f"ran {lr} {seed}" for lr in (0.01, 0.1) for seed in (0, 1)]
        + [f"evaluated {lr} {seed}" for lr in (0.01, 0.1) for seed in (0, 1)]
    )
    # Each multirun job has its own run_dir, and out_dir is never set: both are
    # left out, so only a new point runs.
    second = sweep(tmp_path, store, "model.lr=0.01,0.1,1.0", "seed=0")
    assert sorted(second) == ["evaluated 1.0 0", "ran 1.0 0"]
    frame = stet.read(store)
    runs = frame[frame["_stet_function"] == "train"]
    assert sorted(zip(runs["cfg.model.lr"], runs["cfg.seed"], strict=True)) == [
        (0.01, 0),
        (0.01, 1),
        (0.1, 0),
        (0.1, 1),
        (1.0, 0),
    ]

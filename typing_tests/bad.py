"""Calls that mypy and pyright must reject; each marked line must have an error."""

from __future__ import annotations

import stet


@stet.once
def run(alpha: float, seed: int) -> float:
    return alpha


run("0.1", 3)  # expect-error
run(0.1)  # expect-error
run(0.1, 3, 4)  # expect-error
value: float = run(0.1, 3)  # expect-error
stet.Once(key=[1, 2])  # expect-error
stet.Once(exclude=[1])  # expect-error
stet.Once(quiet="yes")  # expect-error
stet.once(stroe="runs.csv")  # expect-error
stet.Once("runs.csv")  # expect-error
stet.Once(lease="60")  # expect-error
stet.Once(claim="yes")  # expect-error
stet.Once(codec=None)  # expect-error
stet.shard([1, 2], index="1")  # expect-error
stet.shard([1, 2], count=2.0)  # expect-error
stet.shard(3)  # expect-error
stet.Once(retry="sometimes")  # expect-error
stet.Once(record_interrupts="yes")  # expect-error
stet.forget_failures("runs.csv", 3)  # expect-error

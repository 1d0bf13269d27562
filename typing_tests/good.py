"""Public calls as users write them; mypy --strict and pyright check the revealed types."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Literal, assert_type

import attrs
import pandas as pd
from matplotlib.figure import Figure

import stet
from stet.backends import CsvBackend, PostgresBackend, get_backend
from stet.typing import Backend


@stet.once
def bare(alpha: float, seed: int) -> float:
    return alpha * seed


@stet.once(store="runs.sqlite")
def with_store(alpha: float, seed: int) -> float:
    return alpha


@stet.once(store="runs.csv", key=["alpha", "seed"])
def with_key(alpha: float, seed: int, n_iter: int = 10) -> str:
    return "done"


@stet.once(store="runs.csv", exclude=["verbose", "cfg.data_dir"])
def with_exclude(cfg: dict[str, object], verbose: bool = False) -> int:
    return 1


ONCE = stet.Once(store="runs.parquet", key=("alpha", "seed"))


@ONCE
def with_object(alpha: float, seed: int) -> list[int]:
    return [seed]


@stet.once
async def fetch(url: str) -> bytes:
    return b""


class Model:
    @stet.once(store="runs.json")
    def fit(self, x: int) -> float:
        return 1.0


assert_type(bare(0.1, 3), float | None)
assert_type(with_store(0.1, seed=3), float | None)
assert_type(with_key(0.1, 3, n_iter=5), str | None)
assert_type(with_exclude({"data_dir": "/x"}), int | None)
assert_type(stet.Once(exclude=["cfg.data_dir"]).exclude, tuple[str, ...] | None)
assert_type(with_object(0.1, 3), list[int] | None)


async def awaiting() -> None:
    assert_type(await fetch("x"), bytes | None)


assert_type(Model().fit(3), float | None)
assert_type(ONCE, stet.Once)
assert_type(stet.once(store="runs.csv"), stet.Once)
assert_type(stet.read("runs.csv"), pd.DataFrame)
assert_type(stet.status("runs.csv"), stet.StoreStatus)
assert_type(stet.reset("runs.csv", {"alpha": 0.1}), int)
assert_type(stet.status(store_path="runs.csv"), stet.StoreStatus)  # the 0.0.x keyword
assert_type(stet.reset(store_path="runs.csv", key_dict={"alpha": 0.1}), int)
assert_type(CsvBackend("runs.csv").path, Path)
assert_type(stet.mark_done(bare, [{"alpha": 0.1, "seed": 3}]), int)
ROWS: list[dict[str, object]] = [{"alpha": 0.1, "seed": 3}, {"alpha": 0.2, "seed": 3}]
assert_type(stet.pending(bare, ROWS), list[dict[str, object]])
assert_type(stet.pending(bare, pd.DataFrame(ROWS)), pd.DataFrame)
assert_type(stet.shard(ROWS, index=0, count=2), list[dict[str, object]])
assert_type(stet.shard(pd.DataFrame(ROWS)), pd.DataFrame)
assert_type(stet.shard(range(10), 1, 4), list[int])
assert_type(stet.pending(bare, stet.shard(ROWS)), list[dict[str, object]])
assert_type(stet.KeyCodec().encode(0.1), str)
assert_type(ONCE.to_dict(), dict[str, object])
assert_type(stet.Once.from_dict({"store": "runs.csv"}), stet.Once)

backend: Backend = get_backend("runs.csv")
csv_backend: Backend = CsvBackend("runs.csv")
pg_backend: Backend = PostgresBackend("postgresql://alice@db.example.org/sweeps?table=runs")
assert_type(backend.has({"alpha": 0.1}), bool)
assert_type(backend.load(), list[dict[str, object]])
assert_type(backend.record({"alpha": 0.1}), bool)
assert_type(backend.remove({"alpha": 0.1}), int)
assert_type(backend.clear(), None)

CLAIMED = stet.Once(store="runs.sqlite", claim=True, lease=120.0)
assert_type(attrs.evolve(ONCE, quiet=True), stet.Once)
assert_type(stet.progress(bare, [{"alpha": 0.1, "seed": 3}]), stet.Progress)
GRID = stet.progress(bare, [(0.1, 3)]).grid("alpha", "seed")
assert_type(GRID, stet.Grid)
assert_type(GRID.cells[0][0], stet.GridCell)
assert_type(GRID.cells[0][0].state, stet.CellState)
assert_type(GRID.text(width=80), str)
assert_type(stet.progress(bare, [(0.1, 3)]).plot(path="grid.png"), Figure)
assert_type(stet.explain(bare, 0.1, 3), stet.Explanation)
assert_type(stet.is_done(bare, 0.1, seed=3), bool)
assert_type(stet.forget(bare, alpha=0.1, seed=3), int)
assert_type(stet.status("runs.csv").functions[0], stet.FunctionStatus)
assert_type(stet.KeyCodec().decode("0.1"), object)
assert_type(
    stet.KeyCodec().register(Fraction, lambda f: (f.numerator, f.denominator)), stet.KeyCodec
)
RETRYING = stet.Once(store="runs.csv", retry=3, record_interrupts=True)
assert_type(stet.Once(retry="never").retry, Literal["again", "never"] | int)
assert_type(stet.failures("runs.csv"), pd.DataFrame)
assert_type(stet.failures("runs.csv", grouped=False), pd.DataFrame)
assert_type(stet.forget_failures("runs.csv", {"seed": 3}, function="run"), int)

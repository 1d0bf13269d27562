"""What @stet.once costs per call, against baselines measured in the same run.

For each store and store size it measures, at the decorator level (bind,
encode, check, record; quiet mode):

- skip: a call whose key is recorded (median and 90th percentile), each
  key called once, against a plain ``(alpha, seed) in done`` call of the
  same keys (``skip/set``); and with skip messages on, their line
  collapsed (after the first few), against the quiet skip (``loud/quiet``);
- record: a call with a new key, including the write;
- open: the first call of a fresh process on an existing store (loading its
  index), and the resident memory that added;
- first pass: the cost per record of a sweep over N new keys from empty;
- mark_done: importing the records in bulk, against pandas writing the
  same rows to the same format (and, for Parquet, pyarrow writing the
  store's own table: the same file content); ``--only mark_done``;
- key paths: a skip keyed by dotted paths into a config object
  (``key=["cfg.model.lr", "cfg.seed", "seed"]``, a dataclass and a dict)
  against a skip keyed by the same values as plain parameters
  (``dotted/plain``).
- failures: skip and record on a store with no failures, against the same
  with 1,000 failures of other keys beside it, with ``retry="again"`` (the
  default: nothing read on the success path) and ``retry=3`` (a miss looks
  up the key's failures), as ratios (``fail/none``).

Baselines in the same run: a bare function call, argument binding plus a set
lookup, joblib.Memory's cache hit and miss, and exca's cached call (a
``TaskInfra`` result kept in memory; measured when exca is installed, as
with ``pip install stet[bench]``). Prints a table and writes plots to
docs/img/.

    python benchmarks/bench.py            # sizes up to 1,000,000
    python benchmarks/bench.py --quick    # small sizes, a smoke test
    python benchmarks/bench.py --full     # also 10,000,000 (about 15 minutes)

``--full`` adds 10,000,000 records for the stores in `FULL_KINDS` only (the
per-call table: CSV and Parquet; inspection: the same two), so that it
ends within about a quarter of an hour: that store is marked done once in
CSV (``mark_done`` is timed there) and converted to Parquet with pyarrow,
where ``mark_done`` is not timed.
    python benchmarks/bench.py --stores postgresql --postgres URL

PostgreSQL is measured against the server at ``--postgres URL`` (a
database the benchmark may create tables in), or else against a temporary
server on 127.0.0.1 started like the tests' when the server binaries are
installed; without either its rows are left out.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import inspect
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

import stet

STORES = ["csv", "json", "sqlite", "parquet", "postgresql"]
ROOT = Path(__file__).resolve().parent.parent
IMG = ROOT / "docs" / "img"

_OPEN = """
import json, os, sys, time
import stet

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

@stet.once(store=sys.argv[1], quiet=True)
def work(alpha, seed):
    return 1

before = rss()
start = time.perf_counter()
work(-1.0, -1)  # a miss: loads the index, then records
print(json.dumps({"seconds": time.perf_counter() - start, "mb": (rss() - before) / 2**20}))
"""


_ARROW_READ = """
import json, sys, time
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

path, keys = sys.argv[1], sys.argv[2].split(",")
start = time.perf_counter()
if path.endswith(".parquet"):
    pq.read_table(path, columns=keys)
else:
    strings = {k: "string" for k in keys}
    options = pa_csv.ConvertOptions(include_columns=keys, column_types=strings)
    pa_csv.read_csv(path, convert_options=options)
print(json.dumps({"seconds": time.perf_counter() - start}))
"""

_WRITER = """
import json, sys, time
import stet
from stet.backends import _lock

held = [0.0]
acquire, release = _lock.StoreLock.acquire, _lock.StoreLock.release

def timed_acquire(self, timeout):
    acquire(self, timeout)
    if self._depth == 1:
        self._taken = time.perf_counter()

def timed_release(self):
    if self._depth == 1:
        held[0] += time.perf_counter() - self._taken
    release(self)

_lock.StoreLock.acquire, _lock.StoreLock.release = timed_acquire, timed_release

spin = int(sys.argv[4])  # iterations of CPU work a call does (0: an empty experiment)

@stet.once(store=sys.argv[1], quiet=True, name="work")
def work(alpha, seed):
    return sum(range(spin))

first, count = int(sys.argv[2]), int(sys.argv[3])
work(-1.0, -1 - first)  # open the store first
print("ready", flush=True)
sys.stdin.readline()  # every writer starts at once (perf_counter is system-wide on Linux)
held[0] = 0.0
start = time.perf_counter()
for i in range(first, first + count):
    work(float(i), i)
end = time.perf_counter()
print(json.dumps({"start": start, "end": end, "held": held[0], "count": count}))
"""


def pandas_write(frame: pd.DataFrame, ext: str, path: str | os.PathLike[str]) -> float:
    """Seconds pandas takes to write ``frame`` to ``path`` in the store's format (a baseline).

    The one baseline of `mark_done`: its source is also the start of the
    child script `_MARK_DONE`, so the in-process and the child figures are
    the same code.
    """
    import contextlib
    import sqlite3
    import time

    start = time.perf_counter()
    if ext == "csv":
        frame.to_csv(path, index=False)
    elif ext == "json":
        frame.to_json(path, orient="records")
    elif ext == "parquet":
        frame.to_parquet(path, index=False)
    elif ext == "sqlite":
        with contextlib.closing(sqlite3.connect(path)) as db:
            frame.to_sql("runs", db, index=False, if_exists="replace")
            db.commit()
    else:
        return float("nan")
    return time.perf_counter() - start


_MARK_DONE = (
    "from __future__ import annotations\n"
    "import os\n"
    "import pandas as pd\n"
    + inspect.getsource(pandas_write)
    + """
import json, sys, time
import numpy as np
import pyarrow.parquet as pq
import stet

ext, size, root = sys.argv[1], int(sys.argv[2]), sys.argv[3]
frame = pd.DataFrame({"alpha": np.linspace(0.0, 1.0, size), "seed": np.arange(size)})
store = os.path.join(root, f"stet-{os.getpid()}.{ext}")

@stet.once(store=store, quiet=True, name="work")
def work(alpha, seed):
    return 1

start = time.perf_counter()
stet.mark_done(work, frame)
out = {"stet": time.perf_counter() - start}
theirs = os.path.join(root, f"pandas-{os.getpid()}.{ext}")
out["pandas"] = pandas_write(frame, ext, theirs)
if ext == "parquet":  # the same file content: the store's own columns, written by pyarrow
    table = pq.read_table(store)
    start = time.perf_counter()
    pq.write_table(table, theirs)
    out["same"] = time.perf_counter() - start
print(json.dumps(out))
"""
)


def bench_mark_done(
    stores: list[str], size: int, root: Path, before: str | None = None, rounds: int = 3
) -> None:
    """Print ``stet.mark_done`` of ``size`` grid rows into a new store against
    pandas writing the same rows to the same format, each in a fresh process
    (medians of ``rounds``; the ratios are each round's, then their median).
    For Parquet also against pyarrow writing the store's own table (its six
    text columns: the same file content), as a second baseline. With
    ``before``, that copy of stet is measured in the same rounds."""
    versions = {"before": before, "now": None} if before else {"now": None}
    print(f"mark_done of {size:,} rows into a new store, median of {rounds} rounds")
    print(
        f"{'store':<10} {'code':<7} {'stet s':>7} {'pandas s':>9} {'/pandas':>8} "
        f"{'pyarrow same file s':>19} {'/same':>6}"
    )
    for ext in (e for e in stores if e in ("csv", "json", "sqlite", "parquet")):
        got: dict[str, list[dict[str, float]]] = {v: [] for v in versions}
        for _ in range(rounds):
            for name, src in versions.items():
                env = dict(os.environ)
                if src is not None:
                    env["PYTHONPATH"] = src
                done = subprocess.run(
                    [sys.executable, "-c", _MARK_DONE, ext, str(size), str(root)],
                    capture_output=True,
                    text=True,
                    check=True,
                    env=env,
                )
                got[name].append(json.loads(done.stdout.splitlines()[-1]))
        for name, runs in got.items():
            med = statistics.median
            same = (
                ""
                if ext != "parquet"
                else (
                    f"{med(r['same'] for r in runs):>19.2f} "
                    f"{med(r['stet'] / r['same'] for r in runs):>5.1f}x"
                )
            )
            print(
                f"{ext:<10} {name:<7} {med(r['stet'] for r in runs):>7.2f} "
                f"{med(r['pandas'] for r in runs):>9.2f} "
                f"{med(r['stet'] / r['pandas'] for r in runs):>7.2f}x {same}"
            )
    print()


def arrow_read(store: str) -> float:
    """Seconds pyarrow takes to read the key columns of a CSV or Parquet store."""
    done = subprocess.run(
        [sys.executable, "-c", _ARROW_READ, store, "alpha,seed"],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(json.loads(done.stdout)["seconds"])


def spin_for(seconds: float) -> int:
    """How many iterations of ``sum(range(n))`` take ``seconds`` of CPU here
    (the median of several tries): a realistic experiment for `writers`."""
    n = 10_000
    start = time.process_time()
    sum(range(n))
    while time.process_time() - start < 0.05:
        n *= 2
        start = time.process_time()
        sum(range(n))
    tries = []
    for _ in range(7):
        start = time.process_time()
        sum(range(n))
        tries.append(time.process_time() - start)
    return max(1, int(n * seconds / statistics.median(tries)))


def writers(
    ext: str, count: int, root: Path, src: str | None = None, spin: int = 0
) -> dict[str, float]:
    """Throughput of one and of two writer processes recording into one store,
    and the share of each record's time spent holding the store's lock.

    The writers open the store, then start together; throughput is every
    record over the time from the first start to the last end. ``src``: the
    ``src`` folder of another copy of stet to measure instead (a baseline).
    ``spin``: the CPU work each call does (see `spin_for`; 0, none).
    """
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = src
    out: dict[str, float] = {}
    for procs in (1, 2):
        store = store_for(ext, f"writers{procs}-{time.monotonic_ns()}", root)
        each = count // procs
        running = [
            subprocess.Popen(
                [sys.executable, "-c", _WRITER, store, str(p * each), str(each), str(spin)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=env,
            )
            for p in range(procs)
        ]
        for p in running:
            assert p.stdout is not None
            assert p.stdout.readline().strip() == "ready"
        for p in running:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        reports = [json.loads(p.communicate()[0]) for p in running]
        wall = max(r["end"] for r in reports) - min(r["start"] for r in reports)
        out[f"{procs}_per_s"] = count / wall
        seconds = sum(r["end"] - r["start"] for r in reports)
        out[f"{procs}_held"] = sum(r["held"] for r in reports) / seconds
    return out


def bench_writers(
    stores: list[str], count: int, root: Path, before: str | None = None, rounds: int = 5
) -> None:
    """Print 1 against 2 writers' throughput and lock share for each file store
    and the shared directory (which takes no store lock: its share is 0),
    medians of ``rounds``; with ``before`` (another copy's ``src``), that
    copy measured in the same rounds, as the baseline."""
    versions = {"before": before, "now": None} if before else {"now": None}
    # An empty experiment (the most the lock can weigh), then one whose
    # calls each do about a millisecond of CPU work (a quarter as many).
    for spin, records in ((0, count), (spin_for(0.001), max(100, count // 4))):
        what = "empty experiment" if not spin else "each call ~1 ms of CPU work"
        print(
            f"writers, {records:,} new records into one store ({what}), median of {rounds} rounds"
        )
        print(
            f"{'store':<10} {'code':<7} {'1 writer/s':>10} {'lock':>5} {'2 writers/s':>11} "
            f"{'lock':>5} {'2/1':>6} {'now/before 1':>12} {'2':>6}"
        )
        for ext in [*(e for e in stores if e != "postgresql"), "stetdir"]:
            _writers_row(ext, records, root, versions, rounds, spin)
        print()


def _writers_row(
    ext: str, count: int, root: Path, versions: dict[str, str | None], rounds: int, spin: int
) -> None:
    """One store's line of `bench_writers` (and the baseline's, given one)."""
    got: dict[str, list[dict[str, float]]] = {v: [] for v in versions}
    for _ in range(rounds):
        for name, src in versions.items():
            got[name].append(writers(ext, count, root, src, spin))
    med = {
        v: {k: statistics.median(r[k] for r in runs) for k in runs[0]} for v, runs in got.items()
    }
    for name, w in med.items():
        vs = ""
        if name == "now" and "before" in med:
            b = med["before"]
            vs = f"{w['1_per_s'] / b['1_per_s']:>11.2f}x {w['2_per_s'] / b['2_per_s']:>5.2f}x"
        print(
            f"{ext:<10} {name:<7} {w['1_per_s']:>10.0f} {w['1_held']:>5.0%} "
            f"{w['2_per_s']:>11.0f} {w['2_held']:>5.0%} "
            f"{w['2_per_s'] / w['1_per_s']:>5.2f}x {vs}"
        )


def per_call(call: Callable[[int], Any], keys: range | list[int], repeat: int = 1) -> list[float]:
    out = []
    clock = time.perf_counter
    for _ in range(repeat):
        for k in keys:
            start = clock()
            call(k)
            out.append(clock() - start)
    return out


def median_p90(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1e6, ordered[int(0.9 * (len(ordered) - 1))] * 1e6


def decorated(store: str, quiet: bool = True) -> Callable[..., Any]:
    @stet.once(store=store, quiet=quiet, name="work")
    def work(alpha: float, seed: int) -> int:
        return 1

    return work


def exca_hit(calls: int, root: Path) -> tuple[float, float] | None:
    """exca's cached call (its result kept in memory), or None without exca."""
    try:
        import exca
        import pydantic
    except ImportError:
        return None

    class Work(pydantic.BaseModel):  # type: ignore[misc]  # exca's models, untyped here
        alpha: float
        seed: int
        infra: exca.TaskInfra = exca.TaskInfra(version="1", keep_in_ram=True)

        @infra.apply  # type: ignore[misc]
        def run(self) -> int:
            return 1

    folder = str(root / "exca")
    works = [Work(alpha=i / calls, seed=i, infra={"folder": folder}) for i in range(calls)]
    for work in works:
        work.run()  # computed and cached: what follows are hits
    return median_p90(per_call(lambda i: works[i].run(), range(calls)))


def grid(n: int) -> pd.DataFrame:
    return pd.DataFrame({"alpha": np.linspace(0.0, 1.0, n), "seed": np.arange(n)})


def baselines(calls: int, root: Path) -> dict[str, tuple[float, float]]:
    def bare(x: int) -> int:
        return x

    signature = inspect.signature(bare)
    done = set(range(calls))

    def floor(x: int) -> bool:
        bound = signature.bind(x)
        bound.apply_defaults()
        return repr(bound.arguments["x"]) in done

    cached = joblib.Memory(str(root / "joblib"), verbose=0).cache(bare)
    miss = median_p90(per_call(cached, range(calls)))
    out = {
        "bare call": median_p90(per_call(bare, range(calls), 3)),
        "bind + set lookup": median_p90(per_call(floor, range(calls), 3)),
        "joblib.Memory hit": median_p90(per_call(cached, range(calls), 3)),
        "joblib.Memory miss": miss,
    }
    exca = exca_hit(calls, root)
    if exca is not None:
        out["exca cached call"] = exca
    return out


_PG_URL: str | None = None


def store_for(ext: str, name: str, root: Path) -> str:
    """A fresh store of the kind ``ext`` (a file, or a table of the PostgreSQL database)."""
    if ext == "postgresql":
        assert _PG_URL is not None
        sep = "&" if "?" in _PG_URL else "?"
        return f"{_PG_URL}{sep}table=bench_{os.getpid()}_{name}"
    return str(root / f"{name}.{ext}")


def postgres_url(given: str | None) -> str | None:
    """The server to measure PostgreSQL against, or None (rows left out)."""
    if given:
        return given
    sys.path.insert(0, str(ROOT))
    from tests import pg_server

    if pg_server.binaries() is None:
        return None
    server = pg_server.start()
    import atexit

    atexit.register(server.stop)
    return server.url()


def converted_store(source: str, store: str, size: int) -> None:
    """Write the first ``size`` records of the CSV store ``source`` as the Parquet store
    ``store`` (those `mark_done` wrote: the CSV store's own measurement added more)."""
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    with open(source) as f:
        names = f.readline().strip().split(",")
    options = pa_csv.ConvertOptions(
        column_types=dict.fromkeys(names, "string"), strings_can_be_null=True
    )
    pq.write_table(pa_csv.read_csv(source, convert_options=options).slice(0, size), store)


def bench_size(ext: str, size: int, calls: int, root: Path) -> dict[str, float]:
    store = store_for(ext, f"s{size}", root)
    work = decorated(store)
    frame = grid(size)
    if size >= _CONVERTED and ext == "parquet":
        source = store_for("csv", f"s{size}", root)
        if not os.path.exists(source):  # the CSV store was not measured in this run
            stet.mark_done(decorated(source), frame)
        converted_store(source, store, size)
        marked = pandas_s = float("nan")
    else:
        start = time.perf_counter()
        stet.mark_done(work, frame)
        marked = time.perf_counter() - start
        pandas_s = pandas_write(frame, ext, root / f"pandas{len(frame)}.{ext}")
    stet.backends.get_backend(store).flush()
    opened = json.loads(
        subprocess.run(
            [sys.executable, "-c", _OPEN, store], capture_output=True, text=True, check=True
        ).stdout
    )
    arrow_s = arrow_read(store) if ext in ("csv", "parquet") else float("nan")
    alphas = [float(a) for a in frame["alpha"]]
    # Each key once: no value is encoded twice, nothing is cached by value.
    picks = [int(i) for i in np.random.default_rng(0).permutation(size)[:calls]]
    done = {(alphas[i], i) for i in range(size)}

    def in_set(alpha: float, seed: int) -> bool:
        return (alpha, seed) in done

    plain = median_p90(per_call(lambda i: in_set(alphas[i], i), picks))
    skip = median_p90(per_call(lambda i: work(alphas[i], i), picks))
    loud = decorated(store, quiet=False)
    with contextlib.redirect_stdout(io.StringIO()):  # off a terminal, as in a log
        for i in picks[:10]:
            loud(alphas[i], i)  # the first lines are shown; the rest collapse
        collapsed = median_p90(per_call(lambda i: loud(alphas[i], i), picks))
        stet._report.reporter.reset()
    record = median_p90(per_call(lambda i: work(-2.0 - i, i), range(min(calls, 2_000))))
    return {
        "skip": skip[0],
        "skip_p90": skip[1],
        "set": plain[0],
        "collapsed": collapsed[0],
        "record": record[0],
        "record_p90": record[1],
        "open_s": opened["seconds"],
        "open_mb": opened["mb"],
        "arrow_s": arrow_s,
        "mark_done_s": marked,
        "pandas_s": pandas_s,
    }


def bench_failures(ext: str, calls: int, root: Path) -> dict[str, tuple[float, float]]:
    """(skip, record) medians in µs: no failures, 1,000 failures with retry again and 3."""
    out = {}
    for label, failures, retry in (
        ("none", 0, "again"),
        ("again", 1_000, "again"),
        ("3", 1_000, 3),
    ):
        store = store_for(ext, f"fail{label}", root)
        table = stet.backends.open_store(store)
        for i in range(failures):
            table.add_failure(  # type: ignore[attr-defined]
                stet.typing.Failure("work", ("alpha", "seed"), ("-1", str(i)), "ValueError", "m")
            )

        @stet.once(store=store, quiet=True, name="work", retry=retry)
        def work(alpha: float, seed: int) -> int:
            return seed

        record = median_p90(per_call(lambda i: work(0.5, i), range(calls)))[0]
        skip = median_p90(per_call(lambda i: work(0.5, i), range(calls)))[0]
        out[label] = (skip, record)
    return out


def first_pass(ext: str, n: int, root: Path) -> float:
    """Microseconds per call of a sweep over n new keys, from an empty store."""
    work = decorated(store_for(ext, f"first{n}", root))
    start = time.perf_counter()
    for i in range(n):
        work(float(i), i)
    return (time.perf_counter() - start) / n * 1e6


def plot(results: dict[str, dict[int, dict[str, float]]], base: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    panels = [
        ("skip", "skip (key recorded), median µs", "joblib.Memory hit"),
        ("record", "new record, median µs", "joblib.Memory miss"),
        ("open_s", "open (first call), seconds", None),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    for ax, (metric, title, baseline) in zip(axes, panels, strict=True):
        for ext, by_size in results.items():
            sizes = sorted(by_size)
            ax.plot(sizes, [by_size[s][metric] for s in sizes], marker="o", label=ext)
        if baseline:
            ax.axhline(base[baseline][0], color="grey", linestyle="--", label=baseline)
        if metric == "skip":
            floor = "bind + set lookup"
            ax.axhline(base[floor][0], color="grey", linestyle=":", label=floor)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("records in the store")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend()
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(out / "benchmark.png", dpi=110)


@dataclasses.dataclass(frozen=True)
class Model:
    lr: float
    name: str = "mlp"


@dataclasses.dataclass(frozen=True)
class Config:
    model: Model
    seed: int
    data_dir: str = "/data"


def key_paths(calls: int, root: Path) -> dict[str, float]:
    """Median µs of a skip keyed by paths into a config, and by plain parameters."""

    @stet.once(store=str(root / "plain.csv"), quiet=True)
    def plain(lr: float, cfg_seed: int, seed: int) -> None: ...

    @stet.once(store=str(root / "dotted.csv"), quiet=True, key=PATHS)
    def dotted(cfg: Config, seed: int) -> None: ...

    @stet.once(store=str(root / "mapping.csv"), quiet=True, key=PATHS)
    def mapping(cfg: dict[str, Any], seed: int) -> None: ...

    lrs = [i / calls for i in range(calls)]
    configs = [Config(Model(lr), i % 7) for i, lr in enumerate(lrs)]
    dicts = [{"model": {"lr": lr, "name": "mlp"}, "seed": i % 7} for i, lr in enumerate(lrs)]
    for i in range(calls):  # record every key, then skip each once
        plain(lrs[i], i % 7, i)
        dotted(configs[i], i)
        mapping(dicts[i], i)
    return {
        "plain": median_p90(per_call(lambda i: plain(lrs[i], i % 7, i), range(calls)))[0],
        "dataclass": median_p90(per_call(lambda i: dotted(configs[i], i), range(calls)))[0],
        "dict": median_p90(per_call(lambda i: mapping(dicts[i], i), range(calls)))[0],
    }


PATHS = ["cfg.model.lr", "cfg.seed", "seed"]


# -- inspection: whole-store tools against pyarrow reading the same file -------

INSPECT_KINDS = ["csv", "json", "sqlite", "parquet", "stetdir"]
#: The stores measured at 10,000,000 records by ``--full``.
FULL_KINDS = ["csv", "parquet"]
#: From this size on, a Parquet store is converted from the CSV one.
_CONVERTED = 10_000_000
INSPECT_OPS = ["status", "progress", "read", "show", "why", "reset --where", "export"]


def inspect_columns(n: int) -> dict[str, Any]:
    """Columns of n records of ``work(alpha, seed)`` in stet's texts, built in C.

    alpha takes 1,000 values (a grid), seed is unique: the worst case for
    decoding, one distinct text per record.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    from stet.backends._schema import CURRENT

    codec = stet.KeyCodec()
    rows = np.arange(n)
    alphas = pa.array([codec.encode(a / 1000) for a in range(1000)], pa.string())
    start = 1_790_000_000_000_000  # µs since 1970: late 2026
    stamps = pc.strftime(pa.array(start + rows * 1000, pa.timestamp("us")), "%Y-%m-%dT%H:%M:%S")
    return {
        "alpha": pc.take(alphas, pa.array(rows % 1000)),
        "seed": pc.cast(pa.array(rows), pa.string()),
        "_stet_function": pa.array(["work"] * n, pa.string()),
        "_stet_timestamp": pc.binary_join_element_wise(stamps, "+00:00", ""),
        "_stet_duration": pa.array(["0.001000"] * n, pa.string()),
        "_stet_host": pa.array(["bench"] * n, pa.string()),
        "_stet_codec": pa.array([CURRENT] * n, pa.string()),
    }


def _joined(columns: dict[str, Any], sep: str, end: str) -> bytes:
    """Each row's cells joined by ``sep`` and ended by ``end``, all rows as one text."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(next(iter(columns.values())))
    parts = []
    for start in range(0, n, 1_000_000):
        chunk = [c.slice(start, 1_000_000) for c in columns.values()]
        lines = pc.binary_join_element_wise(*chunk, pa.scalar(end), "")
        if sep:
            lines = pc.binary_join_element_wise(
                *[x for c in chunk for x in (c, pa.scalar(sep))][:-1], pa.scalar(end), ""
            )
        offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)
        parts.append(lines.buffers()[2].to_pybytes()[offsets[0] : offsets[len(lines)]])
    return b"".join(parts)


def write_inspect_store(kind: str, n: int, path: Path) -> str:
    """A store of n records written directly in stet's format (no decorated calls)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    cols = inspect_columns(n)
    store = str(path.with_suffix("." + kind))
    if kind in ("csv", "stetdir"):
        header = ",".join([*[*cols][:6], "_stet_code", "_stet_codec"])
        body = dict(cols)
        codec = body.pop("_stet_codec")
        body["_stet_code"] = pa.array([""] * n, pa.string())
        body["_stet_codec"] = codec
        data = header.encode() + b"\n" + _joined(body, ",", "\n")
        if kind == "stetdir":
            for sub in ("records", "tmp", "claims"):
                (Path(store) / sub).mkdir(parents=True, exist_ok=True)
            Path(store, "records", "compacted-bench.csv").write_bytes(data)
        else:
            Path(store).write_bytes(data)
    elif kind == "json":
        quoted = {k: pc.binary_join_element_wise(f'"{k}": "', v, '"', "") for k, v in cols.items()}
        lines = _joined(quoted, ", ", "},\n")
        Path(store).write_bytes(b"[\n{" + lines.replace(b"},\n", b"},\n{")[:-4] + b"}\n]\n")
    elif kind == "parquet":
        pq.write_table(pa.table(cols), store)
    elif kind == "sqlite":
        import sqlite3

        work = decorated(store)
        stet.mark_done(work, [{"alpha": -1.0, "seed": -1}])
        with sqlite3.connect(store) as db:
            db.execute("DELETE FROM stet_records")
            names = ", ".join(f'"{c}"' for c in cols)
            rows = zip(*(c.to_pylist() for c in cols.values()), strict=True)
            db.executemany(f"INSERT INTO stet_records ({names}) VALUES (?,?,?,?,?,?,?)", rows)
        db.close()
    return store


def pyarrow_read(kind: str, store: str) -> float:
    """Seconds pyarrow (or sqlite3, for SQLite) takes to read the store's columns."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.json as pa_json
    import pyarrow.parquet as pq

    start = time.perf_counter()
    if kind == "csv":
        pa_csv.read_csv(store, read_options=pa_csv.ReadOptions(use_threads=False))
    elif kind == "stetdir":
        files = sorted(Path(store, "records").glob("*.csv"))
        opts = pa_csv.ReadOptions(use_threads=False)
        pa.concat_tables([pa_csv.read_csv(f, read_options=opts) for f in files])
    elif kind == "json":
        data = Path(store).read_bytes()
        lines = data[data.index(b"\n") + 1 : data.rindex(b"]")].replace(b"},\n", b"}\n")
        pa_json.read_json(io.BytesIO(lines), read_options=pa_json.ReadOptions(use_threads=False))
    elif kind == "parquet":
        pq.read_table(store, use_threads=False)
    else:
        import sqlite3

        with contextlib.closing(sqlite3.connect(store)) as db:
            cursor = db.execute("SELECT * FROM stet_records")
            names = [d[0] for d in cursor.description]
            rows = cursor.fetchall()
        pa.table({n: pa.array([r[i] for r in rows]) for i, n in enumerate(names)})
    return time.perf_counter() - start


def inspect_op(op: str, kind: str, store: str, n: int, root: Path) -> float:
    """Seconds one inspection of the store takes (stdout discarded)."""
    import shutil

    from stet import _cli

    target = store
    if op == "reset --where":  # on a copy: it removes records
        target = str(root / f"copy-{Path(store).name}")
        if kind == "sqlite":  # with what its write-ahead log holds
            import sqlite3

            with (
                contextlib.closing(sqlite3.connect(store)) as source,
                contextlib.closing(sqlite3.connect(target)) as copy,
            ):
                source.backup(copy)
        else:
            (shutil.copytree if os.path.isdir(store) else shutil.copyfile)(store, target)
    work = decorated(store)
    grid_rows = pd.DataFrame({"alpha": (np.arange(n) % 1000) / 1000, "seed": np.arange(n)})
    actions: dict[str, Callable[[], object]] = {
        "status": lambda: stet.status(store),
        "progress": lambda: stet.progress(work, grid_rows),
        "read": lambda: stet.read(store),
        "show": lambda: _cli.main(["show", store]),
        "why": lambda: _cli.main(["why", store, "alpha=0.5", "seed=-1"]),
        "reset --where": lambda: _cli.main(["reset", target, "--where", "alpha=0.5", "--yes"]),
        "export": lambda: _cli.main(["export", store, str(root / "export.csv")]),
    }
    with contextlib.redirect_stdout(io.StringIO()):
        start = time.perf_counter()
        actions[op]()
        seconds = time.perf_counter() - start
    if op == "reset --where":
        (shutil.rmtree if os.path.isdir(target) else os.unlink)(target)
    return seconds


_READ_PEAK = """
import sys
import pandas, pyarrow, pyarrow.csv, pyarrow.parquet, pyarrow.json
import stet

def peak():  # VmHWM: this process's own peak (ru_maxrss carries the parent's over exec)
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmHWM"))

stet.status  # the modules stet.read needs, loaded before the baseline
before = peak()
frame = stet.read(sys.argv[1])
print((peak() - before) / 1024)
"""


def read_peak_mb(store: str) -> float:
    """Peak resident memory (MB) that `stet.read` adds, in a fresh process."""
    done = subprocess.run(
        [sys.executable, "-c", _READ_PEAK, store], capture_output=True, text=True, check=True
    )
    return float(done.stdout)


def bench_inspection(
    sizes: list[int], repeat: int, root: Path, kinds: list[str], ops: list[str] = INSPECT_OPS
) -> None:
    """Print each whole-store tool's median seconds and its ratio to pyarrow's read."""
    print("\ninspection: median seconds (ratio to pyarrow reading the same file's columns)")
    print(
        f"{'store':<8} {'records':>10} {'pyarrow s':>9} "
        + " ".join(f"{op:>15}" for op in ops)
        + f" {'read peak MB':>12}"
    )
    for kind in kinds:
        for n in sizes:
            store = write_inspect_store(kind, n, root / f"inspect{n}")
            floor = statistics.median(pyarrow_read(kind, store) for _ in range(repeat))
            cells = []
            for op in ops:
                seconds = statistics.median(
                    inspect_op(op, kind, store, n, root) for _ in range(repeat)
                )
                cells.append(f"{seconds:>7.2f} ({seconds / floor:>4.1f}x)")
            peak = read_peak_mb(store)
            print(
                f"{kind:<8} {n:>10,} {floor:>9.3f} "
                + " ".join(f"{c:>15}" for c in cells)
                + f" {peak:>12.0f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke test)")
    parser.add_argument(
        "--full",
        action="store_true",
        help="also 10,000,000 records (slow; inspection at 1,000,000 and 10,000,000)",
    )
    parser.add_argument("--no-plot", action="store_true", help="print the table only")
    parser.add_argument(
        "--plots", type=Path, default=IMG, help=f"folder for benchmark.png (default {IMG})"
    )
    parser.add_argument(
        "--stores", default=",".join(STORES), help="comma-separated store kinds to measure"
    )
    parser.add_argument("--postgres", help="URL of a PostgreSQL database to measure against")
    parser.add_argument(
        "--only",
        choices=["calls", "inspection", "writers", "mark_done"],
        help="measure one section: per-call costs, the whole-store tools, writers, or mark_done",
    )
    parser.add_argument(
        "--inspect-records",
        type=int,
        help="inspection only at this many records, every store kind (e.g. 1000000)",
    )
    parser.add_argument(
        "--before",
        help="the src folder of another copy of stet, measured beside this one "
        "(writers, mark_done)",
    )
    args = parser.parse_args()
    plots = args.plots.resolve()
    global _PG_URL
    stores = [s for s in args.stores.split(",") if s]
    if "postgresql" in stores:
        _PG_URL = postgres_url(args.postgres)
        if _PG_URL is None:
            print("postgresql: left out (no server binaries; pass --postgres URL)\n")
            stores.remove("postgresql")
    sizes = [10, 1_000] if args.quick else [10, 1_000, 100_000, 1_000_000]
    if args.full:
        sizes.append(10_000_000)
    passes = (50, 500) if args.quick else (100, 100_000)
    calls = 100 if args.quick else 5_000
    if args.quick:
        inspect_sizes, repeat = [1_000], 1
    elif args.full:
        inspect_sizes, repeat = [1_000_000, 10_000_000], 1
    else:
        inspect_sizes, repeat = [100_000, 1_000_000], 3
    if args.inspect_records:
        inspect_sizes = [args.inspect_records]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.chdir(root)
        if args.only in (None, "inspection"):
            bench_inspection(inspect_sizes[:1], repeat, root, INSPECT_KINDS)
            if inspect_sizes[1:]:
                bench_inspection(inspect_sizes[1:], repeat, root, FULL_KINDS)
        if args.only == "inspection":
            return
        if args.only == "writers":
            bench_writers(stores, 400 if args.quick else 4_000, root, args.before)
            return
        if args.only == "mark_done":
            size = 1_000 if args.quick else 10_000_000 if args.full else 1_000_000
            bench_mark_done(stores, size, root, args.before, 1 if args.quick else 3)
            return
        base = baselines(calls, root)
        print(f"{'baseline':<20} {'median µs':>10} {'p90 µs':>9}")
        for name, (med, p90) in base.items():
            print(f"{name:<20} {med:>10.2f} {p90:>9.2f}")
        exca = base.get("exca cached call", (float("nan"),))[0]
        print()
        print(
            f"{'store':<10} {'records':>9} {'skip µs':>8} {'p90':>6} {'skip/set':>8} "
            f"{'loud/quiet':>10} {'skip/exca':>9} "
            f"{'record µs':>9} {'p90':>7} {'open s':>7} {'/arrow':>7} {'open MB':>8} "
            f"{'B/rec':>6} {'mark_done s':>11} {'/pandas':>7}"
        )
        results: dict[str, dict[int, dict[str, float]]] = {}
        for ext in stores:
            results[ext] = {}
            for size in sizes:
                if size >= _CONVERTED and ext not in FULL_KINDS:
                    continue
                r = results[ext][size] = bench_size(ext, size, calls, root)
                print(
                    f"{ext:<10} {size:>9,} {r['skip']:>8.2f} {r['skip_p90']:>6.2f} "
                    f"{r['skip'] / r['set']:>7.2f}x {r['collapsed'] / r['skip']:>9.2f}x "
                    f"{r['skip'] / exca:>8.2f}x "
                    f"{r['record']:>9.1f} {r['record_p90']:>7.1f} "
                    f"{r['open_s']:>7.2f} {r['open_s'] / r['arrow_s']:>6.2f}x "
                    f"{r['open_mb']:>8.0f} {r['open_mb'] * 2**20 / size:>6.0f} "
                    f"{r['mark_done_s']:>11.2f} {r['mark_done_s'] / r['pandas_s']:>6.2f}x"
                )
        if "csv" in results and "postgresql" in results:
            print("\npostgresql open (first call) against the CSV store's, same sizes:")
            for size, r in results["postgresql"].items():
                csv_s = results["csv"][size]["open_s"]
                ratio = r["open_s"] / csv_s
                print(f"{size:>9,} {r['open_s']:>7.2f} s vs {csv_s:>7.2f} s {ratio:>6.2f}x")
        print()
        paths = key_paths(calls, root)
        print(f"key paths {PATHS} (csv): skip µs, and against plain parameters")
        print(f"{'plain':<10} {paths['plain']:>8.2f}")
        for kind in ("dataclass", "dict"):
            ratio = paths[kind] / paths["plain"]
            print(f"{kind:<10} {paths[kind]:>8.2f} {ratio:>6.2f}x dotted/plain")
        print()
        small, large = passes
        print(f"first pass, µs per call: {small:,} calls vs {large:,} calls (ratio)")
        for ext in stores:
            a, b = first_pass(ext, small, root), first_pass(ext, large, root)
            print(f"{ext:<10} {a:>8.1f} {b:>8.1f} {b / a:>6.2f}x")
        print()
        bench_writers(
            stores, 400 if args.quick else 4_000, root, args.before, 1 if args.quick else 5
        )
        # One round here (three with --only mark_done): the per-call table has its own figure.
        bench_mark_done(stores, 1_000 if args.quick else 1_000_000, root, args.before, 1)
        print("failures: skip and record µs with 1,000 failures beside the store, vs none")
        print(
            f"{'store':<10} {'none':>13} {'retry again':>13} {'ratio':>12} "
            f"{'retry 3':>13} {'ratio':>12}"
        )
        for ext in stores:
            f = bench_failures(ext, min(calls, 1_000), root)
            (s0, r0), (s1, r1), (s3, r3) = f["none"], f["again"], f["3"]
            print(
                f"{ext:<10} {s0:>6.2f} {r0:>6.1f} {s1:>6.2f} {r1:>6.1f} "
                f"{s1 / s0:>5.2f}x {r1 / r0:>5.2f}x {s3:>6.2f} {r3:>6.1f} "
                f"{s3 / s0:>5.2f}x {r3 / r0:>5.2f}x"
            )
        if not args.no_plot:
            plot(results, base, plots)
            print(f"\nplots: {plots / 'benchmark.png'}")


if __name__ == "__main__":
    main()

"""``stet export STORE FILE.csv`` writes the file pandas' ``to_csv`` writes, column by column.

It used to be ``stet.read(store).to_csv(file, index=False)``, which formats
every cell in Python; `stet._export.csv_of` makes the same bytes from whole
columns. These properties check it on arbitrary stores: any key value stet
can key, older stores' texts, odd timestamps and durations.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import resource
import signal
import stat
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import stet
from stet import _cli
from stet._export import csv_of, csv_of_store
from stet.backends import get_backend, open_store
from stet.backends._schema import CURRENT
from stet.backends._table import whole_store
from tests import strategies as S
from tests.raw_rows import append_as_written
from tests.test_inspect import STAMPS, records

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _exported(tmp_path: Path, store: str) -> tuple[bytes, bytes]:
    """(what ``stet export`` wrote, what ``to_csv`` of `stet.read` writes)."""
    out = tmp_path / "out.csv"
    with contextlib.redirect_stdout(io.StringIO()):
        assert _cli.main(["export", store, str(out)]) == 0
    expected = io.StringIO()
    stet.read(store).to_csv(expected, index=False)
    return out.read_bytes(), expected.getvalue().encode()


_stores = itertools.count()


def _fresh(tmp_path: Path, kind: str) -> str:
    """A new store's path (a store once opened stays open in this process)."""
    return str(tmp_path / f"s{next(_stores)}.{kind}")


@SETTINGS
@given(
    values=st.lists(st.tuples(S.keyable, S.keyable), min_size=1, max_size=8),
    kind=st.sampled_from(["csv", "parquet"]),
)
@example(values=[(1, "a"), (1.0, "b"), (True, "c"), (np.float64(0.5), None)], kind="csv")
@example(values=[(float("nan"), 'q"t,x'), (-0.0, "l\nf"), (2**70, "c\rr")], kind="csv")
def test_export_writes_what_to_csv_writes_for_any_key_values(
    tmp_path: Path, values: list[tuple[Any, Any]], kind: str
) -> None:
    store = _fresh(tmp_path, kind)

    @stet.once(store=store, quiet=True)
    def work(alpha: Any, beta: Any) -> None:
        pass

    for alpha, beta in values:
        work(alpha, beta)
    got, expected = _exported(tmp_path, store)
    assert got == expected


@SETTINGS
@given(rows=st.lists(records(), min_size=1, max_size=12))
@example(
    rows=[
        {"a": "1", "_stet_timestamp": STAMPS[0], "_stet_codec": "2"},
        {"a": "2", "_stet_timestamp": "0999-01-02T03:04:05.120+00:00", "_stet_codec": "2"},
        {"a": "3", "_stet_timestamp": "1969-12-31T23:59:59.5+00:00", "_stet_codec": "2"},
    ]
)
def test_export_writes_what_to_csv_writes_for_older_and_odd_records(
    tmp_path: Path, rows: list[dict[str, str]]
) -> None:
    store = _fresh(tmp_path, "csv")
    append_as_written(store, rows)
    try:
        stet.read(store)
    except (stet.StetError, ValueError):
        return  # a store that cannot be read is not exported either
    got, expected = _exported(tmp_path, store)
    assert got == expected


def test_a_store_of_numbers_and_words_is_exported_column_by_column(tmp_path: Path) -> None:
    """The sweep's usual store takes the column-wise way (else it silently gets slow)."""
    store = str(tmp_path / "s.csv")

    @stet.once(store=store, quiet=True)
    def work(alpha: float, seed: int, method: str, fast: bool) -> None:
        pass

    for seed in range(3):
        work(0.1 * seed, seed, "adam,sgd", seed == 1)
    frame = stet.read(store)
    assert csv_of(frame) is not None
    assert csv_of(frame) == frame.to_csv(index=False).encode()


@pytest.mark.parametrize(
    "column",
    [
        pd.Series([1.5, 2.5], dtype="float32"),
        pd.Series(pd.to_datetime(["2026-01-01", "2026-01-02"])),
        pd.Series(pd.to_datetime(["2026-01-01", "2026-01-02"], utc=True)).dt.tz_convert(
            "Europe/Paris"
        ),
        pd.Series([1, None], dtype="Int64"),
    ],
    ids=["float32", "naive time", "other zone", "nullable int"],
)
def test_columns_of_other_kinds_are_left_to_pandas(column: pd.Series[Any]) -> None:
    frame = pd.DataFrame({"x": column, "y": [1, 2]})
    assert csv_of(frame) is None
    assert csv_of(pd.DataFrame({"y": [1, 2]})) is None, "one column: the csv module's own way"


# -- the store's columns spelt directly, against stet.read's frame ---------------

FILE_KINDS = ["csv", "json", "sqlite", "parquet", "stetdir"]
#: Each example writes a store of every kind: fewer of them keep the suite fast.
FEW = settings(SETTINGS, max_examples=15)


def _same_as_the_frame(store: str) -> None:
    """The columns spelt from the store are the bytes ``to_csv`` writes of `stet.read`'s frame.

    And the old way (`csv_of` of the frame, where it spells it) gives them too.
    """
    backend = get_backend(store)
    whole = whole_store(backend.store)
    frame = stet.read(store)
    expected = frame.to_csv(index=False).encode()
    direct = csv_of_store(whole, backend.codec.decode)
    if direct is not None:
        assert bytes(direct) == expected
    old = csv_of(frame)
    if old is not None:
        assert old == expected


@FEW
@given(
    values=st.lists(st.tuples(S.keyable, S.keyable), min_size=1, max_size=6),
    others=st.lists(S.keyable, max_size=3),
    failing=st.lists(S.keyable, max_size=2),
    kind=st.sampled_from(FILE_KINDS),
)
@example(
    values=[(1e16, 2**70), (-0.0, True), (float("nan"), None), (float("inf"), 'a,"b"\nc')],
    others=[np.float64(-1e-300), "x\ry"],
    failing=[3],
    kind="csv",
)
@example(values=[(0.5, 3), (0.25, 4)], others=[], failing=[], kind="parquet")
@example(values=[(1, "a"), (2, "b")], others=[[1, 2]], failing=[0.5], kind="stetdir")
def test_export_of_several_functions_and_failures_is_the_frame_to_csv_writes(
    tmp_path: Path,
    values: list[tuple[Any, Any]],
    others: list[Any],
    failing: list[Any],
    kind: str,
) -> None:
    store = _fresh(tmp_path, kind)

    @stet.once(store=store, quiet=True)
    def work(alpha: Any, beta: Any) -> None:
        pass

    @stet.once(store=store, quiet=True)
    def other(gamma: Any) -> None:
        pass

    @stet.once(store=store, quiet=True)
    def broken(alpha: Any) -> None:
        raise RuntimeError("no")

    for alpha, beta in values:
        work(alpha, beta)
    for gamma in others:
        other(gamma)
    for alpha in failing:
        with pytest.raises(RuntimeError):
            broken(alpha)
    _same_as_the_frame(store)
    got, expected = _exported(tmp_path, store)
    assert got == expected


@pytest.mark.parametrize("kind", ["csv", "json", "sqlite", "parquet"])
@FEW
@given(rows=st.lists(records(), min_size=1, max_size=10))
def test_export_of_older_key_rules_and_odd_records_is_the_frame_to_csv_writes(
    tmp_path: Path, kind: str, rows: list[dict[str, str]]
) -> None:
    store = _fresh(tmp_path, kind)
    append_as_written(store, rows)
    try:
        stet.read(store)
    except (stet.StetError, ValueError):
        with pytest.raises((stet.StetError, ValueError)):
            csv_of_store(whole_store(open_store(store)), stet.KeyCodec().decode)
        return
    _same_as_the_frame(store)


@FEW
@given(
    files=st.lists(st.lists(records(), min_size=1, max_size=5), min_size=1, max_size=3),
    repeat=st.booleans(),
)
def test_export_of_a_shared_directory_with_a_run_in_two_files_is_the_frame_to_csv_writes(
    tmp_path: Path, files: list[list[dict[str, str]]], repeat: bool
) -> None:
    from stet.backends._csv import format_rows, header_for

    store = Path(_fresh(tmp_path, "stetdir"))
    (store / "records").mkdir(parents=True)
    if repeat:  # two writers recorded the same runs
        files = [*files, files[0]]
    for number, rows in enumerate(files):
        header = header_for(rows, ())
        data = ",".join(header).encode() + b"\n" + format_rows(rows, header)
        (store / "records" / f"compacted-{number}.csv").write_bytes(data)
    try:
        stet.read(str(store))
    except (stet.StetError, ValueError):
        return
    _same_as_the_frame(str(store))


#: Instants from year 1 to 9999, with fractions of whole seconds, milliseconds or µs.
_INSTANTS = st.tuples(
    st.datetimes(datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59)),
    st.sampled_from(["s", "ms", "100us", "us"]),
).map(
    lambda pair: pair[0].replace(
        microsecond={
            "s": 0,
            "ms": pair[0].microsecond // 1000 * 1000,
            "100us": pair[0].microsecond // 100 * 100,
            "us": pair[0].microsecond,
        }[pair[1]]
    )
)


@FEW
@given(
    stamps=st.lists(_INSTANTS, min_size=1, max_size=8),
    spec=st.sampled_from(["microseconds", "seconds", "auto"]),
    bad=st.sampled_from(
        [
            None,
            "2026-02-30T00:00:00+00:00",  # of the form, but no time
            "2026-12-01T24:00:00+00:00",
            "2026-12-01T12:00:00+02:00",  # of the width, another offset
            "2026-12-01T10:00:00.000000-01:00",
            "2026-12-01 10:00:00+00:00",
            "2026-12-01T10:00:00.5000+00:00",
        ]
    ),
)
@example(stamps=[datetime(2026, 12, 1, 10)], spec="microseconds", bad=None)
@example(stamps=[datetime(2026, 12, 1, 10, 0, 0, 5000)], spec="microseconds", bad=None)
@example(
    stamps=[datetime(2026, 12, 1, 10, 0, 0, 100), datetime(2026, 12, 1, 10, 0, 0, 120000)],
    spec="microseconds",
    bad=None,
)
@example(stamps=[datetime(999, 1, 2, 3, 4, 5)], spec="seconds", bad=None)
@example(stamps=[datetime(2026, 12, 1, 10)], spec="seconds", bad="2026-12-01T12:00:00+02:00")
def test_timestamps_in_stets_forms_are_spelt_as_pandas_spells_them(
    tmp_path: Path, stamps: list[datetime], spec: str, bad: str | None
) -> None:
    """Respelt byte-wise (T to a space, the fraction cut to what a cell needs) or,
    for a time Arrow refuses, the frame's way: always the bytes ``to_csv`` writes."""
    texts = [s.replace(tzinfo=UTC).isoformat(timespec=spec) for s in stamps]
    if bad is not None:
        texts.append(bad)
    rows = [
        {"a": str(i), "_stet_timestamp": t, "_stet_codec": CURRENT} for i, t in enumerate(texts)
    ]
    store = _fresh(tmp_path, "csv")
    append_as_written(store, rows)
    try:
        stet.read(store)
    except (stet.StetError, ValueError):
        return
    _same_as_the_frame(store)


def test_the_usual_store_is_spelt_from_its_columns(tmp_path: Path) -> None:
    """Numbers, words, flags and stet's own timestamps take the column-wise way."""
    store = str(tmp_path / "s.csv")

    @stet.once(store=store, quiet=True)
    def work(alpha: float, seed: int, method: str, fast: bool) -> None:
        pass

    for seed in range(3):
        work(0.1 * seed, seed, "adam,sgd" if seed else "adam", seed == 1)
    backend = get_backend(store)
    direct = csv_of_store(whole_store(backend.store), backend.codec.decode)
    assert direct is not None
    assert bytes(direct) == stet.read(store).to_csv(index=False).encode()


def test_export_of_a_postgresql_store_is_the_frame_to_csv_writes(
    tmp_path: Path, pg_store: str
) -> None:
    @stet.once(store=pg_store, quiet=True)
    def work(alpha: Any, seed: Any) -> None:
        pass

    for alpha, seed in [(0.5, 1), (1e16, "a,b"), (-0.0, None), (True, 2**70)]:
        work(alpha, seed)
    _same_as_the_frame(pg_store)
    got, expected = _exported(tmp_path, pg_store)
    assert got == expected


@pytest.mark.parametrize(
    ("kind", "target"),
    [
        ("csv", "the store"),
        ("csv", "a link to it"),
        ("csv", "a hard link to it"),
        ("parquet", "the store"),
        ("parquet", "its journal"),
        ("stetdir", "a file in it"),
    ],
)
def test_export_over_the_store_itself_is_refused_and_the_store_kept(
    tmp_path: Path, kind: str, target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``stet export runs.csv runs.csv`` would replace the store by a copy it cannot read back."""
    store = str(tmp_path / f"runs.{kind}")

    @stet.once(store=store, quiet=True)
    def work(alpha: float) -> None:
        pass

    work(0.5)
    files = {
        "the store": store,
        "a link to it": str(tmp_path / "link.csv"),
        "a hard link to it": str(tmp_path / "hard.csv"),
        "its journal": store + ".journal.csv",
        "a file in it": str(Path(store, "records", "out.csv")),
    }
    if target == "a link to it":
        Path(files[target]).symlink_to(store)
    if target == "a hard link to it":
        Path(files[target]).hardlink_to(store)
    before = stet.read(store)
    assert _cli.main(["export", store, files[target]]) == 1
    assert files[target] in capsys.readouterr().err
    pd.testing.assert_frame_equal(stet.read(store), before)
    assert not Path(store, "records", "out.csv").exists()


def _seeded(store: str) -> Any:
    @stet.once(store=store, quiet=True)
    def run(seed: int) -> None: ...

    return run


def _export_with_file_size_limit(
    store: str, out: str, limit: int
) -> subprocess.CompletedProcess[str]:
    """``stet export`` in a child whose files cannot grow past ``limit`` bytes (a full disk)."""

    def limited() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past it fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    code = "import sys; from stet import _cli; sys.exit(_cli.main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, "export", store, out],
        preexec_fn=limited,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_an_export_that_runs_out_of_space_leaves_no_half_file(tmp_path: Path, kind: str) -> None:
    """Written in place, a failed export left a shorter file that looked complete."""
    store = str(tmp_path / "runs.csv")
    stet.mark_done(_seeded(store), [{"seed": i} for i in range(20_000)])
    for earlier in (b"an earlier export\n", None):
        folder = tmp_path / ("over" if earlier else "new")
        folder.mkdir()
        out = folder / f"out.{kind}"
        if earlier is not None:
            out.write_bytes(earlier)
        done = _export_with_file_size_limit(store, str(out), 4096)
        assert done.returncode == 1
        assert str(out) in done.stderr
        assert "Traceback" not in done.stderr
        # The earlier export is kept whole, not cut; no new file, no temporary one.
        assert [p.read_bytes() for p in folder.iterdir()] == ([earlier] if earlier else [])


def test_an_export_into_a_fifo_or_through_a_link_writes_there(tmp_path: Path) -> None:
    store = str(tmp_path / "runs.csv")
    stet.mark_done(_seeded(store), [{"seed": i} for i in range(3)])
    expected = io.StringIO()
    stet.read(store).to_csv(expected, index=False)
    target = tmp_path / "exports" / "latest.csv"
    target.parent.mkdir()
    target.write_text("old")
    target.chmod(0o640)
    link = tmp_path / "latest.csv"
    link.symlink_to(target)
    with contextlib.redirect_stdout(io.StringIO()):
        assert _cli.main(["export", store, str(link)]) == 0
    assert link.is_symlink()
    assert target.read_text() == expected.getvalue()
    assert target.stat().st_mode & 0o777 == 0o640  # the file's mode is kept
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    with contextlib.redirect_stdout(io.StringIO()):
        assert _cli.main(["export", store, str(fifo)]) == 0
    reader.join()
    assert got == [expected.getvalue().encode()]
    assert stat.S_ISFIFO(fifo.stat().st_mode)

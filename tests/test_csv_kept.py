"""``stet reset --where`` of a CSV store copies the kept lines it can from the file.

Spelling every kept record again was most of the command's time at a million
records; a line with no quote and no carriage return is the writer's own
spelling of its record, so it is copied as it lies. These check that the
store left is byte for byte the one the spelling rewrite leaves, on raw
files of every shape a hand or an older stet may have made.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stet import _cli
from stet.backends import _csv, _csv_kept
from stet.backends._schema import META_COLUMNS
from tests.test_inspect import CANONICAL, records

HEADER = ("a", "b", "c", *META_COLUMNS)
#: Key texts, among them ones the csv module quotes or Arrow reads oddly.
TEXTS = [*CANONICAL[:6], "x", "a,b", 'q"t', "l\nf", "x y", "tab\there", "é", "\x01"]


def _spelled(cell: str, quote: bool) -> str:
    if quote or any(c in cell for c in ',"\n\r'):
        return '"' + cell.replace('"', '""') + '"'
    return cell


@st.composite
def raw_stores(draw: st.DrawFn) -> tuple[bytes, list[str]]:
    """A CSV store's bytes: cells quoted or not, raw line breaks in quotes, stray quotes,
    a byte-order mark, a carriage return, a blank line or a torn tail now and then;
    and the texts of its ``a`` cells."""
    lines, texts = [], []
    for record in draw(st.lists(records(), min_size=1, max_size=10)):
        for key in ("a", "b"):
            if key in record and draw(st.booleans()):
                record[key] = draw(st.sampled_from(TEXTS))
        texts.append(record.get("a", "x"))
        needless = draw(st.integers(0, 4)) == 0  # cells quoted that need no quotes
        cells = [
            _spelled(record.get(name, ""), needless and draw(st.booleans())) for name in HEADER
        ]
        if draw(st.integers(0, 12)) == 0:  # a stray quote in an unquoted cell (read as it is)
            cells[draw(st.integers(0, 1))] = draw(st.sampled_from(['x"y', 'xy"', 'x""y']))
        lines.append(",".join(cells) + ("\r\n" if draw(st.integers(0, 40)) == 0 else "\n"))
    if draw(st.integers(0, 15)) == 0:
        lines.insert(draw(st.integers(0, len(lines))), "\n")
    body = "".join(lines)
    if draw(st.integers(0, 4)) == 0:
        torn = draw(st.sampled_from(lines))
        body += torn[: draw(st.integers(1, max(1, len(torn) - 1)))].rstrip("\n")
    bom = "\ufeff" if draw(st.integers(0, 7)) == 0 else ""
    return (bom + ",".join(HEADER) + "\n" + body).encode(), texts


def _reset(store: Path, argv: list[str]) -> tuple[int, str, bytes]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = _cli.main(["reset", str(store), *argv, "--yes"])
    return code, out.getvalue().replace(str(store), "STORE"), store.read_bytes()


@pytest.mark.parametrize("bulk", [False, True], ids=["small", "bulk"])
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(store=raw_stores(), pick=st.data())
def test_reset_where_leaves_the_bytes_the_spelling_rewrite_leaves(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    bulk: bool,
    store: tuple[bytes, list[str]],
    pick: st.DataObject,
) -> None:
    data, texts = store
    where = {"a": pick.draw(st.sampled_from(texts) | st.sampled_from(TEXTS))}
    if bulk:  # read as columns by Arrow, as a big store is (a small one is read as records)
        monkeypatch.setattr(_csv, "_BULK_BYTES", 0)
    # Past this many runs of quoted records, all kept records are spelled anew.
    monkeypatch.setattr(_csv_kept, "_MOST_SPELLED_RUNS", pick.draw(st.sampled_from([0, 1, 256])))
    argv = [f"--where={k}={v}" for k, v in where.items()]
    ref, new = tmp_path / "ref.csv", tmp_path / "new.csv"
    ref.write_bytes(data)
    shutil.copyfile(ref, new)
    with monkeypatch.context() as spelling:
        spelling.setattr(_csv, "kept_body", lambda *args: None)  # the rewrite before this
        expected = _reset(ref, argv)
    assert _reset(new, argv) == expected


def test_only_the_kept_records_whose_lines_hold_quotes_are_spelled_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lines without quotes are copied as they lie: a million plain records are
    not spelled again to remove a thousand; a quoted one is, as the writer would."""
    meta = "f,2026-01-01T00:00:00+00:00,0.1,h,,3"
    lines = [f"x,{n},,{meta}\n" for n in range(4)]
    lines.insert(2, f'"a,b",9,,{meta}\n')
    lines.insert(4, f'"plain",8,,{meta}\n')  # quoted without need: spelled `plain`
    store = tmp_path / "s.csv"
    store.write_bytes((",".join(HEADER) + "\n" + "".join(lines)).encode())
    spelled: list[int] = []
    format_rows = _csv.format_rows

    def counting(rows: Any, header: Any) -> bytes:
        spelled.append(len(rows))
        return format_rows(rows, header)

    monkeypatch.setattr(_csv, "format_rows", counting)
    monkeypatch.setattr(_csv, "_BULK_BYTES", 0)  # read as columns, as a big store is
    code, _, after = _reset(store, ["--where", "b=1"])
    assert code == 0
    assert spelled == [1, 1]
    kept = [line for line in lines if not line.startswith("x,1,")]
    kept[3] = kept[3].replace('"plain"', "plain")
    assert after == (",".join(HEADER) + "\n" + "".join(kept)).encode()
    assert [r["b"] for r in csv.DictReader(io.StringIO(after.decode()))] == [
        "0",
        "9",
        "2",
        "8",
        "3",
    ]


def test_a_stray_quote_does_not_shift_which_lines_are_copied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``x"y`` (a quote inside an unquoted cell, read as it is) flips the count of
    quotes that finds where records end: the lines are then all spelled anew."""
    meta = "f,2026-01-01T00:00:00+00:00,0.1,h,,3"
    body = f'x"y,1,,{meta}\n"p\nq\nr",2,,{meta}\nz"w,3,,{meta}\nd,9,,{meta}\n'
    monkeypatch.setattr(_csv, "_BULK_BYTES", 0)  # read as columns by Arrow
    stores = []
    for name in ("ref", "new"):
        store = tmp_path / f"{name}.csv"
        store.write_bytes((",".join(HEADER) + "\n" + body).encode())
        stores.append(store)
    with monkeypatch.context() as spelling:
        spelling.setattr(_csv, "kept_body", lambda *args: None)
        expected = _reset(stores[0], ["--where", "b=9"])
    assert expected[0] == 0
    assert _reset(stores[1], ["--where", "b=9"]) == expected


def test_a_full_disk_while_kept_lines_are_copied_leaves_the_store_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The copied lines go through the same temporary file as a rewrite: a disk
    that fills midway changes nothing, and the reset works once there is room."""
    meta = "f,2026-01-01T00:00:00+00:00,0.1,h,,3"
    store = tmp_path / "s.csv"
    store.write_bytes(
        (",".join(HEADER) + "\n" + "".join(f"x,{n},,{meta}\n" for n in range(6))).encode()
    )
    before = store.read_bytes()
    monkeypatch.setattr(_csv, "_BULK_BYTES", 0)  # read as columns, as a big store is
    copied: list[bool] = []
    kept_body = _csv_kept.kept_body

    def spying(*args: Any) -> Any:
        copied.append((body := kept_body(*args)) is not None)
        return body

    monkeypatch.setattr(_csv, "kept_body", spying)
    real_write = os.write

    def full(fd: int, data: Any) -> int:
        real_write(fd, bytes(data[:10]))  # part of it, then the disk is full
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as disk:
        disk.setattr(os, "write", full)
        code, out, after = _reset(store, ["--where", "b=2"])
    assert code != 0
    assert os.strerror(errno.ENOSPC) in out
    assert copied == [True]
    assert after == before
    assert not list(tmp_path.glob("*.tmp"))  # no temporary file left
    assert _reset(store, ["--where", "b=2"])[2] == before.replace(f"x,2,,{meta}\n".encode(), b"")

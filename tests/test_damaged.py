"""Damaged and foreign files: a clear error naming the file, never an empty store.

A store that cannot be understood must never be read as empty (that would
silently re-run a whole sweep) nor be overwritten. Each case below is a file
someone could plausibly end up with; the fuzz test mutates real stores.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import stet
from stet.backends import get_backend

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01"


def _built(make: Callable[[Path], None], name: str) -> bytes:
    """The bytes of a file that ``make`` writes."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        make(path)
        return path.read_bytes()


def real_store(ext: str, records: int = 3) -> bytes:
    """The bytes of a store stet wrote, with a few records."""

    def make(path: Path) -> None:
        backend = type(get_backend(path))(path)
        for x in range(records):
            backend.record({"x": x, "name": f"run {x}"}, function="run")
        backend.flush()

    return _built(make, f"store.{ext}")


def sqlite_db(*statements: str) -> bytes:
    def make(path: Path) -> None:
        with sqlite3.connect(path) as conn:
            for statement in statements:
                conn.execute(statement)
        conn.close()

    return _built(make, "db.sqlite")


def parquet_of(table: pa.Table) -> bytes:
    return _built(lambda path: pq.write_table(table, path), "t.parquet")


def parquet_strings(**columns: list[str]) -> bytes:
    return parquet_of(pa.table({k: pa.array(v, pa.string()) for k, v in columns.items()}))


RECORDS = "CREATE TABLE stet_records "

DAMAGED: list[tuple[str, bytes, str]] = [
    # CSV
    ("csv", b"", "empty"),
    ("csv", b"alpha,seed\n1,2\n", "no _stet_timestamp column"),
    ("csv", b"name,age\nbob,31\nalice,27\n", "not a stet store"),
    ("csv", b"a,_stet_timestamp\n1,2,3\n", "3 cells"),
    ("csv", b"a,_stet_timestamp\n1\n2,t\n", "1 cells"),
    ("csv", b"a,_stet_timestamp\n1\x002\n", "NUL"),
    ("csv", PNG, "NUL"),
    ("csv", "\ufeffa,_stet_timestamp\n1,t\n".encode("utf-16"), "UTF-16"),
    ("csv", b"a,_stet_timestamp\n\xff\xfe,x\n", "UTF-8"),
    ("csv", b"a,_stet_timestamp\n1,t\n" + b"\xff" * 10 + b"\n2,t\n", "not UTF-8"),
    ("csv", b"a,a,_stet_timestamp\n", "repeats"),
    ("csv", b"no newline at all", "header"),
    ("csv", b"\n\n\n", "no _stet_timestamp column"),
    ("csv", b"a b,_stet_timestamp\n1,t\n", "not a parameter name"),
    ("csv", b",a,_stet_timestamp\n0,1,t\n", "not a parameter name"),  # pandas' index
    ("csv", b"a\t_stet_timestamp\n1\tt\n", "no _stet_timestamp column"),  # tab-separated
    ("csv", b"a,_stet_timestamp,_stet_codec\n1,t,99\n", "newer than this stet's"),
    ("csv", b"a,_stet_timestamp,_stet_codec\n1,t,x\n", "not a version"),
    # JSON
    ("json", b"", "empty"),
    ("json", b"{}", "'['"),
    ("json", b'{"records": [{"a": "1", "_stet_timestamp": "t"}]}', "'['"),
    ("json", b'"hello"', "'['"),
    ("json", b"null", "'['"),
    ("json", b'{"a": "1", "_stet_timestamp": "t"}\n', "'['"),  # JSON Lines
    ("json", PNG, "NUL"),
    ("json", "\ufeff[]".encode("utf-16"), "UTF-16"),
    ("json", b'[{"a": "1", "_stet_timestamp": "t"}]\x00\n', "NUL"),
    ("json", b"[1, 2]", "not a JSON object"),
    ("json", b'[{"a": "1"}]', "_stet_timestamp"),
    ("json", b'[\n{"a": "1", "_stet_timestamp": "t"},\ngarbage\n{"b": 2}\n]', "not valid JSON"),
    ("json", b'[\n  {\n    "a": "1",\n', "not valid JSON"),  # pretty-printed, cut
    ("json", b'[{"a": [1], "_stet_timestamp": "t"}]', "list"),
    ("json", b'[{"a": {"b": "1"}, "_stet_timestamp": "t"}]', "dict"),
    ("json", b'[{"a b": "1", "_stet_timestamp": "t"}]', "not a parameter name"),
    ("json", b'[{"_stet_timestamp": "t"}] trailing', "after the closing"),
    ("json", b'[{"a": "1", "_stet_timestamp": "t", "_stet_codec": "99"}]', "newer"),
    # SQLite
    ("sqlite", b"not a database at all, just text", "not a SQLite database"),
    ("sqlite", b"SQLite format 3\x00" + b"\x00" * 100, "SQLite"),
    ("sqlite", b"SQLite format 3\x00" + bytes(range(256)) * 20, "SQLite"),
    ("sqlite", real_store("sqlite")[:1500], "SQLite"),  # truncated
    ("sqlite", sqlite_db("CREATE TABLE patients (name TEXT)"), "no stet_records table"),
    ("sqlite", sqlite_db(RECORDS + "(a TEXT, b TEXT)"), "no _stet_timestamp column"),
    ("sqlite", sqlite_db(RECORDS + '("a b" TEXT, _stet_timestamp TEXT)'), "not a parameter"),
    (
        "sqlite",
        sqlite_db(
            RECORDS + "(a, _stet_timestamp)", "INSERT INTO stet_records VALUES (x'00ff', 't')"
        ),
        "bytes, not text",
    ),
    (
        "sqlite",
        sqlite_db(
            RECORDS + "(a TEXT, _stet_timestamp TEXT, _stet_codec TEXT)",
            "INSERT INTO stet_records VALUES ('1', 't', '99')",
        ),
        "newer",
    ),
    # Parquet
    ("parquet", b"", "empty"),
    ("parquet", b"PAR1garbagePAR1", "Parquet"),
    ("parquet", b"alpha,seed\n1,2\n", "Parquet"),
    ("parquet", b"\x00" * 4096, "Parquet"),
    ("parquet", real_store("parquet")[:-6], "Parquet"),  # footer cut
    ("parquet", real_store("parquet")[:300], "Parquet"),  # cut in the middle
    ("parquet", parquet_of(pa.table({"x": [1], "_stet_timestamp": ["t"]})), "not string"),
    ("parquet", parquet_strings(alpha=["1"], seed=["2"]), "_stet_timestamp"),
    ("parquet", parquet_strings(**{"a b": ["1"], "_stet_timestamp": ["t"]}), "not a parameter"),
    ("parquet", parquet_strings(a=["1"], _stet_timestamp=["t"], _stet_codec=["99"]), "newer"),
]


@pytest.mark.parametrize(
    ("ext", "content", "problem"), DAMAGED, ids=[f"{e}-{p}" for e, _, p in DAMAGED]
)
def test_a_damaged_store_is_an_error_never_an_empty_store(
    tmp_path: Path, ext: str, content: bytes, problem: str
) -> None:
    path = tmp_path / f"runs.{ext}"
    path.write_bytes(content)
    backend = get_backend(path)
    with pytest.raises(stet.StoreError, match=re.escape(problem)) as info:
        backend.has({"x": 1})
    assert str(path) in str(info.value)
    with pytest.raises(stet.StoreError):
        backend.record({"x": 1})
    with pytest.raises(stet.StoreError):
        stet.read(path)
    assert path.read_bytes() == content  # never overwritten


def test_the_damaged_files_cover_every_store(capsys: pytest.CaptureFixture[str]) -> None:
    counts = pd.Series([e for e, _, _ in DAMAGED]).value_counts()
    assert len(DAMAGED) >= 40
    assert set(counts.index) == {"csv", "json", "sqlite", "parquet"}
    with capsys.disabled():
        print(f"\n  damaged files tried: {len(DAMAGED)} ({counts.to_dict()})")


def test_an_unclosed_quote_followed_by_records_is_never_cut_off(tmp_path: Path) -> None:
    """A half-written last record is cut off before the next append; lines
    that a hand edit swallowed into one cell are not, even though reading
    cannot tell them apart from such a record."""
    path = tmp_path / "runs.csv"
    content = b'a,_stet_timestamp\n"1,t\n3,t\n4,t\n'
    path.write_bytes(content)
    backend = get_backend(path)
    with pytest.raises(stet.StoreError, match="quote that is never closed"):
        backend.record({"a": 5})
    with pytest.raises(stet.StoreError, match="quote that is never closed"):
        backend.record({"a": 5, "b": 1})  # a new column: the file would be rewritten
    assert path.read_bytes() == content


# -- fuzzing ----------------------------------------------------------------

VALID = {ext: real_store(ext, records=4) for ext in ("csv", "json", "sqlite", "parquet")}


Mutation = tuple[str, int, bytes]


def mutate(data: bytes, mutations: list[Mutation]) -> bytes:
    """Apply (kind, position, bytes) edits; positions wrap around the length."""
    out = bytearray(data)
    for kind, position, chunk in mutations:
        at = position % (len(out) + 1)
        if kind == "overwrite":
            out[at : at + len(chunk)] = chunk
        elif kind == "insert":
            out[at:at] = chunk
        elif kind == "delete":
            del out[at : at + len(chunk)]
        else:
            del out[at:]
    return bytes(out)


MUTATIONS = st.lists(
    st.tuples(
        st.sampled_from(["overwrite", "insert", "delete", "truncate"]),
        st.integers(0, 1 << 16),
        st.binary(min_size=1, max_size=8),
    ),
    min_size=1,
    max_size=3,
)


@settings(max_examples=300)
@given(ext=st.sampled_from(sorted(VALID)), mutations=MUTATIONS)
def test_a_mutated_store_fails_clearly_or_keeps_what_it_holds(
    ext: str, mutations: list[Mutation]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:  # nothing left from other examples
        check_mutated(Path(tmp) / f"fuzz.{ext}", mutate(VALID[ext], mutations))


def check_mutated(path: Path, content: bytes) -> None:
    path.write_bytes(content)
    backend = type(get_backend(path))(path)
    with contextlib.suppress(stet.StoreError):  # decoding may fail; nothing else
        backend.load()
    try:
        before = backend.store.records()  # the texts as stored, not decoded
    except stet.StoreError as exc:
        problem = str(exc)
        assert str(path) in problem
        assert path.read_bytes() == content
        # A write is refused, or (Parquet, whose new records go to a journal
        # and whose index needs only some columns) leaves the file alone.
        with contextlib.suppress(stet.StoreError):
            backend.record({"x": 99, "name": "new"}, function="run")
            assert path.suffix == ".parquet"
        assert path.read_bytes() == content
        return
    assert path.read_bytes() == content
    # What could be read survives the next write.
    try:
        backend.record({"x": 99, "name": "new"}, function="run")
    except stet.StoreError:
        assert path.read_bytes() == content  # refused, untouched
        return
    after = type(backend)(path).store.records()
    for row in before:
        assert row in after
    assert {"x": "99", "name": "new"}.items() <= after[-1].items()


def test_a_sqlite_store_whose_schema_text_is_not_utf8_is_a_store_error(tmp_path: Path) -> None:
    """A damaged byte in the schema's text made SQLite hand back undecodable
    text: a UnicodeDecodeError escaped instead of a StoreError naming the file
    (found by the mutation test above)."""
    path = tmp_path / "runs.sqlite"
    stet.backends.get_backend(path).record({"x": 1})
    stet.backends.forget_open()
    data = bytearray(path.read_bytes())
    data[data.find(b"stet_meta") + 1] = 0x80
    path.write_bytes(bytes(data))
    with pytest.raises(stet.StoreError, match=r"runs\.sqlite: cannot be read"):
        stet.backends.StoreBackend(stet.backends.new_store(path)).has({"x": 1})

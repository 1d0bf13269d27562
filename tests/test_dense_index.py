"""The dense index answers exactly as a plain set of the keys would.

A big store's keys are held as texts in a table (`stet.backends._dense`),
so that opening ten million records fits in memory. Everything a user relies
on must not notice: a recorded key is skipped, an unrecorded one runs, a
partial ``has`` finds what it found before. The thresholds are lowered
here so that small examples take the dense path.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import stet
import stet.testing
from stet.backends import _dense, _dense_texts
from stet.backends._dense import KeySet
from stet.backends._dense_texts import texts_of_arrow, texts_of_strs
from stet.backends._index import SEP, KeyIndex, Packed, pack
from stet.backends._records import Columns
from stet.backends._schema import CODEC, CURRENT, FUNCTION

texts = st.text(max_size=12) | st.sampled_from(["", "0", "0.1", "nan", "a\x00b", "é", "\U0001f600"])
packed_keys = texts | st.tuples(texts, texts).map(lambda t: (t[0] + SEP, t[1]))


@pytest.fixture
def small_thresholds() -> Iterator[None]:
    with mock.patch.object(_dense, "FOLD_AT", 4), mock.patch.object(_dense, "CHUNK", 3):
        yield


def _lowered() -> mock._patch[int]:
    return mock.patch.object(_dense, "FOLD_AT", 4)


@given(
    bulk=st.lists(texts, max_size=40),
    singles=st.lists(packed_keys, max_size=30),
    others=st.lists(packed_keys, max_size=30),
)
def test_a_key_set_answers_exactly_as_a_set(
    bulk: list[str], singles: list[Packed], others: list[Packed]
) -> None:
    """Keys taken in bulk and one at a time (folded into the table past a
    few) are found, and no other key is."""
    with _lowered():
        keys = KeySet()
        keys.absorb(texts_of_strs(bulk))
        for key in singles:
            keys.add(key)
        reference = set(bulk) | set(singles)
        for key in [*bulk, *singles, *others]:
            assert (key in keys) == (key in reference), key
        assert keys == KeySet(reference)


def test_the_empty_text_is_a_key_like_others() -> None:
    """Its bytes read as a number are 0, and the table marks an empty slot by 0."""
    keys = KeySet()
    keys.absorb(texts_of_strs(["", "a"]))
    assert "" in keys
    assert "a" in keys
    assert "b" not in keys
    assert ("",) not in keys


def test_a_key_set_of_many_keys_takes_under_40_bytes_a_key() -> None:
    keys = KeySet()
    texts_ = [f"{i / 7:.6f}{SEP}{i}" for i in range(1 << 18)]
    keys.absorb(texts_of_strs(texts_))
    assert keys.nbytes / len(texts_) < 40
    assert texts_[12345] in keys
    assert f"0.5{SEP}1" not in keys


rows = st.lists(
    st.tuples(st.sampled_from(["", "run", "other"]), texts, texts), min_size=1, max_size=30
)


@given(rows=rows, queries=st.lists(st.tuples(texts, texts), max_size=10))
def test_an_index_read_in_bulk_answers_as_one_read_record_by_record(
    rows: list[tuple[str, str, str]], queries: list[tuple[str, str]]
) -> None:
    """Differential: the dense path (columns of a big read) and the exact
    path (records) answer every lookup and partial match alike."""
    records = [
        {"a": a, "b": b, CODEC: CURRENT, **({FUNCTION: fn} if fn else {})} for fn, a, b in rows
    ]
    table = pa.table(
        {
            "a": [r["a"] for r in records],
            "b": [r["b"] for r in records],
            CODEC: [CURRENT] * len(records),
            FUNCTION: [r.get(FUNCTION) for r in records],
        }
    )
    with _lowered(), mock.patch.object(_dense, "CHUNK", 3):
        bulk = KeyIndex("here", lambda: records)
        bulk.rebuild(Columns.of_arrow(table))
        exact = KeyIndex("here", lambda: records)
        exact.rebuild(records)
        assert bulk.groups == exact.groups
        asked = [(a, b) for _, a, b in rows] + queries
        for fn in ("run", "other", ""):
            for a, b in asked:
                key = pack((a, b))
                assert bulk.knows(fn, ("a", "b"), key) == exact.knows(fn, ("a", "b"), key)
                for cols, values in [(("a",), (a,)), (("b",), (b,))]:
                    assert bulk.matches(fn, cols, values) == exact.matches(fn, cols, values)


def test_a_big_store_skips_what_it_recorded_and_runs_the_rest(
    tmp_path: Path, small_thresholds: None
) -> None:
    """Opened from its file, a store past the bulk size is held in the table
    and skips exactly its recorded keys, old and new."""
    store = str(tmp_path / "runs.parquet")
    ran: list[tuple[float, int]] = []

    @stet.once(store=store, quiet=True)
    def run(alpha: float, seed: int) -> None:
        ran.append((alpha, seed))

    stet.mark_done(run, [{"alpha": i / 10, "seed": i} for i in range(50)])
    stet.backends.get_backend(store).flush()
    stet.testing.fresh_process()
    run(0.0, 0)
    # Reading a store whole replaces its index, so look at it after the first call.
    index = run.__stet__.store._reader.index  # type: ignore[attr-defined]
    assert any(keys.dense for keys in index.groups.values())
    for i in range(60):
        run(i / 10, i)
    assert ran == [(i / 10, i) for i in range(50, 60)]
    assert stet.backends.get_backend(store).has({"alpha": 0.3})
    assert not stet.backends.get_backend(store).has({"alpha": 0.35})


# -- the tag: numpy over a chunk's bytes and Python per call give one value ---------

any_text = st.text(alphabet=st.characters(blacklist_categories=()), max_size=40)  # surrogates too
long_texts = st.integers(1, 5000).map(lambda n: "é\x00" * n)


@given(st.lists(any_text | long_texts, max_size=30))
def test_the_tag_of_a_chunk_is_the_tag_of_each_text(keys: list[str]) -> None:
    """Differential: `Hasher.tags` (numpy, over a chunk's bytes) equals
    `tag` (Python, per call) for any texts: empty, NUL, any unicode, long."""
    for texts in texts_of_strs(keys):
        assert [bytes(t) for t in texts] == [_dense_texts.encoded(k) for k in keys]
        assert _dense_texts.Hasher().tags(texts).tolist() == [_dense_texts.tag(t) for t in texts]


@given(st.lists(any_text | long_texts, max_size=30), st.integers(1, 64))
def test_the_tag_of_texts_taken_a_piece_at_a_time_is_the_tag_of_each_text(
    keys: list[str], piece: int
) -> None:
    """Differential: many texts are tagged a few bytes at a time (split at
    their bounds, a text longer than a piece alone), as each text alone."""
    with mock.patch.object(_dense_texts, "_PIECE", piece):
        for texts in texts_of_strs(keys):
            assert _dense_texts.Hasher().tags(texts).tolist() == [
                _dense_texts.tag(t) for t in texts
            ]


@given(
    st.lists(st.tuples(st.text(max_size=12), st.text(max_size=12)), min_size=1, max_size=30),
    st.integers(0, 29),
    st.sampled_from([0, 1 << 30]),
)
def test_keys_read_from_arrow_columns_are_the_joined_texts(
    rows: list[tuple[str, str]], skip: int, combine: int
) -> None:
    """Columns joined in C (a slice, chunked, of each Arrow string type; taken
    chunk by chunk or made one) give the texts and tags the per-call path gives."""
    a = [r[0] for r in rows]
    b = [r[1] for r in rows]
    first = pa.chunked_array([pa.array(a[:1]), pa.array(a[1:], pa.string())])
    for kind in (pa.string(), pa.large_string(), pa.string_view()):
        second = pa.chunked_array([pa.array(b, kind)])
        start = min(skip, len(rows) - 1)
        with mock.patch.object(_dense_texts, "_COMBINE", combine):  # chunk by chunk, or one
            chunks = list(texts_of_arrow([first[start:], second[start:]], SEP))
        got = [bytes(t) for texts in chunks for t in texts]
        assert got == [_dense_texts.encoded(x + SEP + y) for x, y in rows[start:]]
        tags = [t for texts in chunks for t in _dense_texts.Hasher().tags(texts).tolist()]
        assert tags == [_dense_texts.tag(t) for t in got]


def test_texts_of_equal_tag_are_told_apart() -> None:
    """The tag only files a key: a text of the same tag as a recorded key is
    not taken for it (no false positive, whatever the odds)."""
    recorded = b"seed=12345678"
    value = int.from_bytes(recorded)
    twins = []
    for k in range(1, 100_000):
        other = (value + k * _dense_texts.PRIME).to_bytes(len(recorded))
        if all(32 <= c < 127 for c in other):
            twins.append(other.decode())
        if len(twins) == 3:
            break
    assert twins
    assert {_dense_texts.tag(t.encode()) for t in twins} == {_dense_texts.tag(recorded)}
    keys = KeySet()
    keys.absorb(texts_of_strs([recorded.decode()]))
    assert recorded.decode() in keys
    for twin in twins:
        assert twin not in keys


def _same_tag(head: bytes, width: int) -> list[str]:
    """Texts ``head + x`` (x of ``width`` bytes) whose tag is ``head``'s."""
    prime = _dense_texts.PRIME
    value = int.from_bytes(head)
    # v(head + x) = v(head) * 256**width + v(x): equal to v(head) modulo PRIME
    # when v(x) is this, or this plus a multiple of PRIME.
    start = -value * (256**width - 1) % prime
    found = []
    for k in range(200_000):
        tail = start + k * prime
        if tail >= 256**width:
            break
        x = tail.to_bytes(width)
        if max(x) < 128:
            found.append((head + x).decode())
    return found


def test_a_key_is_not_found_by_a_prefix_or_an_extension_of_it() -> None:
    """Even when their tags agree: the END after each text tells where it ends."""
    longer = _same_tag(b"run-7", 6)
    assert longer
    keys = KeySet()
    keys.absorb(texts_of_strs(longer[:1]))
    assert _dense_texts.tag(longer[0].encode()) == _dense_texts.tag(b"run-7")
    assert "run-7" not in keys
    assert longer[0] in keys
    keys = KeySet()
    keys.absorb(texts_of_strs(["run-7"]))
    assert all(k not in keys for k in longer)
    keys = KeySet()
    keys.absorb(texts_of_strs(["ab", "abcd", "x\x1fy"]))
    for key in ["a", "abc", "abcde", "x", "x\x1f", "x\x1fyy", "b"]:
        assert key not in keys
    assert all(k in keys for k in ["ab", "abcd", "x\x1fy"])


def test_texts_past_one_pack_and_a_text_longer_than_a_pack_are_found() -> None:
    """Packs close at 4 MiB; a text of 5 MiB fills one of its own."""
    big = [f"{i:06d}" + "x" * 20_000 for i in range(300)] + ["L" * (5 << 20), "z"]
    keys = KeySet()
    keys.absorb(texts_of_strs(big))
    assert len(keys._packs) >= 3
    assert all(k in keys for k in big)
    assert "L" * ((5 << 20) - 1) not in keys
    assert big[7][:-1] not in keys


def test_keys_past_what_a_table_can_point_to_are_held_in_the_set() -> None:
    texts_ = [f"{i}" + "y" * 100_000 for i in range(60)]
    with mock.patch.object(_dense, "MAX_PACKS", 1):
        keys = KeySet()
        keys.absorb(texts_of_strs(texts_))
    assert len(keys._packs) == 1
    assert keys.recent
    assert len(keys) == len(texts_)
    assert all(k in keys for k in texts_)
    assert keys == KeySet(texts_)


def test_a_fold_keeps_keys_no_store_could_hold() -> None:
    """A lone surrogate (held by this process only) folds into the table and
    is found there, by the same bytes."""
    with _lowered():
        keys = KeySet()
        for key in ["\ud800", "a\udfffb", "plain", "é", ""]:
            keys.add(key)
    assert keys.dense
    for key in ["\ud800", "a\udfffb", "plain", "é", ""]:
        assert key in keys
    assert "\ud801" not in keys


class KeySetAgainstASet(RuleBasedStateMachine):
    """Stateful: any sequence of bulk reads, single adds, folds and lookups
    answers as a plain set."""

    def __init__(self) -> None:
        super().__init__()
        self.patch = _lowered()
        self.patch.start()
        self.keys = KeySet()
        self.reference: set[Packed] = set()

    def teardown(self) -> None:
        self.patch.stop()

    @rule(bulk=st.lists(any_text, max_size=8))
    def absorb(self, bulk: list[str]) -> None:
        self.keys.absorb(texts_of_strs(bulk))
        self.reference.update(bulk)

    @rule(key=packed_keys | any_text)
    def add(self, key: Packed) -> None:
        self.keys.add(key)
        self.reference.add(key)

    @rule(key=packed_keys | any_text)
    def ask(self, key: Packed) -> None:
        assert (key in self.keys) == (key in self.reference)

    @invariant()
    def recorded_keys_are_found(self) -> None:
        assert all(k in self.keys for k in self.reference)


TestKeySetAgainstASet = KeySetAgainstASet.TestCase


@pytest.mark.parametrize("ext", ["parquet", "csv"])
def test_a_big_store_of_two_functions_skips_each_ones_own_keys(
    tmp_path: Path, small_thresholds: None, ext: str
) -> None:
    """Read in bulk (Parquet, its function column as a dictionary) or folded
    from the set (CSV, recorded one at a time), each function's keys go to
    its own table: a key of one is not done for the other."""
    store = str(tmp_path / f"runs.{ext}")
    ran: list[tuple[str, int]] = []

    @stet.once(store=store, quiet=True, name="first")
    def first(seed: int) -> None:
        ran.append(("first", seed))

    @stet.once(store=store, quiet=True, name="second")
    def second(seed: int) -> None:
        ran.append(("second", seed))

    stet.mark_done(first, [{"seed": i} for i in range(0, 40, 2)])
    stet.mark_done(second, [{"seed": i} for i in range(1, 40, 2)])
    stet.backends.get_backend(store).flush()
    stet.testing.fresh_process()
    for i in range(40):
        first(i)
        second(i)
    index = first.__stet__.store._reader.index  # type: ignore[attr-defined]
    assert sum(keys.dense for keys in index.groups.values()) == 2
    assert ran == [("second", i) if i % 2 == 0 else ("first", i) for i in range(40)]


@given(
    cells=st.lists(st.sampled_from([None, "", SEP, "a" + SEP, SEP + "b", "é", "ab"]), max_size=12),
    cut=st.integers(0, 12),
    start=st.integers(0, 12),
    large=st.booleans(),
)
def test_looking_for_the_separator_in_a_column_agrees_with_arrow_cell_by_cell(
    cells: list[str | None], cut: int, start: int, large: bool
) -> None:
    # The separator search (whether keys must be packed one by one) reads
    # the column's bytes in one pass: on chunks, slices and nulls it must
    # find exactly the cells Arrow finds cell by cell (null cells that Arrow
    # built hold no bytes).
    kind = pa.large_string() if large else pa.string()
    chunks: list[pa.Array[Any]] = [pa.array(cells[:cut], kind), pa.array(cells[cut:], kind)]
    column = pa.chunked_array(chunks, type=kind).slice(start)
    found = Columns.of_arrow(pa.Table.from_arrays([column], names=["k"])).contains("k", SEP)
    assert found == any(SEP in c for c in column.to_pylist() if c is not None)


@given(
    st.lists(
        st.tuples(
            st.integers(1, _dense_texts.PRIME) | st.sampled_from([1, 2, _dense_texts.PRIME]),
            st.integers(0, 2**32 - 1),
        ),
        min_size=1,
        max_size=300,
    )
)
def test_the_table_files_each_entry_where_linear_probing_finds_it(
    entries: list[tuple[int, int]],
) -> None:
    """Whatever the tags (equal ones, the extremes, many of one home slot):
    the table holds each (tag, place) once, and every slot from an entry's
    home slot to its own is taken, so a lookup reaches it before a gap."""
    keys = KeySet()
    tags = np.array([t for t, _ in entries], dtype=np.uint32)
    places = np.array([p for _, p in entries], dtype=np.uint32)
    keys._build(tags, places)
    assert keys._probe is not None
    table, home, _ = keys._probe
    pairs = np.frombuffer(table, dtype=np.uint32).reshape(-1, 2)
    assert pairs[-1, 0] == 0  # the last slot is empty: a probe ends there
    filed = sorted((int(t), int(p)) for t, p in pairs[pairs[:, 0] != 0])
    assert filed == sorted(entries)
    for slot, (tag, _) in enumerate(pairs.tolist()):
        if tag:
            assert all(pairs[between, 0] for between in range(tag % home, slot + 1))


@given(bulk=st.lists(any_text | long_texts | texts, max_size=40), others=st.lists(any_text))
def test_texts_of_any_unicode_and_length_are_found_exactly_as_in_a_set(
    bulk: list[str], others: list[str]
) -> None:
    """Empty, long, surrogates, duplicates taken in bulk: each is found, and
    no other text (nor a prefix or an extension of one) is."""
    keys = KeySet()
    keys.absorb(texts_of_strs(bulk))
    reference = set(bulk)
    near = [k[:-1] for k in bulk if k] + [k + "\x00" for k in bulk]
    for key in [*bulk, *others, *near]:
        assert (key in keys) == (key in reference), key

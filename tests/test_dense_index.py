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
from unittest import mock

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

import stet
import stet.testing
from stet.backends import _dense
from stet.backends._dense import KeySet
from stet.backends._dense_texts import texts_of_strs
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

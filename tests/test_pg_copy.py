"""mark_done into PostgreSQL: key columns through COPY, the same records as row by row."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import stet
from stet.backends import _pg_copy, _pg_rows, new_store
from stet.backends._new_records import NewRecords
from stet.backends._pg_copy import key_jsons
from stet.backends._pg_rows import Rows
from stet.backends._pg_schema import key_json
from stet.backends._postgres import PostgresStore
from stet.backends._records import Record
from stet.backends._schema import TIMESTAMP

from . import pg_server as pg
from .conftest import new_pg_store

#: Texts a key cell may hold when written straight through `Store.add`: any
#: character the server stores (not NUL or a lone surrogate), with CSV's and JSON's specials.
texts = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=12
) | st.sampled_from(
    ['"', '""', ",", "\n", "\r\n", "\r", "\\", "\\N", "", " ", "{}", "\u2028", "é", "\U0001f600"]
)
names = st.lists(
    st.text(
        st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"),
        min_size=1,
        max_size=6,
    )
    | st.sampled_from(["{", "}", "{x}", '"', "%s", "\\"]),
    min_size=1,
    max_size=3,
    unique=True,
)


@given(names.flatmap(lambda n: st.tuples(st.just(n), st.lists(st.tuples(*[texts] * len(n))))))
def test_the_key_texts_made_column_wise_are_key_json(case: tuple[list[str], list[Any]]) -> None:
    """Each record's _stet_key is the JSON the row-by-row path makes, whatever the
    column names and texts (braces, quotes, backslashes, any character)."""
    cols, keys = case
    order = sorted(cols)
    assert key_jsons(cols, keys) == [
        key_json(order, [dict(zip(cols, key, strict=True))[c] for c in order]) for key in keys
    ]


def _rows(store: str) -> list[Record]:
    return sorted(
        ({c: t for c, t in r.items() if c != TIMESTAMP} for r in new_store(store).records()),
        key=repr,
    )


def _table_rows(server: pg.Server, store: str) -> list[tuple[Any, ...]]:
    """Every row as the table holds it, _stet_key included; not the time or change number."""
    table = store.rsplit("=", 1)[1]
    with psycopg.connect(server.url()) as conn:
        if not conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchall()[0][0]:
            return []  # nothing was ever written
        cur = conn.execute(f'SELECT * FROM "{table}"')
        names = [d.name for d in cur.description or ()]
        rows = [
            tuple((n, v) for n, v in zip(names, row, strict=True) if n not in _CHANGING)
            for row in cur.fetchall()
        ]
    return sorted(rows, key=repr)


_CHANGING = ("_stet_timestamp", "_stet_seq")


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(st.tuples(texts, texts), max_size=12),
    st.lists(st.tuples(texts, texts), max_size=4),
)
def test_copied_records_are_those_written_one_by_one(
    pg_server: pg.Server,
    monkeypatch: pytest.MonkeyPatch,
    keys: list[tuple[str, str]],
    first: list[tuple[str, str]],
) -> None:
    """Differential: the same rows (every column but the time and the change number) and
    the same count, already recorded keys and duplicates skipped, as records sent one by
    one; CSV's and JSON's special characters survive the copy."""
    fast, slow = new_pg_store(pg_server), new_pg_store(pg_server)
    monkeypatch.setattr(_pg_copy, "_CHUNK", 5)  # several chunks, one cut mid-batch
    counts = []
    for store, copy_rows in ((fast, 0), (slow, 10**9)):
        monkeypatch.setattr(_pg_rows, "_COPY_ROWS", copy_rows)
        table = new_store(store)
        table.add("run", ("a", "b"), first)
        if copy_rows:
            counts.append(sum(table.add("run", ("a", "b"), [key]) for key in keys))
        else:
            counts.append(table.add("run", ("a", "b"), keys))
    assert counts[0] == counts[1]
    assert _rows(fast) == _rows(slow)
    assert _table_rows(pg_server, fast) == _table_rows(pg_server, slow)


def test_many_rows_are_sent_through_copy(pg_store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """mark_done of more rows than one statement takes goes column by column (so the
    differential test above is not vacuous), and the runs are then skipped."""
    sent: list[int] = []
    insert_new = Rows._insert_new

    def spy(self: Rows, rows: NewRecords) -> tuple[int, list[int]]:
        sent.append(len(rows))
        return insert_new(self, rows)

    monkeypatch.setattr(Rows, "_insert_new", spy)

    @stet.once(store=pg_store, quiet=True)
    def run(alpha: float, seed: int) -> None:
        raise AssertionError("imported runs are skipped")

    rows = [{"alpha": a / 8, "seed": s} for a in range(30) for s in range(30)]
    assert stet.mark_done(run, rows) == 900
    assert sent == [900]
    assert stet.mark_done(run, rows) == 0
    assert run(29 / 8, 29) is None
    assert stet.progress(run, rows).done == 900


def test_a_run_another_writer_records_meanwhile_is_neither_doubled_nor_counted(
    pg_server: pg.Server, pg_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between this process's look at the table and its COPY, another worker records
    some of the same runs: the unique index skips them, and the count is of the new."""
    monkeypatch.setattr(_pg_rows, "_COPY_ROWS", 0)
    mine, other = new_store(pg_store), new_store(pg_store)
    assert isinstance(mine, PostgresStore)
    keys = [(str(i), str(i % 7)) for i in range(50)]
    fresh_rows = mine._reader.fresh_rows

    def then_the_other_writes(*args: Any) -> Any:
        found = fresh_rows(*args)
        assert other.add("run", ("a", "b"), keys[10:20]) == 10
        return found

    monkeypatch.setattr(mine._reader, "fresh_rows", then_the_other_writes)
    assert mine.add("run", ("a", "b"), keys) == 40
    assert len(_table_rows(pg_server, pg_store)) == 50
    assert sorted((r["a"], r["b"]) for r in new_store(pg_store).records()) == sorted(keys)

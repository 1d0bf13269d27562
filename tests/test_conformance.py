"""The store contract, checked on every registered store.

The stores come from the registry (`stet.backends.registered`), one per
distinct factory, plus the in-memory store of tests/memory_store.py, which
stet does not know: registering a store is all it takes to have it tested
here. Each case says what code above the store (the decorator,
`stet.status`, the CLI) relies on, first at the text level
(`stet.typing.Store` and `ClaimingStore`), then through the value level
(`StoreBackend`, ``@stet.once``, ``stet.status/read/reset``). The stateful
test `StoreMachine` drives each store against a plain set.
"""

from __future__ import annotations

import itertools
import tempfile
import unittest
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

import stet
import stet.testing
from stet.backends import (
    StoreBackend,
    claims_in,
    get_backend,
    identity,
    new_store,
    open_store,
    pack,
    registered,
)
from stet.backends._failures import failure_lines
from stet.backends._registry import entry
from stet.typing import Backend, ClaimingStore, FailingStore, Failure, Store

from . import pg_server as pg
from . import strategies as S
from .conftest import new_pg_store, soak
from .fake_clock import FakeClock
from .memory_store import SCHEME as MEMORY

# -- the stores under test ----------------------------------------------------

_memory_names = itertools.count()


@attrs.frozen
class Kind:
    """One kind of store: the extension or scheme it is registered under."""

    name: str

    @property
    def id(self) -> str:
        return self.name.strip(".:/")

    def location(self, folder: Path, name: str = "runs") -> str:
        """A not-yet-created store of this kind (``folder`` holds a file store)."""
        if not self.name.endswith("://"):
            return str(folder / f"{name}{self.name}")
        if self.name == "postgresql://":
            return new_pg_store(pg.shared())
        if self.name == MEMORY:
            return f"{MEMORY}{name}-{next(_memory_names)}-{folder.name}"
        raise LookupError(
            f"tests/test_conformance.py cannot make a {self.name} location: "
            "add one to Kind.location, so the suite tests the new store"
        )


def registered_kinds() -> list[Kind]:
    """One kind per distinct registered factory (``.db`` opens as ``.sqlite`` does)."""
    kinds: list[Kind] = []
    factories: list[object] = []
    for shown in registered():
        name = shown.removesuffix("...")
        probe = f"{name}localhost/probe" if name.endswith("://") else f"probe{name}"
        factory = entry(probe).factory
        if not any(factory is seen for seen in factories):
            factories.append(factory)
            kinds.append(Kind(name))
    return kinds


#: The built-in stores, and the test store, registered by a fixture.
KINDS = [*registered_kinds(), Kind(MEMORY)]

#: Every store honours the store's clock for claims: the file stores and the
#: memory store time leases by it, PostgreSQL adds how far it is ahead
#: (`Clock.ahead`) to the server's now().
CLOCKED_KINDS = KINDS


def _prepare(request: pytest.FixtureRequest, kind: Kind) -> Kind:
    if kind.name == MEMORY:
        request.getfixturevalue("registered_memory")
    elif kind.name == "postgresql://":
        request.getfixturevalue("pg_server")
    return kind


@pytest.fixture(params=KINDS, ids=lambda k: k.id)
def store_kind(request: pytest.FixtureRequest) -> Kind:
    """Each registered kind of store."""
    return _prepare(request, request.param)


@pytest.fixture(params=CLOCKED_KINDS, ids=lambda k: k.id)
def clocked_kind(request: pytest.FixtureRequest) -> Kind:
    """Each kind of store whose claims are timed by the store's clock."""
    return _prepare(request, request.param)


@pytest.fixture
def location(store_kind: Kind, tmp_path: Path) -> str:
    """A not-yet-created store of each kind."""
    return store_kind.location(tmp_path)


def other(location: str, clock: FakeClock | None = None) -> ClaimingStore:
    """The store as another process (a worker on ``clock``) opens it."""
    opened = new_store(location) if clock is None else new_store(location, clock=clock)
    assert isinstance(opened, ClaimingStore)
    return opened


def test_the_suite_covers_every_registered_store(registered_memory: str) -> None:
    assert registered_kinds() == KINDS


# -- the text level: Store ------------------------------------------------------


def test_every_store_satisfies_the_contract(location: str) -> None:
    store = new_store(location)
    claiming: ClaimingStore = other(location)  # mypy checks assignability here
    assert isinstance(store, Store)
    assert isinstance(claiming, ClaimingStore)
    backend: Backend = get_backend(location)
    assert isinstance(backend, Backend)
    assert store.limits == entry(location).limits, "register(limits=) must match Store.limits"
    failing: FailingStore = other(location)  # type: ignore[assignment]  # checked next line
    assert isinstance(failing, FailingStore), "every built-in store keeps failures"


def test_a_store_exists_once_a_record_is_added(location: str) -> None:
    store = new_store(location)
    assert not store.exists()
    assert store.add("f", ("x",), [("1",)]) == 1
    assert store.exists()
    assert new_store(location).exists()


def test_an_added_key_is_known_done_and_recorded_once(location: str) -> None:
    store = new_store(location)
    cols = ("a", "b")
    assert store.add("f", cols, [("1", "x"), ("1", "x"), ("2", "y")]) == 2
    assert store.add("f", cols, [("1", "x")]) == 0
    assert store.knows("f", cols, pack(("1", "x")))
    assert store.is_done("f", cols, pack(("2", "y")))
    assert not store.is_done("f", cols, pack(("1", "y")))
    assert new_store(location).is_done("f", cols, pack(("1", "x")))
    assert len(new_store(location).records()) == 2


def test_a_refresh_sees_what_another_store_object_recorded(location: str) -> None:
    mine, theirs = new_store(location), new_store(location)
    mine.refresh()
    assert theirs.add("f", ("x",), [("1",)]) == 1
    mine.refresh()
    assert mine.knows("f", ("x",), "1")
    assert theirs.add("f", ("x",), [("2",)]) == 1
    assert mine.is_done("f", ("x",), "2"), "is_done looks for other writers' records"
    assert mine.add("f", ("x",), [("2",)]) == 0, (
        "a key another writer recorded is not written twice"
    )


def test_functions_keep_apart_and_a_record_without_one_counts_for_all(location: str) -> None:
    store = new_store(location)
    store.add("f", ("x",), [("1",)])
    store.add("", ("x",), [("2",)])
    fresh = new_store(location)
    assert fresh.is_done("f", ("x",), "1")
    assert not fresh.is_done("g", ("x",), "1")
    assert fresh.is_done("g", ("x",), "2")
    assert fresh.add("g", ("x",), [("1",), ("2",)]) == 1


def test_matches_finds_a_record_by_some_of_its_key_columns(location: str) -> None:
    new_store(location).add("f", ("a", "b"), [("1", "x")])
    store = new_store(location)
    assert store.matches("f", ("a", "b"), ("1", "x"))
    assert store.matches("f", ("a",), ("1",))
    assert store.matches(None, ("b",), ("x",))
    assert not store.matches("g", ("a",), ("1",))
    assert not store.matches("f", ("a",), ("2",))
    assert not store.matches("f", (), ()), "an empty key matches only a key of no columns"


def test_merge_keeps_metadata_and_one_record_per_run(store_kind: Kind, tmp_path: Path) -> None:
    source = new_store(store_kind.location(tmp_path, "source"))
    source.add("f", ("x",), [("1",), ("2",)], duration=1.25, code="c0de")
    source.add("", ("x",), [("3",)])
    records = source.records()
    target = store_kind.location(tmp_path, "target")
    assert new_store(target).merge([*records, *records]) == 3
    assert new_store(target).merge(records) == 0

    def by_run(rows: list[dict[str, str]]) -> dict[object, dict[str, str]]:
        return {
            identity(r, "test"): {c: t for c, t in r.items() if c != "_stet_codec"} for r in rows
        }

    assert by_run(new_store(target).records()) == by_run(records)
    assert new_store(target).is_done("f", ("x",), "1")
    assert new_store(target).is_done("g", ("x",), "3")


def test_merge_brings_records_of_an_earlier_release_to_todays_key_rules(location: str) -> None:
    # stet 0.0.x wrote str(value) and no _stet_codec: 1.0 and 1 are one run.
    old = [
        {"x": "1.0", "_stet_timestamp": "2024-01-02T03:04:05+00:00"},
        {"x": "1", "_stet_timestamp": "2024-01-02T03:04:06+00:00"},
    ]
    assert new_store(location).merge(old) == 1
    store = new_store(location)
    assert store.is_done("anything", ("x",), stet.KeyCodec().encode(1))
    (record,) = store.records()
    # Its texts are today's, but for a pruned class value, which rules 2 and
    # older wrote as a mapping: so it is stamped 2 (see the next test).
    assert record["_stet_codec"] == "2"
    assert record["_stet_timestamp"].startswith("2024-01-02")


def test_a_merged_run_of_key_rules_2_with_a_pruned_class_stays_skipped(location: str) -> None:
    """Rules 2 keyed ``Adam(lr=0.1, x=1)`` with ``exclude=["opt.x"]`` as ``{"lr": 0.1}``."""

    @attrs.frozen
    class Adam:
        lr: float
        x: int

    stamp = "2024-01-02T03:04:05+00:00"
    old = {"opt": '{"lr": 0.1}', "_stet_function": "run", "_stet_timestamp": stamp}
    new_store(location).merge([{**old, "_stet_codec": "2"}])
    ran: list[object] = []

    @stet.once(store=location, exclude=["opt.x"], name="run", quiet=True)
    def run(opt: Any) -> None:
        ran.append(opt)

    run(Adam(0.1, 1))
    run(Adam(0.2, 1))
    assert ran == [Adam(0.2, 1)]
    # A mapping recorded under rules 3 is no run of a class value.
    new_store(location).merge([{**old, "opt": '{"lr": 0.3}', "_stet_codec": "3"}])
    run(Adam(0.3, 1))
    assert ran == [Adam(0.2, 1), Adam(0.3, 1)]


def test_delete_and_clear_say_how_many_records_they_removed(location: str) -> None:
    store = new_store(location)
    store.add("f", ("x",), [("1",), ("2",), ("3",), ("4",)])
    assert store.delete(lambda record: record["x"] in {"1", "2"}) == 2
    assert store.delete(lambda record: False) == 0
    assert sorted(r["x"] for r in new_store(location).records()) == ["3", "4"]
    assert not new_store(location).is_done("f", ("x",), "1")
    assert store.clear() == 2
    assert store.clear() == 0
    assert not new_store(location).is_done("f", ("x",), "3")
    assert store.add("f", ("x",), [("3",)]) == 1, "a cleared store takes new records"
    assert new_store(location).clear(in_place=True) == 1


def test_removing_a_selection_of_the_whole_store_removes_what_delete_would(
    location: str,
) -> None:
    """`stet reset --where` picks records from the store's columns (`delete_rows`)."""
    from stet.backends._table import delete_selected

    tricky = [("1",), ("2",), ('a,"b"',), ("l\nb",), ("ü ✓",)]
    store = new_store(location)
    store.add("f", ("x",), tricky)
    store.add("g", ("x",), [("1",)])
    doomed = {"1", 'a,"b"', "l\nb"}

    def select(whole: Any) -> Any:
        picked = whole.functions.to_pylist(), whole.column("x").to_pylist()
        return [fn == "f" and x in doomed for fn, x in zip(*picked, strict=True)]

    def by_record(record: dict[str, str]) -> bool:
        return record.get("_stet_function") == "f" and record["x"] in doomed

    assert delete_selected(store, select, by_record) == 3
    assert delete_selected(store, select, by_record) == 0
    left = sorted((r["_stet_function"], r["x"]) for r in new_store(location).records())
    assert left == [("f", "2"), ("f", "ü ✓"), ("g", "1")]
    for x, done in (("1", False), ("2", True), ("l\nb", False)):
        assert store.is_done("f", ("x",), x) is done
        assert new_store(location).is_done("f", ("x",), x) is done
    assert store.add("f", ("x",), [("1",)]) == 1, "a removed run records again"


#: Texts the codec makes of values that break naive stores.
_TRICKY_VALUES: list[object] = [
    *["", "NA", "null", "nan", "None", "007", 'a,"b"', "l\nb", "c\r\n", "ü ✓", "'", "\t"],
    *[None, 0.1, -0.0, float("nan"), float("inf"), True, 10**30, (1, "a"), {"k": [1]}],
]
TRICKY_TEXTS = sorted({stet.KeyCodec().encode(v) for v in _TRICKY_VALUES})


def test_records_come_back_as_they_were_written(location: str) -> None:
    store = new_store(location)
    assert store.add("f", ("v",), [(t,) for t in TRICKY_TEXTS], duration=0.5, code="abc") == len(
        TRICKY_TEXTS
    )
    records = new_store(location).records()
    assert sorted(r["v"] for r in records) == TRICKY_TEXTS
    for record in records:
        assert record["_stet_function"] == "f"
        assert record["_stet_codec"] == str(stet.CODEC_VERSION)
        assert record["_stet_code"] == "abc"
        assert float(record["_stet_duration"]) == 0.5
        assert datetime.fromisoformat(record["_stet_timestamp"]).tzinfo is not None
        assert record["_stet_host"]


#: Stores whose records come back with their key columns sorted by name
#: whatever order they were written in: PostgreSQL reads its columns by name.
UNORDERED = frozenset({"postgresql://"})


def test_prefer_order_orders_a_new_stores_key_columns(store_kind: Kind, location: str) -> None:
    store = new_store(location)
    store.prefer_order(["b", "a"])
    store.add("f", ("a", "b"), [("1", "2")])
    (record,) = new_store(location).records()
    expected = ["a", "b"] if store_kind.name in UNORDERED else ["b", "a"]
    assert [c for c in record if not c.startswith("_stet_")] == expected
    assert new_store(location).is_done("f", ("a", "b"), pack(("1", "2")))


def test_check_can_hold_refuses_only_columns_the_store_cannot_tell_apart(location: str) -> None:
    store = new_store(location)
    store.add("f", ("alpha",), [("1",)])
    store.check_can_hold(["alpha", "beta"])
    if store.limits.case_insensitive:
        with pytest.raises(ValueError, match="'Alpha'"):
            new_store(location).check_can_hold(["Alpha"])
    else:
        new_store(location).check_can_hold(["Alpha"])


def test_a_flush_keeps_every_record(location: str) -> None:
    store = new_store(location)
    store.add("f", ("x",), [("1",), ("2",)])
    store.flush()
    assert sorted(r["x"] for r in new_store(location).records()) == ["1", "2"]


# -- the text level: ClaimingStore ----------------------------------------------

A, B = "host-a:1:aaaa", "host-b:2:bbbb"


def test_a_claimed_key_is_busy_for_others_until_completed_then_done(location: str) -> None:
    a, b = other(location), other(location)
    state, mine = a.claim("f", ("x",), ("1",), 60, owner=A)
    assert state == "claimed"
    assert mine is not None
    assert (mine.owner, mine.epoch, mine.id) == (A, 1, ("f", ("x",), ("1",)))
    state, holder = b.claim("f", ("x",), ("1",), 60, owner=B)
    assert state == "busy"
    assert holder is not None
    assert holder.owner == A
    assert list(b.claims()) == [mine.id]
    assert a.complete(mine, duration=0.5)
    assert b.is_done("f", ("x",), "1")
    assert b.claim("f", ("x",), ("1",), 60, owner=B) == ("done", None)
    assert b.claims() == {}
    assert [r["x"] for r in new_store(location).records()] == ["1"]


def test_a_released_key_can_be_claimed_again_at_once(location: str) -> None:
    a, b = other(location), other(location)
    _, mine = a.claim("f", ("x",), ("1",), 60, owner=A)
    assert mine is not None
    a.release(mine)
    assert b.claims() == {}
    state, theirs = b.claim("f", ("x",), ("1",), 60, owner=B)
    assert state == "claimed"
    assert theirs is not None
    assert [c.owner for c in a.claims().values()] == [B]
    assert not new_store(location).is_done("f", ("x",), "1"), "a release records nothing"


def test_a_claim_expires_after_its_lease_and_a_takeover_fences_its_owner(
    clocked_kind: Kind, tmp_path: Path
) -> None:
    location = clocked_kind.location(tmp_path)
    clock = FakeClock()
    a, b = other(location, clock), other(location, clock)
    _, stale = a.claim("f", ("x",), ("1",), 60, owner=A)
    assert stale is not None
    clock.advance(59)
    assert b.claim("f", ("x",), ("1",), 60, owner=B)[0] == "busy"
    assert all(c.live(clock.wall) for c in b.claims().values())
    clock.advance(2)
    (expired,) = b.claims().values()
    assert not expired.live(clock.wall), "an expired claim is listed as expired"
    state, taken = b.claim("f", ("x",), ("1",), 60, owner=B)
    assert state == "claimed"
    assert taken is not None
    assert taken.epoch == stale.epoch + 1
    assert not a.complete(stale), "the stale owner's record is refused"
    a.release(stale)  # nor does its release drop the new claim
    assert [c.owner for c in b.claims().values()] == [B]
    assert not new_store(location).is_done("f", ("x",), "1")
    assert b.complete(taken)
    assert [r["x"] for r in new_store(location).records()] == ["1"]


def test_a_renewed_claim_outlives_its_first_lease(clocked_kind: Kind, tmp_path: Path) -> None:
    location = clocked_kind.location(tmp_path)
    clock = FakeClock()
    a, b = other(location, clock), other(location, clock)
    _, mine = a.claim("f", ("x",), ("1",), 60, owner=A)
    assert mine is not None
    clock.advance(50)
    (renewed,) = a.renew([mine])
    assert renewed.same(mine)
    assert renewed.expires == pytest.approx(clock.wall + 60)
    clock.advance(50)
    assert b.claim("f", ("x",), ("1",), 60, owner=B)[0] == "busy"
    clock.advance(11)
    assert b.claim("f", ("x",), ("1",), 60, owner=B)[0] == "claimed"


def failing(location: str) -> FailingStore:
    """The store as another process opens it, as a `FailingStore`."""
    opened = new_store(location)
    assert isinstance(opened, FailingStore)
    return opened


def _failure(value: str, attempt: int = 1, function: str = "f", message: str = "m") -> Failure:
    return Failure(function, ("seed",), (value,), "ValueError", message, "tb", "h", 0.5,
                   "2026-01-01T00:00:00.250000+00:00", attempt)  # fmt: skip


def test_a_failure_is_kept_beside_the_store_never_as_a_finished_run(location: str) -> None:
    store = failing(location)
    assert store.failures() == []
    store.add_failure(_failure("3"))
    store.add_failure(_failure("3", attempt=2, message='ünïcode, "quoted"\nline'))
    store.add_failure(_failure("4", function="g"))
    seen = failing(location)  # another process
    assert [f.attempt for f in seen.failures_of("f", ("seed",), ("3",))] == [1, 2]
    assert seen.failures_of("f", ("seed",), ("4",)) == []
    assert sorted(seen.failures(), key=lambda f: (f.function, f.attempt)) == [
        _failure("3"),
        _failure("3", attempt=2, message='ünïcode, "quoted"\nline'),
        _failure("4", function="g"),
    ]
    assert not seen.is_done("f", ("seed",), pack(("3",))), "a failure is never a finished run"
    assert not seen.matches(None, ("seed",), ("3",))
    assert seen.records() == []
    seen.add("f", ("seed",), [("5",)])
    assert [r["seed"] for r in failing(location).records()] == ["5"]
    assert [f.id for f in failing(location).failures_of("f", ("seed",), ("3",))] == [
        ("f", ("seed",), ("3",))
    ] * 2


def test_forgetting_failures_says_how_many_and_keeps_the_rest(location: str) -> None:
    store = failing(location)
    assert store.forget_failures() == 0
    for value in ("1", "2", "2"):
        store.add_failure(_failure(value))
    store.add("f", ("seed",), [("9",)])
    assert failing(location).forget_failures(lambda f: f.values == ("2",)) == 2
    assert [f.values for f in failing(location).failures()] == [("1",)]
    store.add_failure(_failure("7"))  # this object writes on after another forgot
    assert sorted(f.values for f in failing(location).failures()) == [("1",), ("7",)]
    assert failing(location).forget_failures() == 2
    assert failing(location).failures() == []
    assert [r["seed"] for r in failing(location).records()] == ["9"], "records stay"


def test_stet_merge_carries_failures_once_into_any_store(store_kind: Kind, tmp_path: Path) -> None:
    """A cluster's per-node stores merged into one keep why each point failed."""
    from stet import _cli

    source = store_kind.location(tmp_path, "source")
    failing(source).add_failure(_failure("1"))
    failing(source).add_failure(_failure("1", attempt=2))
    only_failures = failing(source)
    for dest in (store_kind.location(tmp_path, "dest"), str(tmp_path / "all.csv")):
        assert _cli.main(["merge", source, dest]) == 0, "a store of failures alone is merged"
        assert sorted(failing(dest).failures(), key=lambda f: f.attempt) == [
            _failure("1"),
            _failure("1", attempt=2),
        ]
        only_failures.add("f", ("seed",), [("2",)])
        assert _cli.main(["merge", source, dest]) == 0
        assert len(failing(dest).failures()) == 2, "merging again adds no failure twice"
        assert [r["seed"] for r in failing(dest).records()] == ["2"]


def test_compact_keeps_every_failure(tmp_path: Path) -> None:
    """Folding a shared directory's files never loses a failure, whoever wrote it."""
    location = str(tmp_path / "runs.stetdir")
    failing(location).add_failure(_failure("1"))
    failing(location).add("f", ("seed",), [("2",)])
    failing(location).flush()
    gone = Path(location, "failures", "elsewhere-1.jsonl")  # a writer of another machine
    gone.write_bytes(failure_lines([_failure("1", attempt=2)]))
    assert stet.compact(location) == 1
    assert sorted(f.attempt for f in failing(location).failures()) == [1, 2]


# -- the value level: StoreBackend, the decorator, status/read/reset -----------


def test_values_round_trip_through_the_value_level_adapter(location: str) -> None:
    backend = StoreBackend(new_store(location))
    assert backend.record({"alpha": 0.1, "seed": 3, "tag": "a,b"}, function="f")
    assert not backend.record({"alpha": 0.1, "seed": 3, "tag": "a,b"}, function="f")
    assert backend.record({"alpha": None, "seed": 4, "tag": ""})
    fresh = StoreBackend(new_store(location))
    assert fresh.has({"alpha": 0.1, "seed": 3, "tag": "a,b"}, function="f")
    assert fresh.has({"seed": 3})
    assert not fresh.has({"seed": 3}, function="g")
    assert fresh.has({"seed": 4}, function="g"), "a record without function counts for all"
    assert not fresh.has({"seed": "3"}), "a string is not the number it spells"
    loaded = sorted(fresh.load(), key=lambda r: str(r["seed"]))
    assert [(r["alpha"], r["seed"], r["tag"]) for r in loaded] == [(0.1, 3, "a,b"), (None, 4, "")]
    assert all(isinstance(r["_stet_timestamp"], datetime) for r in loaded)
    assert fresh.remove({"seed": 3}) == 1
    assert not StoreBackend(new_store(location)).has({"seed": 3})
    fresh.clear()
    assert StoreBackend(new_store(location)).load() == []


def test_a_decorated_function_runs_once_per_key_and_the_api_sees_it(
    location: str, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[tuple[float, int]] = []

    @stet.once(store=location)
    def run(alpha: float, seed: int) -> float:
        calls.append((alpha, seed))
        return alpha * seed

    assert run(0.5, 2) == 1.0
    assert run(0.5, 2) is None
    assert "[stet] Skipping run(alpha=0.5, seed=2)" in capsys.readouterr().out
    stet.testing.fresh_process()  # as the next process opens the store
    assert run(0.5, 2) is None
    assert run(0.5, 3) == 1.5
    assert calls == [(0.5, 2), (0.5, 3)]

    summary = stet.status(store=location)
    assert (summary.records, summary.key_columns) == (2, ("alpha", "seed"))
    assert "[stet] 2 completed experiments recorded" in capsys.readouterr().out
    frame = stet.read(location)
    assert sorted(frame["seed"]) == [2, 3]
    assert list(frame["alpha"]) == [0.5, 0.5]

    assert stet.reset(store=location, key_dict={"seed": 2}) == 1
    assert run(0.5, 2) == 1.0
    stet.reset(store=location)
    stet.testing.fresh_process()
    assert run(0.5, 3) == 1.5
    assert calls == [(0.5, 2), (0.5, 3), (0.5, 2), (0.5, 3)]


def test_claiming_workers_run_each_key_once(location: str) -> None:
    ran: list[int] = []

    @stet.once(store=location, claim=True, quiet=True)
    def work(key: int) -> int:
        ran.append(key)
        return key

    for key in [1, 2, 2, 3, 1]:
        work(key)

    def failing(key: int) -> None:
        raise RuntimeError(key)

    broken = stet.once(store=location, claim=True, quiet=True, name="broken")(failing)
    with pytest.raises(RuntimeError):
        broken(7)
    assert ran == [1, 2, 3]
    assert claims_in(open_store(location)) == {}, "a failed run gives its claim back"
    functions = stet.status(store=location).functions
    assert [f.running for f in functions] == [0, 0]
    assert {f.function: f.failed for f in functions}["broken"] == 1, "status counts it failed"


def test_a_failed_call_is_recorded_with_its_attempt_and_retry_decides_what_runs_next(
    location: str, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[int] = []
    error = ValueError("diverged at step 12")

    def solve(seed: int) -> None:
        calls.append(seed)
        raise error

    again = stet.once(store=location, name="solve")(solve)
    for _ in range(2):
        with pytest.raises(ValueError, match="diverged") as raised:
            again(1)
        assert raised.value is error, "the exception propagates unchanged"
    stet.testing.fresh_process()
    store = failing(location)
    failures = store.failures_of("solve", ("seed",), ("1",))
    assert [(f.type, f.message, f.attempt) for f in failures] == [
        ("ValueError", "diverged at step 12", 1),
        ("ValueError", "diverged at step 12", 2),
    ]
    assert "raise error" in failures[0].traceback
    assert failures[0].duration is not None
    assert failures[0].duration >= 0
    assert not stet.is_done(again, 1)

    capsys.readouterr()
    twice = stet.once(store=location, name="solve", retry=2)(solve)
    assert twice(1) is None
    assert "Skipping solve(seed=1): failed 2 times: ValueError: diverged at step 12" in (
        capsys.readouterr().out
    )
    never = stet.once(store=location, name="solve", retry="never", claim=True)(solve)
    assert never(1) is None
    with pytest.raises(ValueError, match="diverged"):
        never(2)  # a key that never failed runs, and its claim is given back
    assert never(2) is None
    assert claims_in(open_store(location)) == {}
    assert calls == [1, 1, 2]


def test_an_interrupt_is_not_a_failure_unless_asked(location: str) -> None:
    def stop(seed: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        stet.once(store=location, name="stop")(stop)(1)
    assert failing(location).failures() == []
    with pytest.raises(KeyboardInterrupt):
        stet.once(store=location, name="stop", record_interrupts=True)(stop)(1)
    assert [f.type for f in failing(location).failures()] == ["KeyboardInterrupt"]


# -- the stateful test: every store against a plain set -------------------------


class StoreMachine(RuleBasedStateMachine):
    """Drives a store with record/has/remove/clear/fail/forget/reopen against a plain model."""

    keys = Bundle("keys")
    kind = Kind(".csv")

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.TemporaryDirectory()
        self.path = self.kind.location(Path(self.dir.name), "m")
        self.store = self.fresh()
        self.model: set[tuple[str, str, str]] = set()  # (function, column, text)
        self.failed: list[tuple[str, str, str]] = []  # one per failure recorded
        self.codec = stet.KeyCodec()

    def teardown(self) -> None:
        self.dir.cleanup()

    def fresh(self) -> StoreBackend:
        """The store as another process would open it."""
        return StoreBackend(new_store(self.path))

    @initialize(target=keys)
    def first_key(self) -> Any:
        return 0

    @rule(target=keys, value=S.keyable)
    def new_key(self, value: Any) -> Any:
        return value

    def _id(self, function: str, value: Any, column: str) -> tuple[str, str, str]:
        return (function, column, self.codec.encode(value))

    @rule(value=keys, function=st.sampled_from(["", "f", "g"]), column=st.sampled_from(["x", "y"]))
    def record(self, value: Any, function: str, column: str) -> None:
        new = self.store.record({column: value}, function=function or None)
        ident = self._id(function, value, column)
        # A record without a function already counts for every function.
        expected = ident not in self.model and self._id("", value, column) not in self.model
        assert new == expected
        if new:
            self.model.add(ident)

    @rule(value=keys, function=st.sampled_from(["f", "g"]), column=st.sampled_from(["x", "y"]))
    def has(self, value: Any, function: str, column: str) -> None:
        expected = (
            self._id(function, value, column) in self.model
            or self._id("", value, column) in self.model
        )
        assert self.store.has({column: value}, function=function) == expected

    @rule(value=keys, column=st.sampled_from(["x", "y"]))
    def remove(self, value: Any, column: str) -> None:
        text = self.codec.encode(value)
        gone = {m for m in self.model if m[1:] == (column, text)}
        assert self.store.remove({column: value}) == len(gone)
        self.model -= gone

    @precondition(lambda self: len(self.model) > 0)
    @rule()
    def clear(self) -> None:
        self.store.clear()
        self.model.clear()

    @rule(value=keys, function=st.sampled_from(["f", "g"]), column=st.sampled_from(["x", "y"]))
    def fail(self, value: Any, function: str, column: str) -> None:
        store = self.store.store
        assert isinstance(store, FailingStore)
        text = self.codec.encode(value)
        before = store.failures_of(function, (column,), (text,))
        assert len(before) == self.failed.count((function, column, text))
        store.add_failure(
            Failure(
                function, (column,), (text,), "ValueError", repr(value), attempt=len(before) + 1
            )
        )
        self.failed.append((function, column, text))

    @rule(value=keys)
    def forget_failures(self, value: Any) -> None:
        store = self.store.store
        assert isinstance(store, FailingStore)
        text = self.codec.encode(value)
        gone = [f for f in self.failed if f[2] == text]
        assert store.forget_failures(lambda f: f.values == (text,)) == len(gone)
        self.failed = [f for f in self.failed if f[2] != text]

    @invariant()
    def failures_match_the_model(self) -> None:
        store = self.fresh().store
        assert isinstance(store, FailingStore)
        held = sorted((f.function, *f.cols, *f.values) for f in store.failures())
        assert held == sorted(self.failed)

    @rule(other_process=st.booleans())
    def reopen(self, other_process: bool) -> None:
        fresh = self.fresh()
        if other_process:  # another writer appends, then we must see it
            fresh.record({"z": len(self.model)}, function="other")
            self.model.add(("other", "z", str(len(self.model))))
        else:
            self.store = fresh

    @invariant()
    def load_matches_the_model(self) -> None:
        if not self.fresh().exists():
            assert not self.model
            return
        loaded = set()
        for r in self.fresh().load():
            (col,) = [c for c in r if not c.startswith("_stet_")]
            loaded.add((str(r.get("_stet_function", "")), col, self.codec.encode(r[col])))
        assert loaded == self.model


#: Full size 25 examples (STET_SOAK=1).
_MACHINE_SETTINGS = settings(max_examples=soak(10, 25), stateful_step_count=20, deadline=None)
_FIXTURES: dict[str, str] = {"postgresql://": "pg_server", MEMORY: "registered_memory"}


def _machine_test(kind: Kind) -> type[unittest.TestCase]:
    """``TestStoreMachine_<kind>``: `StoreMachine` on one kind of store."""
    machine: type[StoreMachine] = type(f"StoreMachine_{kind.id}", (StoreMachine,), {"kind": kind})
    case: type[unittest.TestCase] = machine.TestCase
    case.settings = _MACHINE_SETTINGS  # type: ignore[attr-defined]  # hypothesis reads it
    case.__name__ = case.__qualname__ = f"TestStoreMachine_{kind.id}"
    if kind.name in _FIXTURES:
        case = pytest.mark.usefixtures(_FIXTURES[kind.name])(case)
    return pytest.mark.soak(case)


for _kind in KINDS:
    globals()[f"TestStoreMachine_{_kind.id}"] = _machine_test(_kind)
del _kind  # module-level loop names are not tests

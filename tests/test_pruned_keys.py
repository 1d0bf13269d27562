"""A config that ``exclude=`` reaches into is keyed as its class less those fields.

Key rules 2 keyed it as a plain mapping, without its class, so a run of
another class with the same kept fields was skipped without ever running.
Rules 3 keep the class; stores written under rules 2 (or older) still skip
what they hold, and only their records can (tests/test_key_paths.py has
the per-kind rules).
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

import stet
import stet._cli
from stet import KeyCodec
from stet.backends import forget_open, open_store

from . import strategies as S
from .raw_rows import append_as_written


@attrs.frozen
class Adam:
    lr: float
    x: int


@attrs.frozen
class Sgd:
    lr: float
    x: int


@dataclasses.dataclass(frozen=True)
class Outer:
    opt: Adam | Sgd
    seed: int


ran: list[object] = []


def sweep(store: str, **options: Any) -> Any:
    """``run(opt, seed)`` keyed without ``opt.x``, recording what ran in `ran`."""
    ran.clear()

    @stet.once(store=store, exclude=["opt.x"], name="run", **options)
    def run(opt: Adam | Sgd, seed: int) -> None:
        ran.append(opt)

    return run


#: What a stet of key rules 2 wrote for run(Adam(lr=0.1, x=...), 3): no class.
OLD_TEXT = '{"lr": 0.1}'


def old_record(function: str | None = "run", version: str | None = "2") -> dict[str, str]:
    record = {"opt": OLD_TEXT, "seed": "3", "_stet_timestamp": "2026-01-01T00:00:00+00:00"}
    if function is not None:
        record["_stet_function"] = function
    if version is not None:
        record["_stet_codec"] = version
    return record


def write_old(store: str, records: list[dict[str, str]]) -> None:
    """Append records as an older stet wrote them, read afresh by the next open."""
    append_as_written(store, records)
    forget_open()


def test_a_run_of_another_class_with_the_same_kept_fields_runs() -> None:
    run = sweep("runs.csv")
    run(Adam(0.1, 1), 3)
    run(Sgd(0.1, 2), 3)  # rules 2 skipped it: a run that never happened
    run(Adam(0.1, 3), 3)  # the excluded field alone: skipped
    assert ran == [Adam(0.1, 1), Sgd(0.1, 2)]
    records = open_store("runs.csv").records()
    assert [r["opt"] for r in records] == ["Adam(lr=0.1)", "Sgd(lr=0.1)"]
    assert {r["_stet_codec"] for r in records} == {"3"} == {str(stet.CODEC_VERSION)}


def test_a_nested_pruned_class_keeps_its_class_too() -> None:
    @stet.once(store="runs.csv", exclude=["cfg.opt.x"])
    def train(cfg: Outer) -> None:
        ran.append(cfg)

    ran.clear()
    train(Outer(Adam(0.1, 1), 3))
    train(Outer(Sgd(0.1, 1), 3))
    train(Outer(Sgd(0.1, 9), 3))
    assert len(ran) == 2
    texts = [r["cfg"] for r in open_store("runs.csv").records()]
    assert texts == ["Outer(opt=Adam(lr=0.1), seed=3)", "Outer(opt=Sgd(lr=0.1), seed=3)"]


@given(tree=S.config_trees, kind=st.sampled_from(["dataclass", "attrs", "pydantic"]))
def test_a_pruned_class_is_its_unpruned_text_less_the_field(
    tree: dict[str, Any], kind: str
) -> None:
    """Excluding a top-level field removes exactly ``name=value`` from the class's text."""
    name = next(iter(tree))
    cfg = S.make_config(kind, tree)
    runner = stet.once(store="runs.csv", exclude=[f"cfg.{name}"])(lambda cfg: None).__stet__  # type: ignore[attr-defined]
    inner = KeyCodec().encode([tree[name]])[1:-1]
    whole = KeyCodec().encode(cfg)
    removed = whole.replace(f"({name}={inner}, ", "(", 1) if len(tree) > 1 else whole
    if len(tree) > 1 and removed == whole:
        removed = whole.replace(f", {name}={inner}", "", 1)
    if len(tree) == 1:
        removed = whole.replace(f"{name}={inner}", "", 1)
    assert runner.key_texts((cfg,), {}) == (removed,)


@given(fields=st.dictionaries(S.FIELD_NAMES, S.keyable, min_size=2, max_size=4))
def test_two_classes_with_the_same_kept_fields_are_two_keys(fields: dict[str, Any]) -> None:
    name = next(iter(fields))
    one = attrs.make_class("One", list(fields), frozen=True)(**fields)
    two = attrs.make_class("Two", list(fields), frozen=True)(**fields)
    runner = stet.once(store="runs.csv", exclude=[f"cfg.{name}"])(lambda cfg: None).__stet__  # type: ignore[attr-defined]
    assert runner.key_texts((one,), {}) != runner.key_texts((two,), {})


@given(tree=S.config_trees, data=st.data())
def test_a_pruned_mapping_keeps_the_text_key_rules_2_gave_it(
    tree: dict[str, Any], data: st.DataObject
) -> None:
    path = data.draw(st.sampled_from(S.tree_paths(tree)))
    runner = stet.once(store="runs.csv", exclude=[path])(lambda cfg: None).__stet__  # type: ignore[attr-defined]

    def rules_2(node: dict[str, Any], parts: list[str]) -> dict[str, Any]:
        head, *rest = parts
        out = {k: v for k, v in node.items() if k != head}
        if rest:
            out[head] = rules_2(node[head], rest)
        return out

    assert runner.key_texts((tree,), {}) == (KeyCodec().encode(rules_2(tree, path.split(".")[1:])),)


# -- stores written by key rules 2 ---------------------------------------------


def test_a_store_of_key_rules_2_is_read_skipped_and_appended_after_the_upgrade(store: str) -> None:
    write_old(store, [old_record()])
    run = sweep(store)
    run(Adam(0.1, 1), 3)  # finished before the upgrade: never again
    assert ran == []
    assert run.is_done(Adam(0.1, 5), 3)
    assert stet.pending(run, [{"opt": Adam(0.1, 1), "seed": 3}, (Adam(0.2, 1), 3)]) == [
        (Adam(0.2, 1), 3)
    ]
    run(Adam(0.2, 1), 3)  # a new run is appended beside the old record
    assert ran == [Adam(0.2, 1)]
    assert stet.mark_done(run, [{"opt": Adam(0.1, 1), "seed": 3}]) == 0  # no duplicate
    texts = sorted((r["opt"], r["_stet_codec"]) for r in open_store(store).records())
    assert texts == [("Adam(lr=0.2)", "3"), (OLD_TEXT, "2")]
    assert stet.progress(run, [(Adam(0.1, 1), 3), (Adam(0.2, 1), 3), (Adam(0.3, 1), 3)]).left == 1
    assert stet.explain(run, Adam(0.1, 9), 3).done


@pytest.mark.parametrize(("function", "version"), [("run", "1"), (None, "2")], ids=["v1", "nofn"])
def test_older_records_without_a_class_still_skip(
    function: str | None, version: str | None
) -> None:
    write_old("runs.csv", [old_record(function, version)])
    run = sweep("runs.csv")
    run(Adam(0.1, 1), 3)
    assert ran == []


def test_a_mapping_recorded_by_key_rules_3_does_not_skip_a_class_value() -> None:
    @stet.once(store="runs.csv", exclude=["opt.x"], name="run")
    def as_dict(opt: dict[str, Any], seed: int) -> None: ...

    as_dict({"lr": 0.1, "x": 1}, 3)  # the same text rules 2 gave Adam(lr=0.1)
    run = sweep("runs.csv")
    assert not run.is_done(Adam(0.1, 1), 3)
    assert stet.pending(run, [(Adam(0.1, 1), 3)]) == [(Adam(0.1, 1), 3)]
    assert not stet.explain(run, Adam(0.1, 1), 3).done
    run(Adam(0.1, 1), 3)
    assert ran == [Adam(0.1, 1)]


def test_an_old_record_another_writer_adds_later_is_seen() -> None:
    write_old("runs.csv", [old_record()])
    run = sweep("runs.csv")
    run(Adam(0.1, 1), 3)  # the old records are read now
    assert ran == []
    with open("runs.csv", "a", encoding="utf-8") as file:  # an old stet, running elsewhere
        file.write('"{""lr"": 0.2}",3,run,2026-01-01T00:00:00+00:00,,,,2\n')
    run(Adam(0.2, 1), 3)
    run(Adam(0.3, 1), 3)
    assert ran == [Adam(0.3, 1)]


def test_a_claimed_run_whose_old_record_exists_is_done(store: str) -> None:
    write_old(store, [old_record()])
    run = sweep(store, claim=True)
    run(Adam(0.1, 1), 3)
    run(Adam(0.2, 1), 3)
    assert ran == [Adam(0.2, 1)]


def test_an_async_call_with_an_old_record_is_skipped() -> None:
    write_old("runs.csv", [old_record()])

    @stet.once(store="runs.csv", exclude=["opt.x"], name="run")
    async def run(opt: Adam, seed: int) -> None:
        ran.append(opt)

    ran.clear()
    asyncio.run(run(Adam(0.1, 1), 3))
    assert ran == []


def test_forget_removes_the_old_record_of_a_call() -> None:
    write_old("runs.csv", [old_record()])
    run = sweep("runs.csv")
    assert run.forget(Adam(0.1, 1), 3) == 1
    run(Adam(0.1, 1), 3)
    assert ran == [Adam(0.1, 1)]


def test_merging_a_store_of_key_rules_2_keeps_its_runs_skipped(store: str, tmp_path: Path) -> None:
    old = str(tmp_path / "old.csv")
    write_old(old, [old_record()])
    assert stet._cli.main(["merge", old, store]) == 0
    forget_open()
    run = sweep(store)
    run(Adam(0.1, 1), 3)
    assert ran == []


def test_a_store_of_newer_key_rules_is_refused_asking_for_an_upgrade() -> None:
    """What a stet of rules 2 says of a rules 3 store (checked by hand against 0.x)."""
    write_old("runs.csv", [{**old_record(), "_stet_codec": "4"}])
    with pytest.raises(stet.StoreError, match="newer than this stet's"):
        sweep("runs.csv")(Adam(0.1, 1), 3)


# -- the tools that have only the store: stet why, stet.reset(store, key_dict) --


def why(store: str, *pairs: str, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert stet._cli.main(["why", store, "--function", "run", *pairs]) == 0
    return capsys.readouterr().out


def test_why_reset_and_the_call_agree_on_a_run_key_rules_2_recorded(
    store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    write_old(store, [old_record()])
    run = sweep(store)
    assert run.is_done(Adam(0.1, 1), 3)
    assert "is recorded" in why(store, "opt=Adam(lr=0.1)", "seed=3", capsys=capsys)
    assert "is not recorded" in why(store, "opt=Sgd(lr=0.2)", "seed=3", capsys=capsys)
    assert stet.reset(store, {"opt": stet.Encoded("Adam(lr=0.1)"), "seed": 3}) == 1
    forget_open()
    assert not run.is_done(Adam(0.1, 1), 3)
    run(Adam(0.1, 1), 3)  # forgotten: it runs again
    assert ran == [Adam(0.1, 1)]


@pytest.mark.parametrize("kind", ["csv", "sqlite"])
def test_a_mapping_recorded_by_key_rules_3_is_neither_named_nor_removed_for_a_class(
    kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only the records of rules 2 or older hold a class value as a mapping."""
    store = f"runs.{kind}"

    @stet.once(store=store, exclude=["opt.x"], name="run", quiet=True)
    def as_dict(opt: dict[str, Any], seed: int) -> None: ...

    as_dict({"lr": 0.1, "x": 1}, 3)  # the text rules 2 gave Adam(lr=0.1)
    assert "is not recorded" in why(store, "opt=Adam(lr=0.1)", "seed=3", capsys=capsys)
    assert stet.reset(store, {"opt": stet.Encoded("Adam(lr=0.1)")}) == 0
    assert len(open_store(store).records()) == 1


@pytest.mark.parametrize("kind", ["csv", "json"])
def test_why_and_reset_find_a_nested_class_recorded_as_a_mapping(
    kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    store = f"runs.{kind}"
    cfg = '{"opt": {"lr": 0.1}, "seed": 3}'  # rules 2's Outer(Adam(lr=0.1, x=...), 3)
    stamp = "2026-01-01T00:00:00+00:00"
    write_old(store, [{"cfg": cfg, "_stet_timestamp": stamp, "_stet_codec": "2"}])  # no function

    @stet.once(store=store, exclude=["cfg.opt.x"], name="run")
    def train(cfg: Outer) -> None:
        ran.append(cfg)

    assert train.is_done(Outer(Adam(0.1, 1), 3))  # type: ignore[attr-defined]
    text = "cfg=Outer(opt=Adam(lr=0.1), seed=3)"
    assert "is recorded" in why(store, text, capsys=capsys)
    assert stet.reset(store, {"cfg": stet.Encoded(text[4:])}, function="run") == 0  # none has it
    assert stet.reset(store, {"cfg": stet.Encoded(text[4:])}) == 1  # no function: anyone's
    forget_open()
    ran.clear()
    train(Outer(Adam(0.1, 1), 3))
    assert len(ran) == 1


def test_a_forgotten_run_that_key_rules_2_recorded_runs_again_after_a_skip() -> None:
    """The old texts read once in a process never outlive the record."""
    write_old("runs.csv", [old_record()])
    run = sweep("runs.csv")
    run(Adam(0.1, 1), 3)  # skipped: the old texts are read now
    assert run.forget(Adam(0.1, 1), 3) == 1
    run(Adam(0.1, 1), 3)
    assert ran == [Adam(0.1, 1)]


@given(tree=S.config_trees, kind=st.sampled_from(["dataclass", "attrs", "pydantic", "dict"]))
def test_the_texts_rules_2_gave_are_found_from_todays_text(tree: dict[str, Any], kind: str) -> None:
    """Differential: what stet why and reset look for holds what the call looks for."""
    from stet._old_texts import old_texts

    cfg = S.make_config(kind, tree)
    once = stet.once(store="runs.csv", exclude=[f"cfg.{next(iter(tree))}"])
    runner = once(lambda cfg: None).__stet__  # type: ignore[attr-defined]
    (text,) = runner.encode_key({"cfg": cfg})
    old = runner.old_key({"cfg": runner.value_of({"cfg": cfg}, "cfg")}, (text,))
    if old is None:  # a mapping: its text is what rules 2 gave it
        assert kind == "dict"
        assert old_texts(text) == []
    else:
        assert old[0] in old_texts(text)

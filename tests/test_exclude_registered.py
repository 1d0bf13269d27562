"""``exclude=`` never reaches into a value that a registered encoder keys.

The encoder, not the value's fields, makes such a value's key: pruning its
fields instead could give two different runs one key (a run skipped that
never happened) or a text the encoder would never give. So a path into it
is refused before anything runs, naming the path and the class.
"""

from __future__ import annotations

import dataclasses
import os
from fractions import Fraction
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

import stet
from stet import KeyCodec

from . import strategies as S

KINDS = ["dict", "namespace", "dataclass", "attrs", "pydantic"]


@dataclasses.dataclass(frozen=True)
class Outer:
    inner: Any
    n: int


def runner_of(codec: KeyCodec, exclude: list[str]) -> Any:
    def run(cfg: Any, seed: int = 0) -> None:
        raise AssertionError("a refused call never runs")

    return stet.once(store="runs.csv", exclude=exclude, codec=codec, quiet=True)(run)


@given(tree=S.config_trees, kind=st.sampled_from(KINDS), nested=st.booleans())
def test_an_exclude_path_into_a_value_an_encoder_keys_is_refused_before_the_run(
    tree: dict[str, Any], kind: str, nested: bool
) -> None:
    cfg = S.make_config(kind, tree)
    name = next(iter(tree))
    codec = KeyCodec().register(type(cfg), lambda value: ("tagged", 1))
    value, path = (cfg, f"cfg.{name}")
    if nested:  # the encoded value is a field of the parameter's value
        value, path = (Outer(cfg, 1), f"cfg.inner.{name}")
    run = runner_of(codec, [path])
    with pytest.raises(stet.KeyPathError) as caught:
        run(value)
    assert caught.value.path == path
    message = str(caught.value)
    assert type(cfg).__qualname__ in message
    assert "registered" in message
    assert "run(cfg=" in message  # the call
    assert not os.path.exists("runs.csv")  # nothing ran, nothing recorded


@given(tree=S.config_trees, kind=st.sampled_from(KINDS))
def test_an_encoder_of_another_type_leaves_every_pruned_text_as_it_was(
    tree: dict[str, Any], kind: str
) -> None:
    """Differential: the check changes no text of a key that is legal."""
    cfg = S.make_config(kind, tree)
    path = f"cfg.{next(iter(tree))}"
    plain = runner_of(KeyCodec(), [path]).__stet__
    other = runner_of(KeyCodec().register(Fraction, lambda f: ("F", 1)), [path]).__stet__
    assert other.encode_key({"cfg": cfg, "seed": 0}) == plain.encode_key({"cfg": cfg, "seed": 0})


@attrs.frozen
class Base:
    lr: float
    log_every: int = 10


@attrs.frozen
class Child(Base):
    pass


@dataclasses.dataclass(frozen=True)
class Holder:
    opt: Base
    out_dir: str = "results"


def test_an_annotated_path_into_an_encoded_class_is_refused_at_decoration() -> None:
    codec = KeyCodec().register(Base, lambda o: ("Base", o.lr, o.log_every))

    def train(opt: Child, seed: int) -> None: ...  # registered through its base class

    with pytest.raises(ValueError, match=r"'opt.log_every'.*Child.*registered"):
        stet.once(store="runs.csv", exclude=["opt.log_every"], codec=codec)(train)

    def deep(cfg: Holder) -> None: ...

    with pytest.raises(ValueError, match=r"'cfg.opt.log_every'.*cfg.opt is annotated as Base"):
        stet.once(store="runs.csv", exclude=["cfg.opt.log_every"], codec=codec)(deep)


@dataclasses.dataclass(frozen=True)
class Cfg:
    ratio: Fraction
    out_dir: str = "results"


def test_a_kept_field_an_encoder_keys_is_keyed_by_the_encoder() -> None:
    codec = KeyCodec().register(Fraction, lambda f: ("Fraction", f.numerator, f.denominator))
    ran: list[object] = []

    @stet.once(store="runs.csv", exclude=["cfg.out_dir"], codec=codec, quiet=True)
    def run(cfg: Cfg) -> None:
        ran.append(cfg)

    run(Cfg(Fraction(1, 3)))
    run(Cfg(Fraction(1, 3), out_dir="/scratch"))  # only the excluded field differs
    run(Cfg(Fraction(2, 3)))
    assert len(ran) == 2
    texts = [r["cfg"] for r in stet.backends.open_store("runs.csv").records()]
    assert texts == ['Cfg(ratio=["Fraction", 1, 3])', 'Cfg(ratio=["Fraction", 2, 3])']


def test_without_the_check_two_runs_would_share_a_key() -> None:
    """The case the refusal prevents: the encoder tells apart what the fields do not."""

    @dataclasses.dataclass(frozen=True)
    class Opt:
        lr: float
        tag: str = dataclasses.field(default="", compare=False)
        log_every: int = 10

    codec = KeyCodec().register(Opt, lambda o: ("Opt", o.lr, o.tag))
    assert codec.encode(Opt(0.1, "a")) != codec.encode(Opt(0.1, "b"))
    run = runner_of(codec, ["cfg.log_every"])
    for tag in ("a", "b"):
        with pytest.raises(stet.KeyPathError, match="registered"):
            run(Opt(0.1, tag))

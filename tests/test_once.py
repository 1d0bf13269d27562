"""What a decorated function does when it is called."""

from __future__ import annotations

import asyncio
import pickle
from pathlib import Path
from typing import Any

import attrs
import cattrs
import numpy as np
import pytest

import stet
from stet import KeyEncodingError, Once

from . import strategies as S


class Calls:
    """Counts how often the body of a decorated function ran, per argument set."""

    def __init__(self) -> None:
        self.log: list[tuple[Any, ...]] = []

    def __call__(self, *args: Any) -> None:
        self.log.append(args)


def test_bare_decorator_uses_the_default_csv_store_and_every_parameter(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    calls = Calls()

    @stet.once
    def run(alpha: float, seed: int) -> float:
        calls(alpha, seed)
        return alpha * seed

    assert run(0.1, 3) == pytest.approx(0.3)
    assert run(0.1, 3) is None
    assert run(0.1, seed=4) == pytest.approx(0.4)
    assert calls.log == [(0.1, 3), (0.1, 4)]
    assert (tmp_path / "_stet_store.csv").exists()
    assert capsys.readouterr().out == "[stet] Skipping run(alpha=0.1, seed=3)\n"


@pytest.mark.parametrize("style", ["call", "key", "object"])
def test_every_decorator_style_skips_finished_runs(store: str, style: str) -> None:
    calls = Calls()

    def body(alpha: float, seed: int, n_iter: int = 10) -> float:
        calls(alpha, seed, n_iter)
        return alpha

    if style == "call":
        run = stet.once(store=store)(body)
    elif style == "key":
        run = stet.once(store=store, key=["alpha", "seed"])(body)
    else:
        run = Once(store=store, key=("alpha", "seed"))(body)
    run(0.5, 1)
    run(0.5, 1)
    run(0.5, 2)
    assert calls.log == [(0.5, 1, 10), (0.5, 2, 10)]
    run(0.5, 1, n_iter=20)
    expected_runs = 3 if style == "call" else 2
    assert len(calls.log) == expected_runs


def test_defaults_are_part_of_the_key(store: str) -> None:
    calls = Calls()

    @stet.once(store=store)
    def run(alpha: float, seed: int = 0) -> None:
        calls(alpha, seed)

    run(1.0)
    run(1.0, 0)
    run(alpha=1.0, seed=0)
    assert calls.log == [(1.0, 0)]


def test_equal_numbers_of_any_type_are_the_same_run(store: str) -> None:
    calls = Calls()

    @stet.once(store=store)
    def run(x: object) -> None:
        calls(x)

    run(0)
    for same in (0.0, -0.0, np.int64(0), np.float64(0.0), np.float32(0)):
        assert run(same) is None
    run(np.float32(0.1))
    run(0.1)
    assert len(calls.log) == 3


def test_a_function_that_raises_records_nothing_and_the_exception_is_unchanged(
    store: str,
) -> None:
    attempts = Calls()

    class Boom(Exception):
        pass

    error = Boom("diverged")

    @stet.once(store=store)
    def run(x: int) -> int:
        attempts(x)
        if len(attempts.log) == 1:
            raise error
        return x

    with pytest.raises(Boom) as info:
        run(1)
    assert info.value is error
    table = stet.backends.get_backend(store)
    assert not table.exists() or not table.has({"x": 1})
    assert run(1) == 1
    assert run(1) is None


def test_unkeyable_values_fail_before_the_function_runs(store: str) -> None:
    calls = Calls()

    @stet.once(store=store)
    def run(cfg: object, seed: int) -> None:
        calls(cfg, seed)

    with pytest.raises(KeyEncodingError) as info:
        run(object(), 1)
    assert isinstance(info.value, TypeError)
    assert info.value.parameter == "cfg"
    assert "parameter 'cfg' has type object" in str(info.value)
    assert calls.log == []


def test_left_out_parameters_can_be_anything(store: str) -> None:
    @stet.once(store=store, key=["seed"])
    def run(model: object, seed: int) -> int:
        return seed

    assert run(object(), 1) == 1
    assert run(object(), 1) is None


@pytest.mark.parametrize(
    ("key", "problem"),
    [(["alpah"], "'alpah' is not a parameter"), (["args"], "variadic"), (["kw"], "variadic")],
)
def test_key_names_are_checked_against_the_signature(
    store: str, key: list[str], problem: str
) -> None:
    def run(alpha: float, *args: Any, **kw: Any) -> None: ...

    with pytest.raises(ValueError, match=problem):
        stet.once(store=store, key=key)(run)


def test_keying_all_parameters_of_a_variadic_function_asks_for_key(store: str) -> None:
    def run(alpha: float, **extra: Any) -> None: ...

    with pytest.raises(ValueError, match=r"\*\*extra.*key="):
        stet.once(store=store)(run)


@pytest.mark.parametrize(
    ("settings", "error", "problem"),
    [
        ({"store": "runs.txt"}, ValueError, r"\.csv, \.json, \.sqlite, \.db, \.parquet"),
        ({"key": ["a", "a"]}, ValueError, "twice"),
        ({"key": ["not valid"]}, ValueError, "identifier"),
        ({"key": [1]}, TypeError, "strings"),
        ({"key": ["_stet_x"]}, ValueError, "reserved"),
        ({"lease": 0}, ValueError, "lease"),
        ({"name": ""}, ValueError, "name"),
        ({"quiet": "yes"}, TypeError, "quiet"),
    ],
)
def test_invalid_settings_fail_at_construction(
    settings: dict[str, Any], error: type[Exception], problem: str
) -> None:
    with pytest.raises(error, match=problem):
        Once(**settings)


def test_once_is_frozen_and_evolvable(store: str) -> None:
    base = Once(store=store, key=["a"])
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        base.quiet = True  # type: ignore[misc]
    quiet = attrs.evolve(base, quiet=True)
    assert quiet.quiet
    assert quiet.key == ("a",)
    assert quiet.store == store
    assert Once(key=["a", "b"]).key == ("a", "b")
    if not store.startswith("postgresql://"):
        assert Once(store=Path(store)).store == store


def test_once_round_trips_through_a_plain_dict(store: str) -> None:
    config = Once(store=store, key=["alpha", "seed"], name="fit", quiet=True, lease=30)
    data = config.to_dict()
    assert data == {
        "store": store,
        "key": ["alpha", "seed"],
        "exclude": None,
        "name": "fit",
        "quiet": True,
        "claim": False,
        "lease": 30,
        "retry": "again",
        "record_interrupts": False,
    }
    assert Once.from_dict(data) == config
    assert cattrs.structure({"store": store, "key": ["a"]}, Once) == Once(store=store, key=["a"])
    plain = cattrs.unstructure(config)
    assert plain["codec"] == {"version": stet.CODEC_VERSION}
    assert cattrs.structure(plain, Once) == config
    # A config written when the key rules were version 1 or 2 still loads:
    # this stet reads their stores.
    assert cattrs.structure({**plain, "codec": {"version": 1}}, Once) == config
    assert cattrs.structure({**plain, "codec": {"version": 2}}, Once) == config
    with pytest.raises(cattrs.ClassValidationError):
        cattrs.structure({**plain, "codec": {"version": stet.CODEC_VERSION + 1}}, Once)


def test_a_typo_in_a_config_dict_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"unknown setting.*'stroe'"):
        Once.from_dict({"stroe": "runs.csv"})
    with pytest.raises(ValueError, match="true or false"):
        Once.from_dict({"quiet": "false"})


def test_quiet_silences_skip_messages(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    @stet.once(store=store, quiet=True)
    def run(x: int) -> int:
        return x

    run(1)
    run(1)
    assert capsys.readouterr().out == ""


def test_skip_messages_show_values_readably(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    @stet.once(store=store)
    def run(alpha: float, name: str, cfg: Any) -> None: ...

    args = (np.float64(0.1), "adam", S.TrainConfig(0.1, (64,)))
    run(*args)
    run(*args)
    assert capsys.readouterr().out == (
        "[stet] Skipping run(alpha=0.1, name='adam', "
        "cfg=TrainConfig(lr=0.1, layers=(64,), note=''))\n"
    )


def test_functions_sharing_a_store_do_not_skip_each_others_runs(store: str) -> None:
    calls = Calls()

    @stet.once(store=store)
    def train(x: int) -> None:
        calls("train", x)

    @stet.once(store=store)
    def evaluate(x: int) -> None:
        calls("evaluate", x)

    train(1)
    evaluate(1)
    train(1)
    assert calls.log == [("train", 1), ("evaluate", 1)]


def test_name_pins_the_identity_across_a_rename(store: str) -> None:
    @stet.once(store=store, name="experiment")
    def old_name(x: int) -> int:
        return x

    old_name(1)

    @stet.once(store=store, name="experiment")
    def new_name(x: int) -> int:
        return x

    assert new_name(1) is None


def test_config_objects_as_parameters(store: str) -> None:
    calls = Calls()

    @stet.once(store=store)
    def run(cfg: S.TrainConfig) -> None:
        calls(cfg)

    run(S.TrainConfig(0.1, (64, 64), note="first"))
    run(S.TrainConfig(0.1, (64, 64), note="ignored by the key"))
    run(S.TrainConfig(0.2, (64, 64)))
    assert len(calls.log) == 2


class Model:
    def __init__(self, scale: float) -> None:
        self.scale = scale
        self.calls = Calls()

    @stet.once(store="methods.csv")
    def fit(self, x: int) -> float:
        self.calls(x)
        return self.scale * x


def test_methods_are_keyed_without_self() -> None:
    m = Model(2.0)
    assert m.fit(3) == 6.0
    assert m.fit(3) is None
    assert Model(5.0).fit(3) is None  # the instance is not part of the key
    assert m.calls.log == [(3,)]


def test_async_functions_are_awaited_then_recorded(store: str) -> None:
    calls = Calls()

    @stet.once(store=store)
    async def run(x: int) -> int:
        await asyncio.sleep(0)
        calls(x)
        return x

    async def main() -> list[int | None]:
        return [await run(1), await run(1), await run(2)]

    assert asyncio.run(main()) == [1, None, 2]
    assert calls.log == [(1,), (2,)]


def test_async_failures_record_nothing(store: str) -> None:
    @stet.once(store=store)
    async def run(x: int) -> int:
        raise RuntimeError("nope")

    with pytest.raises(RuntimeError, match="nope"):
        asyncio.run(run(1))
    assert not stet.backends.get_backend(store).exists()


def test_generator_functions_are_refused(store: str) -> None:
    def gen(x: int) -> Any:
        yield x

    with pytest.raises(TypeError, match="generator"):
        stet.once(store=store)(gen)


def test_wrong_arguments_raise_like_a_plain_call(store: str) -> None:
    @stet.once(store=store)
    def run(x: int) -> int:
        return x

    with pytest.raises(TypeError, match="missing a required argument: 'x'"):
        run()  # type: ignore[call-arg]


def test_the_decorated_function_keeps_its_identity(store: str) -> None:
    def run(alpha: float, seed: int) -> float:
        """Docs."""
        return alpha

    decorated = stet.once(store=store)(run)
    assert decorated.__name__ == "run"
    assert decorated.__doc__ == "Docs."
    assert decorated.__wrapped__ is run  # type: ignore[attr-defined]


def test_a_damaged_store_stops_the_sweep_rather_than_rerunning(tmp_path: Path) -> None:
    path = tmp_path / "runs.csv"
    path.write_text("this is not a store\n")
    calls = Calls()

    @stet.once(store=str(path))
    def run(x: int) -> None:
        calls(x)

    with pytest.raises(stet.StoreError, match=r"runs\.csv"):
        run(1)
    assert calls.log == []


def test_errors_survive_pickling() -> None:
    for error in (
        KeyEncodingError("Foo", "cfg", "[0]", ""),
        stet.StoreError("/x/runs.csv", "is empty"),
    ):
        clone = pickle.loads(pickle.dumps(error))
        assert type(clone) is type(error)
        assert str(clone) == str(error)
        assert repr(clone) == repr(error)
        assert vars(clone) == vars(error)
    assert isinstance(stet.StoreError("p", "q"), OSError)
    assert isinstance(KeyEncodingError("Foo"), TypeError)
    assert issubclass(stet.StoreError, stet.StetError)


def test_callables_without_a_qualname_are_named_by_their_type(store: str) -> None:
    import functools

    def scale(x: int, factor: int) -> int:
        return x * factor

    double = stet.once(store=store, quiet=True)(functools.partial(scale, factor=2))
    assert double(3) == 6
    assert double(3) is None
    assert stet.read(store)["_stet_function"][0] == "partial"


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((1, 2, 3), {}),
        ((1,), {"b": 2}),
        ((), {"a": 1, "b": 2, "c": 3}),
        ((1,), {}),
        ((1, 2), {"c": 5}),
        ((), {"a": 1}),
    ],
)
def test_arguments_bind_as_python_binds_them(
    store: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    import inspect

    def f(a: int, b: int = 2, c: int = 3) -> None: ...

    runner = stet.once(store=store)(f).__stet__  # type: ignore[attr-defined]
    bound = inspect.signature(f).bind(*args, **kwargs)
    bound.apply_defaults()
    assert runner.arguments(args, kwargs) == dict(bound.arguments)
    assert list(runner.arguments(args, kwargs)) == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("args", "kwargs", "problem"),
    [
        ((1, 2, 3, 4), {}, "too many positional"),
        ((1,), {"a": 1}, "multiple values"),
        ((1,), {"d": 1}, "unexpected keyword"),
        ((), {"b": 1}, "missing a required argument"),
    ],
)
def test_wrong_calls_are_type_errors(
    store: str, args: tuple[Any, ...], kwargs: dict[str, Any], problem: str
) -> None:
    def f(a: int, b: int = 2, c: int = 3) -> None: ...

    decorated: Any = stet.once(store=store)(f)
    with pytest.raises(TypeError, match=problem):
        decorated(*args, **kwargs)

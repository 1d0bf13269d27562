"""Keys from config objects: dotted paths (``key=["cfg.model.lr"]``) and ``exclude=``.

A researcher whose sweep is driven by a config object keys it by the fields
that matter: each path is its own, readable store column, a change to an
unrelated field (``cfg.data_dir``) does not make every run new, and a path a
call's value lacks is an error naming the path and the call before anything
runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import pickle
from pathlib import Path
from typing import Any

import attrs
import omegaconf
import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

import stet
from stet import KeyCodec
from stet.backends import new_store

from . import strategies as S
from .conftest import STORE_KINDS, new_pg_store

# -- the config objects of one sweep, in every kind a path reaches into -------


@dataclasses.dataclass(frozen=True)
class DcModel:
    lr: float
    name: str = "mlp"


@dataclasses.dataclass(frozen=True)
class DcConfig:
    model: DcModel
    seed: int
    data_dir: str = "/data"


@attrs.frozen
class AtModel:
    lr: float
    name: str = "mlp"


@attrs.frozen
class AtConfig:
    model: AtModel
    seed: int
    data_dir: str = "/data"


class PdModel(pydantic.BaseModel):
    lr: float
    name: str = "mlp"


class PdConfig(pydantic.BaseModel):
    model: PdModel
    seed: int
    data_dir: str = "/data"


def make(kind: str, lr: float, seed: int, data_dir: str = "/data", name: str = "mlp") -> Any:
    """The same config as a ``kind`` object."""
    plain = {"model": {"lr": lr, "name": name}, "seed": seed, "data_dir": data_dir}
    if kind == "dataclass":
        return DcConfig(DcModel(lr, name), seed, data_dir)
    if kind == "attrs":
        return AtConfig(model=AtModel(lr, name), seed=seed, data_dir=data_dir)
    if kind == "pydantic":
        return PdConfig(model=PdModel(lr=lr, name=name), seed=seed, data_dir=data_dir)
    if kind == "dict":
        return plain
    if kind == "namespace":
        return argparse.Namespace(
            model=argparse.Namespace(lr=lr, name=name), seed=seed, data_dir=data_dir
        )
    if kind == "omegaconf":
        # lr by interpolation: OmegaConf values are keyed resolved.
        model = {"lr": f'${{oc.decode:"{lr!r}"}}', "name": name}
        return omegaconf.OmegaConf.create({**plain, "model": model})
    raise ValueError(kind)


KINDS = ["dataclass", "attrs", "pydantic", "dict", "namespace", "omegaconf"]
PATHS = ["cfg.model.lr", "cfg.seed", "seed"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_path_keys_a_run_by_that_field_and_an_unrelated_field_changes_nothing(
    kind: str,
) -> None:
    ran: list[tuple[float, int, int]] = []

    @stet.once(store="runs.csv", key=PATHS)
    def train(cfg: Any, seed: int) -> None:
        ran.append((0.0, 0, seed))

    train(make(kind, 0.1, 1), 3)
    train(make(kind, 0.1, 1, data_dir="/scratch", name="other"), 3)  # unrelated fields
    train(make(kind, 0.2, 1), 3)  # another lr: another run
    train(make(kind, 0.1, 2), 3)  # another cfg.seed
    train(cfg=make(kind, 0.1, 1), seed=4)  # by keyword, another seed
    assert len(ran) == 4
    frame = stet.read("runs.csv")
    assert list(frame.columns[:3]) == PATHS  # one readable column per path
    assert sorted(zip(frame["cfg.model.lr"], frame["cfg.seed"], frame["seed"], strict=False)) == [
        (0.1, 1, 3),
        (0.1, 1, 4),
        (0.1, 2, 3),
        (0.2, 1, 3),
    ]


def test_the_skip_line_shows_the_paths() -> None:
    @stet.once(store="runs.csv", key=PATHS)
    def train(cfg: DcConfig, seed: int) -> None: ...

    train(make("dataclass", 0.1, 1), 3)
    assert stet.is_done(train, make("dataclass", 0.1, 1, data_dir="/x"), 3)
    assert train.explain(make("dataclass", 0.1, 1), 3).done  # type: ignore[attr-defined]


def test_a_path_to_a_whole_sub_config_keys_it_by_its_fields(
    capsys: pytest.CaptureFixture[str],
) -> None:
    ran: list[int] = []

    @stet.once(store="runs.csv", key=["cfg.model", "seed"])
    def train(cfg: DcConfig, seed: int) -> None:
        ran.append(seed)

    train(make("dataclass", 0.1, 1), 3)
    train(make("dataclass", 0.1, 2, data_dir="/x"), 3)
    assert ran == [3]
    assert (
        "Skipping train(cfg.model=DcModel(lr=0.1, name='mlp'), seed=3)" in capsys.readouterr().out
    )
    assert [str(v) for v in stet.read("runs.csv")["cfg.model"]] == ['DcModel(lr=0.1, name="mlp")']


@pytest.fixture(params=[*STORE_KINDS, "stetdir"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A not-yet-created store of every kind, the shared directory included."""
    if request.param == "postgresql":
        return new_pg_store(request.getfixturevalue("pg_server"))
    return str(tmp_path / f"runs.{request.param}")


def test_path_columns_are_written_skipped_and_read_back_on_every_store(any_store: str) -> None:
    ran: list[int] = []

    @stet.once(store=any_store, key=PATHS, quiet=True)
    def train(cfg: DcConfig, seed: int) -> None:
        ran.append(seed)

    train(make("dataclass", 0.1, 1), 3)
    train(make("dataclass", 0.1, 1, data_dir="/x"), 3)
    assert ran == [3]
    fresh = stet.backends.StoreBackend(new_store(any_store))  # as another process
    assert fresh.has({"cfg.model.lr": 0.1, "cfg.seed": 1, "seed": 3})
    assert set(PATHS) <= set(stet.read(any_store).columns)
    assert stet.status(store=any_store).functions[0].key_columns == tuple(sorted(PATHS))


# -- a path that a call's value lacks ----------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_a_missing_path_is_an_error_naming_the_path_and_the_call_before_the_run(
    kind: str,
) -> None:
    ran: list[object] = []

    @stet.once(store="runs.csv", key=["cfg.model.dropout", "seed"])
    def train(cfg: Any, seed: int) -> None:
        ran.append(cfg)

    with pytest.raises(stet.KeyPathError) as info:
        train(make(kind, 0.1, 1), 3)
    message = str(info.value)
    assert "'cfg.model.dropout'" in message
    assert "train(cfg=" in message
    assert "seed=3" in message
    assert "no field 'dropout'" in message or "no key 'dropout'" in message
    assert "'lr'" in message  # what is there
    assert ran == []
    assert not stet.backends.get_backend("runs.csv").path.exists()


def test_a_path_through_a_value_without_fields_says_what_is_there() -> None:
    @stet.once(store="runs.csv", key=["cfg.model.lr"])
    def train(cfg: Any) -> None: ...

    with pytest.raises(stet.KeyPathError, match=r"cfg.model is None \(NoneType\), which has no"):
        train({"model": None})
    with pytest.raises(stet.KeyPathError, match=r"cfg is 3 \(int\)"):
        train(3)


def test_a_path_reaches_fields_only_never_methods_or_properties() -> None:
    @dataclasses.dataclass(frozen=True)
    class Config:
        lr: float

        @property
        def doubled(self) -> float:
            return 2 * self.lr

    @stet.once(store="runs.csv", key=["cfg.doubled"])
    def train(cfg: Any) -> None: ...

    with pytest.raises(stet.KeyPathError, match="no field 'doubled'"):
        train(Config(0.1))

    @stet.once(store="runs.csv", key=["cfg.__class__"])
    def other(cfg: Any) -> None: ...

    with pytest.raises(stet.KeyPathError, match="no field '__class__'"):
        other(Config(0.1))
    with pytest.raises(stet.KeyPathError, match="no key '__class__'"):
        other({"lr": 0.1})


def test_an_unset_mandatory_omegaconf_value_is_a_key_path_error() -> None:
    @stet.once(store="runs.csv", key=["cfg.model.lr"])
    def train(cfg: Any) -> None: ...

    with pytest.raises(stet.KeyPathError, match=r"mandatory value \(\?\?\?\) is not set"):
        train(omegaconf.OmegaConf.create({"model": {"lr": "???"}}))
    with pytest.raises(stet.KeyPathError, match="cannot resolve"):
        train(omegaconf.OmegaConf.create({"model": {"lr": "${nowhere}"}}))


def test_key_path_errors_survive_str_repr_and_pickling() -> None:
    error = stet.KeyPathError("cfg.lr", "cfg is a dict, which has no key 'lr'", "f(cfg={})")
    assert isinstance(error, stet.StetError)
    assert isinstance(error, LookupError)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.path, copy.reason, copy.call) == (error.path, error.reason, error.call)
    assert str(copy) == str(error)
    assert "KeyPathError" in repr(copy)


# -- checks at decoration ------------------------------------------------------


def test_a_path_whose_parameter_does_not_exist_is_refused_at_decoration() -> None:
    with pytest.raises(ValueError, match=r"key name 'conf.lr' starts with 'conf', not a parameter"):

        @stet.once(key=["conf.lr"])
        def train(cfg: DcConfig) -> None: ...


def test_a_path_the_annotations_rule_out_is_refused_at_decoration() -> None:
    for cls in (DcConfig, AtConfig, PdConfig):

        def train(cfg: Any) -> None: ...

        train.__annotations__ = {"cfg": cls, "return": None}
        with pytest.raises(
            ValueError, match=r"cfg.model is annotated as \w+Model, which has no field 'lrr'"
        ):
            stet.once(key=["cfg.model.lrr"])(train)
        stet.once(key=["cfg.model.lr"])(train)  # a real path is accepted


def test_a_path_into_a_variadic_parameter_is_refused() -> None:
    with pytest.raises(ValueError, match="variadic"):

        @stet.once(key=["kw.lr"])
        def train(**kw: Any) -> None: ...


def test_a_name_inside_another_name_of_the_key_is_refused() -> None:
    with pytest.raises(ValueError, match=r"'cfg\.seed' lies inside 'cfg'"):
        stet.Once(key=["cfg", "cfg.seed"])
    with pytest.raises(ValueError, match=r"'cfg\.model\.lr' lies inside 'cfg\.model'"):
        stet.Once(exclude=["cfg.model.lr", "cfg.model"])


@pytest.mark.parametrize("name", ["cfg..lr", "cfg.", ".lr", "cfg.1x", "cfg.a-b", "_stet_x.a"])
def test_a_malformed_path_is_refused_when_configured(name: str) -> None:
    with pytest.raises(ValueError, match=repr(name).replace(".", r"\.")):
        stet.Once(key=[name])


def test_a_path_too_long_for_postgresql_is_refused_at_decoration() -> None:
    path = "cfg." + ".".join(["field"] * 12)  # 75 bytes: PostgreSQL keeps 63
    with pytest.raises(ValueError, match="at most 63 bytes"):

        @stet.once(store="postgresql://localhost/db", key=[path])
        def train(cfg: Any) -> None: ...


# -- exclude= -------------------------------------------------------------------


def test_exclude_keys_every_parameter_but_these() -> None:
    ran: list[float] = []

    @stet.once(store="runs.csv", exclude=["verbose", "out_dir"])
    def run(alpha: float, seed: int, verbose: bool = False, out_dir: str = ".") -> None:
        ran.append(alpha)

    run(0.1, 1)
    run(0.1, 1, True, "/elsewhere")
    assert ran == [0.1]
    assert list(stet.read("runs.csv").columns[:2]) == ["alpha", "seed"]


def test_exclude_can_leave_out_star_kwargs_so_the_rest_is_keyed() -> None:
    ran: list[float] = []

    @stet.once(store="runs.csv", exclude=["options"])
    def run(alpha: float, **options: Any) -> None:
        ran.append(alpha)

    run(0.1, logger="x")
    run(0.1, logger="y")
    assert ran == [0.1]


@pytest.mark.parametrize("kind", KINDS)
def test_exclude_a_path_keys_the_rest_of_the_config_by_its_fields(kind: str) -> None:
    ran: list[int] = []

    @stet.once(store="runs.csv", exclude=["cfg.data_dir", "cfg.model.name"])
    def train(cfg: Any, seed: int) -> None:
        ran.append(seed)

    train(make(kind, 0.1, 1), 3)
    train(make(kind, 0.1, 1, data_dir="/scratch", name="other"), 3)  # excluded fields
    train(make(kind, 0.2, 1), 3)  # a field in the key
    assert ran == [3, 3]
    cfg = make(kind, 0.1, 1)
    if kind in ("dict", "omegaconf"):  # a mapping is keyed as the mapping less those keys
        expected: list[object] = [
            {"model": {"lr": 0.1}, "seed": 1},
            {"model": {"lr": 0.2}, "seed": 1},
        ]
    else:  # a class value as the class less those fields, at every level
        outer, inner = type(cfg).__qualname__, type(cfg.model).__qualname__
        expected = [f"{outer}(model={inner}(lr={lr}), seed=1)" for lr in (0.1, 0.2)]
    got = list(stet.read("runs.csv")["cfg"])
    assert [v if isinstance(v, dict) else str(v) for v in got] == expected


def test_an_excluded_path_that_a_value_lacks_is_an_error_before_the_run() -> None:
    ran: list[object] = []

    @stet.once(store="runs.csv", exclude=["cfg.data_dri"])
    def train(cfg: Any) -> None:
        ran.append(cfg)

    with pytest.raises(stet.KeyPathError, match=r"'cfg.data_dri'.*no field 'data_dri'"):
        train(make("dataclass", 0.1, 1))
    with pytest.raises(stet.KeyPathError, match=r"'cfg.data_dri'.*which has no fields"):
        train(5)
    assert ran == []


def test_exclude_of_an_unknown_parameter_is_refused_at_decoration() -> None:
    with pytest.raises(ValueError, match="exclude name 'verbos' is not a parameter"):

        @stet.once(exclude=["verbos"])
        def run(alpha: float, verbose: bool = False) -> None: ...


def test_key_and_exclude_together_are_an_error() -> None:
    with pytest.raises(ValueError, match="both given"):
        stet.Once(key=["alpha"], exclude=["verbose"])
    with pytest.raises(ValueError, match="both given"):
        stet.Once.from_dict({"key": ["alpha"], "exclude": ["verbose"]})


def test_exclude_comes_from_a_config_file_and_goes_back_to_one() -> None:
    once = stet.Once.from_dict({"store": "runs.csv", "exclude": ["cfg.data_dir", "verbose"]})
    assert once.exclude == ("cfg.data_dir", "verbose")
    assert once.to_dict()["exclude"] == ["cfg.data_dir", "verbose"]
    assert stet.Once.from_dict(once.to_dict()) == once
    assert stet.Once(exclude=[]).exclude is None  # nothing left out is the default


# -- the 0.0.x forms of key= ----------------------------------------------------


@pytest.mark.parametrize("key", [["alpha", "seed"], ("alpha", "seed"), None])
def test_the_0_0_x_forms_of_key_keep_their_columns_and_skips(key: Any) -> None:
    # A store as 0.0.x wrote it: str(value) per parameter, no function column.
    Path("runs.csv").write_text("alpha,seed,_stet_timestamp\n0.1,3,2025-01-01T00:00:00\n")
    ran: list[float] = []

    @stet.once(store="runs.csv", key=key)
    def run(alpha: float, seed: int) -> None:
        ran.append(alpha)

    run(0.1, 3)
    run(0.2, 3)
    assert ran == [0.2]
    assert stet.Once(key="alpha").key == ("alpha",)


# -- the fast path against the reference -------------------------------------


def _reference(value: Any, parts: list[str]) -> Any:
    """A path's value, the plain way."""
    for part in parts:
        value = value[part] if isinstance(value, dict) else getattr(value, part)
    return value


def _outermost(paths: list[str]) -> list[str]:
    chosen: list[str] = []
    for path in paths:
        if not any(path.startswith(c + ".") or c.startswith(path + ".") for c in chosen):
            chosen.append(path)
    return chosen


@given(
    tree=S.config_trees,
    kinds=st.lists(st.sampled_from(S.CONFIG_KINDS), min_size=1, max_size=3),
    data=st.data(),
)
def test_the_fast_path_of_a_path_key_gives_the_reference_texts(
    tree: dict[str, Any], kinds: list[str], data: st.DataObject
) -> None:
    paths = data.draw(st.lists(st.sampled_from(S.tree_paths(tree)), min_size=1, unique=True))
    key = [*_outermost(paths), "seed"]
    cfg = S.build_config(tree, kinds)

    def train(cfg: Any, seed: int) -> None: ...

    runner = stet.once(store="runs.csv", key=key)(train).__stet__  # type: ignore[attr-defined]
    codec = KeyCodec()
    expected = tuple(
        codec.encode(7 if col == "seed" else _reference(cfg, col.split(".")[1:]))
        for col in runner.cols
    )
    assert runner.key_texts((cfg, 7), {}) == expected  # the fast path
    assert runner.key_texts((), {"cfg": cfg, "seed": 7}) == expected  # the general path


@given(tree=S.omegaconf_trees, data=st.data())
def test_the_fast_path_into_an_omegaconf_config_gives_its_resolved_plain_texts(
    tree: dict[str, Any], data: st.DataObject
) -> None:
    paths = data.draw(st.lists(st.sampled_from(S.tree_paths(tree)), min_size=1, unique=True))
    key = _outermost(paths)
    cfg = omegaconf.OmegaConf.create(tree)

    def train(cfg: Any) -> None: ...

    runner = stet.once(store="runs.csv", key=key)(train).__stet__  # type: ignore[attr-defined]
    codec = KeyCodec()
    expected = tuple(codec.encode(_reference(tree, col.split(".")[1:])) for col in runner.cols)
    assert runner.key_texts((cfg,), {}) == expected
    assert runner.key_texts((), {"cfg": cfg}) == expected


@given(tree=S.config_trees, kind=st.sampled_from(S.CONFIG_KINDS), data=st.data())
def test_exclude_of_a_path_gives_the_texts_of_the_config_without_it(
    tree: dict[str, Any], kind: str, data: st.DataObject
) -> None:
    path = data.draw(st.sampled_from(S.tree_paths(tree)))
    cfg = S.build_config(tree, [kind])

    def train(cfg: Any, seed: int) -> None: ...

    runner = stet.once(store="runs.csv", exclude=[path])(train).__stet__  # type: ignore[attr-defined]

    expected = (KeyCodec().encode(S.without(cfg, path.split(".")[1:])), KeyCodec().encode(7))
    assert runner.key_texts((cfg, 7), {}) == expected
    assert runner.key_texts((), {"cfg": cfg, "seed": 7}) == expected


# -- the helpers that take rows: mark_done, pending, progress -----------------


def test_mark_done_and_pending_take_rows_of_configs_or_of_path_columns() -> None:
    @stet.once(store="runs.csv", key=PATHS, quiet=True)
    def train(cfg: Any, seed: int) -> None: ...

    grid = [{"cfg": make("dataclass", lr, 1), "seed": s} for lr in (0.1, 0.2) for s in (0, 1)]
    assert stet.mark_done(train, grid[:1]) == 1
    assert stet.pending(train, grid) == grid[1:]
    # Rows as stet.read gives them: one column per path.
    assert stet.mark_done(train, [{"cfg.model.lr": 0.1, "cfg.seed": 1, "seed": 1}]) == 1
    assert stet.pending(train, grid) == grid[2:]
    assert stet.progress(train, grid).done == 2
    assert stet.mark_done(train, stet.read("runs.csv")) == 0  # the store's own rows
    with pytest.raises(stet.KeyPathError, match=r"'cfg\.model\.lr' in the call train\(\), row 0"):
        stet.pending(train, [{"cfg": {"seed": 1}, "seed": 0}])


def test_exclude_paths_apply_to_rows_of_configs() -> None:
    @stet.once(store="runs.csv", exclude=["cfg.data_dir"], quiet=True)
    def train(cfg: Any, seed: int) -> None: ...

    train(make("dict", 0.1, 1), 0)
    assert stet.pending(train, [{"cfg": make("dict", 0.1, 1, data_dir="/x"), "seed": 0}]) == []


# -- whole config objects as keys ---------------------------------------------


@pytest.mark.parametrize("kind", ["pydantic", "namespace", "omegaconf"])
def test_a_whole_config_object_is_keyed_by_its_fields(kind: str) -> None:
    ran: list[int] = []

    @stet.once(store="runs.csv", quiet=True)
    def train(cfg: Any, seed: int) -> None:
        ran.append(seed)

    train(make(kind, 0.1, 1), 0)
    train(make(kind, 0.1, 1), 0)
    train(make(kind, 0.2, 1), 0)
    assert ran == [0, 0]


def test_an_omegaconf_list_is_keyed_as_a_list_and_a_path_may_end_at_one() -> None:
    @stet.once(store="runs.csv", key=["cfg.layers"])
    def train(cfg: Any) -> None: ...

    train(omegaconf.OmegaConf.create({"layers": [64, 64], "lr": 0.1}))
    assert stet.is_done(train, {"layers": [64, 64]})
    assert list(stet.read("runs.csv")["cfg.layers"]) == [[64, 64]]
    assert KeyCodec().encode(omegaconf.OmegaConf.create([1, {"a": "${.b}", "b": 2}])) == (
        KeyCodec().encode([1, {"a": 2, "b": 2}])
    )


def test_the_key_is_taken_before_the_function_changes_its_config() -> None:
    @stet.once(store="runs.csv", key=["cfg.lr"], quiet=True)
    def train(cfg: dict[str, float]) -> None:
        cfg["lr"] = 99.0  # the experiment edits its config

    train({"lr": 0.1})
    assert list(stet.read("runs.csv")["cfg.lr"]) == [0.1]
    assert train({"lr": 0.1}) is None


def test_a_function_with_key_paths_pickles_and_keys_the_same_in_a_worker() -> None:
    once = stet.Once(store="runs.csv", key=PATHS)
    copy = pickle.loads(pickle.dumps(once))
    assert copy == once
    runner = once(_module_train).__stet__  # type: ignore[attr-defined]
    again = pickle.loads(pickle.dumps(runner))
    cfg = make("dataclass", 0.1, 1)
    assert again.key_texts((cfg, 3), {}) == runner.key_texts((cfg, 3), {})


def _module_train(cfg: Any, seed: int) -> None: ...


def test_a_path_never_makes_up_a_value_in_a_defaultdict() -> None:
    import collections

    @stet.once(store="runs.csv", key=["cfg.lr"])
    def train(cfg: Any) -> None: ...

    cfg: collections.defaultdict[str, float] = collections.defaultdict(float)
    with pytest.raises(stet.KeyPathError, match="no key 'lr'"):
        train(cfg)
    assert dict(cfg) == {}  # the user's config is unchanged


def test_a_key_path_error_shows_the_keyed_parameters_only() -> None:
    @stet.once(store="runs.csv", key=["cfg.lr"])
    def train(cfg: Any, token: str = "") -> None: ...

    with pytest.raises(stet.KeyPathError) as info:
        train({}, token="s3cr3t")
    assert "s3cr3t" not in str(info.value)
    assert "train(cfg={})" in str(info.value)


def test_a_path_into_self_keys_a_method_by_its_instance_fields() -> None:
    @attrs.frozen
    class Experiment:
        lr: float
        log_dir: str = "."

        @stet.once(store="runs.csv", key=["self.lr", "seed"], quiet=True)
        def run(self, seed: int) -> int:
            return seed

    assert Experiment(0.1).run(1) == 1
    assert Experiment(0.1, log_dir="/x").run(1) is None
    assert Experiment(0.2).run(1) == 1

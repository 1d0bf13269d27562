"""Hypothesis strategies for key values: every type the key rules cover.

Add a strategy here first when stet learns a new key type.
"""

from __future__ import annotations

import dataclasses
import enum
from datetime import UTC, timedelta, timezone
from fractions import Fraction
from pathlib import Path
from typing import Any

import attrs
import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import stet


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    lr: float
    layers: tuple[int, ...]
    note: str = dataclasses.field(default="", compare=False)


@dataclasses.dataclass(frozen=True)
class OtherConfig:
    lr: float
    layers: tuple[int, ...]


@attrs.frozen
class Grid:
    alpha: float
    label: str
    cache: object = attrs.field(default=None, eq=False)


class Method(enum.Enum):
    ADAM = "adam"
    SGD = "sgd"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


_NP_INTS: list[Any] = [
    np.int8,
    np.int16,
    np.int32,
    np.int64,
    np.uint8,
    np.uint16,
    np.uint32,
    np.uint64,
]
_NP_FLOATS: list[tuple[Any, int]] = [(np.float16, 16), (np.float32, 32), (np.float64, 64)]


def _np_int(t: type[np.integer[Any]]) -> st.SearchStrategy[Any]:
    info = np.iinfo(t)
    return st.integers(int(info.min), int(info.max)).map(t)


def _np_float(t: type[np.floating[Any]], width: int) -> st.SearchStrategy[Any]:
    return st.floats(width=width).map(t)  # type: ignore[arg-type]


python_ints = st.one_of(st.integers(-(2**70), 2**70), st.integers(-10, 10))
python_floats = st.one_of(
    st.floats(),
    st.sampled_from([0.0, -0.0, 0.1, 1.0, 1e300, float("inf"), float("-inf"), float("nan")]),
)
numpy_ints = st.sampled_from(_NP_INTS).flatmap(_np_int)
numpy_floats = st.sampled_from(_NP_FLOATS).flatmap(lambda tw: _np_float(*tw))
long_doubles = st.tuples(st.floats(-1e6, 1e6), st.integers(-(2**10), 2**10)).map(
    lambda p: np.longdouble(p[0]) + np.longdouble(p[1]) * np.finfo(np.longdouble).eps
)

#: Every kind of number stet keys by value.
numbers = st.one_of(python_ints, python_floats, numpy_ints, numpy_floats, long_doubles)

#: Strings that other tools mistake for something else.
tricky_strings = st.sampled_from(
    [
        "",
        " ",
        "NA",
        "N/A",
        "null",
        "NULL",
        "nan",
        "NaN",
        "None",
        "none",
        "True",
        "true",
        "FALSE",
        "007",
        "1",
        "1.0",
        "-0",
        "1e5",
        "inf",
        "-inf",
        "a,b",
        'say "hi"',
        "line\nbreak",
        "cr\r\nlf",
        "tab\there",
        "ünïcødé ✓",
        "'",
        "'quoted",
        "[1, 2]",
        "{}",
        "<Method.ADAM>",
        'Path("x")',
        "array([1])",
        "2024-01-01",
        "2024-01-01T00:00:00",
        " padded ",
        "#N/A",
        "=1+1",
        "+plus",
        "-minus",
        "@handle",
        "nul\x00byte",
        "carriage\rreturn",
        "\x1b[31mred",
        "Cfg(a=1)",
        "information",
    ]
)
strings = st.one_of(st.text(), tricky_strings)

bools = st.one_of(st.booleans(), st.booleans().map(np.bool_))

naive_datetimes = st.datetimes()
aware_datetimes = st.datetimes(
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5))])
)
dates = st.dates()
paths = st.lists(
    st.text(
        # A lone surrogate (a non-UTF-8 file name) cannot be keyed: see test_codec.
        st.characters(blacklist_characters="/\x00", blacklist_categories=["Cs"]),
        min_size=1,
        max_size=8,
    ),
    max_size=3,
).map(lambda parts: Path(*parts) if parts else Path("."))
enums = st.sampled_from([*Method, *Level])
arrays = st.one_of(
    hnp.arrays(
        st.sampled_from([np.int64, np.float64, np.float32, np.bool_]),
        hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=4),
    ),
)

scalars = st.one_of(
    numbers, bools, strings, st.none(), dates, naive_datetimes, aware_datetimes, paths, enums
)
hashable_scalars = st.one_of(st.integers(), st.text(max_size=5), bools.map(bool), st.none())


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=4).map(tuple),
        st.dictionaries(hashable_scalars, children, max_size=4),
    )


objects = st.one_of(
    st.builds(
        TrainConfig,
        lr=st.floats(allow_nan=False),
        layers=st.lists(st.integers(0, 512), max_size=3).map(tuple),
        note=st.text(max_size=3),
    ),
    st.builds(
        OtherConfig,
        lr=st.floats(allow_nan=False),
        layers=st.lists(st.integers(0, 512), max_size=3).map(tuple),
    ),
    st.builds(Grid, alpha=st.floats(), label=strings),
)

#: Any value stet can key, nested containers included.
keyable = st.recursive(st.one_of(scalars, objects, arrays), _containers, max_leaves=8)


def exact_number(x: Any) -> Fraction | str:
    """A number's exact value: a Fraction, or 'nan', 'inf', '-inf'."""
    if isinstance(x, np.integer):
        return Fraction(int(x))
    if isinstance(x, int):
        return Fraction(x)
    f = np.longdouble(x) if isinstance(x, np.floating) else float(x)
    if f != f:
        return "nan"
    if np.isinf(f):
        return "inf" if f > 0 else "-inf"
    return Fraction(*f.as_integer_ratio())


def as_number_type(value: Fraction, kind: str) -> Any:
    """``value`` converted to another number type, or None when it cannot be exact."""
    converters: dict[str, Any] = {
        "int": lambda v: int(v) if v.denominator == 1 else None,
        "float": float,
        "np.int64": lambda v: np.int64(int(v)) if v.denominator == 1 and abs(v) < 2**63 else None,
        "np.float64": lambda v: np.float64(float(v)),
        "np.float32": lambda v: np.float32(float(v)),
    }
    try:
        with np.errstate(all="ignore"):
            out = converters[kind](value)
    except OverflowError:
        return None
    if out is None or exact_number(out) != value:
        return None
    return out


# -- config objects that key paths reach into (key=["cfg.model.lr"]) ----------

#: Field names of generated config objects.
FIELD_NAMES = st.sampled_from(["a", "lr", "seed", "model", "x_1", "λ", "data_dir"])

#: The kinds of config object a path reaches into (pydantic and OmegaConf:
#: see `omegaconf_trees` for the latter, whose leaves are OmegaConf's).
CONFIG_KINDS = ["dict", "namespace", "dataclass", "attrs", "pydantic"]

#: A config as a tree of plain dicts; leaves are any keyable value.
config_trees = st.dictionaries(
    FIELD_NAMES,
    st.recursive(
        keyable,
        lambda kids: st.dictionaries(FIELD_NAMES, kids, min_size=1, max_size=3),
        max_leaves=6,
    ),
    min_size=1,
    max_size=4,
)

#: A config as a tree of plain dicts with the leaves OmegaConf holds.
omegaconf_trees = st.dictionaries(
    FIELD_NAMES,
    st.recursive(
        st.one_of(st.integers(), st.floats(), st.text(), st.booleans(), st.none()),
        lambda kids: st.one_of(
            st.dictionaries(FIELD_NAMES, kids, min_size=1, max_size=3),
            st.lists(kids, max_size=3),
        ),
        max_leaves=6,
    ),
    min_size=1,
    max_size=4,
)


def tree_paths(tree: dict[str, Any], prefix: str = "cfg") -> list[str]:
    """Every dotted path into a tree of dicts, to leaves and to inner nodes."""
    out: list[str] = []
    for name, value in tree.items():
        path = f"{prefix}.{name}"
        out.append(path)
        if isinstance(value, dict) and value and _is_tree(value):
            out.extend(tree_paths(value, path))
    return out


def build_config(tree: dict[str, Any], kinds: list[str]) -> Any:
    """The tree as config objects, node ``i`` (depth first) of kind ``kinds[i % len]``."""
    counter = iter(range(10**6))

    def build(node: dict[str, Any]) -> Any:
        kind = kinds[next(counter) % len(kinds)]
        fields = {
            k: build(v) if isinstance(v, dict) and v and _is_tree(v) else v for k, v in node.items()
        }
        return make_config(kind, fields)

    return build(tree)


def _is_tree(node: dict[Any, Any]) -> bool:
    import keyword

    return all(isinstance(k, str) and k.isidentifier() and not keyword.iskeyword(k) for k in node)


def make_config(kind: str, fields: dict[str, Any]) -> Any:
    """A config object of ``kind`` with these fields."""
    if kind == "dict":
        return dict(fields)
    if kind == "namespace":
        import types

        return types.SimpleNamespace(**fields)
    if kind == "dataclass":
        cls = dataclasses.make_dataclass("Node", list(fields), frozen=True)
        return cls(**fields)
    if kind == "attrs":
        cls = attrs.make_class("Node", list(fields), frozen=True)
        return cls(**fields)
    if kind == "pydantic":
        import pydantic

        model = pydantic.create_model(  # type: ignore[call-overload]
            "Node",
            __config__=pydantic.ConfigDict(arbitrary_types_allowed=True),
            **dict.fromkeys(fields, (Any, ...)),
        )
        return model.model_construct(**fields)
    raise ValueError(kind)


def fields_for_key(node: Any) -> dict[str, Any]:
    """A generated config object's fields by name (every one takes part in its key)."""
    import types

    if isinstance(node, types.SimpleNamespace):
        return dict(vars(node))
    if attrs.has(type(node)):
        return attrs.asdict(node, recurse=False)
    if dataclasses.is_dataclass(node):
        return {f.name: getattr(node, f.name) for f in dataclasses.fields(node)}
    return {k: getattr(node, k) for k in type(node).model_fields}


def without(node: Any, parts: list[str]) -> Any:
    """The reference key of a config less the field at ``parts``, as `KeyCodec` writes it.

    A mapping less the key; a class value as the text of the class with the
    field's ``name=value`` left out (an `Encoded`), fields in the codec's
    order (a namespace's sorted), at every level the path passes.
    """
    import types

    head, *rest = parts
    if isinstance(node, dict):
        out = {k: v for k, v in node.items() if k != head}
        if rest:
            out[head] = without(node[head], rest)
        return out
    fields = fields_for_key(node)
    names = sorted(fields) if isinstance(node, types.SimpleNamespace) else list(fields)
    inner = stet.KeyCodec().encode  # of a one-item list: the text inside a container
    shown = [
        f"{n}={inner([without(fields[n], rest) if n == head else fields[n]])[1:-1]}"
        for n in names
        if n != head or rest
    ]
    return stet.Encoded(f"{type(node).__qualname__}({', '.join(shown)})")

"""The key rules (SPEC section 3), each as a property over generated values."""

from __future__ import annotations

import argparse
import dataclasses
import enum
import json
import keyword
import os
import pickle
import re
import subprocess
import sys
import types
import unicodedata
from datetime import date, datetime, timedelta, timezone
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import stet
from stet import Encoded, KeyCodec, KeyEncodingError, _codec_legacy, _codec_text
from stet._codec_legacy import canonical_from_v1

from . import strategies as S

codec = KeyCodec()
enc = codec.encode


# -- Rule 1: numbers compare by value ----------------------------------------


@given(S.numbers, S.numbers)
def test_numbers_share_a_key_exactly_when_their_values_are_equal(a: Any, b: Any) -> None:
    assert (enc(a) == enc(b)) == (S.exact_number(a) == S.exact_number(b))


@given(S.numbers, st.sampled_from(["int", "float", "np.int64", "np.float64", "np.float32"]))
def test_a_number_converted_exactly_to_another_type_is_the_same_key(a: Any, kind: str) -> None:
    value = S.exact_number(a)
    assume(isinstance(value, Fraction))
    assert isinstance(value, Fraction)
    other = S.as_number_type(value, kind)
    assume(other is not None)
    assert enc(other) == enc(a)


def test_the_numbers_the_rules_name() -> None:
    assert enc(np.float64(0.0)) == enc(0.0) == enc(0) == enc(np.int64(0))
    assert enc(1) == enc(1.0)
    assert enc(np.float32(0.1)) != enc(0.1)
    assert enc(float("nan")) == enc(np.float32("nan")) == enc(np.float64("nan"))
    assert enc(-0.0) == enc(0.0)
    assert enc(float("inf")) != enc(float("-inf"))
    assert enc(2**53 + 1) != enc(float(2**53))


# -- Rule 2: booleans are their own kind ------------------------------------


@given(S.bools, S.numbers)
def test_a_boolean_is_never_the_same_key_as_a_number(b: Any, n: Any) -> None:
    assert enc(b) != enc(n)


@given(st.booleans())
def test_numpy_and_python_booleans_are_one_key(b: bool) -> None:
    assert enc(np.bool_(b)) == enc(b)


# -- Rules 3 and 4: strings are their own kind, None is a value --------------


@given(S.strings, st.one_of(S.numbers, S.bools, st.none(), S.dates, S.paths, S.enums))
def test_a_string_is_never_the_same_key_as_another_kind(s: str, other: Any) -> None:
    assert enc(s) != enc(other)


@given(S.strings)
def test_every_string_decodes_to_itself(s: str) -> None:
    assert codec.decode(enc(s)) == s


@given(S.strings, S.strings)
def test_different_strings_are_different_keys(a: str, b: str) -> None:
    assert (enc(a) == enc(b)) == (a == b)


def test_the_strings_the_rules_name() -> None:
    assert enc("1") != enc(1)
    assert enc("True") != enc(True)
    assert enc("None") != enc(None)
    assert enc("") != enc(None)
    assert codec.decode(enc(None)) is None


# -- Rule 5: sequences and mappings ------------------------------------------


@given(st.lists(S.keyable, max_size=4))
def test_a_tuple_and_a_list_of_the_same_items_are_one_key(items: list[Any]) -> None:
    assert enc(items) == enc(tuple(items))


@given(st.lists(S.keyable, max_size=3), st.lists(S.keyable, max_size=3))
def test_sequences_compare_element_by_element(xs: list[Any], ys: list[Any]) -> None:
    same = len(xs) == len(ys) and all(enc(x) == enc(y) for x, y in zip(xs, ys, strict=True))
    assert (enc(xs) == enc(ys)) == same


@given(st.dictionaries(S.hashable_scalars, S.keyable, max_size=5), st.randoms())
def test_a_mappings_key_does_not_depend_on_item_order(d: dict[Any, Any], rnd: Any) -> None:
    items = list(d.items())
    rnd.shuffle(items)
    assert enc(dict(items)) == enc(d)


def test_nested_containers_are_keyed_by_their_contents() -> None:
    assert enc({"a": [1, (2, 3)], "b": None}) == enc({"b": None, "a": [1.0, [2, 3]]})
    assert enc([1, [2]]) != enc([1, 2])
    assert enc({1: "x"}) != enc({"1": "x"})


# -- Rule 6: objects by their fields, nothing by repr ------------------------


@given(S.objects, S.objects)
def test_objects_share_a_key_exactly_when_class_and_compared_fields_are_equal(
    a: Any, b: Any
) -> None:
    fields_equal = type(a) is type(b) and enc(_fields(a)) == enc(_fields(b))
    assert (enc(a) == enc(b)) == fields_equal


def _fields(obj: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(obj):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if f.compare}
    import attrs

    return {f.name: getattr(obj, f.name) for f in attrs.fields(type(obj)) if f.eq}


def test_fields_excluded_from_equality_are_excluded_from_the_key() -> None:
    assert enc(S.TrainConfig(0.1, (64,), note="a")) == enc(S.TrainConfig(0.1, (64,), note="b"))
    assert enc(S.Grid(1.0, "x", cache=object())) == enc(S.Grid(1.0, "x", cache=[1]))


def test_two_classes_with_the_same_fields_are_different_keys() -> None:
    assert enc(S.TrainConfig(0.1, (64,))) != enc(S.OtherConfig(0.1, (64,)))


@given(S.arrays)
def test_an_array_is_keyed_by_its_whole_value(a: np.ndarray[Any, Any]) -> None:
    assert enc(a) == enc(a.copy())
    assert "..." not in enc(a)
    if a.size:
        changed = a.copy()
        flat = changed.reshape(-1)
        flat[-1] = (not flat[-1]) if a.dtype == np.bool_ else (1 if flat[-1] != 1 else 2)
        assert enc(changed) != enc(a)


def test_a_large_array_is_not_truncated() -> None:
    a = np.zeros(10_000)
    b = a.copy()
    b[5_000] = 1e-9
    assert enc(a) != enc(b)


def test_arrays_of_different_shape_are_different_keys() -> None:
    assert enc(np.zeros((0, 3))) != enc(np.zeros((3, 0)))
    assert enc(np.arange(4).reshape(2, 2)) != enc(np.arange(4))


@given(S.enums, S.enums)
def test_enum_members_are_keyed_by_class_and_member(a: Any, b: Any) -> None:
    assert (enc(a) == enc(b)) == (a is b)


def test_an_int_enum_is_not_its_integer() -> None:
    assert enc(S.Level.LOW) != enc(1)


@given(S.aware_datetimes)
def test_aware_datetimes_are_keyed_by_instant(t: datetime) -> None:
    assert enc(t) == enc(t.astimezone(timezone(timedelta(hours=9))))
    assert enc(t) != enc(t.replace(tzinfo=None))


@given(S.naive_datetimes)
def test_a_datetime_is_not_its_date_nor_its_text(t: datetime) -> None:
    assert enc(t) != enc(t.date())
    assert enc(t) != enc(t.isoformat())
    assert enc(t.date()) != enc(t.date().isoformat())


def test_paths_are_keyed_by_value_and_are_not_strings() -> None:
    assert enc(Path("data/x.csv")) == enc(Path("data") / "x.csv")
    assert enc(Path("data/x.csv")) != enc("data/x.csv")


@pytest.mark.parametrize(
    "value",
    [object(), {1, 2}, 1 + 2j, b"bytes", lambda: 0, np.datetime64("2024-01-01"), range(3)],
    ids=["object", "set", "complex", "bytes", "lambda", "datetime64", "range"],
)
def test_anything_else_is_refused_with_its_type_named(value: Any) -> None:
    with pytest.raises(KeyEncodingError) as info:
        enc(value)
    assert type(value).__qualname__ in str(info.value)
    assert "key=" in str(info.value)
    assert "register" in str(info.value)


def test_a_refused_value_deep_inside_is_located() -> None:
    with pytest.raises(KeyEncodingError, match=r"\[1\]\['b'\]"):
        enc([0, {"b": object()}])


def test_a_cyclic_value_is_refused_not_a_crash() -> None:
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    with pytest.raises(KeyEncodingError, match="deep"):
        enc(cyclic)


def test_a_registered_encoder_keys_its_type() -> None:
    class Point:
        def __init__(self, x: int, y: int) -> None:
            self.x, self.y = x, y

    custom = KeyCodec().register(Point, lambda p: ("Point", p.x, p.y))
    assert custom.encode(Point(1, 2)) == custom.encode(Point(1, 2))
    assert custom.encode(Point(1, 2)) != custom.encode(Point(2, 1))
    assert custom.encode([Point(1, 2)]) == '[["Point", 1, 2]]'
    with pytest.raises(KeyEncodingError):
        KeyCodec().encode(Point(1, 2))  # registering made a new codec


# -- Rule 8: versioned, stable, readable --------------------------------------


@given(S.keyable)
def test_decoding_then_encoding_gives_the_same_text(value: Any) -> None:
    text = enc(value)
    assert enc(codec.decode(text)) == text


@given(S.keyable)
def test_decoded_values_equal_the_original_where_python_can_compare(value: Any) -> None:
    decoded = codec.decode(enc(value))
    if isinstance(value, str | bool | type(None) | date | Path):
        assert decoded == value
        assert type(decoded) is type(value) or isinstance(value, np.bool_ | bool | Path)


#: Python identifiers, ASCII or not (``größe``, ``λ``, ``_x1``), as a class statement keeps them.
_identifiers = (
    st.from_regex(r"[^\W\d][\w]{0,6}", fullmatch=True)
    .filter(str.isidentifier)
    .filter(lambda n: not keyword.iskeyword(n) and n == unicodedata.normalize("NFKC", n))
)


@given(
    st.sampled_from(["Cfg", "Größe", "Λ_model"]),
    st.lists(_identifiers, min_size=1, max_size=3, unique=True),
    st.lists(S.scalars, min_size=3, max_size=3),
    st.booleans(),
)
def test_objects_with_any_identifier_names_read_back(
    class_name: str, fields: list[str], values: list[Any], local: bool
) -> None:
    # A field, class or member name of non-ASCII letters, or a class made
    # inside a function, is a legal key; its text must read back (stet.read,
    # show and export decode every cell), or one such run makes the whole
    # store unreadable.
    cls = dataclasses.make_dataclass(class_name, fields, frozen=True)
    if local:  # made inside a function, as a class statement there names it
        cls.__qualname__ = f"main.<locals>.{class_name}"
    kind = enum.Enum(class_name, fields)  # type: ignore[misc]
    if local:
        kind.__qualname__ = f"main.<locals>.{class_name}"
    value = cls(*values[: len(fields)])
    member = next(iter(kind))
    for top in (value, member, [value, member], {"k": [value]}):
        text = enc(top)
        assert enc(codec.decode(text)) == text
        nested = enc([top])
        assert enc(codec.decode(nested)) == nested


@dataclasses.dataclass(frozen=True)
class Cfg:
    größe: int
    λ: float


def test_a_store_holding_non_ascii_field_names_reads(tmp_path: Path) -> None:
    store = tmp_path / "runs.csv"

    @stet.once(store=str(store), quiet=True)
    def run(cfg: Cfg, seed: int) -> None: ...

    run(Cfg(3, 0.5), 1)
    (cell,) = stet.read(str(store))["cfg"]
    assert isinstance(cell, Encoded)
    assert str(cell) == "Cfg(größe=3, λ=0.5)"
    assert enc([cell]) == enc([Cfg(3, 0.5)])  # read back, it keys the same run


#: Names a class, a function around it, an enum member or a namespace's attribute may legally
#: have that the key syntax also uses: words it reads as values, ``array``, ``Path``, digits.
_word_names = st.builds(
    lambda word, tail: word + tail,
    st.sampled_from(["None", "True", "False", "nan", "inf", "array", "Path", "Cfg"]),
    st.from_regex(r"[0-9_a-z]{0,3}", fullmatch=True),
)
#: A namespace's attributes and an enum member made by Enum's functional API are any strings
#: (argparse keeps a positional ``lr-rate`` as it is); the syntax asks only for no ``=`` and no
#: ``)`` first (fields) and no ``<`` or ``>`` (members).
_any_names = st.text(st.characters(codec="utf-8", exclude_characters="=<>"), max_size=6).filter(
    lambda n: not n.startswith(")")
)


@given(_word_names, _word_names, st.lists(_any_names, min_size=1, max_size=3, unique=True))
def test_objects_named_like_words_or_with_any_attribute_names_read_back(
    class_name: str, function: str, names: list[str]
) -> None:
    # Each of these texts made stet.read of the whole store fail: ``inf2(x=1)`` was read as inf
    # and junk, ``array(data=...)`` as a numpy array, ``Namespace(lr-rate=1)`` and ``<E.1>`` as
    # bad names.
    cls = dataclasses.make_dataclass(class_name, ["data"], frozen=True)
    local = dataclasses.make_dataclass("Cfg", ["x"], frozen=True)
    local.__qualname__ = f"{function}.<locals>.Cfg"
    kind = enum.Enum("Kind", {f"{i}{n}": i for i, n in enumerate(names)})  # type: ignore[misc]
    values = [
        cls([1, 2]),
        cls(None),
        local(1.5),
        types.SimpleNamespace(**dict.fromkeys(names, 1)),
        *kind,
    ]
    for top in (*values, values, {"k": values}):
        text = enc(top)
        assert enc(codec.decode(text)) == text
        nested = enc([top])
        assert enc(codec.decode(nested)) == nested


def test_a_store_keyed_by_an_argparse_namespace_reads(tmp_path: Path) -> None:
    store = tmp_path / "runs.csv"
    parser = argparse.ArgumentParser()
    parser.add_argument("lr-rate", type=float)  # a positional keeps its dash
    args = parser.parse_args(["0.5"])

    @stet.once(store=str(store), quiet=True)
    def run(args: list[argparse.Namespace]) -> None: ...

    run([args])
    (cell,) = stet.read(str(store))["args"]
    assert enc(cell) == enc([args])  # read back, it keys the same run


#: The texts of today's rules (version 3; 2 wrote these the same). A change here breaks every store
#: written before it: it needs a new CODEC_VERSION and a migration.
GOLDEN: list[tuple[Any, str]] = [
    (3, "3"),
    (np.int64(-7), "-7"),
    (0.1, "0.1"),
    (1.0, "1"),
    (np.float32(0.5), "0.5"),
    (1e-05, "1e-05"),
    (float("nan"), "nan"),
    (float("-inf"), "-inf"),
    (True, "True"),
    (None, "None"),
    ("adam", "adam"),
    ("007", "'007"),
    ("", "'"),
    ("None", "'None"),
    ("=SUM(A1)", "'=SUM(A1)"),
    ("-x", "'-x"),
    ("@me", "'@me"),
    ("tab\there", "tab\there"),
    ("line\nbreak", '"line\\nbreak"'),
    ("cr\r", '"cr\\r"'),
    ("nul\x00", '"nul\\u0000"'),
    ([1, "a", None], '[1, "a", None]'),
    ({"b": 2, "a": 1}, '{"a": 1, "b": 2}'),
    (S.TrainConfig(0.1, (64, 64)), "TrainConfig(lr=0.1, layers=[64, 64])"),
    (S.Method.ADAM, "<Method.ADAM>"),
    (date(2024, 5, 1), "2024-05-01"),
    (datetime(2024, 5, 1, 12, 30), "2024-05-01T12:30:00"),
    (Path("data/x.csv"), 'Path("data/x.csv")'),
    (np.array([[1, 2], [3, 4]]), "array([[1, 2], [3, 4]])"),
]


@pytest.mark.parametrize(("value", "text"), GOLDEN, ids=[repr(t) for _, t in GOLDEN])
def test_todays_texts_do_not_change(value: Any, text: str) -> None:
    assert enc(value) == text
    assert enc(codec.decode(text)) == text
    assert KeyCodec.version == stet.CODEC_VERSION == 3


#: Texts version 1 wrote that version 2 writes otherwise, as stet 0.1 wrote them.
CHANGED_SINCE_V1: list[tuple[str, str]] = [
    ("=SUM(A1)", "'=SUM(A1)"),
    ("-x", "'-x"),
    ("+", "'+"),
    ("@me", "'@me"),
    ("line\nbreak", '"line\\nbreak"'),
    ("'\nstarts with a line break", '"\\nstarts with a line break"'),
    ("nul\x00", '"nul\\u0000"'),
]


@pytest.mark.parametrize(("v1", "v2"), CHANGED_SINCE_V1)
def test_version_1_texts_that_changed_are_read_as_todays(v1: str, v2: str) -> None:
    assert canonical_from_v1(v1) == v2


@given(S.keyable)
def test_version_1_texts_of_anything_but_strings_are_todays(value: Any) -> None:
    text = enc(value)
    if not isinstance(value, str):
        assert canonical_from_v1(text) == text


@given(S.strings)
def test_a_string_written_under_version_1_is_read_as_todays_text(s: str) -> None:
    v1_text = "'" + s if _codec_text.needs_tag_v1(s) else s  # version 1's rule, kept as it was
    assert canonical_from_v1(v1_text) == enc(s)


@given(S.keyable)
def test_no_key_text_holds_a_line_break_or_nul(value: Any) -> None:
    """So a CSV record is one line and a PostgreSQL text column holds every key."""
    assert not re.search(_codec_text.CONTROL_CHARACTERS, enc(value))


@pytest.mark.parametrize(
    "value", ["lone \ud800", ["x", "\udfff"], {"k": "\ud83d"}, Path("non-utf8-\udcff")]
)
def test_a_lone_surrogate_is_refused_as_no_store_can_write_it(value: Any) -> None:
    with pytest.raises(KeyEncodingError, match="lone surrogate"):
        enc(value)


_SUBPROCESS = """
import pickle, sys
sys.path.insert(0, sys.argv[1])
from stet import KeyCodec
values = pickle.load(sys.stdin.buffer)
pickle.dump([KeyCodec().encode(v) for v in values], sys.stdout.buffer)
"""


@settings(max_examples=2)
@given(st.lists(st.lists(S.keyable, min_size=1, max_size=30), min_size=3, max_size=3))
def test_texts_are_the_same_in_another_process_with_another_hash_seed(
    batches: list[list[Any]],
) -> None:
    # Several lists per process start: the start is most of this test's time.
    values = [v for batch in batches for v in batch]
    texts = []
    for seed in ("1", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", _SUBPROCESS, str(Path(__file__).parent.parent)],
            input=pickle.dumps(values),
            capture_output=True,
            env=env,
            check=True,
        )
        texts.append(pickle.loads(out.stdout))
    assert texts[0] == texts[1] == [enc(v) for v in values]


def test_encoded_stands_for_its_text() -> None:
    assert enc(Encoded("<Method.ADAM>")) == enc(S.Method.ADAM)
    assert enc([Encoded("'007")]) == enc(["007"])
    assert json.loads(enc(["007"])) == ["007"]


@given(
    st.one_of(
        st.text(),
        st.from_regex(r"-?[0-9]{1,4}(\.[0-9]{0,3})?(e[+-]?[0-9]{1,2})?", fullmatch=True),
        S.keyable.map(enc).map(lambda t: t + " "),
        S.keyable.map(enc).map(lambda t: t.replace(", ", ",")),
    )
)
def test_decode_accepts_only_canonical_texts(text: str) -> None:
    try:
        value = codec.decode(text)
    except ValueError:
        return
    assert enc(value) == text


@given(
    st.one_of(
        S.strings.map(lambda s: "'" + s if _codec_text.needs_tag_v1(s) else s), S.keyable.map(enc)
    )
)
def test_the_fast_check_finds_every_version_1_text_that_changed(text: str) -> None:
    """The bulk read trusts version 1 columns the regex does not match."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if canonical_from_v1(text) != text:
        assert pc.match_substring_regex(pa.array([text]), _codec_legacy.V1_CHANGED)[0].as_py()

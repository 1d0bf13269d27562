"""The fast per-call path gives exactly the answers of the general one, and
``import stet`` stays light.

A skip is specialised for the common case (every parameter passed by
position, keys of the common types, a collapsed skip line); each
specialisation is checked here against the general code it stands in for.
"""

from __future__ import annotations

import dataclasses
import enum
import gc
import json
import subprocess
import sys
import threading
import weakref
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import stet
from stet._codec import KeyCodec
from stet._codec_text import checked_utf8
from stet._report import FULL_LINES
from stet.exceptions import KeyEncodingError

from . import strategies as S
from .test_output import Terminal, refined_grid


class Label(str):
    """A str subclass (a user's tagged string type)."""


class Count(int):
    """An int subclass."""


class Ratio(float):
    """A float subclass."""


class Colour(enum.StrEnum):
    RED = "red"


class Size(np.int64, enum.Enum):
    SMALL = 1


def _cased(word: str) -> st.SearchStrategy[str]:
    flips = st.lists(st.booleans(), min_size=len(word), max_size=len(word))
    return flips.map(
        lambda f: "".join(c.upper() if u else c.lower() for c, u in zip(word, f, strict=True))
    )


#: Strings built around what the tag rules look at: the first character
#: (an apostrophe, a formula sign, a digit, a letter), reader words in any
#: case, a call's parenthesis, a space or control character at the end.
rule_strings = st.one_of(
    st.tuples(
        st.sampled_from(["", "'", "=", "+", "-", "@", "_", "a", "N", "i", "0", " ", "[", "<", '"']),
        st.text(st.characters(codec="ascii"), max_size=6),
        st.sampled_from(["", " ", "(", "()", "\n", "\t", "\x00", "\ud800", "é"]),
    ).map("".join),
    st.sampled_from(
        ["nan", "inf", "infinity", "none", "null", "true", "false", "na", "nat"]
    ).flatmap(_cased),
    st.sampled_from(["2024-01-01", "2024-01-01T00:00:00", "f(x)", "a.b(", "1e5", ".5", "-inf"]),
)

#: Every value the fast encoder might be handed.
values = st.one_of(
    S.keyable,
    rule_strings,
    rule_strings.map(Label),
    st.integers().map(Count),
    st.floats().map(Ratio),
    st.integers(-(10**4400), 10**4400),  # beyond int's printable digits: an error
    st.sampled_from([Colour.RED, Size.SMALL, np.longdouble("0.1"), np.float16(-0.0)]),
    st.sampled_from([np.datetime64("2024-01-01"), np.timedelta64(3, "s"), np.complex64(1)]),
)


def outcome(encode: Any, value: object) -> tuple[str, str]:
    try:
        return ("text", encode(value))
    except Exception as exc:  # the same error, or the same text
        return (type(exc).__name__, str(exc))


def reference(codec: KeyCodec) -> Any:
    """The general rules, with no fast path (``_encode`` at the top level)."""
    return lambda value: checked_utf8(codec._encode(value, False, "", 0))


CODECS = [
    KeyCodec(),
    KeyCodec().register(Count, lambda c: ("Count", int(c))),
    KeyCodec().register(np.integer, lambda n: ("np", int(n))),
    KeyCodec().register(bool, lambda b: ("bool", int(b))),
]


@pytest.mark.parametrize("codec", CODECS, ids=repr)
@given(value=values)
def test_the_fast_encoder_gives_exactly_the_reference_text(codec: KeyCodec, value: object) -> None:
    assert outcome(codec.encode, value) == outcome(reference(codec), value)


@given(value=values)
def test_encoding_twice_gives_the_same_text(value: object) -> None:
    # The second call of a type goes through the fast table the first filled.
    codec = KeyCodec()
    assert outcome(codec.encode, value) == outcome(codec.encode, value)


def test_the_codec_keeps_no_class_of_a_key_alive() -> None:
    # A sweep may make a class per call (a dataclass built in a loop).
    codec = KeyCodec()
    point = dataclasses.make_dataclass("Point", [("x", int)])
    assert codec.encode(point(1)) == "Point(x=1)"
    alive = weakref.ref(point)
    del point
    gc.collect()
    assert alive() is None


def test_the_fast_encoder_agrees_on_the_values_the_rules_name() -> None:
    codec = KeyCodec()
    expected = {
        -0.0: "0",
        float("nan"): "nan",
        float("inf"): "inf",
        float("-inf"): "-inf",
        np.float32(0.1): "0.10000000149011612",
        np.bool_(True): "True",
        np.uint64(2**64 - 1): str(2**64 - 1),
        "information": "information",
        "Infinity": "'Infinity",
        "NaT": "'NaT",
        "f(x)": "'f(x)",
        "trailing ": "'trailing ",
        "@handle": "'@handle",
    }
    for value, text in expected.items():
        assert codec.encode(value) == text, value
    assert codec.encode(True) == "True" != codec.encode(1)


# -- binding --------------------------------------------------------------


def _runner(func: Any) -> Any:
    return stet.once(store="runs.csv")(func).__stet__  # type: ignore[attr-defined]


def plain(alpha: float, seed: int, label: str = "x") -> None:
    pass


def single(alpha: float) -> None:
    pass


def wide(a: int, b: int, c: int, d: int = 0) -> None:
    pass


def keyword_only(alpha: float, *, seed: int = 0) -> None:
    pass


class Model:
    def fit(self, alpha: float, seed: int) -> None:
        pass


call_values = st.one_of(st.integers(), st.floats(), st.text(max_size=4), st.booleans())


@given(
    args=st.lists(call_values, max_size=5),
    kwargs=st.dictionaries(st.sampled_from(["alpha", "seed", "label", "a", "d", "x"]), call_values),
)
@pytest.mark.parametrize(
    "func", [single, plain, Model.fit, wide, keyword_only], ids=lambda f: f.__qualname__
)
def test_the_specialised_binding_keys_every_call_as_the_general_one(
    func: Any, args: list[Any], kwargs: dict[str, Any]
) -> None:
    runner = _runner(func)

    def texts(key_texts: Any) -> object:
        try:
            return key_texts(tuple(args), dict(kwargs))
        except TypeError as exc:  # a call Python would refuse is refused alike
            return ("TypeError", str(exc))

    assert texts(runner.key_texts) == texts(runner._key_texts)


def test_a_numpy_timedelta_is_refused_with_the_remedy() -> None:
    with pytest.raises(
        KeyEncodingError, match="numpy timedeltas are not supported; convert it to a number"
    ):
        KeyCodec().encode(np.timedelta64(3, "s"))


def test_a_key_value_stet_cannot_key_names_its_parameter_on_the_fast_path() -> None:
    runner = _runner(plain)
    with pytest.raises(KeyEncodingError, match="seed"):
        runner.key_texts((0.1, object(), "x"), {})


def test_a_call_with_too_many_arguments_is_refused_not_skipped() -> None:
    run = stet.once(store="runs.csv")(plain)
    run(0.1, 1, "x")
    with pytest.raises(TypeError, match="plain"):
        run(0.1, 1, "x", "surplus")  # type: ignore[call-arg]


# -- skip lines -----------------------------------------------------------


def test_stet_quiet_set_during_a_streak_silences_its_summary(
    tmp_path: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run = refined_grid(tmp_path, 40)
    capsys.readouterr()
    for x in range(0, 40, 2):  # a streak of skips: five lines, the rest counted
        run(x)
    monkeypatch.setenv("STET_QUIET", "1")
    run(1)  # a run ends the streak
    stet._report.reporter.finish()
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"[stet] Skipping run(x={x})" for x in range(0, 2 * FULL_LINES, 2)]


def test_skips_from_many_threads_are_all_counted(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    run = stet.once(store=str(tmp_path / "runs.csv"))(single)
    for x in range(4_000):
        run(x)
    capsys.readouterr()
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can
    try:
        threads = [
            threading.Thread(target=lambda part=part: [run(x) for x in range(part, 4_000, 4)])
            for part in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    stet._report.reporter.finish()
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == FULL_LINES + 1
    assert lines[-1] == f"[stet] ... and {4_000 - FULL_LINES:,} more skipped"


def test_a_stdout_that_becomes_a_terminal_mid_sweep_gets_the_count_line(
    tmp_path: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run = refined_grid(tmp_path, 40)
    monkeypatch.setattr(stet._report, "_REDRAW_SECONDS", 0.0)
    for x in range(0, 20, 2):  # collapsed off a terminal: nothing drawn
        run(x)
    terminal = Terminal()
    monkeypatch.setattr("sys.stdout", terminal)
    run(20)
    assert "[stet] ... 6 more skipped" in terminal.text


# -- import ---------------------------------------------------------------

_PROBE = """
import json, sys
import stet
{after}
print(json.dumps(sorted(m for m in ("pandas", "pyarrow", "numpy") if m in sys.modules)))
"""


def heavy_modules_after(code: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE.format(after=code)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_import_stet_imports_neither_pandas_nor_pyarrow_nor_numpy() -> None:
    assert heavy_modules_after("") == []


def test_decorating_and_keying_a_call_import_nothing_heavy() -> None:
    code = (
        "run = stet.once(store='runs.csv')(lambda alpha, seed: None)\n"
        "run.__stet__.key_texts((0.1, 3), {})\n"
        "stet.KeyCodec().decode('0.1')"
    )
    assert heavy_modules_after(code) == []


@pytest.mark.parametrize("ext", ["csv", "json", "sqlite", "parquet"])
def test_a_worker_that_only_skips_never_imports_pandas(tmp_path: Any, ext: str) -> None:
    store = json.dumps(str(tmp_path / f"runs.{ext}"))
    sweep = (
        f"run = stet.once(store={store}, quiet=True)(lambda alpha, seed: None)\n"
        "results = [run(alpha / 10, seed) for alpha in range(3) for seed in range(3)]\n"
    )
    heavy_modules_after(sweep)  # the first process runs and records
    assert "pandas" not in heavy_modules_after(sweep + "assert results == [None] * 9")


@pytest.mark.parametrize("ext", ["csv", "parquet"])
def test_a_worker_that_opens_a_big_store_never_imports_pandas(tmp_path: Any, ext: str) -> None:
    """Its keys go to the dense table (the sizes that choose it lowered here),
    joined by Arrow without a detour through pandas (``pa.scalar`` takes one)."""
    store = json.dumps(str(tmp_path / f"runs.{ext}"))
    sweep = (
        f"run = stet.once(store={store}, quiet=True)(lambda alpha, seed: None)\n"
        "results = [run(alpha / 10, seed) for alpha in range(3) for seed in range(30)]\n"
    )
    heavy_modules_after(sweep)
    lowered = (
        "from stet.backends import _csv, _dense\n"
        "_csv._BULK_BYTES, _dense.FOLD_AT, _dense.CHUNK = 1, 4, 16\n"
    )
    check = (
        "index = run.__stet__.store._reader.index\n"
        "assert results == [None] * 90\n"
        "assert any(keys.dense for keys in index.groups.values())\n"
    )
    assert "pandas" not in heavy_modules_after(lowered + sweep + check)


def test_pandas_loads_when_a_dataframe_is_asked_for(tmp_path: Any) -> None:
    store = json.dumps(str(tmp_path / "runs.csv"))
    code = (
        f"run = stet.once(store={store}, quiet=True)(lambda alpha, seed: None)\n"
        "run(0.1, 3)\n"
        f"frame = stet.read({store})\n"
        "assert list(frame['seed']) == [3]"
    )
    assert "pandas" in heavy_modules_after(code)


_RECORD_AND_EXIT = """
import atexit, sys
# Registered first, so it runs last: after stet has folded its buffers.
atexit.register(lambda: print("pandas" in sys.modules))
import stet
run = stet.once(store=sys.argv[1], quiet=True)(lambda alpha, seed: None)
for seed in range(int(sys.argv[2]), int(sys.argv[2]) + 3):
    run(0.5, seed)
"""


@pytest.mark.parametrize("ext", ["csv", "json", "sqlite", "parquet", "stetdir"])
def test_a_worker_that_records_and_exits_folds_its_buffer_without_pandas(
    tmp_path: Any, ext: str
) -> None:
    # The second process appends to a store that exists: a Parquet store
    # keeps those records in its journal until the fold at exit, which once
    # failed when pandas had not been imported ("can't register atexit
    # after shutdown") and left the journal to the next run.
    store = str(tmp_path / f"runs.{ext}")
    for first in (0, 3):
        done = subprocess.run(
            [sys.executable, "-c", _RECORD_AND_EXIT, store, str(first)],
            capture_output=True,
            text=True,
            check=True,
        )
        assert done.stderr == ""
        assert done.stdout.split() == ["False"]
    assert not (tmp_path / f"runs.{ext}.journal.csv").exists()
    assert sorted(int(s) for s in stet.read(store)["seed"]) == list(range(6))

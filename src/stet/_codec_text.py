"""The canonical text of one scalar key value, and the fast encoders.

Strings are tagged with an apostrophe when they would read as something
else (``'007``, ``'None``, ``'=SUM(A1)``) and JSON-quoted when they hold a
control character; numbers are written by value (``1.0`` is ``1``, a numpy
longdouble by its exact decimal). `KeyCodec` builds containers and objects
from these texts; the ``*_fast`` encoders give the same texts in fewer steps
for the common types. The rules are in docs/explanation/keys.md.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any, Final

import attrs

from ._lazy import np
from .exceptions import KeyEncodingError

__all__ = [
    "CALL_RE",
    "CONTROL_CHARACTERS",
    "INT_RE",
    "OBJECT_RE",
    "QUALNAME",
    "WORDS",
    "Encoded",
    "Pruned",
    "bool_text",
    "checked_utf8",
    "float_fast",
    "float_text",
    "has_control",
    "int_text",
    "longdouble_text",
    "needs_tag",
    "needs_tag_v1",
    "number_from_text",
    "numpy_float_text",
    "numpy_int_text",
    "quote",
    "str_fast",
    "str_text",
]

INT_RE: Final = re.compile(r"-?(?:0|[1-9][0-9]*)\Z")
_DATE_RE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")
_DATETIME_RE: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{6})?(?:\+00:00)?\Z"
)
CALL_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*\(")
#: A class's qualified name as texts spell it: Python identifiers, ASCII or
#: not (``Größe``), joined by dots, with ``<locals>`` where the class was
#: made inside a function (``main.<locals>.Cfg``).
QUALNAME: Final = r"[^\W\d]\w*(?:\.(?:[^\W\d]\w*|<[^\W\d]\w*>))*"
#: An object's text by its qualified name. A top-level string is told from
#: an object by `CALL_RE` alone, as it always was, so a top-level object of
#: a non-ASCII or local class reads back as the string of its text; nested,
#: a string is always quoted.
OBJECT_RE: Final = re.compile(QUALNAME + r"\(")
#: Characters no top-level key text holds raw: every C0 control but the tab.
CONTROL_CHARACTERS: Final = r"[\x00-\x08\x0a-\x1f]"
_CONTROL: Final = re.compile(CONTROL_CHARACTERS)
#: First characters that make a spreadsheet evaluate a cell as a formula.
_FORMULA_FIRST: Final = frozenset("=+-@")
# Strings that pandas, a spreadsheet or a reader could take for a number,
# a missing value or a boolean are tagged even where stet itself would not
# need it, so that the store reads back as what was written.
_NUMBER_LIKE: Final = re.compile(
    r"\s*[+-]?(?:[0-9]|\.[0-9]|(?:nan|inf|infinity)\s*\Z)", re.IGNORECASE
)
_READER_WORDS: Final = frozenset(
    {
        "",
        "#N/A",
        "#N/A N/A",
        "#NA",
        "-1.#IND",
        "-1.#QNAN",
        "-NaN",
        "-nan",
        "1.#IND",
        "1.#QNAN",
        "<NA>",
        "N/A",
        "NA",
        "NULL",
        "NaN",
        "None",
        "n/a",
        "nan",
        "null",
        "NaT",
        "nat",
    }
)
WORDS: Final[Mapping[str, object]] = {
    "None": None,
    "True": True,
    "False": False,
    "nan": math.nan,
    "inf": math.inf,
    "-inf": -math.inf,
}


@attrs.frozen(repr=False)
class Encoded:
    """A key value given by its canonical text.

    `KeyCodec.decode` returns an `Encoded` for values it cannot rebuild
    without importing user code (enum members, dataclass and attrs
    instances); encoding it gives the same text back, so such values still
    round-trip through `stet.read`, `stet.reset` and `stet.mark_done`.

    Attributes:
        text: The canonical text, exactly as a store holds it.
    """

    text: str

    def __repr__(self) -> str:
        return self.text

    def __str__(self) -> str:
        return self.text


@attrs.frozen(repr=False)
class Pruned:
    """A config value less the fields ``exclude=`` leaves out of its key.

    ``name`` is the qualified name of its class (an attrs class, dataclass,
    pydantic model or namespace), keyed as ``Name(field=..., ...)`` the way
    the class itself is; None for a mapping or an OmegaConf config, keyed as
    a mapping of ``fields``. Fields keep their class's order.

    Attributes:
        name: The class's qualified name, or None for a mapping.
        fields: The kept fields' names and values (a value may be pruned too).
    """

    name: str | None
    fields: tuple[tuple[object, object], ...]

    def __repr__(self) -> str:
        if self.name is None:
            return "{" + ", ".join(f"{k!r}: {v!r}" for k, v in self.fields) + "}"
        return f"{self.name}(" + ", ".join(f"{k}={v!r}" for k, v in self.fields) + ")"

    def as_mapping(self) -> dict[object, object]:
        """The value as key rules 2 keyed it: plain dicts at every level, classes dropped."""
        return {k: v.as_mapping() if isinstance(v, Pruned) else v for k, v in self.fields}


def quote(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def int_text(n: int) -> str:
    try:
        return str(n)
    except ValueError:  # beyond sys.get_int_max_str_digits()
        raise KeyEncodingError(
            "int", reason="the integer has too many digits to write out"
        ) from None


def float_text(f: float) -> str:
    if f != f:
        return "nan"
    if f == math.inf:
        return "inf"
    if f == -math.inf:
        return "-inf"
    if f.is_integer():
        return str(int(f))
    return repr(f)


def float_fast(f: float) -> str:
    """`float_text` in fewer steps: NaN and the infinities are not integers, and
    their ``repr`` is ``nan``, ``inf``, ``-inf``."""
    return str(int(f)) if f.is_integer() else repr(f)


def bool_text(b: object) -> str:
    return "True" if b else "False"


def numpy_int_text(n: np.integer[Any]) -> str:
    return int_text(int(n))


def numpy_float_text(x: np.floating[Any]) -> str:
    return float_fast(float(x))


def longdouble_text(x: np.floating[Any]) -> str:
    """Exact text for a numpy float wider than float64."""
    as_double = float(x)
    if x == as_double or x != x or math.isinf(as_double):
        return float_text(as_double)
    num, den = x.as_integer_ratio()
    if den == 1:
        return int_text(num)
    # den is a power of two, so num/den has a finite decimal expansion.
    digits = den.bit_length() - 1
    scaled = abs(num) * 5**digits
    whole, frac = divmod(scaled, 10**digits)
    sign = "-" if num < 0 else ""
    return f"{sign}{whole}.{frac:0{digits}d}".rstrip("0")


def number_from_text(text: str) -> int | float | np.floating[Any]:
    """The number a canonical text stands for; ValueError for any other text."""
    if INT_RE.match(text):
        number = int(text)
        if str(number) != text:  # "-0"
            raise ValueError(f"{text!r} is not a canonical number")
        return number
    value = float(text)
    if float_text(value) == text:
        return value
    # The exact decimal of a numpy longdouble that float64 cannot hold;
    # strtold reads it back exactly because the value is representable.
    wide = np.longdouble(text)
    if longdouble_text(wide) != text:
        raise ValueError(f"{text!r} is not a canonical number")
    return wide


def needs_tag(s: str) -> bool:
    """True if a top-level string must be tagged with an apostrophe."""
    return needs_tag_v1(s) or s[0] in _FORMULA_FIRST


def has_control(s: str) -> bool:
    return not s.isprintable() and _CONTROL.search(s) is not None


def needs_tag_v1(s: str) -> bool:
    if s in _READER_WORDS or s in WORDS or s.lower() in ("true", "false"):
        return True
    first = s[0]
    if first in "'[{<\"":
        return True
    if _NUMBER_LIKE.match(s) or s != s.strip():
        return True
    return bool(_DATE_RE.match(s) or _DATETIME_RE.match(s) or CALL_RE.match(s))


def str_text(s: str) -> str:
    if has_control(s):
        return quote(s)
    return "'" + s if needs_tag(s) else s


#: Lower-cased words that, as a whole string, may need a tag (a superset).
_TAGGED_WORDS: Final = frozenset(
    w.lower() for w in (*_READER_WORDS, *WORDS, "true", "false", "infinity")
)
#: First characters of strings the fast path may leave bare.
_BARE_FIRST: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")


def str_fast(s: str) -> str:
    """`str_text` (checked as UTF-8) without a regular expression for common words.

    An ASCII word that starts with a letter, holds no ``(``, does not end in
    a space and is no reader word cannot look like a number, a date, a
    call, a formula or a missing value, so it is its own text; anything
    else takes the general rules.
    """
    if (
        s.isascii()
        and s.isprintable()
        and s
        and s[0] in _BARE_FIRST
        and s[-1] != " "
        and "(" not in s
        and s.lower() not in _TAGGED_WORDS
    ):
        return s
    return checked_utf8(str_text(s))


def checked_utf8(text: str) -> str:
    """``text``, if it can be written as UTF-8 (no lone surrogate)."""
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise KeyEncodingError(
                "str",
                reason=f"it holds {text[exc.start : exc.end]!r}, a lone surrogate, which "
                "no store can write as UTF-8 text; decode the bytes it came from with "
                "errors='replace', or pass the bytes' hex() instead",
            ) from None
    return text

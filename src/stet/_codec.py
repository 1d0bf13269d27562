"""KeyCodec: one canonical, stable text for every key value.

The text is what a store holds, so it must be the same in every process and
every run, and two values must share a text exactly when a careful researcher
would call them the same run. The rules are in docs/explanation/keys.md; in
short: numbers by value, bools and strings as their own kinds, containers by
their items, objects by their fields, and nothing by ``repr``.

Top-level texts are chosen to read well in a spreadsheet: ``3``, ``0.1``,
``adam``, ``True``, ``None``. A string that would read as something else, or
that a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@`` first),
is tagged with a leading apostrophe, as spreadsheets do: ``'007``,
``'None``, ``'=SUM(A1)``, ``'`` (the empty string). A string holding a
control character (a line break, a carriage return, NUL...; a tab is fine) is
written JSON-quoted, ``"a\\nb"``, so that no key text ever holds a raw line
break or NUL byte: a store's records are then lines, and a torn last line is
always told apart from damage. Inside containers, strings are JSON-quoted.

Version 1 of these rules (stet 0.1) wrote formula-like and control-character
strings bare; `canonical_from_v1` turns such texts into today's.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from pathlib import Path, PurePath
from typing import Any, ClassVar, Final

import attrs

from ._lazy import loaded_numpy, np
from .exceptions import KeyEncodingError

__all__ = ["CODEC_VERSION", "Encoded", "KeyCodec", "canonical_from_legacy", "canonical_from_v1"]

#: Version of the key rules; stores record it in the ``_stet_codec`` column.
#: 2: formula-like strings are tagged, control characters JSON-quoted.
CODEC_VERSION: Final = 2

_MAX_DEPTH: Final = 64

_INT_RE: Final = re.compile(r"-?(?:0|[1-9][0-9]*)\Z")
_FLOAT_RE: Final = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:e[+-][0-9]+)?\Z")
_DATE_RE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")
_DATETIME_RE: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{6})?(?:\+00:00)?\Z"
)
_CALL_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*\(")
# Inner (nested) scalar tokens, tried in order at a position.
_TOKEN_RE: Final = re.compile(
    r"(?P<dt>[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
    r"(?:\.[0-9]{6})?(?:\+00:00)?)"
    r"|(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})"
    r"|(?P<num>-?[0-9]+(?:\.[0-9]+)?(?:e[+-][0-9]+)?)"
    r"|(?P<word>None|True|False|nan|-inf|inf)"
)
_IDENT_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
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
_LEGACY_NUMBER: Final = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?\Z")
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
_WORDS: Final[Mapping[str, object]] = {
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


def _quote(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def _int_text(n: int) -> str:
    try:
        return str(n)
    except ValueError:  # beyond sys.get_int_max_str_digits()
        raise KeyEncodingError(
            "int", reason="the integer has too many digits to write out"
        ) from None


def _float_text(f: float) -> str:
    if f != f:
        return "nan"
    if f == math.inf:
        return "inf"
    if f == -math.inf:
        return "-inf"
    if f.is_integer():
        return str(int(f))
    return repr(f)


def _float_fast(f: float) -> str:
    """`_float_text` in fewer steps: NaN and the infinities are not integers, and
    their ``repr`` is ``nan``, ``inf``, ``-inf``."""
    return str(int(f)) if f.is_integer() else repr(f)


def _bool_text(b: object) -> str:
    return "True" if b else "False"


def _numpy_int_text(n: np.integer[Any]) -> str:
    return _int_text(int(n))


def _numpy_float_text(x: np.floating[Any]) -> str:
    return _float_fast(float(x))


class _Never:
    """A type no key value is an instance of (numpy's, before numpy is imported)."""


_Kinds = tuple[type[Any], type[Any], type[Any], type[Any], type[Any]]
_NUMPY_KINDS: _Kinds | None = None


def _numpy_kinds() -> _Kinds:
    """numpy's bool, integer, floating, array and timedelta types (`_Never` until
    numpy is imported: no value can be of them before)."""
    global _NUMPY_KINDS
    if _NUMPY_KINDS is None:
        numpy = loaded_numpy()
        if numpy is None:
            return (_Never, _Never, _Never, _Never, _Never)
        _NUMPY_KINDS = (
            numpy.bool_,
            numpy.integer,
            numpy.floating,
            numpy.ndarray,
            numpy.timedelta64,
        )
    return _NUMPY_KINDS


def _longdouble_text(x: np.floating[Any]) -> str:
    """Exact text for a numpy float wider than float64."""
    as_double = float(x)
    if x == as_double or x != x or math.isinf(as_double):
        return _float_text(as_double)
    num, den = x.as_integer_ratio()
    if den == 1:
        return _int_text(num)
    # den is a power of two, so num/den has a finite decimal expansion.
    digits = den.bit_length() - 1
    scaled = abs(num) * 5**digits
    whole, frac = divmod(scaled, 10**digits)
    sign = "-" if num < 0 else ""
    return f"{sign}{whole}.{frac:0{digits}d}".rstrip("0")


def _number_from_text(text: str) -> int | float | np.floating[Any]:
    """The number a canonical text stands for; ValueError for any other text."""
    if _INT_RE.match(text):
        number = int(text)
        if str(number) != text:  # "-0"
            raise ValueError(f"{text!r} is not a canonical number")
        return number
    value = float(text)
    if _float_text(value) == text:
        return value
    # The exact decimal of a numpy longdouble that float64 cannot hold;
    # strtold reads it back exactly because the value is representable.
    wide = np.longdouble(text)
    if _longdouble_text(wide) != text:
        raise ValueError(f"{text!r} is not a canonical number")
    return wide


def _needs_tag(s: str) -> bool:
    """True if a top-level string must be tagged with an apostrophe."""
    return _needs_tag_v1(s) or s[0] in _FORMULA_FIRST


def _has_control(s: str) -> bool:
    return not s.isprintable() and _CONTROL.search(s) is not None


def _needs_tag_v1(s: str) -> bool:
    if s in _READER_WORDS or s in _WORDS or s.lower() in ("true", "false"):
        return True
    first = s[0]
    if first in "'[{<\"":
        return True
    if _NUMBER_LIKE.match(s) or s != s.strip():
        return True
    return bool(_DATE_RE.match(s) or _DATETIME_RE.match(s) or _CALL_RE.match(s))


def _str_text(s: str) -> str:
    if _has_control(s):
        return _quote(s)
    return "'" + s if _needs_tag(s) else s


#: Lower-cased words that, as a whole string, may need a tag (a superset).
_TAGGED_WORDS: Final = frozenset(
    w.lower() for w in (*_READER_WORDS, *_WORDS, "true", "false", "infinity")
)
#: First characters of strings the fast path may leave bare.
_BARE_FIRST: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")


def _str_fast(s: str) -> str:
    """`_str_text` (checked as UTF-8) without a regular expression for common words.

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
    return _checked_utf8(_str_text(s))


def _checked_utf8(text: str) -> str:
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


class KeyCodec:
    """Turns key values into canonical text and back.

    The default codec knows every type in the key rules. `register` returns a
    new codec that also knows your types, to pass as ``Once(codec=...)``;
    a codec never changes after it is made, so decorated functions cannot
    change meaning behind your back.

    Example:
        >>> codec = KeyCodec()
        >>> codec.encode(0.1), codec.encode(1.0), codec.encode("007")
        ('0.1', '1', "'007")
        >>> codec.decode("'007")
        '007'
    """

    version: ClassVar[int] = CODEC_VERSION

    __slots__ = ("_encoders", "_fast", "_resolved")

    def __init__(self, encoders: Mapping[type[Any], Callable[[Any], object]] | None = None) -> None:
        self._encoders: dict[type[Any], Callable[[Any], object]] = dict(encoders or {})
        self._resolved: dict[type[Any], Callable[[Any], object] | None] = {}
        self._fast: dict[type[Any], Callable[[Any], str]] = {}

    def register(self, cls: type[Any], encoder: Callable[[Any], object]) -> KeyCodec:
        """Return a codec that keys instances of ``cls`` by ``encoder(value)``.

        The encoder's result is keyed by the ordinary rules, so it should
        return numbers, strings, tuples, dicts or other keyable values. Two
        values are the same key exactly when their encoder results are.

        Args:
            cls: The type (subclasses included) to key.
            encoder: A function from an instance to a keyable value.

        Returns:
            A new codec; this one is unchanged.

        Example:
            >>> from fractions import Fraction
            >>> codec = KeyCodec().register(
            ...     Fraction, lambda f: ("Fraction", f.numerator, f.denominator)
            ... )
            >>> codec.encode(Fraction(1, 3))
            '["Fraction", 1, 3]'
        """
        if not isinstance(cls, type):
            raise TypeError(f"register() needs a type, got {cls!r}")
        if not callable(encoder):
            raise TypeError(f"register() needs a callable encoder, got {encoder!r}")
        return KeyCodec({**self._encoders, cls: encoder})

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, KeyCodec):
            return NotImplemented
        return self._encoders == other._encoders

    def __hash__(self) -> int:
        return hash(frozenset(self._encoders.items()))

    def __repr__(self) -> str:
        if not self._encoders:
            return "KeyCodec()"
        names = ", ".join(t.__qualname__ for t in self._encoders)
        return f"KeyCodec(registered=[{names}])"

    # -- encoding ---------------------------------------------------------

    def encode(self, value: object) -> str:
        """Return the canonical text of ``value``.

        Raises:
            KeyEncodingError: The value (or something inside it) has a type
                stet cannot key.
        """
        t = type(value)
        fast = self._fast.get(t)
        if fast is None:
            # Only types with a fast encoder are remembered (a handful), so
            # that the codec never keeps a user's classes alive.
            fast = self._fast_encoder(t)
            if fast is None:
                return _checked_utf8(self._encode(value, False, "", 0))
            self._fast[t] = fast
        return fast(value)

    def _fast_encoder(self, t: type[Any]) -> Callable[[Any], str] | None:
        """A regex-free encoder for the common key types, or None for the general rules.

        It gives exactly the text `_encode` gives (a differential property
        test checks it). Exact ``int``, ``float`` and ``str`` are keyed by
        the built-in rules whatever is registered, as they always were.
        """
        if t is str:
            return _str_fast
        if t is int:
            return _int_text
        if t is float:
            return _float_fast
        if self._encoders and self._encoder_for(t) is not None:
            return None
        if t is bool:
            return _bool_text
        if t.__module__ != "numpy":  # a subclass elsewhere (an enum...) takes the general rules
            return None
        numpy = loaded_numpy()
        if numpy is None:
            return None
        if issubclass(t, numpy.bool_):
            return _bool_text
        if issubclass(t, numpy.integer) and not issubclass(t, numpy.timedelta64):
            return _numpy_int_text
        if issubclass(t, numpy.floating) and numpy.dtype(t).itemsize <= 8:
            return _numpy_float_text  # float64 holds it exactly
        return None

    def _encode(self, v: object, inner: bool, where: str, depth: int) -> str:
        if depth > _MAX_DEPTH:
            raise KeyEncodingError(
                type(v).__qualname__,
                where=where,
                reason=f"nested more than {_MAX_DEPTH} levels deep (or cyclic)",
            )
        if v is None:
            return "None"
        t = type(v)
        if self._encoders:
            encoder = self._encoder_for(t)
            if encoder is not None:
                return self._encode(encoder(v), inner, where, depth + 1)
        bool_, integer, floating, ndarray, timedelta = _numpy_kinds()
        if isinstance(v, timedelta):  # a numpy integer, but not a number
            raise KeyEncodingError(
                t.__qualname__,
                where=where,
                reason="numpy timedeltas are not supported; convert it to a number "
                "(of seconds, say) first",
            )
        if isinstance(v, bool | bool_):
            return "True" if v else "False"
        if isinstance(v, enum.Enum):
            return f"<{t.__qualname__}.{v.name}>"
        if isinstance(v, int | integer):
            return _int_text(int(v))
        if isinstance(v, float):
            return _float_text(float(v))
        if isinstance(v, floating):
            return _longdouble_text(v)
        if isinstance(v, str):
            return _quote(v) if inner else _str_text(v)
        if isinstance(v, Encoded):
            if inner and self._top_is_string(v.text):
                return _quote(self.decode(v.text))  # type: ignore[arg-type]  # a str
            return v.text
        if isinstance(v, datetime):
            return self._datetime_text(v, where)
        if isinstance(v, date):
            return v.isoformat()
        if isinstance(v, PurePath):
            return f"Path({_quote(str(v))})"
        if isinstance(v, ndarray):
            return self._array_text(v, where, depth)
        if isinstance(v, list | tuple):
            items = ", ".join(
                self._encode(x, True, f"{where}[{i}]", depth + 1) for i, x in enumerate(v)
            )
            return f"[{items}]"
        if isinstance(v, Mapping):
            return self._mapping_text(v, where, depth)
        if attrs.has(t) or (dataclasses.is_dataclass(v) and not isinstance(v, type)):
            return self._object_text(v, where, depth)
        raise KeyEncodingError(t.__qualname__, where=where)

    def _encoder_for(self, t: type[Any]) -> Callable[[Any], object] | None:
        try:
            return self._resolved[t]
        except KeyError:
            pass
        found = next((self._encoders[b] for b in t.__mro__ if b in self._encoders), None)
        self._resolved[t] = found
        return found

    @staticmethod
    def _top_is_string(text: str) -> bool:
        return text.startswith(("'", '"')) or (bool(text) and not _needs_tag(text))

    @staticmethod
    def _datetime_text(v: datetime, where: str) -> str:
        if getattr(v, "nanosecond", 0):
            raise KeyEncodingError(
                type(v).__qualname__,
                where=where,
                reason="timestamps with nanoseconds are not supported; round to microseconds first",
            )
        if v.tzinfo is not None and v.utcoffset() is not None:
            v = v.astimezone(UTC)
        else:
            v = v.replace(tzinfo=None)
        text = datetime.isoformat(v, timespec="microseconds")
        return text.replace(".000000", "")

    def _array_text(self, a: np.ndarray[Any, Any], where: str, depth: int) -> str:
        if a.dtype.kind in ("M", "m", "c", "V"):
            raise KeyEncodingError(
                f"ndarray[{a.dtype}]",
                where=where,
                reason=f"arrays of dtype {a.dtype} are not supported; "
                "convert the array to a supported dtype or a list first",
            )
        body = a.tolist()
        text = self._encode(body, True, where, depth + 1)
        if a.size and _implied_shape(body) == a.shape:
            return f"array({text})"
        shape = ", ".join(str(n) for n in a.shape)
        return f"array({text}, shape=[{shape}])"

    def _mapping_text(self, m: Mapping[Any, Any], where: str, depth: int) -> str:
        items: dict[str, str] = {}
        for k, x in m.items():
            kt = self._encode(k, True, f"{where}[{k!r}]", depth + 1)
            if kt in items:
                raise KeyEncodingError(
                    type(m).__qualname__,
                    where=where,
                    reason=f"two keys of the mapping are the same key ({kt})",
                )
            items[kt] = self._encode(x, True, f"{where}[{k!r}]", depth + 1)
        body = ", ".join(f"{k}: {items[k]}" for k in sorted(items))
        return "{" + body + "}"

    def _object_text(self, obj: object, where: str, depth: int) -> str:
        t = type(obj)
        if attrs.has(t):
            names = [f.name for f in attrs.fields(t) if f.eq]
        else:
            names = [f.name for f in dataclasses.fields(obj) if f.compare]  # type: ignore[arg-type]  # a dataclass instance
        fields = ", ".join(
            f"{n}={self._encode(getattr(obj, n), True, f'{where}.{n}', depth + 1)}" for n in names
        )
        return f"{t.__qualname__}({fields})"

    # -- decoding ---------------------------------------------------------

    def decode(self, text: str) -> object:
        """Return the value a canonical text stands for.

        Numbers, strings, bools, None, dates, paths, numpy arrays, lists and
        dicts come back as those types (tuples come back as lists, which are
        the same key). Enum members and objects come back as `Encoded`,
        which encodes to the same text.

        Raises:
            ValueError: ``text`` is not a canonical key text.
        """
        if text.startswith("'"):
            if not _needs_tag(text[1:]) or _has_control(text):
                raise ValueError(f"not a stet key text: {text!r} (the apostrophe is not needed)")
            return text[1:]
        if text and not _needs_tag(text) and not _has_control(text):
            return text
        try:
            value, end = _Parser(text).value(0)
        except (ValueError, IndexError, OverflowError) as exc:
            raise ValueError(f"not a stet key text: {text!r} ({exc})") from None
        if end != len(text):
            raise ValueError(f"not a stet key text: {text!r} (junk after position {end})")
        if isinstance(value, str) and not _has_control(value):
            raise ValueError(f"not a stet key text: {text!r} (the quotes are not needed)")
        return value


_JSON: Final = json.JSONDecoder()


def _json_string(text: str, i: int) -> tuple[str, int]:
    """The JSON string literal starting at ``text[i]`` and the index after it."""
    value, end = _JSON.raw_decode(text, i)
    if not isinstance(value, str):
        raise ValueError(f"expected a string at position {i}")
    return value, end


class _Parser:
    """Recursive-descent reader of the nested key syntax."""

    def __init__(self, text: str) -> None:
        self.text = text

    def value(self, i: int) -> tuple[object, int]:
        text = self.text
        c = text[i]
        if c == '"':
            return _json_string(text, i)
        if c == "[":
            return self._list(i + 1, "]")
        if c == "{":
            return self._dict(i + 1)
        if c == "<":
            end = text.index(">", i) + 1
            if not _IDENT_RE.fullmatch(text, i + 1, end - 1):
                raise ValueError(f"bad enum member at {i}")
            return Encoded(text[i:end]), end
        m = _TOKEN_RE.match(text, i)
        if m is not None and not _IDENT_RE.match(text, m.end()):
            kind, token = m.lastgroup, m.group()
            if kind == "dt":
                parsed = datetime.fromisoformat(token)
                return parsed, m.end()
            if kind == "date":
                return date.fromisoformat(token), m.end()
            if kind == "num":
                return _number_from_text(token), m.end()
            return _WORDS[token], m.end()
        call = _CALL_RE.match(text, i)
        if call is None:
            raise ValueError(f"unexpected {c!r} at position {i}")
        return self._call(i, call.end())

    def _list(self, i: int, close: str) -> tuple[list[object], int]:
        items: list[object] = []
        text = self.text
        if text[i] == close:
            return items, i + 1
        while True:
            item, i = self.value(i)
            items.append(item)
            if text[i] == close:
                return items, i + 1
            i = self._expect(i, ", ")

    def _dict(self, i: int) -> tuple[dict[Any, object], int]:
        out: dict[Any, object] = {}
        text = self.text
        if text[i] == "}":
            return out, i + 1
        while True:
            k, i = self.value(i)
            i = self._expect(i, ": ")
            v, i = self.value(i)
            out[k] = v
            if text[i] == "}":
                return out, i + 1
            i = self._expect(i, ", ")

    def _call(self, start: int, i: int) -> tuple[object, int]:
        text = self.text
        name = text[start : i - 1]
        if name == "Path" and text[i] == '"':
            s, i = _json_string(text, i)
            return Path(s), self._expect(i, ")")
        if name == "array" and text[i] != ")":
            body, i = self.value(i)
            if text.startswith(", shape=[", i):
                shape_end = text.index("]", i)
                dims = text[i + len(", shape=[") : shape_end]
                shape = tuple(int(d) for d in dims.split(", ") if d)
                i = shape_end + 1
                arr = _array(body, shape) if 0 not in shape else np.empty(shape)
                return arr, self._expect(i, ")")
            return _array(body, _implied_shape(body)), self._expect(i, ")")
        # An object keyed by its fields: name=value pairs.
        while text[i] != ")":
            field = _IDENT_RE.match(text, i)
            if field is None:
                raise ValueError(f"bad field name at {i}")
            i = self._expect(field.end(), "=")
            _, i = self.value(i)
            if text[i] != ")":
                i = self._expect(i, ", ")
        return Encoded(text[start : i + 1]), i + 1

    def _expect(self, i: int, token: str) -> int:
        if not self.text.startswith(token, i):
            raise ValueError(f"expected {token!r} at position {i}")
        return i + len(token)


def _implied_shape(body: object) -> tuple[int, ...]:
    """The shape a nested list spells out (following first items)."""
    shape: list[int] = []
    while isinstance(body, list):
        shape.append(len(body))
        if not body:
            break
        body = body[0]
    return tuple(shape)


def _array(body: object, shape: tuple[int, ...]) -> np.ndarray[Any, Any]:
    try:
        arr = np.array(body)
    except (ValueError, OverflowError):
        return _nested_fill(body, shape)
    return arr if arr.shape == shape else _nested_fill(body, shape)


def _nested_fill(body: object, shape: tuple[int, ...]) -> np.ndarray[Any, Any]:
    out = np.empty(shape, dtype=object)
    for index in np.ndindex(*shape):
        item: Any = body
        for j in index:
            item = item[j]
        out[index] = item
    return out


def canonical_from_legacy(text: str) -> str:
    """Canonical text for a cell written by stet 0.0.x or by hand.

    Those stores hold ``str(value)``, which cannot tell ``"1"`` from ``1``:
    a cell shaped like a number (``3``, ``0.1``, ``1e-05``, ``nan``) is read
    as that number, ``True``/``False``/``None`` as themselves, and everything
    else (including ``007``) as a string.
    """
    if text in ("None", "True", "False"):
        return text
    if _INT_RE.match(text):
        return _int_text(int(text))
    if _LEGACY_NUMBER.match(text) or text in ("nan", "inf", "-inf"):
        return _float_text(float(text))
    return _str_text(text)


#: Version 1 texts that may differ from today's: a bare string that begins
#: like a formula, or any text with a control character. Numbers (``-1``,
#: ``-inf``) match too; they come out unchanged. (RE2 syntax, for Arrow.)
V1_CHANGED: Final = (
    r"^[=@]|^[+-]$|^[+-][^0-9i]|^[+-]i$|^[+-]i[^n]|^[+-]in$|^[+-]in[^f]|^[+-]inf."
    r"|[\x00-\x08\x0a-\x1f]"
)


def canonical_from_v1(text: str) -> str:
    """Today's canonical text for a text written under key rules version 1.

    Version 1 wrote strings beginning with ``=``, ``+``, ``-`` or ``@`` bare
    and strings with control characters raw; everything else is unchanged.
    """
    if (not text or text[0] not in "'=+-@") and text.isprintable():
        return text
    if text[0] == "'":
        return _str_text(text[1:])
    if _needs_tag_v1(text):
        return text  # not a string under version 1 (a number, a container...)
    return _str_text(text)

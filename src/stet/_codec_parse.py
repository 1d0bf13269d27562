"""Reading a canonical key text back into the value it stands for.

A recursive-descent parser of the nested key syntax (lists, dicts, paths,
numpy arrays, enum members and objects by their fields); `KeyCodec.decode`
calls it for every text that is not a plain top-level string.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final

from ._codec_text import OBJECT_RE, WORDS, Encoded, number_from_text
from ._lazy import np

__all__ = ["Parser", "implied_shape"]

# Inner (nested) scalar tokens, tried in order at a position.
_TOKEN_RE: Final = re.compile(
    r"(?P<dt>[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
    r"(?:\.[0-9]{6})?(?:\+00:00)?)"
    r"|(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})"
    r"|(?P<num>-?[0-9]+(?:\.[0-9]+)?(?:e[+-][0-9]+)?)"
    r"|(?P<word>None|True|False|nan|-inf|inf)"
)
# Names of classes are Python identifiers, which may be any letters
# (``größe``, ``naïve``), not only ASCII ones; they are spelt by `QUALNAME`.
_IDENT_RE: Final = re.compile(r"[^\W\d][\w.]*")
#: An enum member, ``<Method.ADAM>``, ``<main.<locals>.Color.RED>``. Enum's
#: functional API takes any member name (``Enum("E", {"1": 1, "a b": 2})``),
#: which texts hold as it is: the member is whatever follows its class up to
#: the ``>`` that is not a ``<locals>``'s. Possessive, so that a long text
#: that is no member is refused in one pass (a `QUALNAME` and then any name
#: took time quadratic in its dots).
_ENUM_RE: Final = re.compile(r"<[^\W\d](?:[^<>]|<[^\W\d]\w*>)*+>")
#: A field's name and its ``=``. A namespace's attributes are any strings
#: (argparse keeps a positional ``lr-rate`` as it is), so a name is whatever
#: comes before the next ``=``.
_FIELD_RE: Final = re.compile(r"[^=]*=")
#: What a numpy array's text never starts with: an identifier and ``=``
#: (a field of a class that is named ``array``).
_NAMED_FIELD_RE: Final = re.compile(r"[^\W\d][\w.]*=")

_JSON: Final = json.JSONDecoder()


def _json_string(text: str, i: int) -> tuple[str, int]:
    """The JSON string literal starting at ``text[i]`` and the index after it."""
    value, end = _JSON.raw_decode(text, i)
    if not isinstance(value, str):
        raise ValueError(f"expected a string at position {i}")
    return value, end


class Parser:
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
            member = _ENUM_RE.match(text, i)
            if member is None:
                raise ValueError(f"bad enum member at {i}")
            return Encoded(member.group()), member.end()
        # A class may be named like a word (``inf2``, ``None_``) or a function
        # like one (``nan.<locals>.Cfg``): a name and its ``(`` are an object.
        call = OBJECT_RE.match(text, i)
        if call is not None:
            return self._call(i, call.end())
        m = _TOKEN_RE.match(text, i)
        if m is not None and not _IDENT_RE.match(text, m.end()):
            kind, token = m.lastgroup, m.group()
            if kind == "dt":
                parsed = datetime.fromisoformat(token)
                return parsed, m.end()
            if kind == "date":
                return date.fromisoformat(token), m.end()
            if kind == "num":
                return number_from_text(token), m.end()
            return WORDS[token], m.end()
        raise ValueError(f"unexpected {c!r} at position {i}")

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
        if name == "array" and text[i] != ")" and not _NAMED_FIELD_RE.match(text, i):
            body, i = self.value(i)
            if text.startswith(", shape=[", i):
                shape_end = text.index("]", i)
                dims = text[i + len(", shape=[") : shape_end]
                shape = tuple(int(d) for d in dims.split(", ") if d)
                i = shape_end + 1
                arr = _array(body, shape) if 0 not in shape else np.empty(shape)
                return arr, self._expect(i, ")")
            return _array(body, implied_shape(body)), self._expect(i, ")")
        # An object keyed by its fields: name=value pairs.
        while text[i] != ")":
            field = _FIELD_RE.match(text, i)
            if field is None:
                raise ValueError(f"bad field name at {i}")
            i = field.end()
            _, i = self.value(i)
            if text[i] != ")":
                i = self._expect(i, ", ")
        return Encoded(text[start : i + 1]), i + 1

    def _expect(self, i: int, token: str) -> int:
        if not self.text.startswith(token, i):
            raise ValueError(f"expected {token!r} at position {i}")
        return i + len(token)


def implied_shape(body: object) -> tuple[int, ...]:
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

"""The texts key rules 2 gave a class value that ``exclude=`` reached into, from its text.

Up to key rules 2 such a value was keyed as a plain mapping of its kept
fields, without its class (`stet._old_keys`). A decorated function knows
which of its columns ``exclude=`` reaches into and computes the old text
from the call's value. A tool that has only the store and the texts of a
key (``stet why``, ``stet.reset(store, key_dict)``) cannot tell which
classes inside a value were pruned: it takes each text a class value may
have had, the outermost class always a mapping (that is what a pruned
column is), each class inside it either a mapping or as it is, and looks
for them among the records written under rules 2 or older only.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from typing import Any, Final

from ._codec import KeyCodec
from ._codec_parse import Parser
from ._codec_text import CALL_RE, Encoded
from ._lazy import pa
from ._lazy import pc as _pc

__all__ = ["OLD_VERSIONS", "old_keys", "old_rows", "old_texts"]

#: pyarrow.compute, untyped here (its stubs do not cover chunked arrays and str).
pc: Any = _pc

#: The ``_stet_codec`` of records whose pruned class values are mappings (None: 0.0.x).
OLD_VERSIONS: Final = (None, "1", "2")

#: A field name: any Python identifier (a class's fields may be named in any script).
_FIELD_RE: Final = re.compile(r"[^\W\d]\w*")

#: At most this many old texts of one value (a class nested in classes many
#: levels deep has more ways, which no sweep of ours has met).
_MOST: Final = 64


class _Object:
    """A class value's text and its fields, as read back from the text."""

    __slots__ = ("fields", "text")

    def __init__(self, text: str, fields: list[tuple[str, object]]) -> None:
        self.text = text
        self.fields = fields


class _FieldReader(Parser):
    """`Parser` that keeps the fields of a class value (`_Object`), not only its text."""

    def _call(self, start: int, i: int) -> tuple[object, int]:
        text = self.text
        name = text[start : i - 1]
        if (name == "Path" and text[i] == '"') or (name == "array" and text[i] != ")"):
            return super()._call(start, i)
        fields: list[tuple[str, object]] = []
        while text[i] != ")":
            field = _FIELD_RE.match(text, i)
            if field is None:
                raise ValueError(f"bad field name at {i}")
            i = self._expect(field.end(), "=")
            value, i = self.value(i)
            fields.append((field.group(), value))
            if text[i] != ")":
                i = self._expect(i, ", ")
        return _Object(text[start : i + 1], fields), i + 1


def _as_is(value: object) -> object:
    """The value as its text says, classes inside it kept."""
    if isinstance(value, _Object):
        return Encoded(value.text)
    if isinstance(value, list):
        return [_as_is(v) for v in value]
    if isinstance(value, dict):
        return {_as_is(k): _as_is(v) for k, v in value.items()}
    return value


def _forms(value: object, outermost: bool) -> list[object]:
    """Each value key rules 2 may have keyed, classes on a pruned path as mappings.

    Paths pass through fields of classes and keys of mappings, never into
    lists, so only those may have lost their classes. At most `_MOST`, at
    every level (a mapping of many classes has two ways for each).
    """
    if not isinstance(value, _Object | dict):
        return [_as_is(value)]
    items = value.fields if isinstance(value, _Object) else list(value.items())
    keep = [Encoded(value.text)] if isinstance(value, _Object) and not outermost else []
    keys = [_as_is(k) for k, _ in items]
    kinds = [_forms(v, False) for _, v in items]
    mappings = (dict(zip(keys, c, strict=True)) for c in itertools.product(*kinds))
    return keep + list(itertools.islice(mappings, _MOST - len(keep)))


def old_texts(text: str) -> list[str]:
    """The texts key rules 2 may have given a pruned column whose text is ``text`` now.

    Empty unless ``text`` is a class value's (``Adam(lr=0.1)``, once
    ``{"lr": 0.1}``).

    Example:
        >>> old_texts("Adam(lr=0.1)")
        ['{"lr": 0.1}']
        >>> old_texts('{"lr": 0.1}'), old_texts("0.1")
        ([], [])
    """
    if not CALL_RE.match(text):
        return []
    try:
        value, end = _FieldReader(text).value(0)
    except (ValueError, IndexError, OverflowError):
        return []
    if end != len(text) or not isinstance(value, _Object):
        return []
    encode = KeyCodec().encode
    found: list[str] = []
    for form in _forms(value, True):
        old = encode(form)
        if old != text and old not in found:
            found.append(old)
    return found


def old_keys(texts: Mapping[str, str]) -> list[dict[str, str]]:
    """Each way key rules 2 may have written a key's column texts, where it differs.

    Empty when no column holds a class value.
    """
    choices = [[text, *old_texts(text)] for text in texts.values()]
    if all(len(c) == 1 for c in choices):
        return []
    keys = list(texts)
    combinations = itertools.islice(itertools.product(*choices), 1, _MOST + 1)  # not as is
    return [dict(zip(keys, c, strict=True)) for c in combinations]


def old_rows(codecs: Any) -> Any:
    """A numpy mask of the records written under key rules 2 or older.

    Args:
        codecs: The records' ``_stet_codec`` column (null where none).
    """
    older = pa.array([v for v in OLD_VERSIONS if v is not None], pa.string())
    old = pc.fill_null(pc.is_in(codecs, value_set=older), False)
    return pc.or_(old, codecs.is_null()).to_numpy(zero_copy_only=False)

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
strings bare; `stet._codec_legacy` turns such texts into today's, and the
parts of the codec live in `stet._codec_text` (the text of one scalar, the
fast encoders) and `stet._codec_parse` (reading a text back).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import PurePath
from typing import Any, ClassVar, Final

from ._codec_parse import Parser, implied_shape
from ._codec_text import (
    OBJECT_RE,
    Encoded,
    Pruned,
    bool_text,
    checked_utf8,
    float_fast,
    float_text,
    has_control,
    int_text,
    longdouble_text,
    needs_tag,
    numpy_float_text,
    numpy_int_text,
    quote,
    str_fast,
    str_text,
)
from ._configs import is_omegaconf, keyed_names, omegaconf_plain
from ._lazy import loaded_numpy, np
from .exceptions import KeyEncodingError

__all__ = ["CODEC_VERSION", "Encoded", "KeyCodec"]

#: Version of the key rules; stores record it in the ``_stet_codec`` column.
#: 2: formula-like strings are tagged, control characters JSON-quoted.
#: 3: a class value that ``exclude=`` reaches into keeps its class's name
#: (``Adam(lr=0.1)``, where 2 wrote the mapping ``{'lr': 0.1}``).
CODEC_VERSION: Final = 3

_MAX_DEPTH: Final = 64


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
                return checked_utf8(self._encode(value, False, "", 0))
            self._fast[t] = fast
        return fast(value)

    def _fast_encoder(self, t: type[Any]) -> Callable[[Any], str] | None:
        """A regex-free encoder for the common key types, or None for the general rules.

        It gives exactly the text `_encode` gives (a differential property
        test checks it). Exact ``int``, ``float`` and ``str`` are keyed by
        the built-in rules whatever is registered, as they always were.
        """
        if t is str:
            return str_fast
        if t is int:
            return int_text
        if t is float:
            return float_fast
        if self._encoders and self._encoder_for(t) is not None:
            return None
        if t is bool:
            return bool_text
        if t.__module__ != "numpy":  # a subclass elsewhere (an enum...) takes the general rules
            return None
        numpy = loaded_numpy()
        if numpy is None:
            return None
        if issubclass(t, numpy.bool_):
            return bool_text
        if issubclass(t, numpy.integer) and not issubclass(t, numpy.timedelta64):
            return numpy_int_text
        if issubclass(t, numpy.floating) and numpy.dtype(t).itemsize <= 8:
            return numpy_float_text  # float64 holds it exactly
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
            return int_text(int(v))
        if isinstance(v, float):
            return float_text(float(v))
        if isinstance(v, floating):
            return longdouble_text(v)
        if isinstance(v, str):
            return quote(v) if inner else str_text(v)
        if isinstance(v, Encoded):
            if inner and self._top_is_string(v.text):
                return quote(self.decode(v.text))  # type: ignore[arg-type]  # a str
            return v.text
        if isinstance(v, datetime):
            return self._datetime_text(v, where)
        if isinstance(v, date):
            return v.isoformat()
        if isinstance(v, PurePath):
            return f"Path({quote(str(v))})"
        if isinstance(v, ndarray):
            return self._array_text(v, where, depth)
        if isinstance(v, list | tuple):
            items = ", ".join(
                self._encode(x, True, f"{where}[{i}]", depth + 1) for i, x in enumerate(v)
            )
            return f"[{items}]"
        if is_omegaconf(v):  # a DictConfig or ListConfig: its resolved plain value
            try:
                plain = omegaconf_plain(v)
            except LookupError as exc:
                raise KeyEncodingError(t.__qualname__, where=where, reason=str(exc)) from None
            return self._encode(plain, inner, where, depth + 1)
        if isinstance(v, Mapping):
            return self._mapping_text(v, where, depth)
        if isinstance(v, Pruned):
            return self._pruned_text(v, where, depth)
        names = keyed_names(v)
        if names is not None:
            return self._object_text(v, names, where, depth)
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
        # An `Encoded` of an object whose class name is not ASCII has the
        # text a plain string of it would have; `decode` gives a `str` for
        # such a string, so an `Encoded` of that text is the object.
        return text.startswith(("'", '"')) or (
            bool(text) and not needs_tag(text) and OBJECT_RE.match(text) is None
        )

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
        if a.size and implied_shape(body) == a.shape:
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

    def _object_text(self, obj: object, names: Sequence[str], where: str, depth: int) -> str:
        t = type(obj)
        fields = ", ".join(
            f"{n}={self._encode(getattr(obj, n), True, f'{where}.{n}', depth + 1)}" for n in names
        )
        return f"{t.__qualname__}({fields})"

    def _pruned_text(self, v: Pruned, where: str, depth: int) -> str:
        if v.name is None:
            return self._mapping_text(dict(v.fields), where, depth)
        fields = ", ".join(
            f"{n}={self._encode(x, True, f'{where}.{n}', depth + 1)}" for n, x in v.fields
        )
        return f"{v.name}({fields})"

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
            if not needs_tag(text[1:]) or has_control(text):
                raise ValueError(f"not a stet key text: {text!r} (the apostrophe is not needed)")
            return text[1:]
        if text and not needs_tag(text) and not has_control(text):
            return text
        try:
            value, end = Parser(text).value(0)
        except (ValueError, IndexError, OverflowError) as exc:
            raise ValueError(f"not a stet key text: {text!r} ({exc})") from None
        if end != len(text):
            raise ValueError(f"not a stet key text: {text!r} (junk after position {end})")
        if isinstance(value, str) and not has_control(value):
            raise ValueError(f"not a stet key text: {text!r} (the quotes are not needed)")
        return value

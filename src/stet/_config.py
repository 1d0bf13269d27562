"""Conversion of `Once` to and from plain dicts (for TOML/YAML configs)."""

from __future__ import annotations

from typing import Any, Literal, TypeAlias, TypeVar

import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from ._codec import CODEC_VERSION, KeyCodec

__all__ = ["Retry", "converter", "structure", "unstructure"]

#: ``Once(retry=...)``: "again", "never", or failed attempts to stop after.
Retry: TypeAlias = Literal["again", "never"] | int

converter = cattrs.Converter()
_T = TypeVar("_T")


def _unstructure_codec(codec: KeyCodec) -> dict[str, int]:
    if codec != KeyCodec():
        raise ValueError(
            f"{codec!r} has registered encoders, which are code and cannot be "
            "written to a config; pass codec= to Once in your script instead"
        )
    return {"version": CODEC_VERSION}


def _structure_codec(value: Any, _: object) -> KeyCodec:
    # A config written under older key rules still loads: this stet reads
    # stores of every earlier version and writes today's.
    if value is None or value in ({"version": v} for v in range(1, CODEC_VERSION + 1)):
        return KeyCodec()
    raise ValueError(
        f"codec {value!r} is not this stet's key rules ({{'version': {CODEC_VERSION}}} "
        "or an earlier one); upgrade stet to read it"
    )


# Plain cattrs.structure/unstructure (the global converter) handle Once too:
# the codec is written as its rules version, never as code.
cattrs.global_converter.register_structure_hook(KeyCodec, _structure_codec)
cattrs.global_converter.register_unstructure_hook(KeyCodec, _unstructure_codec)


def _structure_key(value: Any, _: object) -> tuple[str, ...] | None:
    # Once's own converter checks the names; cattrs only passes them on.
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def _structure_bool(value: Any, _: object) -> bool:
    # cattrs' default is bool(value), which reads the string "false" as True.
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {value!r}")
    return value


def _structure_retry(value: Any, _: object) -> Any:
    # "again", "never" or a number: Once's validator says what is wrong.
    return value


cattrs.global_converter.register_structure_hook(Retry, _structure_retry)
converter.register_structure_hook(Retry, _structure_retry)
converter.register_structure_hook(tuple[str, ...] | None, _structure_key)
converter.register_structure_hook(bool, _structure_bool)
_ready: set[type[Any]] = set()


def _hooks_for(cls: type[Any]) -> None:
    """Register how the `Once` class ``cls`` converts (once per class)."""
    if cls in _ready:
        return
    converter.register_unstructure_hook(
        cls,
        make_dict_unstructure_fn(
            cls,
            converter,
            codec=override(omit=True),
            key=override(unstruct_hook=lambda k: None if k is None else list(k)),
            exclude=override(unstruct_hook=lambda k: None if k is None else list(k)),
        ),
    )
    converter.register_structure_hook(
        cls,
        make_dict_structure_fn(
            cls,
            converter,
            _cattrs_forbid_extra_keys=True,
            codec=override(omit=True),
            retry=override(struct_hook=_structure_retry),
        ),
    )
    _ready.add(cls)


def unstructure(config: Any) -> dict[str, object]:
    """A `Once` as a plain dict (without the codec, which is code)."""
    _hooks_for(type(config))
    return converter.unstructure(config)  # type: ignore[no-any-return]


def _describe(exc: BaseException, type_: type[Any] | None) -> str:
    if isinstance(exc, cattrs.ForbiddenExtraKeysError):
        return f"unknown setting(s) {sorted(exc.extra_fields)}"
    if isinstance(exc, KeyError):
        return "required"
    return str(exc)


def structure(data: dict[str, object], cls: type[_T]) -> _T:
    """A `Once` of ``cls`` from a plain dict, with one readable error for bad settings."""
    _hooks_for(cls)
    if not isinstance(data, dict):
        raise TypeError(f"stet settings must be a dict, got {type(data).__name__}")
    try:
        return converter.structure(data, cls)
    except cattrs.BaseValidationError as exc:
        problems = "; ".join(
            cattrs.transform_error(exc, path="settings", format_exception=_describe)
        )
        raise ValueError(f"invalid stet settings: {problems}") from None

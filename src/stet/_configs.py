"""What stet knows of config objects: their fields, and their plain form.

Config objects are attrs classes, dataclasses, pydantic models, OmegaConf
containers (Hydra's ``DictConfig``), ``argparse.Namespace`` and
``types.SimpleNamespace``, and mappings. pydantic and OmegaConf are never
imported here: a value can only be one of theirs if the user's program has
loaded the library, so stet looks the library up among the loaded modules.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import types
import typing
from collections.abc import Mapping
from typing import Any

import attrs

__all__ = [
    "class_fields",
    "field_type",
    "fields_of",
    "is_omegaconf",
    "is_pydantic_class",
    "keyed_names",
    "omegaconf_plain",
]

#: Objects whose attributes are their fields, whatever their class.
NAMESPACES = (argparse.Namespace, types.SimpleNamespace)


def is_omegaconf(value: object) -> bool:
    """True for an OmegaConf ``DictConfig`` or ``ListConfig``."""
    omegaconf = sys.modules.get("omegaconf")
    return omegaconf is not None and isinstance(value, omegaconf.Container)


def omegaconf_plain(value: Any) -> object:
    """An OmegaConf container as plain dicts and lists, interpolations resolved.

    Raises:
        LookupError: A mandatory value (``???``) is not set, or an
            interpolation cannot be resolved (the library's message).
    """
    omegaconf = sys.modules["omegaconf"]
    try:
        return omegaconf.OmegaConf.to_container(value, resolve=True, throw_on_missing=True)
    except omegaconf.errors.OmegaConfBaseException as exc:
        raise LookupError(_omegaconf_problem(exc)) from None


def _omegaconf_problem(exc: BaseException) -> str:
    omegaconf = sys.modules["omegaconf"]
    if isinstance(exc, omegaconf.errors.MissingMandatoryValue):
        return "OmegaConf says a mandatory value (???) is not set: " + str(exc).splitlines()[0]
    return f"OmegaConf cannot resolve it ({type(exc).__name__}: {str(exc).splitlines()[0]})"


def omegaconf_item(value: Any, name: str) -> object:
    """``value[name]`` of a ``DictConfig``, resolved; KeyError if it has no such key."""
    omegaconf = sys.modules["omegaconf"]
    if name not in value.keys():  # noqa: SIM118  # `in value` is False for an unset ??? too
        raise KeyError(name)
    try:
        return value[name]
    except omegaconf.errors.OmegaConfBaseException as exc:
        raise LookupError(_omegaconf_problem(exc)) from None


def is_pydantic_class(cls: object) -> bool:
    """True for a pydantic model class (version 2)."""
    pydantic = sys.modules.get("pydantic")
    return pydantic is not None and isinstance(cls, type) and issubclass(cls, pydantic.BaseModel)


def class_fields(cls: object) -> tuple[str, ...] | None:
    """The field names of a class of config objects, or None if it is not one."""
    if not isinstance(cls, type):
        return None
    if attrs.has(cls):
        return tuple(f.name for f in attrs.fields(cls))
    if dataclasses.is_dataclass(cls):
        return tuple(f.name for f in dataclasses.fields(cls))
    if is_pydantic_class(cls):
        return tuple(cls.model_fields)  # type: ignore[attr-defined]  # a pydantic model
    return None


def field_type(cls: type[Any], name: str) -> object:
    """The annotated type of a field (None if it cannot be told without guessing)."""
    if is_pydantic_class(cls):
        return cls.model_fields[name].annotation
    try:
        return typing.get_type_hints(cls).get(name)
    except Exception:  # an annotation that names what is not importable here
        return None


def keyed_names(value: object) -> list[str] | None:
    """The fields that key a config object, as the codec writes it (None: not one).

    attrs classes and dataclasses by the fields that take part in equality,
    pydantic models by their fields, namespaces by their attributes (sorted:
    two namespaces with the same attributes are equal).
    """
    t = type(value)
    if attrs.has(t):
        return [f.name for f in attrs.fields(t) if f.eq]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [f.name for f in dataclasses.fields(value) if f.compare]
    if is_pydantic_class(t):
        return list(t.model_fields)  # type: ignore[attr-defined]  # a pydantic model
    if isinstance(value, NAMESPACES):
        return sorted(vars(value))
    return None


def fields_of(value: object) -> tuple[tuple[str, ...], dict[str, object]] | None:
    """A config object's field names, and the fields that make up its key.

    The second part leaves out what the codec leaves out of an object's key
    (``attrs.field(eq=False)``, ``dataclasses.field(compare=False)``). None
    if the value is not a config object.

    Raises:
        LookupError: An OmegaConf value that cannot be resolved.
    """
    if is_omegaconf(value):
        value = omegaconf_plain(value)
    t = type(value)
    if attrs.has(t):
        fields = attrs.fields(t)
        keyed = {f.name: getattr(value, f.name) for f in fields if f.eq}
        return tuple(f.name for f in fields), keyed
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields_ = dataclasses.fields(value)
        keyed = {f.name: getattr(value, f.name) for f in fields_ if f.compare}
        return tuple(f.name for f in fields_), keyed
    if is_pydantic_class(t):
        names = tuple(t.model_fields)  # type: ignore[attr-defined]  # a pydantic model
        return names, {n: getattr(value, n) for n in names}
    if isinstance(value, NAMESPACES):
        items = dict(vars(value))
        return tuple(items), items
    if isinstance(value, Mapping):
        items = dict(value.items())
        return tuple(k for k in items if isinstance(k, str)), items
    return None

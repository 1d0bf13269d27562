"""Key names that reach into a parameter's value: ``cfg.model.lr``, and ``exclude=``.

A key name is a parameter name (``seed``) or a dotted path into a
parameter's value (``cfg.model.lr``): through fields of attrs classes,
dataclasses and pydantic models, attributes of namespaces, and keys of
mappings and OmegaConf configs (interpolations resolved). Each path is its
own store column, named after the path.

``exclude=`` names what is not in the key: a parameter leaves the key whole;
a path (``cfg.data_dir``) keeps its parameter in the key, keyed by the rest
of its fields: a class's as the class less those fields
(``Config(model=..., seed=3)``), a mapping's as a mapping (``{'seed': 3}``).
Key rules 2 and older keyed a class's as a mapping too (`Pruner.legacy`).

This module turns the names into getters, functions from a parameter's
value to the value a column holds, which raise `KeyPathError` where a
call's value does not have the path. The `Runner` specialises its per-call
path with them at decoration.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ._codec_text import Pruned
from ._configs import (
    NAMESPACES,
    class_fields,
    field_type,
    fields_of,
    is_omegaconf,
    omegaconf_item,
    omegaconf_plain,
)
from ._lazy import loaded_numpy
from .exceptions import KeyPathError

__all__ = [
    "Getter",
    "Pruner",
    "check_against",
    "check_nesting",
    "path_getter",
    "pruner",
    "split",
]

#: From a parameter's value to the value of one key column.
Getter = Callable[[Any], Any]

#: Whether the codec keys a type by an encoder registered on it (`KeyCodec.register`).
Registered = Callable[[type[Any]], bool]

#: Types a path step remembers, per step (a sweep passes one or two).
_REMEMBERED = 8


def split(name: str) -> tuple[str, tuple[str, ...]]:
    """``"cfg.model.lr"`` as ``("cfg", ("model", "lr"))``."""
    top, *parts = name.split(".")
    return top, tuple(parts)


def check_nesting(names: Iterable[str], setting: str) -> None:
    """Raise `ValueError` if a name lies inside another (``cfg`` and ``cfg.seed``)."""
    given = list(names)
    known = set(given)
    for name in given:
        parts = name.split(".")
        for end in range(1, len(parts)):
            outer = ".".join(parts[:end])
            if outer in known:
                raise ValueError(
                    f"{setting} name {name!r} lies inside {outer!r}, which is also in "
                    f"{setting}={given!r}; name one or the other"
                )


def _short(value: object) -> str:
    numpy = loaded_numpy()
    if numpy is not None and isinstance(value, numpy.generic):
        value = value.item()
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _listing(names: Iterable[object], noun: str = "field") -> str:
    shown = [repr(n) for n in names]
    if not shown:
        return f"it has no {noun}s"
    more = f", ... ({len(shown)} in all)" if len(shown) > 12 else ""
    return f"its {noun}s: " + ", ".join(shown[:12]) + more


def _no_field(where: str, value: object, part: str, names: Iterable[object]) -> str:
    noun = "key" if isinstance(value, Mapping) else "field"
    return (
        f"{where} is a {type(value).__qualname__}, which has no {noun} {part!r} "
        f"({_listing(names, noun)})"
    )


def _accessor(path: str, where: str, part: str, value: object, last: bool) -> Getter:
    """How to take ``part`` from values of ``type(value)``; raises `KeyPathError`."""
    t = type(value)
    if is_omegaconf(value):

        def config_item(obj: Any) -> Any:
            try:
                found = omegaconf_item(obj, part)
                return omegaconf_plain(found) if last and is_omegaconf(found) else found
            except KeyError:
                raise KeyPathError(path, _no_field(where, obj, part, obj.keys())) from None
            except LookupError as exc:
                raise KeyPathError(path, f"{where}.{part}: {exc}") from None

        return config_item
    names = class_fields(t)
    if names is not None:
        if part not in names:
            raise KeyPathError(path, _no_field(where, value, part, names))
        return operator.attrgetter(part)
    if isinstance(value, NAMESPACES):

        def attribute(obj: Any) -> Any:
            try:
                return vars(obj)[part]
            except KeyError:
                raise KeyPathError(path, _no_field(where, obj, part, vars(obj))) from None

        return attribute
    if t is dict:

        def item(obj: Any) -> Any:
            try:
                return obj[part]
            except KeyError:
                raise KeyPathError(path, _no_field(where, obj, part, obj.keys())) from None

        return item
    if isinstance(value, Mapping):
        # Asked first: a defaultdict (or any __missing__) would make up the
        # value, and change the user's config.
        def key(obj: Any) -> Any:
            if part in obj:
                return obj[part]
            raise KeyPathError(path, _no_field(where, obj, part, obj.keys()))

        return key
    raise KeyPathError(
        path,
        f"{where} is {_short(value)} ({t.__qualname__}), which has no fields; a path "
        "reaches into attrs classes, dataclasses, pydantic models, namespaces, mappings "
        "and OmegaConf configs",
    )


def _step(path: str, where: str, part: str, last: bool) -> Getter:
    """One step of a path, remembering how to take it from each type it met."""
    known: dict[type[Any], Getter] = {}

    def step(value: Any) -> Any:
        get = known.get(type(value))
        if get is None:
            get = _accessor(path, where, part, value, last)
            if len(known) < _REMEMBERED:
                known[type(value)] = get
        return get(value)

    return step


def path_getter(path: str) -> Getter:
    """From the value of the path's parameter to the value at the path."""
    top, parts = split(path)
    wheres = [".".join((top, *parts[:i])) for i in range(len(parts))]
    steps = [
        _step(path, where, part, i == len(parts) - 1)
        for i, (where, part) in enumerate(zip(wheres, parts, strict=True))
    ]
    if len(steps) == 1:
        return steps[0]
    if len(steps) == 2:
        first, second = steps
        return lambda value: second(first(value))

    def get(value: Any) -> Any:
        for step in steps:
            value = step(value)
        return value

    return get


class Pruner:
    """From a parameter's value to its keyed fields, less the excluded paths.

    The result is a `Pruned` value at every level a path reaches into: a
    class's keeps its name and field order, so that it is keyed as the
    class less those fields; a mapping's (or an OmegaConf config's, made
    plain, interpolations resolved) is keyed as a mapping.
    """

    __slots__ = ("registered", "top", "tree")

    def __init__(
        self, top: str, paths: Iterable[str], registered: Registered | None = None
    ) -> None:
        self.top = top
        self.registered = registered
        self.tree: dict[str, Any] = {}
        for path in paths:
            node = self.tree
            for part in split(path)[1]:
                node = node.setdefault(part, {})

    def __call__(self, value: Any) -> Pruned:
        return _prune(value, self.tree, self.top, self.registered)

    def legacy(self, value: Any) -> dict[object, object]:
        """The value as key rules 2 and older keyed it: a plain dict, classes dropped."""
        return self(value).as_mapping()


def pruner(top: str, paths: Iterable[str], registered: Registered | None = None) -> Pruner:
    """The `Pruner` of parameter ``top`` for the excluded ``paths`` inside it.

    ``registered`` tells the types the codec keys by a registered encoder:
    a path into such a value is refused (`KeyPathError`), since the encoder,
    not the fields, makes its key.
    """
    return Pruner(top, paths, registered)


def encoded_by(cls: type[Any], where: str, path: str, *, called: bool) -> str:
    """Why ``exclude=`` cannot reach into ``where``, a ``cls`` keyed by a registered encoder."""
    part = path[len(where) + 1 :].split(".")[0]
    what = "is a" if called else "is annotated as"
    return (
        f"{where} {what} {cls.__qualname__}, which the codec keys by the encoder "
        f"registered for it (KeyCodec.register), not by its fields, so exclude= cannot "
        f"leave {part!r} out of its key; make the encoder leave it out and exclude "
        f"nothing inside {where}, exclude the whole parameter, or key by fields with "
        f"key=[...] paths"
    )


def _prune(
    value: Any, tree: Mapping[str, Any], where: str, registered: Registered | None
) -> Pruned:
    if registered is not None and registered(type(value)):
        path, node = where, tree
        while node:  # the first excluded path that passes here, in full
            part = next(iter(node))
            path, node = f"{path}.{part}", node[part]
        raise KeyPathError(path, encoded_by(type(value), where, path, called=True))
    try:
        found = _omegaconf_fields(value, tree) if is_omegaconf(value) else fields_of(value)
    except LookupError as exc:
        raise KeyPathError(where, str(exc)) from None
    if found is None:
        first = f"{where}.{next(iter(tree))}"
        raise KeyPathError(
            first,
            f"{where} is {_short(value)} ({type(value).__qualname__}), which has no "
            "fields to exclude",
        )
    names, keyed = found
    for part in tree:
        if part not in names:
            raise KeyPathError(f"{where}.{part}", _no_field(where, value, part, names))
    kept: list[tuple[object, object]] = []
    for name, field in keyed.items():
        sub = tree.get(name) if isinstance(name, str) else None
        if sub is None:
            kept.append((name, field))
        elif sub:
            kept.append((name, _prune(field, sub, f"{where}.{name}", registered)))
    if is_omegaconf(value) or isinstance(value, Mapping):
        return Pruned(None, tuple(kept))
    if isinstance(value, NAMESPACES):  # keyed by its attributes sorted, as the codec does
        kept.sort(key=lambda item: str(item[0]))
    return Pruned(type(value).__qualname__, tuple(kept))


def _omegaconf_fields(
    value: Any, tree: Mapping[str, Any]
) -> tuple[tuple[str, ...], dict[str, object]] | None:
    """`fields_of` for an OmegaConf config, never resolving a field that is left out.

    An excluded field may be unset (``???``) or name a resolver that only
    works inside a Hydra run; the rest is resolved as usual.
    """
    if not isinstance(value, Mapping):  # a ListConfig has no fields
        return None
    names = tuple(k for k in value.keys() if isinstance(k, str))  # noqa: SIM118  # unset too
    keyed: dict[str, object] = {}
    for name in names:
        sub = tree.get(name)
        if sub == {}:
            continue  # left out: never read
        found = omegaconf_item(value, name)
        keyed[name] = found if sub or not is_omegaconf(found) else omegaconf_plain(found)
    return names, keyed


def check_against(
    path: str, annotation: object, where: str, registered: Registered | None = None
) -> None:
    """Raise `ValueError` if ``annotation`` says the path cannot exist.

    Followed as far as the annotations name config classes (attrs,
    dataclass, pydantic); a mapping, a union or no annotation ends the
    check, and the call's value is checked instead. With ``registered``
    (a path of ``exclude=``), a class keyed by a registered encoder on the
    way is refused too.
    """
    top, parts = split(path)
    cls = annotation
    for i, part in enumerate(parts):
        if registered is not None and isinstance(cls, type) and registered(cls):
            at = ".".join((top, *parts[:i]))
            raise ValueError(
                f"exclude name {path!r} of {where}: {encoded_by(cls, at, path, called=False)}"
            )
        names = class_fields(cls)
        if names is None:
            return
        assert isinstance(cls, type)
        if part not in names:
            at = ".".join((top, *parts[:i]))
            raise ValueError(
                f"key name {path!r} is not a path of {where}: {at} is annotated as "
                f"{cls.__qualname__}, which has no field {part!r} ({_listing(names)})"
            )
        cls = field_type(cls, part)

"""What stet reads off a decorated function: its name, its key's names, its code.

`key_names` checks ``key=`` / ``exclude=`` against the signature at
decoration; `code_hash` is the ``_stet_code`` of its records; `display`
and `display_text` shorten values and messages for skip lines and errors.
"""

from __future__ import annotations

import hashlib
import inspect
import textwrap
import typing
from collections.abc import Callable
from typing import Any

from ._keypaths import Getter, Registered, check_against, path_getter, pruner, split
from ._lazy import loaded_numpy

__all__ = ["code_hash", "display", "display_text", "key_names", "qualname"]


def qualname(func: Callable[..., Any]) -> str:
    """The function's qualified name (or its type's, for other callables)."""
    name = getattr(func, "__qualname__", None)
    return name if isinstance(name, str) else type(func).__qualname__


def _is_method(func: Callable[..., Any], params: list[inspect.Parameter]) -> bool:
    parts = qualname(func).split(".")
    return (
        len(parts) > 1
        and parts[-2] != "<locals>"
        and bool(params)
        and params[0].name in ("self", "cls")
    )


def key_names(
    func: Callable[..., Any],
    key: tuple[str, ...] | None,
    exclude: tuple[str, ...] | None = None,
    registered: Registered | None = None,
) -> tuple[tuple[str, ...], dict[str, tuple[str, Getter]]]:
    """The key's names for ``func``, checked against its signature, and their paths.

    The second part maps each name that is not a plain parameter (a path
    of ``key=``, or a parameter that ``exclude=`` reaches into) to its
    parameter and the getter of its value. ``registered`` tells the types
    the codec keys by a registered encoder, which ``exclude=`` cannot reach
    into.
    """
    signature = inspect.signature(func)
    params = list(signature.parameters.values())
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    where = f"{qualname(func)}{signature}"
    by_name = {p.name: p for p in params}
    annotations = _annotations(func)

    def check(name: str, setting: str) -> str:
        top = split(name)[0]
        param = by_name.get(top)
        if param is None:
            what = "is not a parameter" if top == name else f"starts with {top!r}, not a parameter"
            raise ValueError(f"{setting} name {name!r} {what} of {where}")
        if param.kind in variadic and (setting == "key" or top != name):
            raise ValueError(
                f"{setting} name {name!r} is the variadic parameter of {where}; "
                "stet keys named parameters only"
            )
        if top != name:
            check_against(
                name, annotations.get(top), where, registered if setting == "exclude" else None
            )
        return top

    if key is not None:
        for name in key:
            check(name, "key")
        return key, {n: (split(n)[0], path_getter(n)) for n in key if "." in n}
    left_out = {check(name, "exclude") for name in exclude or () if "." not in name}
    inside: dict[str, list[str]] = {}
    for name in exclude or ():
        if "." in name:
            inside.setdefault(check(name, "exclude"), []).append(name)
    if _is_method(func, params):
        params = params[1:]
    params = [p for p in params if p.name not in left_out]
    for p in params:
        if p.kind in variadic:
            star = "*" if p.kind is inspect.Parameter.VAR_POSITIONAL else "**"
            raise ValueError(
                f"{where} takes {star}{p.name}, which stet cannot key; name the "
                "parameters that identify a run with key=[...], or leave this one out "
                f"with exclude=[{p.name!r}]"
            )
    names = tuple(p.name for p in params)
    return names, {top: (top, pruner(top, paths, registered)) for top, paths in inside.items()}


def _annotations(func: Callable[..., Any]) -> dict[str, object]:
    """The parameters' annotations as types, where they can be told (for checks only)."""
    try:
        return typing.get_type_hints(func)
    except Exception:  # a name the module cannot resolve: the calls are checked instead
        return {}


def code_hash(func: Callable[..., Any]) -> str | None:
    """A short hash of the function's source (decorators left out), if it has one.

    Records carry it as ``_stet_code`` so that `status` can say how many
    were made by an older version of the code. Nothing is invalidated.
    """
    try:
        lines, _ = inspect.getsourcelines(inspect.unwrap(func))
    except (OSError, TypeError):
        return None
    starts = [i for i, line in enumerate(lines) if line.lstrip().startswith(("def ", "async def "))]
    body = [line for line in lines[starts[0] if starts else 0 :] if line.strip()]
    text = textwrap.dedent("".join(body))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def display(value: object) -> str:
    """Short text of a value for messages."""
    numpy = loaded_numpy()
    if numpy is not None and isinstance(value, numpy.generic):
        value = value.item()
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def display_text(text: str, limit: int = 200) -> str:
    """A message shortened for a skip line."""
    return text if len(text) <= limit else text[: limit - 3] + "..."

"""`Once`, the frozen configuration, and the decorator it applies.

The decorated function is one of two small wrappers (plain or coroutine)
around the `Runner`'s per-call path (see `._runner`): recorded, print the
skip line and return None; not recorded, run, and only after a normal
return record the key.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
import threading
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, ParamSpec, TypeVar, overload

import attrs

from . import _explain
from ._codec import KeyCodec
from ._config import Retry, structure, unstructure
from ._keypaths import check_nesting
from ._runner import Runner
from .backends import describe
from .backends._columns import key_problem
from .backends._registry import entry

__all__ = ["Once", "once"]

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_STORE = "_stet_store.csv"


def _names(key: Sequence[str] | str | None, setting: str) -> tuple[str, ...] | None:
    if key is None:
        return None
    if isinstance(key, str):
        key = (key,)
    try:
        names = tuple(key)
    except TypeError:
        raise TypeError(
            f"{setting}= takes a list of parameter names (or dotted paths) or None, got {key!r}"
        ) from None
    for name in names:
        if not isinstance(name, str):
            raise TypeError(
                f"{setting} names must be strings, got {name!r} ({type(name).__name__})"
            )
        problem = key_problem(name)
        if problem is not None:
            raise ValueError(f"{setting} name {name!r} {problem}")
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"{setting} name {name!r} appears twice in {setting}={list(names)!r}")
        seen.add(name)
    check_nesting(names, setting)
    return names


def _to_key(key: Sequence[str] | str | None) -> tuple[str, ...] | None:
    return _names(key, "key")


def _to_exclude(exclude: Sequence[str] | str | None) -> tuple[str, ...] | None:
    names = _names(exclude, "exclude")
    return names or None  # leaving nothing out is the default


def _to_store(store: str | os.PathLike[str]) -> str:
    return os.fspath(store)


def _check_store(instance: Once, attribute: attrs.Attribute[str], value: str) -> None:
    entry(value)


def _store_repr(store: str) -> str:
    # A PostgreSQL URL may hold a password: a repr (in a log, a traceback)
    # shows it as ***.
    return repr(describe(store))


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_lease(instance: Once, attribute: attrs.Attribute[float], value: float) -> None:
    # The heartbeat waits lease / 3 between renewals: an infinite or huge
    # lease cannot be waited for and would end the thread.
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 < value <= threading.TIMEOUT_MAX
    ):
        raise ValueError(
            f"lease must be a finite, positive number of seconds (at most "
            f"{threading.TIMEOUT_MAX:g}), got {value!r}"
        )


def _check_retry(instance: Once, attribute: attrs.Attribute[Retry], value: Retry) -> None:
    if value in ("again", "never"):
        return
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return
    raise ValueError(
        f"retry must be 'again' (run a failed key again on the next call), 'never' (skip "
        f"a key that failed once) or a number of failed attempts to stop after (1 or "
        f"more), got {value!r}"
    )


@attrs.frozen(kw_only=True)
class Once:
    """How a decorated function records its finished runs.

    A frozen, reusable configuration: build it once, decorate many functions
    with it, derive variants with `attrs.evolve`. It converts to and from a
    plain dict (`to_dict`, `from_dict`) so it can live in a TOML/YAML file.

    Attributes:
        store: The store file; its extension picks the backend (``.csv``,
            ``.json``, ``.sqlite``/``.db``, ``.parquet``). Relative paths are
            resolved against the working directory of the first call. A
            ``postgresql://user@host/db?table=NAME`` URL selects a
            PostgreSQL store, for workers on many machines (its password
            is shown as ``***`` in this object's repr).
        key: Names of the parameters that identify a run, or None for all of
            them (except ``self``/``cls`` of a method). A name may be a dotted
            path into a parameter's value (``"cfg.model.lr"``): fields of
            attrs classes, dataclasses and pydantic models, keys of mappings
            and OmegaConf configs; each path is its own store column.
        exclude: The complement of ``key``: every parameter but these. A
            dotted path (``"cfg.data_dir"``) keeps ``cfg`` in the key, keyed
            by the rest of its fields. Not together with ``key``.
        name: The function's identity in the store; default its
            ``__qualname__``. Pin it when you rename the function.
        quiet: Do not print skip lines.
        claim: Claim each key before running it, so that parallel workers
            over one grid split it: a key another worker is running is
            skipped (see "Parallel workers with claims" in the docs).
        lease: Seconds a claim lives without a heartbeat; a background
            thread renews claims every ``lease / 3`` seconds. A worker that
            dies loses its keys to others after at most this long.
        codec: The `KeyCodec` that turns key values into text.
        retry: What a key that failed before does on the next call (see "See
            what failed" in the docs): ``"again"`` runs it (the default),
            ``"never"`` skips it, a number N skips it once it failed N times.
        record_interrupts: Record a call stopped by ``KeyboardInterrupt``,
            ``SystemExit`` (or another exception that is not an `Exception`)
            as a failure too; by default only an `Exception` is recorded.

    Example:
        >>> import stet, tempfile, os
        >>> ONCE = stet.Once(store=os.path.join(tempfile.mkdtemp(), "runs.csv"))
        >>> @ONCE
        ... def square(x: int) -> int:
        ...     return x * x
        >>> square(3)
        9
        >>> square(3) is None
        [stet] Skipping square(x=3)
        True
    """

    store: str = attrs.field(
        default=DEFAULT_STORE, converter=_to_store, validator=_check_store, repr=_store_repr
    )
    key: tuple[str, ...] | None = attrs.field(default=None, converter=_to_key)
    exclude: tuple[str, ...] | None = attrs.field(default=None, converter=_to_exclude)
    name: str | None = attrs.field(default=None)
    quiet: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    claim: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    lease: float = attrs.field(default=60.0, validator=_check_lease)
    codec: KeyCodec = attrs.field(
        factory=KeyCodec, validator=attrs.validators.instance_of(KeyCodec)
    )
    retry: Retry = attrs.field(default="again", validator=_check_retry)
    record_interrupts: bool = attrs.field(
        default=False, validator=attrs.validators.instance_of(bool)
    )

    @exclude.validator
    def _check_exclude(
        self, attribute: attrs.Attribute[tuple[str, ...] | None], value: tuple[str, ...] | None
    ) -> None:
        if value is not None and self.key is not None:
            raise ValueError(
                f"key={list(self.key)!r} and exclude={list(value)!r} were both given; "
                "name the parameters that identify a run with key=, or the ones that "
                "do not with exclude=, not both"
            )

    @name.validator
    def _check_name(self, attribute: attrs.Attribute[str | None], value: str | None) -> None:
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ValueError(f"name must be a non-empty string or None, got {value!r}")
        if value is not None and (not value.isprintable() or not _is_utf8(value)):
            raise ValueError(
                f"name {value!r} holds a control character (a line break, NUL...) or a "
                "lone surrogate, which a store's function column cannot hold; use "
                "printable text"
            )

    @overload
    def __call__(
        self, func: Callable[P, Coroutine[Any, Any, R]]
    ) -> Callable[P, Coroutine[Any, Any, R | None]]: ...

    @overload
    def __call__(self, func: Callable[P, R]) -> Callable[P, R | None]: ...

    def __call__(self, func: Callable[P, Any]) -> Callable[P, Any]:
        """Decorate ``func``; see the module docs for what a call does.

        Raises:
            ValueError: A key name is not a parameter of ``func``, or is
                ``*args``/``**kwargs``.
            TypeError: ``func`` is a generator function (its work happens
                while iterating, after stet would have recorded it).
        """
        runner = Runner(self, func)
        wrapper = _async_wrapper(func, runner) if inspect.iscoroutinefunction(func) else None
        if wrapper is None:
            wrapper = _wrapper(func, runner)
        _expose(wrapper, runner)
        return wrapper

    def to_dict(self) -> dict[str, object]:
        """This configuration as a plain dict (without the codec, which is code)."""
        return unstructure(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Once:
        """Build a `Once` from a plain dict, such as a table of a TOML file.

        Unknown keys are an error (a typo must not silently fall back to a
        default store).
        """
        return structure(data, cls)


def _wrapper(func: Callable[P, Any], runner: Runner) -> Callable[P, Any]:
    """The decorated function: look the key up (or claim it), run, record."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
        run = runner.begin(runner.key_texts(args, kwargs), args, kwargs)
        if run is None:
            return None
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:
            runner.abort(run, exc)
            raise
        runner.end(run)
        return result

    return wrapper


def _async_wrapper(func: Callable[P, Any], runner: Runner) -> Callable[P, Any]:
    """`_wrapper` for a coroutine function: store I/O runs in a thread.

    So the event loop never waits on a file; a key already known to be
    done needs none.
    """

    @functools.wraps(func)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
        values = runner.key_texts(args, kwargs)
        if runner.known_done(values):
            runner.report_skip(args, kwargs)
            return None
        run = await asyncio.to_thread(runner.begin, values, args, kwargs)
        if run is None:
            return None
        try:
            result = await func(*args, **kwargs)
        except BaseException as exc:
            await asyncio.to_thread(runner.abort, run, exc)
            raise
        await asyncio.to_thread(runner.end, run)
        return result

    return wrapper


def _expose(wrapper: Callable[..., Any], runner: Runner) -> None:
    """Attach the runner and the per-function helpers to a decorated function.

    Type checkers do not see these attributes; typed code calls
    ``stet.is_done(func, ...)`` and friends instead.
    """
    wrapper.__stet__ = runner  # type: ignore[attr-defined]
    wrapper.is_done = lambda *a, **k: _explain.is_done_call(runner, a, k)  # type: ignore[attr-defined]
    wrapper.forget = lambda *a, **k: _explain.forget_call(runner, a, k)  # type: ignore[attr-defined]
    wrapper.explain = lambda *a, **k: _explain.explain_call(runner, a, k)  # type: ignore[attr-defined]


@overload
def once(
    func: Callable[P, Coroutine[Any, Any, R]], /
) -> Callable[P, Coroutine[Any, Any, R | None]]: ...


@overload
def once(func: Callable[P, R], /) -> Callable[P, R | None]: ...


@overload
def once(
    *,
    store: str | os.PathLike[str] = ...,
    key: Sequence[str] | None = ...,
    exclude: Sequence[str] | None = ...,
    name: str | None = ...,
    quiet: bool = ...,
    claim: bool = ...,
    lease: float = ...,
    codec: KeyCodec = ...,
    retry: Retry = ...,
    record_interrupts: bool = ...,
) -> Once: ...


def once(func: Callable[P, Any] | None = None, /, **config: Any) -> Callable[P, Any] | Once:
    """Skip calls whose key parameters already ran to completion.

    Use it bare (``@stet.once``) for the defaults: a ``_stet_store.csv`` in
    the working directory, every parameter in the key. Or with the fields of
    `Once` as keywords: ``@stet.once(store="runs.sqlite", key=["alpha"])``.

    Returns:
        The decorated function (bare use), or a `Once` to apply.

    Example:
        >>> import stet, tempfile, os
        >>> store = os.path.join(tempfile.mkdtemp(), "runs.json")
        >>> @stet.once(store=store, key=["alpha"])
        ... def fit(alpha: float, verbose: bool = False) -> float:
        ...     return alpha * 2
        >>> fit(0.5), fit(0.5, verbose=True)
        [stet] Skipping fit(alpha=0.5)
        (1.0, None)
    """
    if func is None:
        return Once(**config)
    if config:
        raise TypeError("once() takes either a function or keyword settings, not both")
    if not callable(func):
        raise TypeError(
            f"once() takes a function, got {func!r}; for settings use keywords: "
            "@stet.once(store=..., key=[...])"
        )
    return Once()(func)

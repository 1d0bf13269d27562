"""`Once`, the frozen configuration, and the decorator it applies.

A call of a decorated function goes top to bottom: bind the arguments
(defaults applied), encode the key parameters with the codec, ask the store.
Recorded: print the skip line and return None. Not recorded: run, and only
after a normal return record the key.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import inspect
import os
import textwrap
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, ParamSpec, TypeVar, overload

import attrs
import numpy as np

from ._codec import KeyCodec
from ._report import quiet_by_environment, reporter
from .backends import backend_class, get_backend
from .backends._base import Table, pack
from .backends._claims import Claim, describe_owner
from .backends._columns import check_key_columns
from .backends._postgres import describe as describe_url
from .backends._postgres import is_url
from .exceptions import KeyEncodingError, StoreError

__all__ = ["Once", "once"]

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_STORE = "_stet_store.csv"


def _to_key(key: Sequence[str] | str | None) -> tuple[str, ...] | None:
    if key is None:
        return None
    if isinstance(key, str):
        key = (key,)
    try:
        names = tuple(key)
    except TypeError:
        raise TypeError(f"key= takes a list of parameter names or None, got {key!r}") from None
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"key names must be strings, got {name!r} ({type(name).__name__})")
        if not name.isidentifier():
            raise ValueError(f"key name {name!r} is not a Python identifier")
        if name.startswith("_stet_"):
            raise ValueError(f"key name {name!r} is reserved: _stet_ names are stet's columns")
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"key name {name!r} appears twice in key={list(names)!r}")
        seen.add(name)
    return names


def _to_store(store: str | os.PathLike[str]) -> str:
    return os.fspath(store)


def _check_store(instance: Once, attribute: attrs.Attribute[str], value: str) -> None:
    backend_class(value)


def _store_repr(store: str) -> str:
    # A PostgreSQL URL may hold a password: a repr (in a log, a traceback)
    # shows it as ***.
    return repr(describe_url(store) if is_url(store) else store)


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
            them (except ``self``/``cls`` of a method).
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
    name: str | None = attrs.field(default=None)
    quiet: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    claim: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    lease: float = attrs.field(default=60.0, validator=_check_lease)
    codec: KeyCodec = attrs.field(
        factory=KeyCodec, validator=attrs.validators.instance_of(KeyCodec)
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
        if self.claim:
            return _claiming_wrapper(func, runner)
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                values = runner.key_texts(args, kwargs)
                # Store I/O runs in a thread, so the event loop never waits
                # on a file; a key already known to be done needs none.
                if runner.known_done(values):
                    runner.report_skip(args, kwargs)
                    return None
                if await asyncio.to_thread(runner.skip, values, args, kwargs):
                    return None
                started = runner.start()
                result = await func(*args, **kwargs)
                await asyncio.to_thread(runner.done, values, started)
                return result

            _expose(async_wrapper, runner)
            return async_wrapper

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            values = runner.key_texts(args, kwargs)
            if runner.skip(values, args, kwargs):
                return None
            started = runner.start()
            result = func(*args, **kwargs)
            runner.done(values, started)
            return result

        _expose(wrapper, runner)
        return wrapper

    def to_dict(self) -> dict[str, object]:
        """This configuration as a plain dict (without the codec, which is code)."""
        from ._config import converter

        return converter.unstructure(self)  # type: ignore[no-any-return]

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Once:
        """Build a `Once` from a plain dict, such as a table of a TOML file.

        Unknown keys are an error (a typo must not silently fall back to a
        default store).
        """
        from ._config import structure

        return structure(data, cls)


def _claiming_wrapper(func: Callable[P, Any], runner: Runner) -> Callable[P, Any]:
    """The decorated function with ``claim=True``: claim, run, complete or release."""
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            values = runner.key_texts(args, kwargs)
            if runner.known_done(values):
                runner.report_skip(args, kwargs)
                return None
            claim = await asyncio.to_thread(runner.claim, values, args, kwargs)
            if claim is None:
                return None
            started = runner.start()
            try:
                result = await func(*args, **kwargs)
            except BaseException:
                await asyncio.to_thread(runner.release, claim)
                raise
            await asyncio.to_thread(runner.complete, claim, started)
            return result

        _expose(async_wrapper, runner)
        return async_wrapper

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
        values = runner.key_texts(args, kwargs)
        if runner.known_done(values):
            runner.report_skip(args, kwargs)
            return None
        claim = runner.claim(values, args, kwargs)
        if claim is None:
            return None
        started = runner.start()
        try:
            result = func(*args, **kwargs)
        except BaseException:
            runner.release(claim)
            raise
        runner.complete(claim, started)
        return result

    _expose(wrapper, runner)
    return wrapper


def qualname(func: Callable[..., Any]) -> str:
    """The function's qualified name (or its type's, for other callables)."""
    name = getattr(func, "__qualname__", None)
    return name if isinstance(name, str) else type(func).__qualname__


def _expose(wrapper: Callable[..., Any], runner: Runner) -> None:
    """Attach the runner and the per-function helpers to a decorated function.

    Type checkers do not see these attributes; typed code calls
    ``stet.is_done(func, ...)`` and friends instead.
    """
    from . import _explain

    wrapper.__stet__ = runner  # type: ignore[attr-defined]
    wrapper.is_done = lambda *a, **k: _explain.is_done_call(runner, a, k)  # type: ignore[attr-defined]
    wrapper.forget = lambda *a, **k: _explain.forget_call(runner, a, k)  # type: ignore[attr-defined]
    wrapper.explain = lambda *a, **k: _explain.explain_call(runner, a, k)  # type: ignore[attr-defined]


def _is_method(func: Callable[..., Any], params: list[inspect.Parameter]) -> bool:
    parts = qualname(func).split(".")
    return (
        len(parts) > 1
        and parts[-2] != "<locals>"
        and bool(params)
        and params[0].name in ("self", "cls")
    )


def key_names(func: Callable[..., Any], key: tuple[str, ...] | None) -> tuple[str, ...]:
    """The key parameters of ``func``, checked against its signature."""
    signature = inspect.signature(func)
    params = list(signature.parameters.values())
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    where = f"{qualname(func)}{signature}"
    if key is None:
        if _is_method(func, params):
            params = params[1:]
        for p in params:
            if p.kind in variadic:
                star = "*" if p.kind is inspect.Parameter.VAR_POSITIONAL else "**"
                raise ValueError(
                    f"{where} takes {star}{p.name}, which stet cannot key; name the "
                    "parameters that identify a run with key=[...]"
                )
        return tuple(p.name for p in params)
    by_name = {p.name: p for p in params}
    for name in key:
        param = by_name.get(name)
        if param is None:
            raise ValueError(f"key name {name!r} is not a parameter of {where}")
        if param.kind in variadic:
            raise ValueError(
                f"key name {name!r} is the variadic parameter of {where}; "
                "stet keys named parameters only"
            )
    return key


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
    if isinstance(value, np.generic):
        value = value.item()
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class Runner:
    """The per-function state behind a decorated function.

    Holds the checked key, the signature and (opened on first use in each
    process) the store. Pickles by configuration, so a decorated function
    shipped to a worker by cloudpickle opens its own store there.
    """

    def __init__(self, config: Once, func: Callable[..., Any]) -> None:
        if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
            raise TypeError(
                f"{qualname(func)} is a generator function; stet cannot tell when "
                "its work is done. Decorate a regular function that runs the loop"
            )
        self.config = config
        self.func = func
        self.signature = inspect.signature(func)
        self.key = key_names(func, config.key)
        check_key_columns(
            self.key, backend_class(config.store).column_limits, store=_store_repr(config.store)
        )
        self.cols = tuple(sorted(self.key))
        self.name = config.name or qualname(func)
        self.label = getattr(func, "__name__", self.name)
        self._encode = config.codec.encode
        self._table: Table | None = None
        self.code = code_hash(func)
        params = self.signature.parameters.values()
        plain = all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in params)
        # Functions of plain parameters are bound without inspect (the common
        # case, and the one a million-call sweep pays for on every call).
        self._names = tuple(p.name for p in params) if plain else None
        self._name_set = frozenset(self._names or ())
        self._defaults = {p.name: p.default for p in params if p.default is not p.empty}

    def __reduce__(self) -> tuple[type[Runner], tuple[Once, Callable[..., Any]]]:
        return (Runner, (self.config, self.func))

    @property
    def table(self) -> Table:
        table = self._table
        if table is None:
            table = get_backend(self.config.store)
            table.check_can_hold(self.cols)
            table.prefer_order(self.key)
            self._table = table
        return table

    def arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """The call's arguments by name, defaults applied (TypeError as a call would)."""
        names = self._names
        if names is not None and len(args) <= len(names):
            arguments = dict(zip(names, args, strict=False))
            for name, value in kwargs.items():
                if name in arguments or name not in self._name_set:
                    break  # a duplicate or unknown keyword: let inspect say so
                arguments[name] = value
            else:
                if len(arguments) == len(names):
                    return arguments
                missing = [n for n in names if n not in arguments]
                if all(n in self._defaults for n in missing):
                    for n in missing:
                        arguments[n] = self._defaults[n]
                    return {n: arguments[n] for n in names}
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return bound.arguments

    def key_texts(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, ...]:
        try:
            arguments = self.arguments(args, kwargs)
        except TypeError as exc:
            raise TypeError(f"{self.label}(): {exc}") from None
        return self.encode_key(arguments)

    def encode_key(self, arguments: dict[str, Any]) -> tuple[str, ...]:
        encode = self._encode
        values = []
        for col in self.cols:
            try:
                values.append(encode(arguments[col]))
            except KeyEncodingError as exc:
                raise exc.for_parameter(col) from None
        return tuple(values)

    def skip(self, values: tuple[str, ...], args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        """True (and the skip reported) if the key is recorded, looking in the store."""
        if not self.table.is_done(self.name, self.cols, pack(values)):
            return False
        self.report_skip(args, kwargs)
        return True

    def known_done(self, values: tuple[str, ...]) -> bool:
        """True if this process already knows the key is recorded (no I/O)."""
        table = self._table
        return table is not None and table.has_texts(self.name, self.cols, pack(values))

    def report_skip(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], busy: Claim | None = None
    ) -> None:
        """Report a skip: done, or (with ``busy``) running in another worker."""
        if self.config.quiet or quiet_by_environment():
            return

        def describe() -> str:
            arguments = self.arguments(args, kwargs)
            shown = ", ".join(f"{k}={display(arguments[k])}" for k in self.key)
            if busy is not None:
                return f"{self.label}({shown}): running elsewhere ({describe_owner(busy)})"
            return f"{self.label}({shown})"

        reporter.skipped(describe)

    def claim(
        self, values: tuple[str, ...], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Claim | None:
        """Claim the key for this process; None (and the skip reported) if done or busy."""
        state, claim = self.table.claim_texts(self.name, self.cols, values, self.config.lease)
        if state == "claimed":
            return claim
        self.report_skip(args, kwargs, claim)
        return None

    def release(self, claim: Claim) -> None:
        """The run raised: give the key back so that it runs again."""
        try:
            self.table.release_claim(claim)
        except StoreError as exc:  # the run's own exception matters more
            reporter.warn(
                f"[stet] Could not release the claim on {self.label}: {exc}; "
                f"it expires in at most {self.config.lease:g} s"
            )

    def complete(self, claim: Claim, started: float) -> None:
        """Record a claimed run, unless another worker took the key over meanwhile."""
        duration = time.perf_counter() - started
        if not self.table.complete_claim(claim, duration, self.code):
            shown = ", ".join(f"{c}={t}" for c, t in zip(claim.cols, claim.values, strict=True))
            reporter.warn(
                f"[stet] {self.label}({shown}) finished, but its claim had expired and "
                "was taken over by another worker, so it is not recorded here (the lease "
                f"of {self.config.lease:g} s was too short, or this process was stopped)"
            )

    def start(self) -> float:
        """A run starts: close any streak of skips; return the start time."""
        reporter.end_streak()
        return time.perf_counter()

    def done(self, values: tuple[str, ...], started: float) -> None:
        duration = time.perf_counter() - started
        self.table.add_texts(self.name, self.cols, [values], duration, self.code)


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
    name: str | None = ...,
    quiet: bool = ...,
    claim: bool = ...,
    lease: float = ...,
    codec: KeyCodec = ...,
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

"""The per-function state behind a decorated function, and the per-call path.

A call goes top to bottom: bind the arguments (defaults applied), encode the
key parameters with the codec (`Runner.key_texts`), then `Runner.begin` looks
the key up in the store (or claims it) and reports a skip; the function
runs; `Runner.end` records it, or `Runner.abort` gives its claim back.
"""

from __future__ import annotations

import inspect
import operator
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from ._codec_text import Pruned
from ._keypaths import Getter, Pruner
from ._old_keys import OldRecords
from ._report import reporter
from ._signature import code_hash, display, display_text, key_names, qualname
from .backends import describe, open_store, pack
from .backends._claims import Claim, describe_owner
from .backends._columns import check_key_columns
from .backends._failures import Failure, failure_of
from .backends._registry import entry
from .backends._schema import THIS_HOST
from .exceptions import KeyEncodingError, KeyPathError, StoreError
from .typing import ClaimingStore, FailingStore, Store

if TYPE_CHECKING:
    from ._once import Once

__all__ = ["Run", "Runner", "forget_stores", "gives_up"]


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
        #: The key's names (parameters or paths), in the order given; and
        #: for each one that is not a plain parameter, its parameter and getter.
        codec = config.codec
        registered = (lambda t: codec._encoder_for(t) is not None) if codec._encoders else None
        self.key, self.paths = key_names(func, config.key, config.exclude, registered)
        check_key_columns(self.key, entry(config.store).limits, store=repr(describe(config.store)))
        self.cols = tuple(sorted(self.key))
        self.name = config.name or qualname(func)
        self.label = getattr(func, "__name__", self.name)
        #: The columns that ``exclude=`` reaches into, and (only if there are
        #: any) the records whose texts key rules 2 gave them (`stet._old_keys`).
        self.pruned = tuple(c for c in self.cols if isinstance(self.paths.get(c, (c,))[-1], Pruner))
        self.old_records = OldRecords(self.name, self.cols) if self.pruned else None
        self._encode = config.codec.encode
        self._store: Store | None = None
        #: The store, when runs claim their keys (``claim=True``).
        self.claims: ClaimingStore | None = None
        #: The store, if it keeps failures (looked up once: a Protocol check is slow).
        self.failing: FailingStore | None = None
        _runners.add(self)
        self.code = code_hash(func)
        params = self.signature.parameters.values()
        plain = all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in params)
        # Functions of plain parameters are bound without inspect (the common
        # case, and the one a million-call sweep pays for on every call).
        self._names = tuple(p.name for p in params) if plain else None
        self._name_set = frozenset(self._names or ())
        self._defaults = {p.name: p.default for p in params if p.default is not p.empty}
        #: The call's key texts, in the order of `cols` (TypeError as a call
        #: would): specialised for this signature (see `_key_texts_for`).
        self.key_texts: Callable[[tuple[Any, ...], dict[str, Any]], tuple[str, ...]]
        self.key_texts = self._key_texts_for()

    def __reduce__(self) -> tuple[type[Runner], tuple[Once, Callable[..., Any]]]:
        return (Runner, (self.config, self.func))

    @property
    def store(self) -> Store:
        """The store, opened on first use in each process."""
        store = self._store
        if store is None:
            store = open_store(self.config.store)
            store.check_can_hold(self.cols)
            store.prefer_order(self.key)
            if self.config.claim and not isinstance(store, ClaimingStore):
                raise StoreError(
                    store.location,
                    "this store does not support claims; use claim=False, or a store "
                    "that does (every built-in store does)",
                )
            if self.config.claim:
                assert isinstance(store, ClaimingStore)
                self.claims = store
            self.failing = store if isinstance(store, FailingStore) else None
            self._store = store
        return store

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

    def _key_texts_for(self) -> Callable[[tuple[Any, ...], dict[str, Any]], tuple[str, ...]]:
        """`key_texts` for this signature: a call that passes every parameter by
        position (the common case in a sweep) is keyed straight from ``args``.

        Any other call, and a value the codec refuses, goes through the
        general binding (which raises the errors a call would, naming the
        parameter).
        """
        names = self._names
        general = self._key_texts
        if names is None:
            return general
        count = len(names)
        encode = self._encode
        if self.paths:
            return self._path_key_texts(names)
        positions = [names.index(col) for col in self.cols]

        # One closure per key width: a tuple display is several times
        # cheaper than building the tuple from an iterator.
        if len(positions) == 1:
            (p,) = positions

            def key_texts(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, ...]:
                if kwargs or len(args) != count:
                    return general(args, kwargs)
                try:
                    return (encode(args[p]),)
                except KeyEncodingError:
                    return general(args, kwargs)

        elif len(positions) == 2:
            p, q = positions

            def key_texts(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, ...]:
                if kwargs or len(args) != count:
                    return general(args, kwargs)
                try:
                    return (encode(args[p]), encode(args[q]))
                except KeyEncodingError:
                    return general(args, kwargs)

        else:

            def key_texts(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, ...]:
                if kwargs or len(args) != count:
                    return general(args, kwargs)
                try:
                    return tuple([encode(args[i]) for i in positions])
                except KeyEncodingError:
                    return general(args, kwargs)

        return key_texts

    def _path_key_texts(
        self, names: tuple[str, ...]
    ) -> Callable[[tuple[Any, ...], dict[str, Any]], tuple[str, ...]]:
        """`key_texts` for a key with paths: each column's value fetched from ``args``."""
        general = self._key_texts
        count = len(names)
        encode = self._encode
        fetchers: list[Callable[[tuple[Any, ...]], Any]] = []
        for col in self.cols:
            path = self.paths.get(col)
            if path is None:
                fetchers.append(operator.itemgetter(names.index(col)))
            else:
                fetchers.append(_fetcher(names.index(path[0]), path[1]))

        def key_texts(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, ...]:
            if kwargs or len(args) != count:
                return general(args, kwargs)
            try:
                return tuple([encode(fetch(args)) for fetch in fetchers])
            except Exception:  # the general path raises the error, naming the call
                return general(args, kwargs)

        return key_texts

    def value_of(self, arguments: dict[str, Any], name: str) -> Any:
        """The value of the key column ``name`` (a parameter or a path) in a call's arguments.

        Raises:
            KeyPathError: The value has no such path.
        """
        path = self.paths.get(name)
        if path is None:
            return arguments[name]
        return path[1](arguments[path[0]])

    def call_text(self, arguments: dict[str, Any]) -> str:
        """``train(cfg=Config(...), seed=3)``: a call for messages.

        Only the key's parameters are shown: the others (a token, a
        logger) are none of the key's business and may not belong in a log.
        """
        keyed = {self.paths[c][0] if c in self.paths else c for c in self.cols}
        shown = ", ".join(f"{k}={display(v)}" for k, v in arguments.items() if k in keyed)
        return f"{self.label}({shown})"

    def _key_texts(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, ...]:
        try:
            arguments = self.arguments(args, kwargs)
        except TypeError as exc:
            raise TypeError(f"{self.label}(): {exc}") from None
        return self.encode_key(arguments)

    def encode_key(self, arguments: dict[str, Any]) -> tuple[str, ...]:
        """The key texts of a call's arguments (by parameter name, defaults applied)."""
        try:
            values = {col: self.value_of(arguments, col) for col in self.cols}
        except KeyPathError as exc:
            raise exc.for_call(self.call_text(arguments)) from None
        return self.encode_columns(values)

    def encode_columns(self, values: dict[str, Any]) -> tuple[str, ...]:
        """The key texts of the key columns' values (by column name)."""
        encode = self._encode
        texts = []
        for col in self.cols:
            try:
                texts.append(encode(values[col]))
            except KeyEncodingError as exc:
                raise exc.for_parameter(col) from None
        return tuple(texts)

    def begin(
        self, values: tuple[str, ...], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Run | None:
        """Before a call: None (the skip reported) if the key is done or claimed elsewhere.

        Otherwise the run starts: with ``claim=True`` this process holds the
        key's claim.
        """
        store = self._store
        if store is None:
            store = self.store
        key = pack(values)
        if store.knows(self.name, self.cols, key):  # no I/O: the common skip
            self.report_skip(args, kwargs)
            return None
        claim = None
        earlier = None
        if self.config.retry != "again":
            earlier = self._failures_of(values)
            if self._given_up(earlier):
                self.report_skip(args, kwargs, failed=earlier)
                return None
        if self.claims is None:
            if store.is_done(self.name, self.cols, key) or (
                self.old_records is not None
                and self.done_before(store, self.arguments(args, kwargs), values, fresh=True)
            ):
                self.report_skip(args, kwargs)
                return None
        else:
            if self.old_records is not None and self.done_before(
                store, self.arguments(args, kwargs), values, fresh=False
            ):
                self.report_skip(args, kwargs)
                return None
            state, claim = self.claims.claim(self.name, self.cols, values, self.config.lease)
            if state != "claimed":
                self.report_skip(args, kwargs, claim)
                return None
        reporter.end_streak()
        failed = None if earlier is None else len(earlier)
        return Run(values, claim, time.perf_counter(), failed, self.claims)

    def old_key(self, values: dict[str, Any], texts: tuple[str, ...]) -> tuple[str, ...] | None:
        """The key texts key rules 2 gave these column values, if they are not ``texts``.

        They differ only where a pruned column holds a class value (rules 2
        keyed it as a mapping); ``values`` holds at least the pruned columns.
        """
        old = list(texts)
        for col in self.pruned:
            value = values[col]
            if isinstance(value, Pruned):
                old[self.cols.index(col)] = self._encode(value.as_mapping())
        found = tuple(old)
        return None if found == texts else found

    def done_before(
        self, store: Store, arguments: dict[str, Any], texts: tuple[str, ...], *, fresh: bool
    ) -> bool:
        """True if the call with these key texts was recorded under key rules 2 or older.

        ``fresh``: the store was refreshed just before (see `OldRecords.holds`).
        """
        old_records = self.old_records
        if old_records is None:
            return False
        old = self.old_key({c: self.value_of(arguments, c) for c in self.pruned}, texts)
        return old is not None and old_records.holds(store, old, fresh=fresh)

    def _failures_of(self, values: tuple[str, ...]) -> list[Failure]:
        """The key's failures recorded so far (none for a store that keeps none)."""
        store = self.failing
        return [] if store is None else store.failures_of(self.name, self.cols, values)

    def _given_up(self, failures: list[Failure]) -> bool:
        return gives_up(self.config.retry, len(failures))

    def end(self, run: Run) -> None:
        """After a normal return: record the run (complete its claim)."""
        duration = time.perf_counter() - run.started
        claim = run.claim
        if claim is None:
            self.store.add(self.name, self.cols, [run.values], duration=duration, code=self.code)
            return
        assert run.claims is not None
        if not run.claims.complete(claim, duration=duration, code=self.code):
            shown = ", ".join(f"{c}={t}" for c, t in zip(claim.cols, claim.values, strict=True))
            reporter.warn(
                f"[stet] {self.label}({shown}) finished, but its claim had expired and "
                "was taken over by another worker, so it is not recorded here (the lease "
                f"of {self.config.lease:g} s was too short, or this process was stopped)"
            )

    def abort(self, run: Run, exc: BaseException | None = None) -> None:
        """The call raised: a failure is recorded beside the store, never a record.

        Then a claimed key is given back, so that it may run again (the
        failure written first, so a worker that claims it next sees it).
        """
        if exc is not None and (isinstance(exc, Exception) or self.config.record_interrupts):
            self._record_failure(run, exc)
        if run.claim is None:
            return
        assert run.claims is not None
        try:
            run.claims.release(run.claim)
        except StoreError as exc:  # the run's own exception matters more
            reporter.warn(
                f"[stet] Could not release the claim on {self.label}: {exc}; "
                f"it expires in at most {self.config.lease:g} s"
            )

    def _record_failure(self, run: Run, exc: BaseException) -> None:
        duration = time.perf_counter() - run.started
        store = self.failing
        if store is None:
            return
        try:
            before = run.failed_before
            if before is None:  # retry="again" did not look before the run: look now
                before = len(store.failures_of(self.name, self.cols, run.values))
            store.add_failure(
                failure_of(
                    exc,
                    self.name,
                    self.cols,
                    run.values,
                    host=THIS_HOST,
                    duration=duration,
                    attempt=before + 1,
                )
            )
        except Exception as problem:  # the run's own exception matters more
            reporter.warn(f"[stet] Could not record the failure of {self.label}: {problem}")

    def known_done(self, values: tuple[str, ...]) -> bool:
        """True if this process already knows the key is recorded (no I/O)."""
        store = self._store
        return store is not None and store.knows(self.name, self.cols, pack(values))

    def report_skip(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        busy: Claim | None = None,
        *,
        failed: list[Failure] | None = None,
    ) -> None:
        """Report a skip: done, (with ``busy``) running in another worker, or given up."""
        if not self.config.quiet and reporter.skipped():
            reporter.show_skip(self._describe(args, kwargs, busy, failed))

    def _describe(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        busy: Claim | None,
        failed: list[Failure] | None = None,
    ) -> str:
        """``run(alpha=0.1, seed=3)``, and where it runs if another worker has it."""
        arguments = self.arguments(args, kwargs)
        shown = ", ".join(f"{k}={display(self.value_of(arguments, k))}" for k in self.key)
        if failed:
            times = "once" if len(failed) == 1 else f"{len(failed)} times"
            last = failed[-1].summary.splitlines()[0] if failed[-1].summary else ""
            return f"{self.label}({shown}): failed {times}: {display_text(last)}"
        if busy is not None:
            return f"{self.label}({shown}): running elsewhere ({describe_owner(busy)})"
        return f"{self.label}({shown})"

    def forget_store(self) -> None:
        """Open the store anew on the next call (a relative path from the new working directory)."""
        self._store = None
        self.claims = None
        self.failing = None


def _fetcher(position: int, get: Getter) -> Callable[[tuple[Any, ...]], Any]:
    return lambda args: get(args[position])


#: Every runner alive, so that `stet.testing.fresh_process` can reset them.
_runners: weakref.WeakSet[Runner] = weakref.WeakSet()


def forget_stores() -> None:
    """Make every decorated function open its store anew on its next call."""
    for runner in list(_runners):
        runner.forget_store()


def gives_up(retry: str | int, failed: int) -> bool:
    """True if ``Once(retry=retry)`` runs a key that failed ``failed`` times no more."""
    limit = 1 if retry == "never" else retry
    return isinstance(limit, int) and failed >= limit


@attrs.frozen
class Run:
    """A call that runs: its key texts, its claim (``claim=True``), when it started.

    ``failed_before`` is how many failures of the key were recorded when it
    started, if `Runner.begin` looked (a ``retry`` other than "again").
    ``claims`` is the store that holds the claim: the run completes or gives
    it back there, even if the runner let go of its store meanwhile
    (`stet.testing.fresh_process` in another thread).
    """

    values: tuple[str, ...]
    claim: Claim | None
    started: float
    failed_before: int | None = None
    claims: ClaimingStore | None = None

"""Why did a call run when it was expected to be skipped?

`explain` finds the records of a function nearest to a call's key and says
which parameters differ and how: ``alpha: 0.30000000000000004 (float) here,
0.3 recorded``, or a parameter that older records lack.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from ._codec import KeyCodec
from ._codec_text import Pruned
from ._lazy import np, pa
from ._lazy import pc as _pc
from ._old_keys import OLD_VERSIONS
from ._old_texts import old_keys, old_rows
from ._runner import Runner
from ._signature import display
from .backends import pack
from .backends._schema import CODEC, TIMESTAMP, identity, is_meta
from .backends._table import WholeStore, whole_store
from .typing import Record, Store

#: pyarrow.compute, untyped here: its stubs' overloads do not cover the mix of
#: chunked arrays, arrays and Python scalars these whole-column steps pass.
pc: Any = _pc

__all__ = [
    "Difference",
    "Explanation",
    "explain",
    "explain_texts",
    "forget",
    "is_done",
    "recorded_before",
]


@attrs.frozen
class Difference:
    """One parameter in which a call differs from the nearest record.

    Attributes:
        parameter: The parameter's name.
        here: The call's value as key text, or None if the call has no
            such key parameter (the record has an extra one).
        recorded: The record's key text, or None if the record lacks the
            parameter (for example a record made before it joined the key).
        here_type: The type of the call's value, when known.
        here_shown: The call's value as skip lines show it (its repr).
        recorded_shown: The record's value as skip lines show it.
    """

    parameter: str
    here: str | None
    recorded: str | None
    here_type: str = ""
    here_shown: str | None = None
    recorded_shown: str | None = None

    def __str__(self) -> str:
        here = self.here_shown or self.here
        here = "absent" if here is None else here
        if self.here_type:
            here += f" ({self.here_type})"
        if self.recorded is None:
            return f"{self.parameter}: {here} here, missing from the record"
        return f"{self.parameter}: {here} here, {self.recorded_shown or self.recorded} recorded"


@attrs.frozen
class Explanation:
    """Whether a call's key is recorded and, if not, what the nearest record differs in.

    Attributes:
        call: The call as shown in messages, ``run(alpha=0.1, seed=3)``.
        done: True if the key is recorded (the call would be skipped).
        records: How many records the function has in the store.
        differences: The differences from the nearest record (empty when
            done, or when there is no record at all).
        recorded_at: When the matching record was made, if done.
    """

    call: str
    done: bool
    records: int
    differences: tuple[Difference, ...] = ()
    recorded_at: str | None = None

    def __str__(self) -> str:
        if self.done:
            return f"[stet] {self.call} is recorded (finished {self.recorded_at}): it is skipped"
        if not self.records:
            return f"[stet] {self.call} has no records in this store yet: it runs"
        count = len(self.differences)
        lines = [
            f"[stet] {self.call} is not recorded: the nearest of {self.records} records "
            f"differs in {count} parameter{'s' if count != 1 else ''}:"
        ]
        lines += [f"[stet]   {d}" for d in self.differences]
        return "\n".join(lines)


def explain_texts(
    table: Store | WholeStore,
    function: str,
    wanted: dict[str, str],
    call: str,
    types: dict[str, str] | None = None,
    codec: KeyCodec | None = None,
) -> Explanation:
    """The explanation for a key given as texts (as the store writes them).

    ``table`` is the store, or the `WholeStore` already read from it.

    The nearest record differs in the fewest parameters; among those, the
    one whose numbers are numerically nearest (``0.30000000000000004`` is
    nearer to ``0.3`` than ``0.1`` is).
    """
    types = types or {}
    decode = (codec or KeyCodec()).decode
    whole = table if isinstance(table, WholeStore) else whole_store(table)
    rows = whole.rows_of([function, ""]).to_numpy(zero_copy_only=False)
    records = int(rows.sum())
    # How many parameters each record differs in, column by column.
    apart = np.zeros(len(whole), dtype=np.int64)
    for name, text in wanted.items():
        same = pc.fill_null(pc.equal(whole.column(name), text), False)
        apart += ~same.to_numpy(zero_copy_only=False)
    for name in whole.keys:
        if name not in wanted:
            apart += whole.column(name).is_valid().to_numpy(zero_copy_only=False)
    best: list[Difference] | None = None
    best_score = (0, 0.0)
    if records:
        exact = rows & (apart == 0)
        if exact.any():
            first = int(np.argmax(exact))
            return Explanation(call, True, 1, (), whole.column(TIMESTAMP)[first].as_py())
        fewest = rows & (apart == apart[rows].min())
        # The nearest among those: each distinct key once, in order of its first record.
        distinct = whole.grouped(pa.array(fewest)).column("__row_min").to_numpy()
        for row in whole.records(sorted(distinct.tolist())):
            recorded = {name: text for name, text in row.items() if not is_meta(name)}
            differences = [
                Difference(name, text, recorded.get(name), types.get(name, ""))
                for name, text in wanted.items()
                if recorded.get(name) != text
            ]
            differences += [
                Difference(name, None, text)
                for name, text in sorted(recorded.items())
                if name not in wanted
            ]
            score = (len(differences), sum(_distance(d.here, d.recorded) for d in differences))
            if best is None or score < best_score:
                best, best_score = differences, score
    shown = tuple(
        attrs.evolve(
            d, here_shown=_shown(decode, d.here), recorded_shown=_shown(decode, d.recorded)
        )
        for d in best or ()
    )
    return Explanation(call, False, records, shown)


def recorded_before(whole: WholeStore, function: str, wanted: dict[str, str]) -> str | None:
    """When the key ``wanted`` was recorded as key rules 2 wrote it, if it was.

    What a function that excludes fields of a class value finds (see
    `stet._old_texts`): only a record written under rules 2 or older, of
    exactly these key columns, holding a class value's text as it was then.
    """
    variants = old_keys(wanted)
    if not variants:
        return None
    rows = whole.rows_of([function, ""]).to_numpy(zero_copy_only=False)
    rows &= old_rows(whole.column(CODEC))
    for name in whole.keys:
        if name not in wanted:
            rows &= whole.column(name).is_null().to_numpy(zero_copy_only=False)
    for variant in variants:
        same = rows.copy()
        for name, text in variant.items():
            same &= pc.fill_null(pc.equal(whole.column(name), text), False).to_numpy(
                zero_copy_only=False
            )
        if same.any():
            return str(whole.column(TIMESTAMP)[int(np.argmax(same))].as_py())
    return None


#: How far apart two differing values are when they are not both numbers.
_APART = float("inf")


def _distance(here: str | None, recorded: str | None) -> float:
    """How far apart two key texts are: numerically for numbers."""
    if here is None or recorded is None:
        return _APART
    try:
        gap = abs(float(here) - float(recorded))
    except ValueError:  # not numbers (a tagged string never reads as one)
        return _APART
    return gap if gap == gap else _APART  # nan


def _shown(decode: Callable[[str], object], text: str | None) -> str | None:
    """A key text as skip lines show the value (its repr)."""
    if text is None:
        return None
    try:
        return display(decode(text))
    except ValueError:
        return text


def _runner(func: Callable[..., Any]) -> Runner:
    runner = getattr(func, "__stet__", None)
    if not isinstance(runner, Runner):
        raise TypeError(f"needs a function decorated with @stet.once, got {func!r}")
    return runner


def explain(func: Callable[..., Any], /, *args: Any, **params: Any) -> Explanation:
    """Say whether a call of ``func`` would be skipped, and if not, why.

    Compares the call's key with the function's records and reports the
    nearest: which parameters differ, their values here and in the record
    (``seed: 3.5 (float) here, 3 recorded``), and parameters that older
    records lack. Nothing runs. Also available as ``func.explain(...)``.

    Args:
        func: A function decorated with `stet.once`.
        *args: The call's arguments, as you would pass them.
        **params: The call's keyword arguments.

    Returns:
        An `Explanation`; ``print`` it for the message.

    Example:
        >>> import stet, tempfile, os
        >>> @stet.once(store=os.path.join(tempfile.mkdtemp(), "runs.csv"), quiet=True)
        ... def run(alpha: float, seed: int) -> None: ...
        >>> run(0.3, 3)
        >>> print(stet.explain(run, 0.1 + 0.2, 3))  # doctest: +NORMALIZE_WHITESPACE
        [stet] run(alpha=0.30000000000000004, seed=3) is not recorded: the nearest
        of 1 records differs in 1 parameter:
        [stet]   alpha: 0.30000000000000004 (float) here, 0.3 recorded
    """
    return explain_call(_runner(func), args, params)


def is_done(func: Callable[..., Any], /, *args: Any, **params: Any) -> bool:
    """True if a call of ``func`` with these arguments is recorded (it would be skipped).

    Nothing runs and nothing is written, so a store that can only be read
    (a read-only mount, another user's files) answers too. Also available as
    ``func.is_done(...)``.
    """
    return is_done_call(_runner(func), args, params)


def forget(func: Callable[..., Any], /, *args: Any, **params: Any) -> int:
    """Remove the records of a call of ``func``, so that it runs again.

    Removes the function's record of that key and any record of it without
    a function (those count for every function with the same key columns).
    Also available as ``func.forget(...)``.

    Returns:
        How many records were removed.
    """
    return forget_call(_runner(func), args, params)


def explain_call(runner: Runner, args: tuple[Any, ...], params: dict[str, Any]) -> Explanation:
    arguments = runner.arguments(args, params)
    key = runner.encode_key(arguments)
    codec = runner.config.codec
    values = {name: runner.value_of(arguments, name) for name in runner.cols}
    if runner.done_before(runner.store, arguments, key, fresh=False):
        key = runner.old_key(values, key) or key  # the record an older stet wrote
    texts = dict(zip(runner.cols, key, strict=True))
    types = {name: _type_name(value) for name, value in values.items()}
    shown = ", ".join(f"{name}={display(values[name])}" for name in runner.key)
    call = f"{runner.label}({shown})"
    return explain_texts(runner.store, runner.name, texts, call, types, codec)


def is_done_call(runner: Runner, args: tuple[Any, ...], params: dict[str, Any]) -> bool:
    arguments = runner.arguments(args, params)
    texts = runner.encode_key(arguments)
    key = pack(texts)
    store = runner.store
    # A question, not a run about to start: `Store.is_done` would also check
    # that a record could be written (a lock, a writable folder), which a
    # store that can only be read fails.
    if store.knows(runner.name, runner.cols, key):
        return True
    store.refresh()
    return store.knows(runner.name, runner.cols, key) or runner.done_before(
        store, arguments, texts, fresh=True
    )


def forget_call(runner: Runner, args: tuple[Any, ...], params: dict[str, Any]) -> int:
    arguments = runner.arguments(args, params)
    texts = runner.encode_key(arguments)
    values = {name: runner.value_of(arguments, name) for name in runner.pruned}
    old = runner.old_key(values, texts) if runner.pruned else None
    store = runner.store

    def doomed(record: Record) -> bool:
        function, cols, held = identity(record, store.location)
        if function not in (runner.name, "") or cols != runner.cols:
            return False
        return held == texts or (held == old and record.get(CODEC) in OLD_VERSIONS)

    return store.delete(doomed)


def _type_name(value: object) -> str:
    """The type of a key column's value, as explanations show it (a pruned one's class)."""
    if isinstance(value, Pruned):
        return value.name or "dict"
    return type(value).__name__

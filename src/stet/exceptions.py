"""The errors stet raises.

Every error derives from `StetError`, and each also inherits the built-in
exception it is a kind of, so code that already catches `TypeError` or
`OSError` keeps working. Errors carry their facts as attributes and survive
pickling, so a failure in a worker process reaches the parent intact.
"""

from __future__ import annotations

__all__ = [
    "KeyEncodingError",
    "KeyPathError",
    "MissingDependencyError",
    "ShardError",
    "StetError",
    "StoreError",
]


class StetError(Exception):
    """Base class of every error stet raises on purpose."""


class KeyEncodingError(StetError, TypeError):
    """A key value that the codec cannot turn into a canonical key.

    Raised before the decorated function runs, so nothing is executed for a
    call whose key cannot be recorded.

    Attributes:
        value_type: Name of the offending value's type.
        parameter: The parameter whose value it is, when known.
        where: Position inside a nested value (for example ``"[2]['lr']"``),
            or ``""`` for the value itself.
        reason: What is wrong, when it is more than an unsupported type.
    """

    def __init__(
        self,
        value_type: str,
        parameter: str | None = None,
        where: str = "",
        reason: str = "",
    ) -> None:
        self.value_type = value_type
        self.parameter = parameter
        self.where = where
        self.reason = reason
        super().__init__(self._message())

    def _message(self) -> str:
        subject = f"parameter {self.parameter!r}" if self.parameter is not None else "value"
        if self.where:
            subject += f" (at {self.where})"
        if self.reason:
            return f"{subject} cannot be used as a key: {self.reason}"
        return (
            f"{subject} has type {self.value_type}, which stet cannot key; "
            "leave it out of key= or register an encoder with "
            f"KeyCodec().register({self.value_type}, to_keyable) that returns "
            "numbers, strings, tuples or dicts"
        )

    def for_parameter(self, parameter: str) -> KeyEncodingError:
        """Return the same error, naming the parameter the value belongs to."""
        return KeyEncodingError(self.value_type, parameter, self.where, self.reason)

    def __reduce__(self) -> tuple[type[KeyEncodingError], tuple[str, str | None, str, str]]:
        return (type(self), (self.value_type, self.parameter, self.where, self.reason))


class KeyPathError(StetError, LookupError):
    """A key path (``key=["cfg.model.lr"]``) that a call's value does not have.

    Raised before the decorated function runs, so nothing is executed for a
    call whose key cannot be made.

    Attributes:
        path: The key path, as written in ``key=`` or ``exclude=``.
        reason: Where the path stops and what is there.
        call: The call, as ``train(cfg=..., seed=3)``, when known.
    """

    def __init__(self, path: str, reason: str, call: str = "") -> None:
        self.path = path
        self.reason = reason
        self.call = call
        super().__init__(self._message())

    def _message(self) -> str:
        of = f" in the call {self.call}" if self.call else ""
        return (
            f"key path {self.path!r}{of}: {self.reason}; fix the path in key= or "
            "exclude=, or pass a value that has it"
        )

    def for_call(self, call: str) -> KeyPathError:
        """Return the same error, naming the call."""
        return KeyPathError(self.path, self.reason, call)

    def __reduce__(self) -> tuple[type[KeyPathError], tuple[str, str, str]]:
        return (type(self), (self.path, self.reason, self.call))


class StoreError(StetError, OSError):
    """A store that cannot be read or written.

    stet never treats a store it cannot understand as empty (that would
    silently re-run a whole sweep) and never overwrites it.

    Attributes:
        path: The store's file or a password-free URL.
        problem: What is wrong and, where possible, what to do.
    """

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"stet store {path}: {problem}")

    def __str__(self) -> str:
        return f"stet store {self.path}: {self.problem}"

    def __reduce__(self) -> tuple[type[StoreError], tuple[str, str]]:
        return (type(self), (self.path, self.problem))


class MissingDependencyError(StetError, ImportError):
    """An optional dependency that a feature needs is not installed.

    Attributes:
        package: The package to install.
        extra: stet's extra that brings it (``pip install "stet[EXTRA]"``).
        feature: What needs it.
    """

    def __init__(self, package: str, extra: str, feature: str) -> None:
        self.package = package
        self.extra = extra
        self.feature = feature
        super().__init__(
            f"{feature} needs {package}, which is not installed: "
            f'pip install "stet[{extra}]" (or pip install {package})',
            name=package,
        )

    def __reduce__(self) -> tuple[type[MissingDependencyError], tuple[str, str, str]]:
        return (type(self), (self.package, self.extra, self.feature))


class ShardError(StetError, ValueError):
    """An array task's share that cannot be told (`stet.shard`).

    No index or task count was given or found in the environment, or the
    values found disagree.

    Attributes:
        reason: What is wrong and what to set.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)

    def __reduce__(self) -> tuple[type[ShardError], tuple[str]]:
        return (type(self), (self.reason,))

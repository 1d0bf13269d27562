"""Which store opens a path or URL: the registry, and the stores open in this process.

A store is registered under a file extension (``".csv"``, a path's
suffix, for a file or a directory) or a URL scheme (``"postgresql://"``).
Every process opens each store once: the decorator, `stet.status` and the
backend classes all share it, so a record made through one is seen at once
by the others.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

import attrs

from ..typing import ClaimingStore, Store, StoreFactory
from ._backend import StoreBackend
from ._claims import Claim, ClaimId
from ._clock import SYSTEM_CLOCK, Clock
from ._columns import NO_LIMITS, ColumnLimits
from ._files import real_path

__all__ = [
    "claims_in",
    "describe",
    "entry",
    "forget_open",
    "get_backend",
    "is_url",
    "new_store",
    "open_store",
    "register",
    "registered",
]


def _check_nothing(location: str) -> None:
    pass


def _as_given(location: str) -> str:
    return location


@attrs.frozen
class Entry:
    """How one kind of store is opened.

    Attributes:
        name: The extension (``".csv"``) or URL scheme (``"postgresql://"``).
        factory: Opens the store (a path made absolute, or the URL as given).
        backend: The value-level class `get_backend` returns for it.
        check: Raises `ValueError` for a location this store cannot open
            (a malformed URL), before anything runs.
        describe: The location as messages show it (without a password).
        limits: What the store cannot hold in column names, known before
            it is opened (a decorated function's key is checked at once).
        directory: The store is a folder (the shared-directory store), not a file.
    """

    name: str
    factory: StoreFactory
    backend: type[StoreBackend]
    check: Callable[[str], None] = _check_nothing
    describe: Callable[[str], str] = _as_given
    limits: ColumnLimits = NO_LIMITS
    directory: bool = False

    @property
    def is_scheme(self) -> bool:
        return self.name.endswith("://")


_extensions: dict[str, Entry] = {}
_schemes: dict[str, Entry] = {}
_open: dict[str, tuple[Store, StoreBackend]] = {}
_open_lock = threading.Lock()


def register(
    name: str,
    factory: StoreFactory,
    *,
    backend: type[StoreBackend] = StoreBackend,
    check: Callable[[str], None] | None = None,
    describe: Callable[[str], str] | None = None,
    limits: ColumnLimits = NO_LIMITS,
    directory: bool = False,
) -> None:
    """Make stet open stores named like ``name`` with ``factory``.

    Args:
        name: A file extension with its dot (``".duckdb"``, or of several
            parts, ``".tar.gz"``; matched without regard to case, on a
            file's or a directory's name, the longest registered one
            winning), or a URL scheme with its ``://`` (``"redis://"``).
        factory: Called as ``factory(location, clock=clock)``: an absolute
            path (symbolic links kept) or the URL as given; returns a
            `stet.typing.Store` (a `stet.typing.ClaimingStore` to support
            ``Once(claim=True)``).
        backend: The class `get_backend` wraps the store in (the default
            adapter unless a named one is wanted).
        check: Raises `ValueError` for a location the store cannot open, so
            ``Once(store=...)`` fails at once rather than at the first call.
        describe: The location as messages and reprs show it; give one that
            hides a password held in a URL.
        limits: What the store cannot hold in column names beyond the
            shared rule (the same as its `Store.limits`).
        directory: The store is a folder, not a file (an extension only):
            its path may name an existing folder, never a file.

    Raises:
        ValueError: ``name`` is neither an extension nor a scheme, or is
            registered already.
    """
    if name.endswith("://") and name[:-3].replace("+", "").replace("-", "").isalnum():
        table = _schemes
        name = name.lower()
    elif name.startswith(".") and len(name) > 1 and "/" not in name and os.sep not in name:
        table = _extensions
        name = name.lower()
    else:
        raise ValueError(
            f"cannot register {name!r}: give an extension with its dot ('.duckdb') "
            "or a URL scheme with its :// ('redis://')"
        )
    if name in table:
        raise ValueError(f"{name!r} is registered already (by {table[name].factory!r})")
    table[name] = Entry(
        name, factory, backend, check or _check_nothing, describe or _as_given, limits, directory
    )


def unregister(name: str) -> None:
    """Forget a registration (for tests that register a store of their own)."""
    _schemes.pop(name.lower(), None)
    _extensions.pop(name.lower(), None)


def registered() -> list[str]:
    """The registered extensions and URL schemes, in registration order."""
    return [*_extensions, *(f"{scheme}..." for scheme in _schemes)]


def is_url(location: str) -> bool:
    """True if ``location`` starts with a registered URL scheme."""
    return _scheme_of(location) is not None


def _scheme_of(location: str) -> Entry | None:
    head, sep, _ = location.partition("://")
    if not sep:
        return None
    return _schemes.get(head.lower() + "://")


def _extension_of(path: str) -> Entry | None:
    """The registration of the longest extension the name ends with (``.tar.gz`` over ``.gz``)."""
    name = os.path.basename(path).lower()
    # A name that is only an extension (".csv") has none, as for os.path.splitext.
    held = [
        found
        for ext, found in _extensions.items()
        if name.endswith(ext) and name[: -len(ext)].strip(".")
    ]
    return max(held, key=lambda found: len(found.name), default=None)


def entry(store: str | os.PathLike[str]) -> Entry:
    """The registration that opens ``store``.

    Raises:
        ValueError: No store is registered for its extension or scheme (the
            message lists those that are), or the store's own check refused
            the location (a malformed URL).
    """
    text = os.fspath(store)
    found = _scheme_of(text) or _extension_of(text)
    if found is None:
        ext = os.path.splitext(text)[1].lower()
        raise ValueError(
            f"Unsupported store extension {ext or '(none)'!r} in {text!r}: "
            f"the supported stores are {', '.join(registered())}"
        )
    found.check(text)
    return found


def describe(store: str | os.PathLike[str]) -> str:
    """The store as messages show it (a URL's password hidden)."""
    text = os.fspath(store)
    found = _scheme_of(text)
    return found.describe(text) if found is not None else text


def open_store(store: str | os.PathLike[str]) -> Store:
    """The store at ``store``, shared by everything in this process that uses it.

    Relative paths are resolved against the current directory, and symbolic
    links are followed: a link and its target are one store.
    """
    return _opened(store)[0]


def new_store(store: str | os.PathLike[str], *, clock: Clock = SYSTEM_CLOCK) -> Store:
    """A store object of its own for ``store``, not shared (as another process opens it).

    For tools and tests: it reads the store anew, keeps its own index, and
    takes ``clock`` to time claims' leases (a fake one in tests).
    """
    found = entry(store)
    text = os.fspath(store)
    if not found.is_scheme:
        real_path(text, directory=found.directory)  # refuse a symlink loop or a FIFO
        text = os.path.abspath(text)
    return found.factory(text, clock=clock)


def get_backend(path: str | os.PathLike[str]) -> StoreBackend:
    """The store at ``path``, with the value-level methods (`stet.typing.Backend`).

    Args:
        path: A store file; its extension picks the store. Relative paths
            are resolved against the current directory, and symlinks are
            followed: a link and its target are one store. A
            ``postgresql://`` URL opens a `PostgresBackend`.

    Raises:
        ValueError: Unknown extension, or a malformed URL.
        StoreError: The path is a symlink loop, a symlink to nothing, or
            not a regular file (a directory, a FIFO).

    Example:
        >>> import tempfile, os
        >>> store = get_backend(os.path.join(tempfile.mkdtemp(), "runs.sqlite"))
        >>> type(store).__name__
        'SqliteBackend'
    """
    return _opened(path)[1]


def _opened(store: str | os.PathLike[str]) -> tuple[Store, StoreBackend]:
    found = entry(store)
    text = os.fspath(store)
    if found.is_scheme:
        given = resolved = text
    else:
        given, resolved = os.path.abspath(text), real_path(text, directory=found.directory)
    with _open_lock:
        opened = _open.get(resolved)
        if opened is None or type(opened[1]) is not found.backend:
            opened_store = found.factory(given, clock=SYSTEM_CLOCK)
            opened = _open[resolved] = (opened_store, found.backend(opened_store))
        return opened


def claims_in(store: Store) -> dict[ClaimId, Claim]:
    """The claims in progress in ``store``; none for a store without claims."""
    return store.claims() if isinstance(store, ClaimingStore) else {}


def forget_open() -> None:
    """Forget the stores open in this process: the next use reads them anew.

    What a new process would see; tests use it to read a store back "in
    another process" without starting one.
    """
    with _open_lock:
        _open.clear()

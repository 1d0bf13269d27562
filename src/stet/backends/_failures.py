"""Failed runs: what one says (`Failure`), and the log files that hold them.

A call that raises leaves a `Failure` beside the store, never in it: the
finished-runs table (and stet 0.0.x, and pandas reading the store) never
sees one. File stores keep them in ``STORE.failures.jsonl``, the
shared-directory store in ``failures/<writer>.jsonl``, one JSON object a
line (`FailureLog`); PostgreSQL in a table ``NAME_failures``.

Writing a failure takes no lock of the store's: a writer opens the log,
takes ``flock`` on the log itself (where the filesystem has it), cuts off
a half-written last line a killed writer left, appends one line and fsyncs
it. Readers take no lock: they read what grew, leave an unterminated last
line for later, and read a replaced file anew.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import stat
import traceback
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, Final

import attrs

from ..exceptions import StoreError
from ._files import atomic_write

__all__ = [
    "MESSAGE_LIMIT",
    "TRACEBACK_FRAMES",
    "TRACEBACK_LIMIT",
    "Failure",
    "FailureLog",
    "LoggedFailures",
    "exception_name",
    "failure_lines",
    "failure_of",
    "read_log",
    "redact",
]

#: Characters of an exception's message kept (the rest cut, marked "...").
MESSAGE_LIMIT: Final = 1000
#: The last frames of a traceback kept, and at most this many characters of them.
TRACEBACK_FRAMES: Final = 8
TRACEBACK_LIMIT: Final = 4000

FailureId = tuple[str, tuple[str, ...], tuple[str, ...]]


@attrs.frozen
class Failure:
    """One call that raised.

    Attributes:
        function: The decorated function's name in the store.
        cols: The key columns, sorted.
        values: Their texts (the codec's), in the order of ``cols``.
        type: The exception's class (``ValueError``, ``pkg.mod.Diverged``).
        message: Its message, cut to `MESSAGE_LIMIT` characters, passwords
            of URLs in it shown as ``***``.
        traceback: The last `TRACEBACK_FRAMES` frames, at most
            `TRACEBACK_LIMIT` characters, redacted alike.
        host: The machine it ran on.
        duration: Seconds the call ran before it raised.
        time: When it raised (ISO 8601, UTC; default now).
        attempt: 1 for a key's first failure, one more for each before it.
    """

    function: str
    cols: tuple[str, ...]
    values: tuple[str, ...]
    type: str
    message: str
    traceback: str = ""
    host: str = ""
    duration: float | None = None
    time: str = attrs.field(factory=lambda: _now())
    attempt: int = 1

    @property
    def id(self) -> FailureId:
        """Which run failed: (function, key columns, texts)."""
        return (self.function, self.cols, self.values)

    @property
    def summary(self) -> str:
        """``ValueError: the message`` (as the skip line and `stet failures` show it)."""
        return f"{self.type}: {self.message}" if self.message else self.type

    def to_json(self) -> dict[str, Any]:
        return {
            "function": self.function,
            "key": dict(zip(self.cols, self.values, strict=True)),
            "type": self.type,
            "message": self.message,
            "traceback": self.traceback,
            "host": self.host,
            "duration": self.duration,
            "time": self.time,
            "attempt": self.attempt,
        }

    @classmethod
    def from_json(cls, data: Any) -> Failure:
        """A failure from `to_json`'s dict (ValueError, TypeError or KeyError if not one)."""
        key = data["key"]
        if not isinstance(key, dict) or not all(isinstance(t, str) for t in key.values()):
            raise ValueError("key is not a dict of texts")
        cols = tuple(sorted(key))
        duration = data.get("duration")
        attempt = data.get("attempt", 1)
        if duration is not None and not isinstance(duration, int | float):
            raise ValueError("duration is not a number")
        if not isinstance(attempt, int) or isinstance(attempt, bool):
            raise ValueError("attempt is not an integer")
        texts = [data["function"], data["type"], data.get("message", "")]
        texts += [data.get("traceback", ""), data.get("host", ""), data.get("time", "")]
        if not all(isinstance(t, str) for t in texts):
            raise ValueError("a text field is not text")
        return cls(
            texts[0], cols, tuple(key[c] for c in cols), texts[1], texts[2],
            texts[3], texts[4], duration, texts[5], attempt,
        )  # fmt: skip


# -- what an exception says -------------------------------------------------------

#: ``scheme://user:PASSWORD@`` in a URL, and ``password=...`` in a conninfo string.
#: Only ASCII blanks end a password: a control or Unicode space character
#: inside one must not leave the rest of it shown.
_URL_PASSWORD: Final = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^ \t\r\n/:@]*:)[^ \t\r\n/@]*@")
_KEYWORD_PASSWORD: Final = re.compile(
    r"(\b(?:password|passwd|pwd|sslpassword)\s*=\s*)('[^']*'|\"[^\"]*\"|[^\s&;,]+)", re.IGNORECASE
)


def redact(text: str) -> str:
    """``text`` with the passwords of URLs and ``password=`` settings in it shown as ``***``.

    ``PGPASSWORD``'s value is hidden too, wherever it appears.
    """
    text = _URL_PASSWORD.sub(r"\1***@", text)
    text = _KEYWORD_PASSWORD.sub(r"\1***", text)
    secret = os.environ.get("PGPASSWORD", "")
    if len(secret) >= 4:  # a one-letter password would blank every such letter
        text = text.replace(secret, "***")
    return text


def exception_name(exc: BaseException) -> str:
    """``ValueError`` for a built-in exception, else ``module.QualName``."""
    cls = type(exc)
    module = getattr(cls, "__module__", "") or ""
    name = getattr(cls, "__qualname__", cls.__name__)
    return name if module in ("builtins", "") else f"{module}.{name}"


def _cut(text: str, limit: int, *, keep_end: bool = False) -> str:
    if len(text) <= limit:
        return text
    return "..." + text[-(limit - 3) :] if keep_end else text[: limit - 3] + "..."


def _message(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:  # a broken __str__ must not hide the run's own exception
        text = f"<{type(exc).__name__} whose str() raised>"
    return _cut(redact(text), MESSAGE_LIMIT)


def _traceback(exc: BaseException) -> str:
    try:
        lines = traceback.format_exception(exc, limit=-TRACEBACK_FRAMES, chain=False)
    except Exception:
        return ""
    return _cut(redact("".join(lines)), TRACEBACK_LIMIT, keep_end=True)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def failure_of(
    exc: BaseException,
    function: str,
    cols: tuple[str, ...],
    values: tuple[str, ...],
    *,
    host: str,
    duration: float | None,
    attempt: int,
) -> Failure:
    """The `Failure` of a call that raised ``exc`` (message and traceback bounded, redacted)."""
    now = _now()
    return Failure(
        function, cols, values, exception_name(exc), _message(exc), _traceback(exc),
        host, duration, now, attempt,
    )  # fmt: skip


# -- the log files ----------------------------------------------------------------

_O_NOFOLLOW: Final = getattr(os, "O_NOFOLLOW", 0)
_TAIL: Final = 65536


@attrs.define
class _Read:
    inode: int
    offset: int
    failures: list[Failure]


class FailureLog:
    """Failures in JSON-lines files: one file, or every ``*.jsonl`` of a folder.

    Args:
        location: The store as messages name it.
        own: The file this process appends to.
        folder: Read every ``*.jsonl`` file of this folder (the
            shared-directory store: one file per writer); None reads ``own`` only.
    """

    def __init__(self, location: str, own: Callable[[], str], folder: str | None = None) -> None:
        self.location = location
        self._own = own
        self._folder = folder
        self._read: dict[str, _Read] = {}
        self._by_id: dict[FailureId, list[Failure]] | None = None

    # -- reading --------------------------------------------------------------

    def _files(self) -> list[str]:
        if self._folder is None:
            return [self._own()]
        try:
            names = sorted(os.listdir(self._folder))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StoreError(self._folder, f"cannot be listed: {exc.strerror or exc}") from None
        return [os.path.join(self._folder, n) for n in names if n.endswith(".jsonl")]

    def refresh(self) -> None:
        """Read what the log files gained since the last look.

        A listed file gone before its read was folded by a compaction into a
        file the listing predates: the folder is listed again (up to five times).
        """
        for _ in range(5):
            files = self._files()
            for gone in set(self._read) - set(files):
                del self._read[gone]
                self._by_id = None
            for path in files:
                if self._catch_up(path):
                    self._by_id = None
            if self._folder is None or all(path in self._read for path in files):
                return

    def _catch_up(self, path: str) -> bool:
        seen = self._read.get(path)
        if seen is not None:  # the common case, a log that did not change: one stat
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                del self._read[path]
                return True
            except OSError as exc:
                raise StoreError(path, f"cannot be read: {exc.strerror or exc}") from None
            if st.st_ino == seen.inode and st.st_size == seen.offset:
                return False
        try:
            fd = os.open(path, os.O_RDONLY | _O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
        except FileNotFoundError:
            return self._read.pop(path, None) is not None
        except OSError as exc:
            raise StoreError(path, f"cannot be read: {exc.strerror or exc}") from None
        try:
            st = os.fstat(fd)
            if not _is_regular(st.st_mode):
                raise StoreError(path, "is not a regular file; move it away")
            seen = self._read.get(path)
            if seen is None or seen.inode != st.st_ino or st.st_size < seen.offset:
                seen = self._read[path] = _Read(st.st_ino, 0, [])
            elif st.st_size == seen.offset:
                return False
            data = os.pread(fd, st.st_size - seen.offset, seen.offset)
        finally:
            os.close(fd)
        end = data.rfind(b"\n") + 1  # an unterminated last line is being written
        lines = data[:end].splitlines()
        first = seen.offset
        seen.offset += end
        for number, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                seen.failures.append(Failure.from_json(json.loads(line)))
            except (ValueError, TypeError, KeyError, AttributeError):
                raise StoreError(
                    path,
                    f"holds a line that is not a stet failure (about byte {first}, "
                    f"line {number + 1} of the part read); move the file away to start "
                    "a new failure log (the store's finished runs are not affected)",
                ) from None
        return bool(lines)

    def all(self) -> list[Failure]:
        """Every failure, oldest first within each file (a fresh read).

        A folder's failure is listed once, even while a compaction that
        folded its file into another has not yet removed it.
        """
        self.refresh()
        return self._unique()

    def of(self, function: str, cols: tuple[str, ...], values: tuple[str, ...]) -> list[Failure]:
        """The failures of one run, after a look for new ones."""
        self.refresh()
        if self._by_id is None:
            by_id: dict[FailureId, list[Failure]] = {}
            for failure in self._unique():
                by_id.setdefault(failure.id, []).append(failure)
            self._by_id = by_id
        return list(self._by_id.get((function, cols, values), ()))

    def _unique(self) -> list[Failure]:
        found = [f for seen in self._read.values() for f in seen.failures]
        return list(dict.fromkeys(found)) if self._folder is not None else found

    # -- writing --------------------------------------------------------------

    def add(self, failure: Failure) -> None:
        """Append ``failure`` to this process's file, fsynced (`StoreError` if it cannot)."""
        path = self._own()
        line = json.dumps(failure.to_json(), ensure_ascii=False, separators=(",", ":")) + "\n"
        data = line.encode("utf-8", "surrogateescape")
        try:
            if self._folder is not None:
                os.makedirs(self._folder, exist_ok=True)
            with _locked_file(path) as fd:
                _cut_partial_tail(fd)
                _write_all(fd, data)
                os.fsync(fd)
        except OSError as exc:
            raise StoreError(path, f"cannot record a failure: {exc.strerror or exc}") from None

    def forget(self, doomed: Callable[[Failure], bool]) -> int:
        """Remove the failures for which ``doomed`` is true; return how many."""
        removed = 0
        for path in self._files():
            try:
                with _locked_file(path, create=False) as fd:
                    kept, gone = [], 0
                    for failure in _parse_all(path, fd):
                        if doomed(failure):
                            gone += 1
                        else:
                            kept.append(failure)
                    if gone:
                        if kept:
                            atomic_write(path, failure_lines(kept))
                        else:  # a writer waiting for the lock sees it gone, and makes it anew
                            os.unlink(path)
                    removed += gone
            except FileNotFoundError:
                continue
            except StoreError:
                raise
            except OSError as exc:
                raise StoreError(path, f"cannot be rewritten: {exc.strerror or exc}") from None
        self._read.clear()
        self._by_id = None
        return removed


def _is_regular(mode: int) -> bool:
    return stat.S_ISREG(mode)


def read_log(path: str) -> list[Failure]:
    """The failures of one log file's whole lines (none if it is gone)."""
    try:
        fd = os.open(path, os.O_RDONLY | _O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise StoreError(path, f"cannot be read: {exc.strerror or exc}") from None
    try:
        if not _is_regular(os.fstat(fd).st_mode):
            raise StoreError(path, "is not a regular file; move it away")
        return _parse_all(path, fd)
    finally:
        os.close(fd)


def failure_lines(failures: Iterable[Failure]) -> bytes:
    """Failures as a log file holds them, one JSON object a line."""
    return b"".join(
        (json.dumps(f.to_json(), ensure_ascii=False, separators=(",", ":")) + "\n").encode(
            "utf-8", "surrogateescape"
        )
        for f in failures
    )


def _parse_all(path: str, fd: int) -> list[Failure]:
    size = os.fstat(fd).st_size
    data = os.pread(fd, size, 0)
    out = []
    for line in data[: data.rfind(b"\n") + 1].splitlines():
        if line.strip():
            try:
                out.append(Failure.from_json(json.loads(line)))
            except (ValueError, TypeError, KeyError, AttributeError):
                raise StoreError(path, "holds a line that is not a stet failure") from None
    return out


@contextlib.contextmanager
def _locked_file(path: str, *, create: bool = True) -> Any:
    """``path`` open for appending under ``flock``: the file now at ``path``, not a replaced one."""
    flags = os.O_RDWR | os.O_APPEND | _O_NOFOLLOW | (os.O_CREAT if create else 0)
    while True:
        fd = os.open(path, flags | getattr(os, "O_NONBLOCK", 0), 0o666)
        try:
            if not _is_regular(os.fstat(fd).st_mode):
                raise StoreError(path, "is not a regular file; move it away")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError as exc:
                # A filesystem without locks: the shared-directory store's
                # files have one writer each, and need none.
                if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                    raise
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                yield fd
                return
        finally:
            os.close(fd)  # also drops the lock
        if not create and not os.path.lexists(path):
            raise FileNotFoundError(errno.ENOENT, "gone", path)


def _cut_partial_tail(fd: int) -> None:
    """Drop an unterminated last line (a writer killed mid-line), lock held."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    start = max(0, size - _TAIL)
    while True:
        chunk = os.pread(fd, size - start, start)
        at = chunk.rfind(b"\n")
        if at >= 0 or start == 0:
            os.ftruncate(fd, start + at + 1 if at >= 0 else 0)
            return
        start = max(0, start - _TAIL)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class LoggedFailures:
    """The `stet.typing.FailingStore` methods of a store whose failures are in a `FailureLog`.

    The store sets ``_failure_log`` in its ``__init__``.
    """

    _failure_log: FailureLog

    def add_failure(self, failure: Failure) -> None:
        self._failure_log.add(failure)

    def failures(self) -> list[Failure]:
        return self._failure_log.all()

    def failures_of(
        self, function: str, cols: tuple[str, ...], values: tuple[str, ...]
    ) -> list[Failure]:
        return self._failure_log.of(function, cols, values)

    def forget_failures(self, doomed: Callable[[Failure], bool] | None = None) -> int:
        return self._failure_log.forget(doomed or (lambda failure: True))

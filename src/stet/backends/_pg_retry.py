"""The connection to a PostgreSQL store's server, and what happens when it fails.

Every operation runs through `Connection.run`: on this process's one
connection (opened on first use, reopened when lost), tried again after a
transient failure (a dropped connection, a server restarting, a lost race)
with pauses doubling from `FIRST_PAUSE` to `MAX_PAUSE`, for at most
`retry_seconds`; any other failure is a `StoreError` at once, in the
server's words. No message shows a password.

A lost connection is logged (logger ``stet``, level INFO) as it is dropped.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, Final, TypeVar

from ..exceptions import StoreError
from ._pg_driver import psycopg
from ._pg_url import Target

__all__ = ["FIRST_PAUSE", "MAX_PAUSE", "RACES", "Connection", "Retry", "retry_seconds"]

logger: Final = logging.getLogger("stet")

#: An operation that meets a transient error (connection lost, server
#: restarting) is tried again, with pauses doubling from FIRST_PAUSE up to
#: MAX_PAUSE (each drawn between half and one and a half times that), for
#: at most `retry_seconds`.
FIRST_PAUSE: Final = 0.25
MAX_PAUSE: Final = 5.0
#: Attempts at an operation that keeps losing a race with other workers.
RACES: Final = 6

_T = TypeVar("_T")


def retry_seconds() -> float:
    """How long to keep trying an unreachable server (``STET_RETRY_SECONDS``, default 10)."""
    try:
        return max(0.0, float(os.environ.get("STET_RETRY_SECONDS", "10")))
    except ValueError:
        return 10.0


class Retry(Exception):
    """Raised inside an operation to have it run again from the start (a lost race)."""


class Connection:
    """This process's connection to one store's server, and the retry loop around it.

    Args:
        target: Where the store is.
    """

    def __init__(self, target: Target) -> None:
        self.target = target
        self.location = target.shown  # never the password
        self._conn: psycopg.Connection[Any] | None = None
        self._mutex = threading.RLock()
        # A store that is dropped (or the process exiting) closes its connection.
        self._open: list[psycopg.Connection[Any] | None] = [None]
        weakref.finalize(self, _close_quietly, self._open)

    def _connect(self) -> psycopg.Connection[Any]:
        conn = self._conn
        if conn is not None and not conn.closed:
            return conn
        options: dict[str, Any] = {"autocommit": True}
        params = psycopg.conninfo.conninfo_to_dict(self.target.conninfo)
        if "connect_timeout" not in params and "PGCONNECT_TIMEOUT" not in os.environ:
            options["connect_timeout"] = 10
        if "application_name" not in params and "PGAPPNAME" not in os.environ:
            options["application_name"] = "stet"
        conn = self._conn = psycopg.connect(self.target.conninfo, **options)
        self._open[0] = conn
        return conn

    def close(self) -> None:
        """Close the connection (the next operation opens a new one)."""
        with self._mutex:
            if self._conn is not None:
                try:
                    self._conn.close()
                finally:
                    self._conn = None

    def before_fork(self) -> None:
        # A connection must not cross a fork: a child that closed its copy
        # would end the parent's session. The parent reconnects when needed.
        self.close()

    def after_fork(self) -> None:
        # Forget (never close) whatever the parent had open: closing it here
        # would end the parent's session.
        self._conn = None
        self._open[0] = None
        self._mutex = threading.RLock()

    def error(self, problem: str) -> StoreError:
        """A `StoreError` about the store, with any password scrubbed from ``problem``."""
        return StoreError(self.location, self.target.scrub(problem))

    def run(self, what: str, op: Callable[[psycopg.Connection[Any]], _T]) -> _T:
        """Run ``op`` on the connection, retrying transient failures a few times.

        ``op`` must be safe to repeat: every statement stet sends is
        idempotent or runs in one transaction.

        Raises:
            StoreError: The server cannot be reached, or refused the
                operation; names host and database, never the password.
        """
        pause = FIRST_PAUSE
        deadline = time.monotonic() + retry_seconds()
        attempt = races = 0
        while True:
            attempt += 1
            with self._mutex:
                try:
                    return op(self._connect())
                except Retry:
                    races += 1
                    if races < RACES:
                        continue
                    raise self.error(
                        f"cannot {what}: other workers kept changing it ({races} attempts)"
                    ) from None
                except psycopg.Error as exc:
                    reason = _reason(exc)
                    connection = _connection_failure(exc)
                    if connection or (self._conn is not None and self._conn.broken):
                        self._drop_broken(reason)
                    if not _transient(exc, reason):
                        # A limit, a constraint, a refusal: trying again would
                        # give the same answer, so say at once what it was.
                        hint = "; check that the server runs and the URL is right"
                        raise self.error(
                            f"cannot {what}: {self.target.where()}: {reason}"
                            f"{hint if connection else ''}"
                        ) from None
                    wait = pause * (0.5 + random.random())
                    if time.monotonic() + wait > deadline:
                        hint = (
                            "check that the server runs and the URL is right"
                            if connection
                            else "other workers kept conflicting with it"
                        )
                        tries = f" (tried {attempt} times)" if attempt > 1 else ""
                        raise self.error(
                            f"cannot {what}: {self.target.where()}: {reason}{tries}; {hint}"
                        ) from None
            time.sleep(wait)
            pause = min(pause * 2, MAX_PAUSE)

    def _drop_broken(self, reason: str) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            logger.info(
                "[stet] %s: the connection failed (%s); the next try opens a new one",
                self.location,
                self.target.scrub(reason),
            )
            with contextlib.suppress(Exception):  # broken: nothing to tell the server
                conn.close()


#: Failures that another attempt will not cure, although psycopg reports
#: them as operational errors.
_PERMANENT: Final = (
    "authentication failed",
    "no password supplied",
    "does not exist",
    "permission denied",
    "not permitted",
    "could not translate host name",
    "invalid",
)


def _close_quietly(holder: list[Any]) -> None:
    conn, holder[0] = holder[0], None
    if conn is not None:
        with contextlib.suppress(Exception):
            conn.close()


def _reason(exc: BaseException) -> str:
    """psycopg's message in one line (its first line holds the server's words)."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


#: SQLSTATEs after which the same operation may well succeed: the server
#: is shutting down, restarting or full of connections, or the transaction
#: lost a race with another (serialization failure, deadlock).
_TRANSIENT_STATES: Final = frozenset({"57P01", "57P02", "57P03", "53300", "40001", "40P01"})


def _connection_failure(exc: BaseException) -> bool:
    """True for a failure of the connection itself, rather than of a statement."""
    state = getattr(exc, "sqlstate", None)
    if state is not None:
        return bool(state.startswith("08") or state in ("57P01", "57P02", "57P03", "53300"))
    # No SQLSTATE: libpq's own report of a connection that failed or broke.
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)


def _transient(exc: BaseException, reason: str) -> bool:
    """True if trying the operation again may succeed.

    Only a lost or refused connection and a lost race qualify; anything
    the server said about the statement (a program limit, a constraint, a
    permission) is answered the same way every time.
    """
    state = getattr(exc, "sqlstate", None)
    if state is not None:
        return bool(state.startswith("08") or state in _TRANSIENT_STATES)
    if not _connection_failure(exc):
        return False
    lowered = reason.lower()
    return not any(p in lowered for p in _PERMANENT)

"""Where a PostgreSQL store is: its URL read as libpq reads it, with passwords kept out of sight.

A store URL is ``postgresql://user[:password]@host[:port]/database[?table=NAME]``
(or ``postgres://``). `parse_url` splits it into what libpq connects with
and the records table's name, and refuses a URL that libpq and other
readers would split differently, since pieces of its password would then
show as a host, a port or a database name. `describe` is the URL as every
message and repr shows it.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Iterable
from typing import Final

import attrs

from ._pg_driver import psycopg

__all__ = ["DEFAULT_TABLE", "Target", "describe", "parse_url"]

DEFAULT_TABLE: Final = "stet_records"
_TABLE_NAME: Final = re.compile(r"[a-z_][a-z0-9_]{0,49}\Z")


@attrs.frozen(repr=False)
class Target:
    """Where a PostgreSQL store is.

    Attributes:
        conninfo: The URL libpq connects with (``table`` removed). Holds
            the password if the URL did: never shown.
        table: The records table's name.
        shown: The URL with any password replaced by ``***``.
        secrets: Every text of the URL that is or holds a password, as
            written and decoded, to scrub from error messages.
    """

    conninfo: str
    table: str
    shown: str
    secrets: tuple[str, ...]

    def __repr__(self) -> str:
        return f"Target({self.shown!r})"

    def where(self) -> str:
        """``database D on host H`` (from the URL or libpq's environment)."""
        params = psycopg.conninfo.conninfo_to_dict(self.conninfo)
        host = str(params.get("host") or os.environ.get("PGHOST") or "localhost")
        port = params.get("port") or os.environ.get("PGPORT")
        user = params.get("user") or os.environ.get("PGUSER")
        database = params.get("dbname") or os.environ.get("PGDATABASE") or user or "(default)"
        return f"database {database!s} on host {host}{f':{port}' if port else ''}"

    def scrub(self, text: str) -> str:
        """``text`` without any password in it (the URL's, or ``PGPASSWORD``)."""
        return _scrub(text, (*self.secrets, os.environ.get("PGPASSWORD", "")))


#: Connection parameters whose values are passwords.
_SECRET_PARAMETERS: Final = ("password", "sslpassword")


def _scrub(text: str, secrets: Iterable[str]) -> str:
    variants: set[str] = set()
    for secret in secrets:
        if secret:
            variants.update((secret, urllib.parse.quote(secret, safe=""), _unquote(secret)))
    for variant in sorted(variants - {""}, key=len, reverse=True):
        text = text.replace(variant, "***")
    return text


def _unquote(text: str) -> str:
    # libpq decodes %XX and nothing else ('+' stays '+', unlike a form).
    return urllib.parse.unquote(text, errors="surrogateescape")


def _ambiguous(scheme: str, found: str) -> ValueError:
    return ValueError(
        f"a {scheme}:// store URL has {found}, so libpq and the URL standard read its "
        "user name, password or host differently; it is not shown, since it may hold "
        "a password. Percent-encode these characters in the user name, password and "
        "database name: @ as %40, / as %2F, ? as %3F, # as %23, % as %25"
    )


def parse_url(url: str) -> Target:
    """Split a store URL into what libpq needs and the table name.

    The URL is read as libpq reads it: the user info ends at the first
    ``@`` (unless a ``/`` comes first), the host list at the next ``/`` or
    ``?``. A URL that other readers would split elsewhere (an unencoded
    ``@``, ``/``, ``?`` or ``#`` in a password) is refused, since parts of
    its password would appear as a host, port or database name: the only
    ``@`` may be the one that ends the user info, and no ``#`` is allowed.

    Raises:
        ValueError: The table name is not a plain lowercase SQL name, the
            URL is ambiguous, or libpq cannot parse it (the message never
            shows a password).
    """
    scheme, _, rest = url.partition("://")
    if "#" in rest:
        raise _ambiguous(scheme, "a '#'")
    stops = [i for i in (rest.find("@"), rest.find("/")) if i >= 0]
    stop = min(stops, default=len(rest))
    userinfo: str | None = None
    after = rest
    if stop < len(rest) and rest[stop] == "@":
        userinfo, after = rest[:stop], rest[stop + 1 :]
        if "?" in userinfo:
            raise _ambiguous(scheme, "a '?' before its '@'")
    ends = [i for i in (after.find("/"), after.find("?")) if i >= 0]
    end = min(ends, default=len(after))
    hosts, tail = after[:end], after[end:]
    path, has_query, query = tail.partition("?")
    user, colon, password = (userinfo or "").partition(":")
    if rest.count("@") > (0 if userinfo is None else 1):
        # An '@' that does not end the user info may end a password that
        # holds an '@', '/' or '?': whatever follows may be part of it.
        raise _ambiguous(scheme, "an '@' that does not end its user name and password")
    secrets = [password] if colon else []
    table = DEFAULT_TABLE
    kept: list[str] = []
    shown_items: list[str] = []
    for item in query.split("&") if has_query else ():
        name, _, value = item.partition("=")
        if _unquote(name) == "table":
            table = _unquote(value)
            shown_items.append(item)
            continue
        kept.append(item)
        if _unquote(name) in _SECRET_PARAMETERS:
            secrets.append(value)
            shown_items.append(f"{name}=***")
        else:
            shown_items.append(item)
    auth = "" if userinfo is None else f"{user}{':***' if colon else ''}@"
    shown_query = f"?{'&'.join(shown_items)}" if has_query else ""
    shown = f"{scheme}://{auth}{hosts}{path}{shown_query}"
    # Until libpq has read the query, a piece of it may be a piece of a
    # password (an unencoded '&' in one): messages leave it out.
    guarded = bool(secrets)  # the URL gives a password, even an empty one
    secrets = [s for s in secrets if s]
    unsure = f"{scheme}://{auth}{hosts}{path}{'?...' if has_query else ''}" if guarded else shown
    if not _TABLE_NAME.match(table):
        raise ValueError(
            f"store {unsure!r}: table={table!r} is not a table name stet uses; "
            "use up to 50 lowercase letters, digits and underscores, starting with a letter"
        )
    kept_query = f"?{'&'.join(kept)}" if kept else ""
    auth = "" if userinfo is None else f"{userinfo}@"
    conninfo = f"{scheme}://{auth}{hosts}{path}{kept_query}"
    target = Target(conninfo, table, shown, tuple(secrets))
    try:
        conninfo_to_dict = psycopg.conninfo.conninfo_to_dict
    except ImportError:
        raise ValueError(
            f"store {unsure!r} is a PostgreSQL store, which needs psycopg 3: "
            "pip install 'stet[postgres]'"
        ) from None
    try:
        params = conninfo_to_dict(conninfo)
    except Exception as exc:  # psycopg.ProgrammingError: libpq's parse error
        problem = " ".join(target.scrub(str(exc)).split())
        if guarded:  # libpq quotes a piece of the URL, which may be a piece of the password
            problem = re.sub(r'"[^"]*"', '"***"', problem)
        raise ValueError(
            f"store {unsure!r} is not a PostgreSQL URL libpq understands: {problem}"
        ) from None
    found = {str(params[n]) for n in _SECRET_PARAMETERS if params.get(n)}
    if found - {_unquote(s) for s in secrets}:
        raise _ambiguous(scheme, "a password where libpq does not expect one")
    ports = str(params.get("port") or "")
    if not all(p.isdigit() for p in ports.split(",") if p):
        # "user:secret/db" (no '@'): libpq takes the password for a port.
        raise _ambiguous(scheme, "a port that is not a number")
    return target


def describe(store: str) -> str:
    """The store URL with any password hidden (for messages about it)."""
    try:
        return parse_url(store).shown
    except ValueError:
        return "(a PostgreSQL URL)"

"""A real PostgreSQL server for the tests, in a temporary folder on 127.0.0.1.

`start` runs initdb and pg_ctl from the server binaries on this machine (as
the ``postgres`` user when the tests run as root, since PostgreSQL refuses
to run as root) and returns the server's address; `Server.stop` shuts it
down and deletes its folder.

Two roles exist: ``stet`` (no password, the tests' own) and ``secretive``
(password ``PASSWORD``, for the tests that check passwords never leak).
"""

from __future__ import annotations

import atexit
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Final

import attrs

PASSWORD: Final = "s3cret-Hunter2"


def binaries() -> Path | None:
    """The folder of initdb and pg_ctl, or None if the server is not installed."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0,
    )
    return Path(candidates[-1]).parent if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@attrs.frozen
class Server:
    bindir: Path
    folder: Path
    port: int
    user: str | None  # the account the server runs as, when not this one

    def url(self, table: str | None = None, *, user: str = "stet", password: str = "") -> str:
        auth = f"{user}:{password}" if password else user
        query = f"?table={table}" if table else ""
        return f"postgresql://{auth}@127.0.0.1:{self.port}/stet{query}"

    def _run(self, *args: str) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        # From the server's folder: the server's account may not enter the tests' cwd.
        subprocess.run(command, check=True, capture_output=True, timeout=120, cwd=self.folder)

    def restart(self) -> None:
        """Stop the server (ending every session) and start it again, same settings."""
        self._run(
            "pg_ctl",
            "restart",
            *("-D", str(self.folder / "data"), "-l", str(self.folder / "log"), "-m", "fast", "-w"),
        )

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "stop", "-D", str(self.folder / "data"), "-m", "immediate", "-w")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


#: The server of this test session, once `shared` started it (for hypothesis
#: state machines, which cannot take fixtures).
running: Server | None = None


def available() -> bool:
    """True if the PostgreSQL tests run here: the server is installed, or CI is set."""
    return binaries() is not None or bool(os.environ.get("CI"))


def shared() -> Server:
    """The one server of this test process, started on first use, stopped at exit.

    Skips the calling test where the server is not installed and ``CI`` is
    not set; in CI a missing server fails it (``.ci/run`` installs one).
    """
    global running
    if running is None:
        import pytest

        if binaries() is None:
            if os.environ.get("CI"):
                pytest.fail("CI is set but the PostgreSQL server is not installed (see .ci/run)")
            pytest.skip("PostgreSQL server binaries are not installed (apt install postgresql)")
        running = start()
        started_by = os.getpid()

        def stop() -> None:  # not in a forked child that exits normally
            if running is not None and os.getpid() == started_by:
                running.stop()

        atexit.register(stop)
    return running


_docs_tables = itertools.count()


def docs_store() -> str:
    """A fresh store URL on the shared server, for a page of the docs."""
    return shared().url(f"docs_{os.getpid()}_{next(_docs_tables)}")


def start() -> Server:
    """Start a fresh server; raises if the binaries are missing or it fails to start."""
    bindir = binaries()
    if bindir is None:
        raise FileNotFoundError("no PostgreSQL server binaries (initdb) on this machine")
    user = None
    folder = Path(tempfile.mkdtemp(prefix="stet-pg-"))
    if os.geteuid() == 0:
        user = "postgres"
        pw = pwd.getpwnam(user)
        os.chmod(folder, 0o755)
        os.chown(folder, pw.pw_uid, pw.pw_gid)
    server = Server(bindir, folder, _free_port(), user)
    data = folder / "data"
    try:
        server._run("initdb", "-D", str(data), "-U", "stet", "--auth=trust", "-E", "UTF8")
        hba = data / "pg_hba.conf"
        hba.write_text(
            "local all all trust\n"
            "host all stet 127.0.0.1/32 trust\n"
            "host all all 127.0.0.1/32 scram-sha-256\n"
        )
        options = (
            f"-c listen_addresses=127.0.0.1 -p {server.port} -k {folder} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200"
        )
        server._run(
            "pg_ctl", "start", "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w"
        )
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    import psycopg

    with psycopg.connect(
        f"host=127.0.0.1 port={server.port} user=stet dbname=postgres", autocommit=True
    ) as conn:
        conn.execute("CREATE DATABASE stet")
        conn.execute(f"CREATE ROLE secretive LOGIN PASSWORD '{PASSWORD}'")
        conn.execute("GRANT ALL ON DATABASE stet TO secretive")
    with psycopg.connect(server.url()) as conn:
        conn.execute("GRANT ALL ON SCHEMA public TO secretive")
    return server

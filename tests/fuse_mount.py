"""Mount `tests/fuse_fs.py` for a test, and unmount it whatever the test did.

The filesystem runs in a process of its own (``python -m tests.fuse_fs``),
so that a test's calls into the mount never wait on a thread of the test's
own process. The ``fuse_mount`` and ``mount_fuse`` fixtures in conftest.py
use `Mounts`. FUSE needs ``/dev/fuse``, Debian's ``fuse3`` (for
``fusermount3`` and libfuse) and ``mfusepy``; where one is missing the
fixture fails saying which, rather than skipping.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Final

import attrs

__all__ = ["FuseMount", "Mounts"]

#: How long a mount may take to come up, or a server to stop after unmounting.
#: Generous: these machines are loaded; nothing is asserted about the time.
PATIENCE: Final = 60.0
_ROOT: Final = Path(__file__).resolve().parent.parent


@attrs.frozen
class FuseMount:
    """A mounted test filesystem.

    Attributes:
        path: The mount point: files made here go through FUSE.
        backing: The directory it mirrors; writing here directly is what
            another machine's write looks like to this one.
        fs_type: What ``/proc/self/mountinfo`` calls it (``fuse.sshfs``).
    """

    path: Path
    backing: Path
    fs_type: str


@attrs.define
class Mounts:
    """Mounts the filesystem on demand; `unmount_all` undoes every mount."""

    base: Path
    _live: list[tuple[FuseMount, subprocess.Popen[str]]] = attrs.field(factory=list)

    def mount(
        self,
        lock_errno: str = "ENOLCK",
        attr_timeout: float = 2.0,
        subtype: str = "sshfs",
        read_only: bool = False,
    ) -> FuseMount:
        """Mount a new empty filesystem under ``base`` and return it once it serves."""
        fusermount = shutil.which("fusermount3")
        if fusermount is None or not os.path.exists("/dev/fuse"):
            raise RuntimeError(
                "FUSE is not available: the tests need /dev/fuse and fusermount3 "
                "(apt-get install fuse3; .ci/run installs it)"
            )
        number = len(self._live)
        backing = self.base / f"fuse-backing-{number}"
        path = self.base / f"fuse-mount-{number}"
        backing.mkdir()
        path.mkdir()
        command = [
            sys.executable,
            "-m",
            "tests.fuse_fs",
            str(backing),
            str(path),
            "--lock-errno",
            lock_errno,
            "--attr-timeout",
            str(attr_timeout),
            "--subtype",
            subtype,
            *(["--read-only"] if read_only else []),
        ]
        server = subprocess.Popen(
            command,
            cwd=_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        mount = FuseMount(path, backing, f"fuse.{subtype}")
        self._live.append((mount, server))
        assert server.stdout is not None
        ready, _, _ = select.select([server.stdout], [], [], PATIENCE)
        line = server.stdout.readline() if ready else ""
        if line.strip() != "ready" or not os.path.ismount(path):
            self.unmount_all()
            _, errors = server.communicate()
            raise RuntimeError(f"the FUSE test filesystem did not mount at {path}: {errors}")
        return mount

    def unmount_all(self) -> None:
        """Unmount every mount and stop its server, even one a test left busy."""
        while self._live:
            mount, server = self._live.pop()
            done = subprocess.run(["fusermount3", "-u", str(mount.path)], capture_output=True)
            if done.returncode != 0:
                # Busy (a file left open) or its server gone: detach it from the
                # tree now, and stop the server, which would serve the open files.
                subprocess.run(["fusermount3", "-u", "-z", str(mount.path)], capture_output=True)
                server.terminate()
            try:
                server.wait(timeout=PATIENCE)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
            for stream in (server.stdout, server.stderr):
                if stream is not None:
                    stream.close()

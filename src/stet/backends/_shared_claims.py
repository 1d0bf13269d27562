"""Claims of the shared-directory store: one file per claim, timed by the file server.

Every node of a cluster may hold claims in ``STORE.stetdir/claims/``, so
nothing here takes a lock or compares two machines' clocks:

- A claim is the file ``claims/<digest>.claim``, the digest naming the
  function and key. It is written whole under a temporary name and then
  hard-linked to its name: ``link`` fails if the name exists, atomically on
  the server (NFSv2 and later, Lustre, GPFS), so of several workers racing
  for a free key exactly one creates its claim, and nobody ever reads a
  half-written one.
- Its owner renews it by touching it (``utime``), which sets its
  modification time to the *file server's* clock. Whether a claim expired
  is judged by the same clock: a probe file is created next to it and the
  claim is expired once the probe's modification time is a lease past the
  claim's. No node's own clock enters.
- Taking over an expired claim first creates a marker named after that
  very claim (its owner and epoch) and an attempt number with ``O_EXCL``:
  only one worker creates it, and only that worker replaces the claim
  (``rename`` over it) by one of the next epoch. A worker whose view was
  stale finds the marker taken, or the claim changed, and leaves it; a
  marker a lease old (its worker died midway) lets the next attempt's be
  made.
- Completing, releasing or finishing a claim removes its file and markers,
  so a sweep of a million keys leaves no million files behind.

The store's `Clock` is a seam for tests: with any clock but the system's,
the server's time is moved by as much as that clock's monotonic time moved
beyond the real one, so a `FakeClock` advanced by a lease expires claims.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import secrets
import stat
import threading
import time
from collections.abc import Iterator
from typing import Final

import attrs

from ..exceptions import StoreError
from ._claims import Claim, ClaimId
from ._claims import owner as process_owner
from ._clock import SYSTEM_CLOCK, Clock
from ._shared_files import process_tag

__all__ = [
    "NETWORK_MIN_LEASE",
    "ClaimFiles",
    "FolderLock",
    "ServerTime",
    "make_folder",
    "warn_if_short",
    "write_file",
]

logger: Final = logging.getLogger("stet")

#: The shortest lease that is safe on a network filesystem: NFS clients
#: cache attributes (a claim's renewal time) for up to 60 s, and a claim is
#: renewed every third of its lease, so lease > 60 + lease / 3.
NETWORK_MIN_LEASE: Final = 90.0

_FORMAT: Final = "stet shared claim 1"
_SUFFIX: Final = ".claim"
_MARKER: Final = ".takeover"
#: Takeovers of one expired claim tried (each after the last one's taker died).
_ATTEMPTS: Final = 100

#: Per clock other than the system's: the clock, its monotonic time and the
#: real monotonic time when it was first used (see `ServerTime.drift`).
_bases: dict[int, tuple[Clock, float, float]] = {}
_bases_lock: Final = threading.Lock()
_warned_lease: set[str] = set()


def warn_if_short(path: str, lease: float, *, network: bool) -> None:
    """Warn once per store when claims' lease is too short for a network filesystem."""
    if network and lease < NETWORK_MIN_LEASE and path not in _warned_lease:
        _warned_lease.add(path)
        logger.warning(
            "[stet] claims in %s have a lease of %g s, but on a network filesystem a "
            "renewal may reach other nodes only after their attribute cache (up to 60 s) "
            "expires, and renewals come every lease / 3: a live worker's claim could be "
            "taken over. Use Once(lease=%g) or more.",
            path,
            lease,
            NETWORK_MIN_LEASE,
        )


def make_folder(path: str) -> None:
    """Make a folder (mode 0o777 less the umask) unless it exists.

    Not `os.makedirs`: its ``exist_ok`` asks `os.path.isdir`, which a
    client's stale "no such file" cache (NFS, FUSE) can answer wrongly just
    after another client made the folder.
    """
    try:
        os.mkdir(path, 0o777)
    except FileExistsError:
        pass
    except FileNotFoundError:
        make_folder(os.path.dirname(path))
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o777)


def write_file(path: str, data: bytes, *, exclusive: bool = True) -> None:
    """Write ``data`` to a new file and fsync it (mode 0o666 less the umask)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags | getattr(os, "O_NOFOLLOW", 0), 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except OSError:
        if exclusive:  # made by this call: leave no half-written file
            with contextlib.suppress(OSError):
                os.unlink(path)
        raise
    finally:
        os.close(fd)


class ServerTime:
    """The file server's clock, read from the modification time of a probe file.

    Args:
        folder: Where probe files are made (the claims' folder: the same server).
        clock: The store's clock; any but the system's shifts the server's time
            (tests).
    """

    def __init__(self, folder: str, clock: Clock) -> None:
        self.folder = folder
        self.clock = clock

    def drift(self) -> float:
        """Seconds the store's clock moved beyond real time (zero for the system clock)."""
        if self.clock is SYSTEM_CLOCK:
            return 0.0
        with _bases_lock:
            base = _bases.get(id(self.clock))
            if base is None or base[0] is not self.clock:
                base = _bases[id(self.clock)] = (
                    self.clock,
                    self.clock.now().monotonic,
                    time.monotonic(),
                )
        return (self.clock.now().monotonic - base[1]) - (time.monotonic() - base[2])

    def now_ns(self) -> int:
        """The server's time now, in nanoseconds (a probe file made, read, removed)."""
        probe = os.path.join(self.folder, f".probe-{process_tag()}-{secrets.token_hex(6)}")
        try:
            write_file(probe, b"")
            taken = os.stat(probe).st_mtime_ns
        except OSError as exc:
            raise StoreError(
                self.folder,
                f"cannot create a file to read the server's time: {exc.strerror or exc}",
            ) from None
        finally:
            with contextlib.suppress(OSError):
                os.unlink(probe)
        return taken + round(self.drift() * 1e9)

    def stamp(self, path: str) -> None:
        """Set ``path``'s modification time to the server's time now (a touch)."""
        os.utime(path)  # no times given: the server's own (NFS SET_TO_SERVER_TIME)
        self.shift(path)

    def shift(self, path: str) -> None:
        """Move a file just made (its time the server's) by the clock's drift."""
        drift = self.drift()
        if drift:
            st = os.stat(path)
            shifted = st.st_mtime_ns + round(drift * 1e9)
            os.utime(path, ns=(st.st_atime_ns, shifted))


def _digest(claim_id: ClaimId) -> str:
    function, cols, values = claim_id
    text = json.dumps([function, list(cols), list(values)], ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:40]


class ClaimFiles:
    """The claim files in one folder (see the module docs).

    Args:
        folder: ``STORE.stetdir/claims``.
        clock: The store's clock (see `ServerTime`).
        location: The store, as errors name it.
    """

    def __init__(self, folder: str, clock: Clock, location: str) -> None:
        self.folder = folder
        self.location = location
        self.server = ServerTime(folder, clock)

    def path_of(self, claim_id: ClaimId) -> str:
        return os.path.join(self.folder, _digest(claim_id) + _SUFFIX)

    # -- reading ----------------------------------------------------------

    def read(self, path: str) -> tuple[Claim, int] | None:
        """The claim in ``path`` and its modification time (ns); None if there is none.

        Raises:
            StoreError: The file is not a claim stet wrote (naming it).
        """
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._damaged(path, exc.strerror or str(exc)) from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise self._damaged(path, "it is not a regular file")
            with os.fdopen(fd, "rb", closefd=False) as file:
                data = file.read(1 << 20)
        finally:
            os.close(fd)
        try:
            parsed = json.loads(data)
            if parsed.get("format") != _FORMAT:
                raise ValueError(f"format is {parsed.get('format')!r}, not {_FORMAT!r}")
            claim = Claim.from_json({**parsed, "expires": 0.0})
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise self._damaged(path, f"it is not a claim written by stet ({exc})") from None
        return claim, st.st_mtime_ns

    def _damaged(self, path: str, why: str) -> StoreError:
        return StoreError(
            path,
            f"cannot be read as a claim of {self.location}: {why}; if no worker runs this "
            "key, delete the file (it only says that a run is in progress)",
        )

    def judge(self, claim: Claim, mtime_ns: int, server_ns: int, wall: float) -> Claim:
        """``claim`` with its expiry as Unix time ``wall`` sees it, judged by the server."""
        age = (server_ns - mtime_ns) / 1e9
        return Claim(
            claim.function,
            claim.cols,
            claim.values,
            claim.owner,
            claim.epoch,
            wall + claim.lease - age,
            claim.lease,
            claim.since,
        )

    def listed(self) -> Iterator[str]:
        """The claim files' paths."""
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StoreError(self.folder, f"cannot be listed: {exc.strerror or exc}") from None
        for name in names:
            if name.endswith(_SUFFIX) and not name.startswith("."):
                yield os.path.join(self.folder, name)

    # -- writing ----------------------------------------------------------

    def _data(self, claim: Claim) -> bytes:
        data = claim.to_json()
        del data["expires"]  # judged by the file's modification time, never stored
        return json.dumps({"format": _FORMAT, **data}, ensure_ascii=False).encode()

    def _staged(self, claim: Claim) -> str:
        tmp = os.path.join(self.folder, f".new-{process_tag()}-{secrets.token_hex(6)}")
        write_file(tmp, self._data(claim))
        self.server.shift(tmp)
        return tmp

    def create(self, path: str, claim: Claim) -> bool:
        """Create the claim file if there is none; True if this call created it."""
        try:
            make_folder(self.folder)
            tmp = self._staged(claim)
        except OSError as exc:
            raise self._unwritable(exc) from None
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError as exc:
            # NFS may answer a retried link with EEXIST or an error though it
            # was made: two links to the staged file mean it was.
            try:
                made = os.stat(tmp).st_nlink == 2
            except OSError:
                made = False
            if not made:
                raise self._unwritable(exc) from None
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        return True

    def take_over(self, path: str, expired: Claim, claim: Claim) -> bool:
        """Replace the expired claim in ``path`` by ``claim``; False if another worker does.

        The marker of each attempt is created with ``O_EXCL``: a worker killed
        after making one leaves it, and once it is a lease old the next
        attempt's marker is made instead, by one worker again.
        """
        for attempt in range(_ATTEMPTS):
            marker = self._marker(path, expired, attempt)
            try:
                write_file(marker, b"")
            except FileExistsError:
                try:
                    made = os.stat(marker).st_mtime_ns
                except FileNotFoundError:
                    return False  # the key was finished or released: markers swept
                except OSError as exc:
                    raise self._unwritable(exc) from None
                if (self.server.now_ns() - made) / 1e9 < expired.lease:
                    return False  # another worker is taking it over now
                continue
            except OSError as exc:
                raise self._unwritable(exc) from None
            self.server.shift(marker)
            break
        else:
            return False
        again = self.read(path)
        if again is None or not expired.same(again[0]):
            return False  # finished, released or taken over since it was judged
        try:
            os.replace(self._staged(claim), path)
        except OSError as exc:
            raise self._unwritable(exc) from None
        return True

    def _marker(self, path: str, claim: Claim, attempt: int) -> str:
        who = hashlib.sha256(f"{claim.owner}\n{claim.epoch}".encode()).hexdigest()[:16]
        return f"{path[: -len(_SUFFIX)]}.{who}.{attempt}{_MARKER}"

    def renew(self, claim: Claim) -> bool:
        """Touch the claim file if it still holds ``claim``; True if it did."""
        path = self.path_of(claim.id)
        current = self.read(path)
        if current is None or not claim.same(current[0]):
            return False
        try:
            self.server.stamp(path)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise self._unwritable(exc) from None
        return True

    def holds(self, claim: Claim) -> bool:
        """True if the claim file still holds ``claim`` (fencing)."""
        current = self.read(self.path_of(claim.id))
        return current is not None and claim.same(current[0])

    def remove(self, claim: Claim, *, anyone: bool = False, path: str | None = None) -> None:
        """Remove the claim file (only if it holds ``claim``, unless ``anyone``) and its markers."""
        path = self.path_of(claim.id) if path is None else path
        current = None if anyone else self.read(path)
        if anyone or (current is not None and claim.same(current[0])):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        prefix = os.path.basename(path)[: -len(_SUFFIX)] + "."
        with contextlib.suppress(OSError):
            for name in os.listdir(self.folder):
                if name.startswith(prefix) and name.endswith(_MARKER):
                    with contextlib.suppress(OSError):
                        os.unlink(os.path.join(self.folder, name))

    def _unwritable(self, exc: OSError) -> StoreError:
        if exc.errno in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS):
            what = "this filesystem refuses hard links, which claims need"
        else:
            what = exc.strerror or str(exc)
        return StoreError(self.folder, f"cannot hold the store's claims: {what}")


class FolderLock:
    """A lock file made like a claim, for one compaction (or delete, clear) at a time.

    No ``flock``: the file is created by exclusive link, holds its owner, and
    one older than ``lease`` by the server's clock (its holder was killed) is
    taken over as an expired claim is.

    Args:
        path: The lock file, ``STORE.stetdir/compaction.claim``.
        clock: The store's clock.
        lease: Seconds after which the lock counts as abandoned.
    """

    def __init__(self, path: str, clock: Clock, lease: float) -> None:
        self.path = path
        self.files = ClaimFiles(os.path.dirname(path), clock, os.path.dirname(path))
        now = clock.now()
        self.claim = Claim("", (), (), process_owner(), 1, now.wall + lease, lease, now.wall)

    def __enter__(self) -> None:
        for _ in range(600):  # a minute of 0.1 s waits for another compaction
            if self.files.create(self.path, self.claim):
                return
            found = self.files.read(self.path)
            if found is not None:
                held = self.files.judge(*found, self.files.server.now_ns(), 0.0)
                if not held.live(0.0):
                    self.claim = attrs.evolve(self.claim, epoch=held.epoch + 1)
                    if self.files.take_over(self.path, held, self.claim):
                        return
            time.sleep(0.1)
        raise StoreError(
            self.path,
            "is held by another compaction, delete or clear for over a minute; wait "
            "for it to finish, or delete the file if no stet command uses the store",
        )

    def __exit__(self, *exc: object) -> None:
        self.files.remove(self.claim, path=self.path)

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
  very claim (its owner and epoch) and an attempt number with ``O_EXCL``,
  holding a token of its taker: only one worker creates it. A marker a
  lease old by the server's clock (its taker died, or is stopped) is
  overwritten by the next taker, who makes the next attempt's marker; a
  stopped taker that wakes finds its token gone and gives up.
- A claim file is never replaced in place, nor deleted by name unless its
  key is recorded: filesystems have no compare-and-swap. A taker, or an
  owner completing or releasing its claim, renames the claim file to a
  name of its own (atomic: it then holds whatever claim was there at that
  instant) and reads it: the expected one is dropped (and a taker links
  its own claim in, exclusively), any other is linked back, exclusively.
  So a worker presumed dead that releases in the instant of a takeover
  removes only its own claim. Only a worker creating the claim anew in the
  instant before such a link back wins over the claim moved aside (whose
  owner is then fenced off at completion).
- Completing, releasing or finishing a claim removes its file and markers,
  so a sweep of a million keys leaves no million files behind.
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
import time
from collections.abc import Iterator
from typing import Final

import attrs

from ..exceptions import StoreError
from ._claims import Claim, ClaimId
from ._claims import owner as process_owner
from ._clock import Clock
from ._shared_files import process_tag
from ._shared_server import ServerTime, make_folder, write_file

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
        tmp = self._temporary()
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
            return self._link(tmp, path)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    def take_over(self, path: str, expired: Claim, claim: Claim) -> bool:
        """Replace the expired claim in ``path`` by ``claim``; False if another worker does.

        The marker of each attempt is created with ``O_EXCL`` and holds a
        token of this call: a worker killed after making one leaves it, and
        once it is a lease old (by the server's clock) the next worker
        overwrites it, so that a taker merely stopped finds it no longer its
        own, and makes the next attempt's marker instead, by one worker again.
        The claim itself is moved aside (``rename``) and the new one linked
        in, so a claim changed meanwhile is put back, never replaced.
        """
        token = f"{process_tag()}-{secrets.token_hex(8)}".encode()
        for attempt in range(_ATTEMPTS):
            marker = self._marker(path, expired, attempt)
            try:
                write_file(marker, token)
            except FileExistsError:
                try:
                    made = os.stat(marker).st_mtime_ns
                except FileNotFoundError:
                    return False  # the key was finished or released: markers swept
                except OSError as exc:
                    raise self._unwritable(exc) from None
                if (self.server.now_ns() - made) / 1e9 < expired.lease:
                    return False  # another worker is taking it over now
                self._overwrite(marker, token)  # its taker, if only stopped, gives up
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
            staged = self._staged(claim)
        except OSError as exc:
            raise self._unwritable(exc) from None
        try:
            if not self._owns(marker, token):
                return False  # stopped for over a lease: a later taker went on
            aside = self._move_aside(path)
            if aside is None:
                return False  # finished or released meanwhile
            if not self._is(aside, expired):
                self._put_back(aside, path)  # a claim newer than the one judged
                return False
            with contextlib.suppress(OSError):
                os.unlink(aside)
            return self._link(staged, path)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(staged)

    def _overwrite(self, marker: str, token: bytes) -> None:
        """Replace a marker whose taker is presumed dead by one holding ``token``."""
        tmp = self._temporary()
        try:
            write_file(tmp, token)
            os.replace(tmp, marker)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise self._unwritable(exc) from None

    def _owns(self, marker: str, token: bytes) -> bool:
        """True if ``marker`` still holds this taker's ``token``."""
        try:
            with open(marker, "rb") as file:
                return file.read(len(token) + 1) == token
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise self._unwritable(exc) from None

    def _temporary(self) -> str:
        """A new name for a file this process stages (`sweep_leftovers` knows it)."""
        return os.path.join(self.folder, f".new-{process_tag()}-{secrets.token_hex(6)}")

    def _move_aside(self, path: str) -> str | None:
        """Rename the claim file to a name of this call's (atomic); None if there is none."""
        aside = self._temporary()
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            # NFS may answer a retried rename with ENOENT though it was made.
            return aside if os.path.lexists(aside) else None
        except OSError as exc:
            raise self._unwritable(exc) from None
        return aside

    def _is(self, aside: str, claim: Claim) -> bool:
        """True if the claim file moved to ``aside`` holds ``claim``."""
        try:
            found = self.read(aside)
        except StoreError:
            return False  # not a claim stet wrote: not this one, so it goes back
        return found is not None and claim.same(found[0])

    def _link(self, source: str, path: str) -> bool:
        """Link ``source`` to ``path`` unless it exists; True if this call made it."""
        try:
            os.link(source, path)
        except OSError as exc:
            # NFS may answer a retried link with EEXIST or an error though it
            # was made: two links to the source mean it was.
            try:
                made = os.stat(source).st_nlink == 2
            except OSError:
                made = False
            if not made and not isinstance(exc, FileExistsError):
                raise self._unwritable(exc) from None
            return made
        return True

    def _put_back(self, aside: str, path: str) -> None:
        """Link a claim moved aside back to its name, exclusively, and drop the aside name.

        If a new claim was created in the instant the name was free, that one
        stands and the moved one is gone: its owner is fenced off at completion.
        """
        try:
            if not self._link(aside, path):
                logger.debug("[stet] claim %s was made anew while moved aside", path)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(aside)

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
        """Remove the claim file (only if it holds ``claim``, unless ``anyone``) and its markers.

        The file is renamed aside first (atomic) and read there: one that a
        takeover replaced in the meantime is linked back (exclusive create),
        so a worker presumed dead never removes its successor's claim.
        """
        path = self.path_of(claim.id) if path is None else path
        if anyone:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        else:
            current = self.read(path)
            if current is None or not claim.same(current[0]):
                return  # not ours (any more): neither it nor its markers are ours to drop
            aside = self._move_aside(path)
            if aside is None:
                return
            if not self._is(aside, claim):
                self._put_back(aside, path)
                return
            with contextlib.suppress(OSError):
                os.unlink(aside)
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

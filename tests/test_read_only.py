"""A store that can only be read: an archived sweep, a read-only mount, another user's files.

What it holds is answered (skips, `stet.is_done`, `stet.read`, `stet status`)
without writing anything; a call it does not hold is refused before it runs,
saying why, since its record could not be written. The mount is the FUSE
test filesystem mounted read-only, so the kernel refuses every write
(``EROFS``) as a real read-only mount does, root or not.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import stet
from stet.testing import fresh_process

from .fuse_mount import FuseMount, Mounts

KINDS = ["csv", "json", "parquet", "sqlite", "stetdir"]

_WRITE = """
import sys
import stet
run = stet.once(store=sys.argv[1], quiet=True, name="work")(lambda alpha, seed: None)
for seed in range(3):
    run(0.5, seed)
"""


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def read_only(mount_fuse: Mounts) -> FuseMount:
    # A local filesystem to stet (not a network one), whose locks the
    # kernel keeps (ENOSYS from the filesystem), as on a local disk.
    return mount_fuse.mount(lock_errno="ENOSYS", subtype="passthrough", read_only=True)


@pytest.mark.parametrize("ext", KINDS)
def test_a_read_only_store_skips_what_it_holds_and_refuses_a_new_run_before_it(
    read_only: FuseMount, ext: str
) -> None:
    name = f"runs.{ext}"
    subprocess.run([sys.executable, "-c", _WRITE, str(read_only.backing / name)], check=True)
    before = _files(read_only.backing)
    store = str(read_only.path / name)
    ran: list[tuple[float, int]] = []

    @stet.once(store=store, quiet=True, name="work")
    def work(alpha: float, seed: int) -> None:
        ran.append((alpha, seed))

    fresh_process()
    assert stet.is_done(work, 0.5, 1)
    assert not stet.is_done(work, 0.5, 7)
    for seed in range(3):
        work(0.5, seed)
    assert ran == []
    assert sorted(int(s) for s in stet.read(store)["seed"]) == [0, 1, 2]
    assert stet.status(store).records == 3
    grid = [{"alpha": 0.5, "seed": seed} for seed in range(4)]
    assert (stet.progress(work, grid).done, stet.progress(work, grid).left) == (3, 1)
    assert stet.pending(work, grid) == [{"alpha": 0.5, "seed": 3}]
    with pytest.raises(stet.StoreError, match=r"cannot be written: Read-only file system.*copy"):
        work(0.5, 7)
    assert ran == []  # refused before it ran
    assert _files(read_only.backing) == before


@pytest.mark.parametrize("ext", ["csv", "sqlite"])
def test_stet_status_reads_a_read_only_store(read_only: FuseMount, ext: str) -> None:
    name = f"runs.{ext}"
    subprocess.run([sys.executable, "-c", _WRITE, str(read_only.backing / name)], check=True)
    done = subprocess.run(
        [sys.executable, "-m", "stet", "status", str(read_only.path / name)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "3 completed" in done.stdout

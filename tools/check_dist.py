"""Build stet's sdist and wheel and check what they hold before anyone publishes them.

Usage: python tools/check_dist.py [OUTDIR]

- valid metadata (``twine check --strict``), with the MIT license file in both;
- a wheel that holds only the package (with its ``py.typed``) and its metadata;
- an sdist with nothing that looks like a credential or a stray local file
  (stet 0.0.1's sdist shipped a package-index token file).

Exits non-zero, naming every problem, when a check fails.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

#: File names that hold secrets or belong to one machine, never to a release.
SUSPECT_NAMES = re.compile(
    r"(^|/)(\.pypirc|\.netrc|\.env(\..*)?|id_(rsa|ed25519|ecdsa)(\.pub)?|.*\.pem|.*\.key"
    r"|.*token.*|.*secret.*|.*credential.*|\.DS_Store|.*\.sqlite|.*\.db|.*\.parquet"
    r"|_stet_store\..*|.*\.lock|.*\.tmp|.*\.log)$",
    re.IGNORECASE,
)
#: Text that is a secret wherever it appears.
SUSPECT_TEXT = re.compile(
    rb"pypi-AgE[A-Za-z0-9_-]{20,}|-----BEGIN [A-Z ]*PRIVATE KEY-----|gh[pousr]_[A-Za-z0-9]{30,}"
)
#: Top-level entries an sdist may hold (beside PKG-INFO).
SDIST_TOP = {
    "src", "tests", "typing_tests", "typings", "docs", "benchmarks", "examples",
    "conftest.py", "mkdocs.yml", "Makefile", "README.md", "CHANGELOG.md", "LICENSE",
    "pyproject.toml", "PKG-INFO", ".gitignore",
}  # fmt: skip


def wheel_problems(path: Path) -> list[str]:
    """What is wrong with the wheel at ``path`` (empty when nothing is)."""
    problems: list[str] = []
    with zipfile.ZipFile(path) as wheel:
        names = wheel.namelist()
        for name in names:
            top = PurePosixPath(name).parts[0]
            if top != "stet" and not (top.startswith("stet-") and top.endswith(".dist-info")):
                problems.append(f"{path.name}: {name} is not part of the package")
            elif SUSPECT_NAMES.search(name):
                problems.append(f"{path.name}: {name} looks like a credential or a local file")
        if "stet/py.typed" not in names:
            problems.append(f"{path.name}: stet/py.typed is missing (type checkers need it)")
        if not any(n.endswith(".dist-info/licenses/LICENSE") for n in names):
            problems.append(f"{path.name}: the LICENSE file is missing")
        for name in names:
            if SUSPECT_TEXT.search(wheel.read(name)):
                problems.append(f"{path.name}: {name} holds what looks like a secret")
    return problems


def sdist_problems(path: Path) -> list[str]:
    """What is wrong with the sdist at ``path`` (empty when nothing is)."""
    problems: list[str] = []
    with tarfile.open(path) as sdist:
        members = sdist.getmembers()
        names = {m.name.split("/", 1)[1] for m in members if "/" in m.name}
        for member in members:
            if "/" not in member.name:
                continue
            inner = member.name.split("/", 1)[1]
            if inner.split("/", 1)[0] not in SDIST_TOP:
                problems.append(f"{path.name}: {inner} is not part of stet's source")
            if SUSPECT_NAMES.search(inner):
                problems.append(f"{path.name}: {inner} looks like a credential or a local file")
            if member.isfile():
                data = sdist.extractfile(member)
                if data is not None and SUSPECT_TEXT.search(data.read()):
                    problems.append(f"{path.name}: {inner} holds what looks like a secret")
        if "LICENSE" not in names:
            problems.append(f"{path.name}: the LICENSE file is missing")
    return problems


def main(argv: list[str]) -> int:
    outdir = Path(argv[1]) if len(argv) > 1 else Path(tempfile.mkdtemp(prefix="stet-dist-"))
    for old in outdir.glob("stet-*"):
        old.unlink()
    root = Path(__file__).resolve().parent.parent
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(outdir), str(root)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    wheels, sdists = sorted(outdir.glob("*.whl")), sorted(outdir.glob("*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        print(f"expected one wheel and one sdist in {outdir}, found {wheels + sdists}")
        return 1
    subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, wheels + sdists)],
        check=True,
    )
    problems = wheel_problems(wheels[0]) + sdist_problems(sdists[0])
    for problem in problems:
        print(problem)
    if not problems:
        print(f"{wheels[0].name} and {sdists[0].name}: contents checked")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

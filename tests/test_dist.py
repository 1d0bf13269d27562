"""The release check (tools/check_dist.py) catches what must never be published."""

from __future__ import annotations

import importlib.util
import io
import tarfile
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

TOOLS = Path(__file__).resolve().parent.parent / "tools"


@pytest.fixture(scope="module")
def check() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_dist", TOOLS / "check_dist.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_wheel(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as wheel:
        for name, data in files.items():
            wheel.writestr(name, data)
    return path


def make_sdist(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as sdist:
        for name, data in files.items():
            info = tarfile.TarInfo(f"stet-0.1.0/{name}")
            info.size = len(data)
            sdist.addfile(info, io.BytesIO(data))
    return path


GOOD_WHEEL = {
    "stet/__init__.py": b"",
    "stet/py.typed": b"",
    "stet-0.1.0.dist-info/METADATA": b"Name: stet\n",
    "stet-0.1.0.dist-info/licenses/LICENSE": b"MIT License\n",
}
GOOD_SDIST = {
    "src/stet/__init__.py": b"",
    "LICENSE": b"MIT",
    "pyproject.toml": b"",
    "PKG-INFO": b"",
}


def test_a_clean_wheel_and_sdist_pass(check: ModuleType, tmp_path: Path) -> None:
    assert check.wheel_problems(make_wheel(tmp_path / "w.whl", GOOD_WHEEL)) == []
    assert check.sdist_problems(make_sdist(tmp_path / "s.tar.gz", GOOD_SDIST)) == []


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ({"tests/test_x.py": b""}, "not part of the package"),
        ({"stet/.pypirc": b"[pypi]"}, "credential"),
        # Secrets are put together at run time, so this file holds none itself.
        (
            {"stet/data.txt": b"password = pypi-" + b"AgEIcHlwaS5vcmcCJDAwMDAwMDAwLTAwMDAt"},
            "secret",
        ),
    ],
)
def test_a_wheel_with_more_than_the_package_fails(
    check: ModuleType, tmp_path: Path, extra: dict[str, bytes], problem: str
) -> None:
    problems = check.wheel_problems(make_wheel(tmp_path / "w.whl", GOOD_WHEEL | extra))
    assert any(problem in p for p in problems), problems


def test_a_wheel_without_its_license_or_py_typed_fails(check: ModuleType, tmp_path: Path) -> None:
    files = {"stet/__init__.py": b""}
    problems = check.wheel_problems(make_wheel(tmp_path / "w.whl", files))
    assert any("py.typed" in p for p in problems)
    assert any("LICENSE" in p for p in problems)


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ({".pypirc": b"[pypi]\npassword = x"}, "credential"),
        ({"pypi_token.txt": b"x"}, "credential"),
        ({"_stet_store.csv": b"x,_stet_timestamp\n"}, "local file"),
        ({"notes/todo.txt": b""}, "not part of stet's source"),
        ({"docs/key.txt": b"-----BEGIN OPENSSH " + b"PRIVATE KEY-----"}, "secret"),
    ],
)
def test_an_sdist_with_a_credential_or_stray_file_fails(
    check: ModuleType, tmp_path: Path, extra: dict[str, bytes], problem: str
) -> None:
    problems = check.sdist_problems(make_sdist(tmp_path / "s.tar.gz", GOOD_SDIST | extra))
    assert any(problem in p for p in problems), problems

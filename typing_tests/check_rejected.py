"""Check that mypy and pyright reject exactly the marked lines of bad.py.

Lines ending in ``# expect-error`` are calls users must not be able to make;
every other line must type-check. Both checkers must agree.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
BAD = HERE / "bad.py"


def mypy_errors() -> tuple[set[int], str]:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", str(BAD)],
        capture_output=True,
        text=True,
        check=False,
    )
    found = {
        int(m.group(1)) for m in re.finditer(r"^(?:.*/)?bad\.py:(\d+): error", result.stdout, re.M)
    }
    return found, result.stdout


def pyright_errors() -> tuple[set[int], str]:
    pyright = Path(sys.executable).with_name("pyright")
    result = subprocess.run(
        [str(pyright), "--outputjson", "--pythonpath", sys.executable, str(BAD)],
        capture_output=True,
        text=True,
        check=False,
    )
    report = json.loads(result.stdout)
    found = {
        d["range"]["start"]["line"] + 1
        for d in report["generalDiagnostics"]
        if d["severity"] == "error"
    }
    return found, result.stdout


def main() -> int:
    expected = {
        number
        for number, line in enumerate(BAD.read_text().splitlines(), start=1)
        if line.rstrip().endswith("# expect-error")
    }
    failed = False
    for checker, run in (("mypy", mypy_errors), ("pyright", pyright_errors)):
        found, output = run()
        if found != expected:
            print(output)
            print(f"{checker}: lines expected to fail: {sorted(expected)}")
            print(f"{checker}: lines that failed:      {sorted(found)}")
            failed = True
        else:
            print(f"typing_tests/bad.py: all {len(expected)} rejected calls rejected by {checker}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

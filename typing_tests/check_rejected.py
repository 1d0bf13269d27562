"""Run mypy on bad.py and check that exactly the marked lines are rejected."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
BAD = HERE / "bad.py"


def main() -> int:
    expected = {
        number
        for number, line in enumerate(BAD.read_text().splitlines(), start=1)
        if line.rstrip().endswith("# expect-error")
    }
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(BAD)],
        capture_output=True,
        text=True,
        check=False,
    )
    found = {
        int(m.group(1)) for m in re.finditer(r"^(?:.*/)?bad\.py:(\d+): error", result.stdout, re.M)
    }
    if found != expected:
        print(result.stdout)
        print(f"lines expected to fail: {sorted(expected)}")
        print(f"lines that failed:      {sorted(found)}")
        return 1
    print(f"typing_tests/bad.py: all {len(expected)} rejected calls rejected by mypy")
    return 0


if __name__ == "__main__":
    sys.exit(main())

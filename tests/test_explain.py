"""Explaining a miss, and asking about or forgetting one run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import stet

from .conftest import sibling


def make(store: str, key: list[str] | None = None) -> Any:
    @stet.once(store=store, quiet=True, key=key)
    def run(alpha: float, seed: int, n_iter: int = 10) -> None: ...

    return run


def test_a_float_that_is_not_quite_the_recorded_one_is_named(store: str) -> None:
    run = make(store)
    run(0.3, 3)
    run(0.5, 1)
    why = stet.explain(run, 0.1 + 0.2, 3)
    assert not why.done
    assert why.records == 2
    (difference,) = why.differences
    assert str(difference) == "alpha: 0.30000000000000004 (float) here, 0.3 recorded"
    assert "differs in 1 parameter:" in str(why)


def test_a_parameter_of_another_type_is_named_with_its_type(store: str) -> None:
    run = make(store)
    run(0.3, 3)
    (difference,) = stet.explain(run, 0.3, 3.5).differences
    assert str(difference) == "seed: 3.5 (float) here, 3 recorded"


def test_a_parameter_old_records_lack_is_named(store: str) -> None:
    old = make(store, key=["alpha", "seed"])
    old(0.3, 3)
    new = make(store)  # n_iter joined the key
    differences = {d.parameter: d for d in stet.explain(new, 0.3, 3).differences}
    assert set(differences) == {"n_iter"}
    assert str(differences["n_iter"]) == "n_iter: 10 (int) here, missing from the record"


def test_a_recorded_call_is_explained_as_done(store: str) -> None:
    run = make(store)
    run(0.3, 3)
    why = run.explain(0.3, 3)
    assert why.done
    assert "is recorded" in str(why)
    assert stet.explain(make(sibling(store, "other")), 1, 1).records == 0


def test_is_done_and_forget(store: str) -> None:
    ran: list[int] = []

    @stet.once(store=store, quiet=True)
    def run(seed: int) -> None:
        ran.append(seed)

    run(1)
    assert stet.is_done(run, 1)
    assert run.is_done(seed=1)  # type: ignore[attr-defined]
    assert not stet.is_done(run, 2)
    assert stet.forget(run, seed=1) == 1
    assert not run.is_done(1)  # type: ignore[attr-defined]
    run(1)
    assert ran == [1, 1]


def test_stet_why_explains_from_the_command_line(store: str, tmp_path: Path) -> None:
    @stet.once(store=store, quiet=True, name="run")
    def run(alpha: float, seed: int) -> None: ...

    run(0.3, 3)
    stet.backends.get_backend(store).flush()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "stet",
            "why",
            store,
            "-f",
            "run",
            "alpha=0.30000000000000004",
            "seed=3",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "alpha: 0.30000000000000004 here, 0.3 recorded" in done.stdout


def test_the_nearest_record_is_the_numerically_nearest(store: str) -> None:
    run = make(store)
    run(0.1, 0)  # differs in alpha too, but by far more
    run(0.1 + 0.2, 0)
    run(0.9, 0)
    (difference,) = stet.explain(run, 0.3, 0).differences
    assert str(difference) == "alpha: 0.3 (float) here, 0.30000000000000004 recorded"


def test_values_are_shown_as_skip_lines_show_them_not_as_store_text(store: str) -> None:
    @stet.once(store=store, quiet=True)
    def fit(method: str, seed: int) -> None: ...

    fit("007", 1)
    why = stet.explain(fit, "008", 1)
    assert str(why).splitlines()[0].startswith("[stet] fit(method='008', seed=1) is not recorded")
    (difference,) = why.differences
    assert str(difference) == "method: '008' (str) here, '007' recorded"
    assert (difference.here, difference.recorded) == ("'008", "'007")  # the store's texts

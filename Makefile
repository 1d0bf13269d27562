# Everything a fresh machine needs comes from here: `make test` builds .venv,
# installs stet with its development tools, and runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export NO_MKDOCS_2_WARNING := 1
STAMP := $(VENV)/.installed

.PHONY: help install demo test lint typecheck pytest docs docs-build dist-check bench clean

help:
	@echo "make demo   - install and run examples/sweep.py twice (runs, then skips)"
	@echo "make test   - install and run ruff, mypy, pyright, typing tests, pytest, docs build, dist check"
	@echo "make lint   - ruff check and ruff format --check"
	@echo "make bench  - run the benchmarks"
	@echo "make docs   - serve the documentation locally"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	rm -f examples/sweep_store.csv examples/sweep_store.csv.lock examples/sweep_results.csv
	@echo "=== first run: the sweep is interrupted part-way ==="
	@$(BIN)/python examples/sweep.py --stop-after 5 || echo "(the first run stopped part-way, as a crash would)"
	@echo "=== second run: finished points are skipped, the rest run ==="
	$(BIN)/python examples/sweep.py

lint: $(STAMP)
	$(BIN)/ruff check conftest.py src tests typing_tests examples benchmarks tools
	$(BIN)/ruff format --check conftest.py src tests typing_tests examples benchmarks tools

typecheck: $(STAMP)
	$(BIN)/mypy
	$(BIN)/pyright --pythonpath $(BIN)/python typing_tests/good.py
	$(BIN)/python typing_tests/check_rejected.py

# Every core, a file to a worker: a docs page's blocks share one namespace.
pytest: $(STAMP)
	$(BIN)/python -m pytest -n auto --dist loadfile

docs-build: $(STAMP)
	$(BIN)/mkdocs build --strict --quiet

# Build the sdist and wheel and check their metadata and contents.
dist-check: $(STAMP)
	$(BIN)/python tools/check_dist.py dist

test: lint typecheck pytest docs-build dist-check

docs: $(STAMP)
	$(BIN)/mkdocs serve

bench: $(STAMP)
	$(BIN)/python benchmarks/bench.py

clean:
	rm -rf $(VENV) site dist .mypy_cache .ruff_cache .pytest_cache .hypothesis

# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv and install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test check lint typecheck layers unit bench clean tools

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --disable-pip-version-check uv
	@$(BIN)/uv pip install --python $(BIN)/python -q --compile-bytecode -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	@$(BIN)/python examples/demo.py

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

typecheck: $(STAMP)
	$(BIN)/mypy

layers: $(STAMP)
	$(BIN)/lint-imports

# Two workers: most of the suite waits on real processes and servers, so two at a time finish in about
# two thirds of the time on a 2-core machine. `pytest -n 0` (or no -n) runs them one by one.
unit: $(STAMP)
	$(BIN)/pytest -q -n 2

check: lint typecheck layers

# promtool (Debian's prometheus package) validates the alert rules; installed when we are root and it
# is missing, otherwise those tests skip and say why.
tools:
	@command -v promtool >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		(apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus >/dev/null) || \
		echo "promtool not installed: the alert-rule tests will skip"; }

test: tools check unit

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

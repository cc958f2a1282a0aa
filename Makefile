# The README's two commands: `make dev` (local stack + operator) and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin

.PHONY: install relink binaries lint types crds-check unit e2e test dev dev-down dev-status bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml setup.py devtools/pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	@$(BIN)/pip install -q -e '.[dev]' --config-settings editable_mode=strict \
		> $(VENV)/install.log 2>&1 || { cat $(VENV)/install.log; exit 1; }
	@$(BIN)/pip install -q --no-deps -e devtools --config-settings editable_mode=strict \
		>> $(VENV)/install.log 2>&1 || { cat $(VENV)/install.log; exit 1; }
	touch $@

# The strict editable install links files one by one: re-link after adding modules.
relink: install
	@$(BIN)/pip install -q --no-deps -e . --config-settings editable_mode=strict \
		> $(VENV)/relink.log 2>&1 || { cat $(VENV)/relink.log; exit 1; }
	@$(BIN)/pip install -q --no-deps -e devtools --config-settings editable_mode=strict \
		>> $(VENV)/relink.log 2>&1 || { cat $(VENV)/relink.log; exit 1; }

# etcd, kube-apiserver, kube-controller-manager, kubectl and the test MongoDB: found or
# built once into ~/.cache/gamevm, with progress and time left on stderr.
binaries: relink
	$(BIN)/gamevm-dev prefetch

lint: relink
	$(BIN)/ruff check operator devtools tests bench
	$(BIN)/ruff format --check operator devtools tests bench
	$(BIN)/lint-imports

types: relink
	$(BIN)/mypy

crds-check: relink
	$(BIN)/gamevm-operator crds --check

unit: relink
	$(BIN)/pytest -m "not e2e" -q

e2e: binaries
	$(BIN)/pytest -m e2e -q

test: lint types crds-check binaries
	$(BIN)/pytest -q

dev: relink
	$(BIN)/gamevm-dev up

dev-down: relink
	$(BIN)/gamevm-dev down

dev-status: relink
	$(BIN)/gamevm-dev status

bench: relink
	$(PY) bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build devtools/build *.egg-info devtools/*.egg-info .mypy_cache .ruff_cache .pytest_cache

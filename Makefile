# The README's two commands: `make dev` (local stack + operator) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin

.PHONY: prereqs prereqs-python install relink binaries cloudypad-cli lint types crds-check unit e2e test dev \
	dev-down dev-status bench image image-test deploy clean

# Python 3.11+, Go and Node: each missing one is named in one line with what to install.
prereqs:
	@PYTHON=$(PYTHON) hack/prereqs.sh all

prereqs-python:
	@PYTHON=$(PYTHON) hack/prereqs.sh python

install: prereqs-python $(VENV)/.installed

$(VENV)/.installed: pyproject.toml setup.py devtools/pyproject.toml
	$(PYTHON) -m venv $(VENV)
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
binaries: prereqs relink
	$(BIN)/gamevm-dev prefetch

# The real CloudyPad CLI 0.45.1 (pytest -m real_cloudypad): built once from
# ../shared/vendor (GAMEVM_CLOUDYPAD_BUILD_SCRIPT overrides), cached in ~/.cache/gamevm.
cloudypad-cli: prereqs relink
	$(PY) -m gamevm_dev.devstack.cloudypad_cli

lint: relink
	$(BIN)/ruff check operator devtools tests bench
	$(BIN)/ruff format --check operator devtools tests bench
	$(BIN)/lint-imports

# mypy's incremental cache lives outside the checkout, so it survives CI's clean checkout
# (~10 s saved); one folder per checkout path, so two worktrees never write one at once.
MYPY_CACHE_DIR ?= $(HOME)/.cache/gamevm/mypy/$(shell printf '%s' '$(CURDIR)' | cksum | cut -d' ' -f1)
types: relink
	$(BIN)/mypy --cache-dir "$(MYPY_CACHE_DIR)"

crds-check: relink
	$(BIN)/gamevm-operator crds --check

unit: relink
	$(BIN)/pytest -m "not e2e" -q

# Two pytest-xdist workers: most e2e time is spent waiting on processes (operator, API
# server, simulators), so two overlap on 2 cores. Each worker starts its own API server,
# Mongo servers and simulators on free ports; one test file stays on one worker, so its
# module fixtures run once and its tests keep their order. Files go out in collection
# order (not most-tests-first): the slow contract and e2e files start early and the many
# quick unit files fill the end. PYTEST_WORKERS=0: one process.
PYTEST_WORKERS ?= 2
PYTEST_PARALLEL = $(if $(filter-out 0,$(PYTEST_WORKERS)),-n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder)

e2e: binaries
	$(BIN)/pytest -m e2e -q $(PYTEST_PARALLEL)

test: prereqs lint types crds-check binaries cloudypad-cli
	$(BIN)/pytest -q $(PYTEST_PARALLEL)

dev: prereqs relink
	$(BIN)/gamevm-dev up

dev-down: relink
	$(BIN)/gamevm-dev down

dev-status: relink
	$(BIN)/gamevm-dev status

bench: relink
	$(PY) bench/run.py $(BENCH_ARGS)

# The operator image (Dockerfile; IMAGE_TARGET=cloudypad adds the CloudyPad CLI) built
# with buildah (vfs storage, chroot isolation: no daemon). BASE_IMAGE=local builds on a
# locally made Debian bookworm root instead of the digest-pinned python base (hack/image/).
IMAGE ?= gamevm-operator:0.1.0
IMAGE_TARGET ?= operator
BASE_IMAGE ?=
image:
	hack/image/build.sh "$(IMAGE)" "$(IMAGE_TARGET)" "$(BASE_IMAGE)"

# Runs the built image as uid 65532 with a read-only root filesystem against the local
# stack's API server and checks /healthz and a GameVM reaching `running`.
image-test: relink
	$(BIN)/python -m gamevm_dev.imagetest --image "$(IMAGE)" $(if $(filter cloudypad,$(IMAGE_TARGET)),--cloudypad)

# kubectl apply of the base (or OVERLAY) with the image you pushed: IMG=<registry>/<name>:<tag>.
OVERLAY ?= manifests
deploy:
	hack/deploy.sh "$(IMG)" "$(OVERLAY)"

clean:
	rm -rf $(VENV) build devtools/build *.egg-info devtools/*.egg-info .mypy_cache .ruff_cache .pytest_cache

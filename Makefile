# ferry: `make run` serves, `make test` runs every test. Both set up what is missing first.
SHELL := /bin/bash
PYTHON := /usr/bin/python3
VENV := .venv
BIN := $(VENV)/bin
#: System packages: libnbd's Python bindings exist only as the distro package.
APT_PACKAGES := python3-venv python3-libnbd nbdkit libnbd-bin qemu-utils
#: For tests and benchmarks only.
APT_TEST_PACKAGES := rsync rclone chromium chromium-driver
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help setup run test lint typecheck unit bench clean

help: ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup: $(VENV)/.installed ## install system packages and build .venv (leaves .venv/bin/ferry)

$(VENV)/.installed: pyproject.toml scripts/system-packages
	./scripts/system-packages $(APT_PACKAGES) $(APT_TEST_PACKAGES)
	$(PYTHON) -m venv --system-site-packages $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

run: setup ## serve on 127.0.0.1:18080 with SQLite under ./var
	$(BIN)/ferry serve

lint: setup ## ruff (lint and format check)
	$(BIN)/ruff check app tests bench migrations
	$(BIN)/ruff format --check app tests bench migrations

typecheck: setup ## mypy, strict
	$(BIN)/mypy

unit: setup ## the tests only
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck unit ## lint, typecheck and every test

bench: setup ## benchmarks against rsync, rclone and nbdcopy (long; by hand)
	@for script in bench/*_bench.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean: ## remove the venv and local state
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache

# Waymark: the two commands are `make demo` and `make test`; both set everything up first.
# Re-running is fast: each set-up step is redone only when its inputs change.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP_DEBIAN := $(VENV)/.debian-packages.stamp
STAMP_PY := $(VENV)/.requirements.stamp
STAMP_NPM := node_modules/.package-lock.stamp

.PHONY: setup demo test build slither clean-devnet help

help:
	@echo "make demo   set up, run the network and its demo story (Ctrl-C stops it); options: DEMO_ARGS=\"--help\""
	@echo "make test   set up and run the test suite"

setup: $(STAMP_DEBIAN) $(STAMP_PY) $(STAMP_NPM)
	@$(PY) -m node.chain.build
	@node scanner_web/build.mjs

$(STAMP_DEBIAN): scripts/debian-packages.txt
	@bash scripts/install-debian-packages.sh scripts/debian-packages.txt
	@mkdir -p $(VENV) && touch $@

$(STAMP_PY): requirements.lock pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	@$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

# `npm install` with the committed lock installs exactly the locked versions. (`npm ci` refuses
# here: the registry we can reach serves only this platform's optional anvil binary package.)
$(STAMP_NPM): package-lock.json package.json
	@npm install --ignore-scripts --no-audit --no-fund --loglevel=error
	@touch $@

build: setup

# Static analysis of the contracts (its own .venv-slither); fails on any high-severity finding.
slither: setup
	@bash scripts/slither.sh

demo: setup
	@$(VENV)/bin/waymark demo $(DEMO_ARGS)

test: setup
	@bash scripts/run-tests.sh

clean-devnet:
	-@$(VENV)/bin/waymark devnet down
	rm -rf hardhat-free-devnet/anvil/state hardhat-free-devnet/deployments/31337.json var

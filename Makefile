# Two commands on a fresh machine: `make demo` and `make test` (see README.md).
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# This workplace's pip.conf lists mirror folders that do not exist for most packages; hide that noise only.
PIP_INSTALL := $(BIN)/python -m pip install --quiet --disable-pip-version-check
QUIET_MIRRORS := { grep -v "is ignored: it is neither a file nor a directory" || true; }
TYPECHECK_TREE := build/typecheck

.PHONY: demo test test-fast lint format install install-dev services browser-assets lock clean dist image image-check

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml constraints.txt
	$(PIP_INSTALL) -c constraints.txt -e . 2>&1 | $(QUIET_MIRRORS)
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP_INSTALL) -c constraints.txt -e '.[dev]' 2>&1 | $(QUIET_MIRRORS)
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: install
	$(BIN)/deep-lulc demo --out demo-output

# A wheel and an sdist in dist/, built with the installed setuptools (no network); tests/contract/test_wheel.py
# installs the wheel, not editable, into a fresh virtual environment and runs it.
dist: install-dev
	rm -rf dist build/lib build/bdist.*  # setuptools would pack what earlier builds left in build/lib
	$(BIN)/python -m build --no-isolation --outdir dist .

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	# mypy cannot follow setuptools' editable import hook, so give it the installed layout as links.
	rm -rf $(TYPECHECK_TREE) && mkdir -p $(TYPECHECK_TREE)/deep_lulc
	ln -s ../../../shared/root/__init__.py $(TYPECHECK_TREE)/deep_lulc/__init__.py
	ln -s ../../../shared $(TYPECHECK_TREE)/deep_lulc/shared
	ln -s ../../../stages $(TYPECHECK_TREE)/deep_lulc/stages
	MYPYPATH=$(TYPECHECK_TREE) $(BIN)/mypy -p deep_lulc
	MYPYPATH=$(TYPECHECK_TREE) $(BIN)/mypy tests benchmarks
	$(BIN)/hadolint dockerfiles/Dockerfile

# System packages the tests' real services need: PostgreSQL 15 with PostGIS behind the STAC API test server
# (tests/stac_api_server.py) and Chromium for STAC Browser (tests/contract/test_stac_browser.py), plus Debian's Node.js and
# npm when no npm is on the PATH (a NodeSource nodejs already brings its own). A no-op when installed;
# `apt-get update` only when a package is unknown to apt.
SERVICE_PACKAGES := postgresql postgresql-15-postgis-3 chromium gdal-bin
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

services:
	@missing=""; for pkg in $(SERVICE_PACKAGES); do \
		status=$$(dpkg -s "$$pkg" 2>/dev/null || true); \
		[[ "$$status" == *"Status: install ok installed"* ]] || missing="$$missing $$pkg"; \
	done; \
	command -v npm >/dev/null 2>&1 || missing="$$missing nodejs npm"; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing"; \
		for pkg in $$missing; do \
			apt-cache show "$$pkg" >/dev/null 2>&1 || { $(SUDO) apt-get update -qq; break; }; \
		done; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# STAC Browser, built from its npm sources, and playwright-core for tests/contract/test_stac_browser.py (needs node and npm):
# cached under build/stac-browser/ and rebuilt only when tests/browser/package*.json change.
browser-assets: install-dev
	$(BIN)/python tests/contract/test_stac_browser.py

# Two workers (pytest-xdist) keep CI's two cores busy: one test alone often waits on a child process, a
# server or a file. The tests sharing the demo fixture stay on one worker (tests/conftest.py).
TEST_WORKERS ?= 2
test: services browser-assets lint
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup

# The hermetic tier: no PostgreSQL, Chromium or npm, nothing marked slow; minutes, for the edit-test loop.
# `make test` above still runs everything (and is what CI runs).
test-fast: install-dev
	$(BIN)/pytest -m "not services and not slow"

format: install-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Re-resolve the pinned set after changing dependencies in pyproject.toml.
lock: $(BIN)/python
	$(PIP_INSTALL) -e '.[dev]' 2>&1 | $(QUIET_MIRRORS)
	$(BIN)/python -m pip freeze --exclude-editable --disable-pip-version-check | grep -v '^deep-lulc' > constraints.txt

# The container image (dockerfiles/README.md), with docker or podman, whichever works here. Settings come from
# the command line or the environment: IMAGE, TORCH_FLAVOUR, BASE_IMAGE, TORCH_CPU_INDEX, PIP_INDEX_URL,
# CONTAINER_ENGINE, ENGINE_FLAGS, CONTAINER_FLAGS, IMAGE_BUILD_FLAGS. image-check builds it, then runs the
# demo inside as the Argo templates run a stage; it takes minutes, so `make test` leaves it out.
image:
	dockerfiles/build-image.sh

image-check: image
	dockerfiles/image-check.sh

clean:
	rm -rf $(VENV) build demo-output .pytest_cache .mypy_cache .ruff_cache

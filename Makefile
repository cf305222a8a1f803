# The two set-up commands of the README: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test venv install bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Dependencies are (re)installed when the metadata changes.
$(VENV)/.deps: $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/python -m pip install -q ".[test]"
	touch $@

venv: $(VENV)/.deps

# A non-editable install of the working tree, so tests see what users get.
install: venv
	$(BIN)/python -m pip install -q --no-deps --force-reinstall .

demo: install
	$(BIN)/python -m agent.demo

test: install
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python tools/bench/xml_bench.py

clean:
	rm -rf $(VENV) build *.egg-info

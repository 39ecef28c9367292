# Every target sets up (or updates) the venv it needs; nothing is assumed installed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.xaiq-installed
DEMO_DIR ?= demo-out
BENCH_ARGS ?=
PYTEST_ARGS ?=

.PHONY: install demo test lint bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# torch/torchvision come first with the one pairing that works on this platform
# (pip takes them from local disk here); the project's ranges then add nothing.
$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	XAIQ_HOME=$(DEMO_DIR) $(PY) -m xaiq.demo

test: install
	$(PY) -m ruff check .
	$(PY) -m mypy xaiq/xai xaiq/db
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy xaiq/xai xaiq/db

bench: install
	$(PY) -m bench $(BENCH_ARGS)

clean:
	rm -rf $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache

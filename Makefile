# Every target sets up (or updates) the venv it needs; nothing is assumed installed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.xaiq-installed
DEMO_DIR ?= demo-out
BENCH_ARGS ?=
PYTEST_ARGS ?=
# the suite runs in two pytest-xdist worker processes, a test file per worker at a time (its
# module fixtures built once), in collection order (tests/conftest.py puts the longest files
# first; xdist would otherwise send files with many tests first); `make test TEST_WORKERS=0`
# runs it in one process
TEST_WORKERS ?= 2
# every dependency pinned (a pip constraints file); `make lock` re-resolves it on purpose
LOCK := requirements.lock
# the one torch/torchvision pairing that works on this platform (pip takes it from local
# disk here); `make lock` resolves around it, installs take it from the lock
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
LOCK_VENV ?= /tmp/xaiq-lock-venv

.PHONY: install demo test lint bench clean lock

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# torch/torchvision first (the largest download, at the locked versions), then the project
# with every dependency at the version in the lock.
$(STAMP): $(PY) pyproject.toml $(LOCK)
	$(PY) -m pip install -q -c $(LOCK) torch torchvision
	$(PY) -m pip install -q -c $(LOCK) -e '.[dev,flower]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	XAIQ_HOME=$(DEMO_DIR) $(PY) -m xaiq.demo

test: install
	$(PY) -m ruff check .
	$(PY) -m mypy xaiq/xai xaiq/db xaiq/analysis
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy xaiq/xai xaiq/db xaiq/analysis

bench: install
	$(PY) -m bench $(BENCH_ARGS)

# A fresh resolution of pyproject.toml by pip's resolver (nothing is installed), written to
# the lock; review `git diff requirements.lock`, then `make test` installs and tests it.
lock:
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install -q --upgrade pip packaging
	$(LOCK_VENV)/bin/python -m pip install -q --dry-run --ignore-installed \
		--report $(LOCK_VENV)/report.json $(TORCH_PINS) -e '.[dev,flower]'
	$(LOCK_VENV)/bin/python tools/lock.py --report $(LOCK_VENV)/report.json --out $(LOCK)
	rm -rf $(LOCK_VENV)

clean:
	rm -rf $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache

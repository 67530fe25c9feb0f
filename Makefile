# Two targets are all a newcomer needs:  make demo  |  make test
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip

.PHONY: demo test install install-dev lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch first and pinned: the CPU wheel is on disk; letting a dependency resolve torch could pull a CUDA build.
$(VENV)/.installed: pyproject.toml | $(PY)
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

demo: install
	@.ci/ensure-fashion-mnist
	$(VENV)/bin/genattr demo --out demo-out

test: install-dev
	$(PY) -m pytest

lint: install-dev
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/lint-imports

clean:
	rm -rf demo-out .pytest_cache .ruff_cache

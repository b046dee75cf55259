# Everything a fresh machine needs: `make demo` and `make test` create .venv and install pinned deps.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint demo bench clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch==2.13.0 is pinned in the lock file: the CPU wheel on disk, never a multi-GB CUDA download
	$(BIN)/python -m pip install --quiet -c requirements.lock torch==2.13.0
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

demo: $(STAMP)
	$(BIN)/erasekit demo --out out/demo

bench: $(STAMP)
	$(BIN)/python bench/closed_form.py --threads 2

clean:
	rm -rf $(VENV) out

# roost: `make run` starts a server on localhost; `make test` runs the whole suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CONFIG ?= roost.toml

.PHONY: install test-deps run test lint typecheck unit integration browser bench bench-micro \
	bench-profile fuzz clean

install: $(BIN)/roost

$(BIN)/roost: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.test-deps: $(BIN)/roost pyproject.toml scripts/install-debian-deps.sh \
		scripts/install-browser-test-deps.sh tests/browser/package-lock.json \
		scripts/install-bench-deps.sh
	bash scripts/install-debian-deps.sh
	bash scripts/install-bench-deps.sh
	$(BIN)/pip install -q -e '.[test]'
	touch $@

test-deps: $(VENV)/.test-deps

run: install
	test -f $(CONFIG) || $(BIN)/roost init -c $(CONFIG)
	$(BIN)/roost run -c $(CONFIG)

lint: test-deps
	$(BIN)/ruff check src tests bench fuzz
	$(BIN)/ruff format --check src tests bench fuzz

typecheck: test-deps
	$(BIN)/mypy src tests bench fuzz

test: lint typecheck
	$(BIN)/pytest -q

unit: test-deps
	$(BIN)/pytest -q tests/unit

integration: test-deps
	$(BIN)/pytest -q tests/integration

browser: test-deps
	$(BIN)/pytest -q tests/browser

bench: install
	bash scripts/install-bench-deps.sh
	$(BIN)/python -m bench

bench-micro: install
	$(BIN)/python -m bench.micro

bench-profile: install
	bash scripts/install-bench-deps.sh
	$(BIN)/pip install -q py-spy
	$(BIN)/python -m bench --profile

FUZZ_TIME ?= 60
FUZZ_DIR  ?= .fuzz

fuzz: test-deps
	$(BIN)/pip install -q -e '.[fuzz]'
	mkdir -p $(FUZZ_DIR)/parser $(FUZZ_DIR)/c2s
	$(BIN)/python fuzz/fuzz_parser.py -max_total_time=$(FUZZ_TIME) -artifact_prefix=$(FUZZ_DIR)/ \
		$(FUZZ_DIR)/parser fuzz/seeds/parser
	$(BIN)/python fuzz/fuzz_c2s.py -max_total_time=$(FUZZ_TIME) -artifact_prefix=$(FUZZ_DIR)/ \
		$(FUZZ_DIR)/c2s fuzz/seeds/c2s

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache

# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint schema bench clean browser-deps codegen-tools

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dev]'
	touch $@

## Serve on http://127.0.0.1:8000/graphql (embedded PostgreSQL + demo data unless DATABASE_URL is set)
run: $(BIN)/.installed
	$(BIN)/market-graphql serve

## Lint, type-check and run the whole test suite
test: $(BIN)/.installed codegen-tools browser-deps lint
	$(BIN)/python -m pytest

## ariadne-codegen for the typed-client test, beside the venv: it pins graphql-core < 3.3,
## which Strawberry's graphql-core >= 3.3 rules out inside it (clients/README.md)
codegen-tools: $(VENV)/tools/ariadne-codegen/.installed
$(VENV)/tools/ariadne-codegen/.installed: clients/python/codegen-requirements.txt | $(BIN)/.installed
	$(BIN)/python -m pip install --quiet --no-warn-conflicts --upgrade \
	  --target $(VENV)/tools/ariadne-codegen -r clients/python/codegen-requirements.txt
	touch $@

## Debian's Chromium and ChromeDriver for the browser test (installed when missing and root)
browser-deps:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	  else \
	    echo "browser test needs: sudo apt-get install chromium chromium-driver"; \
	  fi; \
	fi

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

## Regenerate schema.graphql from the code
schema: $(BIN)/.installed
	$(BIN)/strawberry export-schema graphql_api.schema:schema --output schema.graphql

bench: $(BIN)/.installed
	$(BIN)/python benchmarks/read_api.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

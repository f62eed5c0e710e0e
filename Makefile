# autosec: the two set-up commands are `make demo` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DIR ?= .demo

.PHONY: venv demo test test-unit lint bench ui up clean

$(BIN)/autosec: pyproject.toml requirements.lock
	command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is required ($(PYTHON))"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip uv
	$(BIN)/uv pip install --python $(BIN)/python --quiet -r requirements.lock
	$(BIN)/uv pip install --python $(BIN)/python --quiet --no-deps -e .
	touch $(BIN)/autosec

venv: $(BIN)/autosec

.PHONY: nmap
nmap:
	@command -v nmap >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq nmap >/dev/null; \
	  else echo "nmap is missing: sudo apt-get install nmap"; exit 1; fi; }

demo: venv nmap
	$(BIN)/autosec demo --workdir $(DEMO_DIR)

test: venv nmap
	$(BIN)/python -m pytest

lint: venv
	$(BIN)/ruff check include tests dags plugins
	$(BIN)/lint-imports

bench: venv
	$(BIN)/python -m pytest tests/bench -s -o addopts="" -p no:cacheprovider

ui: venv
	@test -f $(DEMO_DIR)/airflow.env || { echo "run 'make demo' first"; exit 1; }
	. $(DEMO_DIR)/airflow.env && PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/airflow standalone

up:
	docker compose up --build

clean:
	rm -rf $(DEMO_DIR) .pytest_cache

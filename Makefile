# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
DEMO_OUT ?= runs/demo-$(shell date +%Y%m%d-%H%M%S)

.PHONY: demo test lint clean browser

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(STAMP)

# 6 minutes and one tuning trial on the 2-core machines this project runs on: the budget is
# planned (an AMD EPYC run trained search trials 10 of 30 epochs to fit), never refused
DEMO_BUDGET ?= 6m

demo: $(STAMP)
	$(BIN)/slimkit optimize --task mnist1d --max-accuracy-drop 0.01 --budget $(DEMO_BUDGET) \
		--tune-trials 1 --out $(DEMO_OUT)
	@echo
	@echo "Report: $(DEMO_OUT)/report.html  (the table again: $(BIN)/slimkit show $(DEMO_OUT))"

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# the report test opens report.html in a real headless Chromium (Debian's package)
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
		echo "installing Debian's chromium for the browser test"; \
		$(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q chromium; }

# ruff, the import contract (layers and no cycles, pyproject.toml), then the suite in two test
# processes (pytest-xdist), each with one intra-op thread: the 2-core budget. No test compares
# measured times, so none needs the machine to itself.
test: $(DEV_STAMP) browser
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2 --dist worksteal

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache

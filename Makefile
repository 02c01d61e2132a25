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

DEMO_BUDGET ?= 5m

demo: $(STAMP)
	$(BIN)/slimkit optimize --task mnist1d --max-accuracy-drop 0.01 --budget $(DEMO_BUDGET) \
		--tune-trials 2 --out $(DEMO_OUT)
	@echo
	@echo "Report: $(DEMO_OUT)/report.html  (the table again: $(BIN)/slimkit show $(DEMO_OUT))"

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# the report test opens report.html in a real headless Chromium (Debian's package)
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
		echo "installing Debian's chromium for the browser test"; \
		$(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q chromium; }

# two test processes (pytest-xdist), each with one intra-op thread: the 2-core budget; tests
# that compare measured latencies (marked serial) run afterwards with nothing beside them
test: $(DEV_STAMP) browser
	$(BIN)/ruff check .
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2 --dist worksteal -m "not serial"
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -m serial

lint: $(DEV_STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache

# artprobe: `make demo` runs the whole workflow on the embedded demo, `make test` runs the tests.
# Both create .venv first if it is missing (pinned requirements, the package editable).

VENV ?= .venv
PY := $(VENV)/bin/python
SNAKEMAKE := $(VENV)/bin/snakemake
CORES ?= 2
PYTEST_ARGS ?=

.PHONY: setup demo test test-fast bench lint format clean-demo

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt constraints.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt -c constraints.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

# The demo's jobs see a few hundred rows: a second thread gains them little, and with one
# thread two jobs run at once (their start-up, mostly imports, is single-threaded anyway;
# demo/config.yaml embeds on the CPU, so its embed jobs hold no GPU). One thread changes last
# bits of sums, so a few numbers differ from two threads' (docs/benchmarks.md, "The demo").
DEMO_ARGS := --cores $(CORES) --configfile demo/config.yaml --set-threads classify=1 fewshot=1 embed=1

demo: setup
	$(SNAKEMAKE) $(DEMO_ARGS)
	$(SNAKEMAKE) $(DEMO_ARGS) --report results/demo/report.html

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: setup
	$(PY) -m pytest -m "unit and not slow" $(PYTEST_ARGS)

bench: setup
	$(PY) bench/embed_bench.py --model convnext_atto
	$(PY) bench/probe_bench.py --scale 1.0 --epochs 1 --only mlp,linear

lint: setup
	$(SNAKEMAKE) --lint --configfile demo/config.yaml
	$(VENV)/bin/snakefmt --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/snakefmt .
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean-demo:
	rm -rf results/demo

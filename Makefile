# The two setup commands a fresh machine needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo

.PHONY: demo test lint typecheck unit bench clean lint-template docs

CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed
C7N_VERSION := 0.9.53

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The demo needs the package and its `demo` extra (moto) only, not the dev toolchain; editable,
# so that a later `make test` in the same venv still tests the working tree.
$(DEMO_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[demo]'
	touch $@

demo: $(DEMO_STAMP)
	$(BIN)/sg-reconciler demo

lint: $(STAMP)
	$(BIN)/ruff check reconciler tests benchmarks
	$(BIN)/ruff format --check reconciler tests benchmarks
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

$(CHECKOV_STAMP):
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/pip install --quiet 'checkov==3.3.30'
	touch $@

# checkov lives in its own venv (its pins clash with ours); --skip-download keeps it offline.
lint-template: $(STAMP) $(CHECKOV_STAMP)
	$(BIN)/cfn-lint deploy/template.yaml deploy/member-role.yaml
	$(CHECKOV_VENV)/bin/checkov -f deploy/template.yaml -f deploy/member-role.yaml --framework cloudformation --quiet --compact --skip-download

# The documentation site (docs/ -> site/); --strict turns a broken link into a failure.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

test: lint typecheck lint-template
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site
	$(BIN)/pytest -n 2

$(BENCH_STAMP): pyproject.toml
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/pip install --quiet -e '.[dev]' 'c7n==$(C7N_VERSION)'
	$(BENCH_VENV)/bin/pip check
	touch $@

# Cloud Custodian pins boto3, urllib3, ... exactly, so it lives only in this venv, never in
# our dependencies. Writes benchmarks/RESULTS.md and benchmarks/out/results.json (its
# "Whole run" line says how long the run took).
bench: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python -m benchmarks.run

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) $(BENCH_VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info site

# One entry point for developers and CI. `make check` is the test command README gives.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install check format format-check lint types imports test test-fast test-min bench run schema clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev,aws,server]'
	touch $(STAMP)

install: $(STAMP)

## Everything CI checks: formatting, lint, types, layering, then the whole test suite.
check: install format-check lint types imports test test-min

format: install
	$(VENV)/bin/ruff format src tests benchmarks docs
	$(VENV)/bin/ruff check --fix src tests benchmarks docs

format-check: install
	$(VENV)/bin/ruff format --check src tests benchmarks docs

lint: install
	$(VENV)/bin/ruff check src tests benchmarks docs

types: install
	$(VENV)/bin/mypy

imports: install
	$(VENV)/bin/lint-imports

schema: install
	$(PY) -m taskmanager.domain.schema > schemas/contracts.json
	$(PY) -m taskmanager.domain.schema push > schemas/push.json

test: install
	@. .ci/tools.sh && $(PY) -m pytest

## The fast loop while you work: the domain's unit and property tests (well under a minute).
## `make check` remains the whole truth; CI runs that.
test-fast: install
	$(PY) -m pytest -q tests/unit tests/property

## The domain and entrypoint tests (and the property test of the stores' trusted events, which
## rely on attributes pydantic sets) again on the lowest versions pyproject allows
## (.ci/minimum-versions.txt), in a venv of their own: the floors in pyproject are tested.
MIN_VENV ?= .venv-min
MIN_STAMP := $(MIN_VENV)/.installed
$(MIN_STAMP): pyproject.toml .ci/minimum-versions.txt
	python3 -m venv $(MIN_VENV)
	$(MIN_VENV)/bin/pip install --quiet --upgrade pip
	$(MIN_VENV)/bin/pip install --quiet -c .ci/minimum-versions.txt -e '.[aws,server]' \
		pytest pytest-timeout hypothesis 'moto[server]'
	touch $(MIN_STAMP)

test-min: $(MIN_STAMP)
	$(MIN_VENV)/bin/python -c "import aws_lambda_powertools.shared.version as v, pydantic, boto3; \
		print('minimum versions: powertools', v.VERSION, 'pydantic', pydantic.VERSION, 'boto3', boto3.__version__)"
	$(MIN_VENV)/bin/python -m pytest -q -p no:cacheprovider tests/unit tests/property/test_trusted_events.py

## Every benchmark script, one after another (each prints its own table and ratios).
bench: install
	@set -e; for script in benchmarks/*.py; do echo "== $$script"; $(PY) $$script; done

## Run locally: the API, the web page (http://127.0.0.1:8000/) and the demo processors.
run: install
	$(VENV)/bin/taskmanager serve

clean:
	rm -rf $(VENV) $(MIN_VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis

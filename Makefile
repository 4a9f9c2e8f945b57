# Two commands do everything on a fresh machine: `make reports` and `make test`.
# Both install exact versions from requirements.lock (`make lock` refreshes it from
# pyproject.toml's ranges), so a clone works the same today and next year.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The stamp is newer than the lock once the install for it has run, so a re-run skips it.
STAMP := $(VENV)/.installed
SIMULATED := data/simulated/truth.json
UV_VERSION := 0.13.9

.PHONY: reports test test-latest lab lint lock data clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): requirements.lock pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(BIN)/python -m ipykernel install --user --name clm-notebooks --display-name "Python (clm-notebooks)" >/dev/null
	touch $(STAMP)

# Resolve pyproject.toml's ranges (with the dev extra and the build requirements) to exact
# versions for every platform (setuptools below 82 keeps pkg_resources, which lifetimes.datasets
# imports in a notebook); then `make test test-latest` before committing the new lock.
lock: | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	printf 'setuptools>=77,<82\nwheel\n' | $(BIN)/uv pip compile pyproject.toml - --extra dev \
		--universal --python-version 3.11 --upgrade --custom-compile-command "make lock" \
		-o requirements.lock

# The demo company is remade when the simulator changes (a clone that pulls a new one).
$(SIMULATED): $(STAMP) clmmodels/simulate.py
	$(BIN)/clm simulate data/simulated --customers 10000 --seed 42

data: $(SIMULATED)

reports: $(STAMP) $(SIMULATED)
	$(BIN)/clm reports --config reports.yml --out reports

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q --durations=15

# For people who install the package into their own environment: the newest releases that
# pyproject.toml's ranges allow, in a separate venv, against the published-number tests.
test-latest:
	$(PYTHON) -m venv .venv-latest
	.venv-latest/bin/python -m pip install --quiet --disable-pip-version-check --upgrade -e '.[dev]'
	.venv-latest/bin/python -m pytest -q -m published -p no:cacheprovider

lab: $(STAMP) $(SIMULATED)
	$(BIN)/jupyter lab notebooks/

clean:
	rm -rf reports/* data/simulated .pytest_cache

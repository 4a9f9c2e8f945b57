# Two commands do everything on a fresh machine: `make reports` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The stamp is newer than pyproject.toml once the install for it has run, so a re-run skips it.
STAMP := $(VENV)/.installed
SIMULATED := data/simulated/truth.json

.PHONY: reports test lab lint data clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m ipykernel install --user --name clm-notebooks --display-name "Python (clm-notebooks)" >/dev/null
	touch $(STAMP)

$(SIMULATED): $(STAMP)
	$(BIN)/clm simulate data/simulated --customers 10000 --seed 42

data: $(SIMULATED)

reports: $(STAMP) $(SIMULATED)
	$(BIN)/clm reports --config reports.yml --out reports

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

lab: $(STAMP) $(SIMULATED)
	$(BIN)/jupyter lab notebooks/

clean:
	rm -rf reports/* data/simulated .pytest_cache

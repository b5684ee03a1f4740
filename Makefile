# Two commands do all the set-up on a fresh machine (Python 3.11+):
#   make run    creates .venv, installs the package, simulates scenarios/peak.yaml into out/peak/
#   make test   creates .venv, installs the package with its test extras, runs the test suite
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: run test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[test,dask]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/python -m memstack_capacity run scenarios/peak.yaml

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q

bench: $(STAMP)
	$(VENV)/bin/python benchmarks/engine_vs_simpy.py

clean:
	rm -rf $(VENV) out

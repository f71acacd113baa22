# Two commands on a fresh machine: `make run` and `make test`. Neither needs root.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test bench accuracy-vs-time clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/twin run scenarios/default.yaml

# Regenerates docs/results/accuracy-vs-time.{md,png,json} in place.
accuracy-vs-time: $(STAMP)
	$(PY) -m twin.experiments.accuracy_vs_time --out docs/results --force

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) .cache

# Two commands on a fresh machine: `make run` and `make test`. Neither needs root.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test bench accuracy-vs-time experiments clean

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
	$(PY) -m twin.study.experiments.accuracy_vs_time --out docs/results --force

test: $(STAMP)
	$(PY) -m pytest -q

# The policy experiments of docs/experiments/ (about half an hour on two cores).
experiments: $(STAMP)
	for e in policies-1y intervals policies-10y; do \
		$(VENV)/bin/twin compare docs/experiments/$$e.yaml --out docs/experiments/results/$$e --force || exit 1; done
	$(PY) -m twin.study.experiments.policy_study

# Speed figures (bench/README.md): `make bench`, or `make bench BENCH_ARGS=--quick` for a smoke test.
bench: $(STAMP)
	$(PY) bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV)  # the model cache lives in the user cache folder (docs/pipeline.md)

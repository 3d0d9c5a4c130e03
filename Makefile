# The operator's entry points (shared/spec/interfaces.md): each sets up what is missing first.
PY := .venv/bin/python

.PHONY: setup run test bench demo

setup:
	@bash scripts/setup.sh

run: setup
	$(PY) -m core.launcher

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) -m bench

demo: setup
	$(PY) scripts/demo.py

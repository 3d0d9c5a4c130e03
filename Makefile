# The operator's entry points (shared/spec/interfaces.md): each sets up what is missing first.
PY := .venv/bin/python

.PHONY: setup run test bench bench-hl7 bench-dicom bench-scheduling bench-critical demo

setup:
	@bash scripts/setup.sh

run: setup
	$(PY) -m core.launcher

test: setup
	$(PY) -m pytest -q -n 3 --dist worksteal

bench: setup
	$(PY) -m bench

# HL7 orders: MLLP receipt -> durable AA against the same order over REST (bench/hl7_orders.py).
bench-hl7: setup
	$(PY) -m bench.hl7_orders

demo: setup
	$(PY) scripts/demo.py

# DICOM throughput and worklist latency against DCMTK measured in the same run (issue 3).
bench-dicom: setup
	$(PY) -m bench.dicom_ingest && $(PY) -m bench.dicom_mwl

# Booking day: rule-checked booking vs first fit without rules, in the same run (issue 8).
bench-scheduling: setup
	$(PY) -m bench.scheduling

# A simulated day of critical values on the time-skipping server (issue 5).
bench-critical: setup
	$(PY) -m bench.critical_day

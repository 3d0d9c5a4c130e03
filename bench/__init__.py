"""RadLoop benchmarks, run on demand (`make bench`, `python -m bench [name ...]`), never by `make test`.

Each benchmark is a module with `main(argv: list[str]) -> int` that starts what it
needs on free ports, prints figures measured in that run (with the baseline it is
compared against, measured in the same run), and cleans up after itself.

To add one (DICOM, HL7, ...): write `bench/<name>.py` with such a `main`, then add a
line to BENCHMARKS below. Keep the default run under about three minutes on the
2-core machine; bigger runs go behind command-line flags.
"""
from __future__ import annotations

# name -> module path; the module defines `main(argv: list[str]) -> int`.
BENCHMARKS: dict[str, str] = {
    "dicom_ingest": "bench.dicom_ingest",
    "dicom_mwl": "bench.dicom_mwl",
    "loop_throughput": "bench.loop_throughput",
    "critical_latency": "bench.critical_latency",
    "critical_day": "bench.critical_day",
    "scheduling": "bench.scheduling",
    "web_pages": "bench.web_pages",
}

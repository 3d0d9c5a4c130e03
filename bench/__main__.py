"""`python -m bench [name ...] [-- flags]`: run the registered benchmarks one after another.

Without names every benchmark in `bench.BENCHMARKS` runs with its defaults. Flags
after `--` go to the one named benchmark (e.g.
`python -m bench loop_throughput -- --loops 200`); `python -m bench.<name> --help`
lists a benchmark's own flags. The exit code is non-zero if any benchmark failed
to run (a missed target is reported in the output, not as a failure).
"""
from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback

from bench import BENCHMARKS


def _split(argv: list[str]) -> tuple[list[str], list[str]]:
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1:]
    return argv, []


def main(argv: list[str] | None = None) -> int:
    ours, passed = _split(list(sys.argv[1:] if argv is None else argv))
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", metavar="name", help=f"benchmarks to run (default: all of {', '.join(BENCHMARKS)})")
    parser.add_argument("--list", action="store_true", help="list the registered benchmarks and exit")
    args = parser.parse_args(ours)
    if args.list:
        for name, module in BENCHMARKS.items():
            print(f"{name:24} {module}")
        return 0
    if passed and len(args.names) != 1:
        parser.error("flags after `--` are a benchmark's own: name exactly one benchmark with them")
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)} (known: {', '.join(BENCHMARKS)})")
    failed: list[str] = []
    for name in args.names or list(BENCHMARKS):
        print(f"\n===== bench {name} =====", flush=True)
        started = time.monotonic()
        try:
            code = importlib.import_module(BENCHMARKS[name]).main(passed)
        except Exception:  # noqa: BLE001 - one broken benchmark must not hide the others' figures
            traceback.print_exc()
            code = 1
        print(f"===== {name}: {'ok' if code == 0 else f'FAILED ({code})'} in {time.monotonic() - started:.0f}s =====",
              flush=True)
        if code != 0:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

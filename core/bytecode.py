"""Compiled bytecode for the workflow modules, written once per process before a worker runs.

Temporal's sandbox imports a workflow's module afresh for every workflow run it starts
(that is how it isolates runs). Without a `.pyc` beside the source, which is the case when
PYTHONDONTWRITEBYTECODE=1 (these machines, many container images), every run compiles the
module's source again: ~25 ms of CPU for the exam loop, per loop, on the worker's one GIL.
`compileall` writes the cache whatever that setting says; on a read-only tree it writes
nothing and the sandbox compiles as before.
"""
from __future__ import annotations

import compileall
import functools
from pathlib import Path

WORKFLOW_PACKAGES = ("workflows", "domain")  # what the sandbox may re-import per run


@functools.cache
def ensure_workflow_bytecode(root: Path = Path(__file__).resolve().parent.parent) -> bool:
    """Compile what is missing or stale (a stat per file when up to date); True when all compiled."""
    return all(compileall.compile_dir(root / package, quiet=2) for package in WORKFLOW_PACKAGES)

"""Database reads and writes from a workflow: local activities for loops started after `local-db-writes`.

A database write is short, idempotent and runs next to the worker, so a local
activity does it without a round trip through the server's task queue: one
marker event instead of an activity's scheduled/started/completed events and
the extra workflow task. That is what the embedded dev server spends its CPU
and fsyncs on, so it is what caps loops per second and delays critical-value
notices under load. Loops whose history predates the patch keep running their
writes as ordinary activities, so recorded histories replay unchanged.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.options import DB_ACTIVITY, DB_LOCAL_ACTIVITY

LOCAL_DB_WRITES = "local-db-writes"
R = TypeVar("R")


async def run_db(fn: Callable[[Any], Awaitable[R]], arg: Any) -> R:
    """Run a database activity: locally in patched loops, on the task queue in older ones."""
    if workflow.patched(LOCAL_DB_WRITES):
        return await workflow.execute_local_activity(fn, arg, **DB_LOCAL_ACTIVITY)
    return await workflow.execute_activity(fn, arg, **DB_ACTIVITY)

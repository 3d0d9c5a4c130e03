"""The baseline: a bare Temporal workflow with RadLoop's shape and none of its work.

The shape is a script read off a RadLoop history of the same run
(`bench.history.script_of`): `A` = one activity, `T` = the activity that opens a
human task, `a` / `t` = the same as local activities, `U` = wait for one update, `S` = upsert the LoopStep search attribute
(only in the attribution variant: it shows what RadLoop's visibility writes cost);
`[...]` = what one RadLoop workflow task scheduled together, run concurrently. Every activity is a no-op; `T` only
records, in this process, that a task is ready, which is how the baseline's
"staff" learn what to complete (RadLoop's learn it from the `human_task` rows).
Default data converter, no search attributes, no validators, no database.

Side-effect free at import: the workflow sandbox re-imports this module.
"""
from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import SearchAttributeKey

BARE_WORKFLOW = "BenchBareLoop"
LOOP_STEP = SearchAttributeKey.for_keyword("LoopStep")  # registered on the dev server like RadLoop's

# (workflow_id, task number) of tasks opened and not yet taken by the driver; filled by
# `bench_open_task` in the worker's activity threads, drained by the driver (same process).
READY: set[tuple[str, int]] = set()


@activity.defn(name="bench_noop")
def bench_noop(n: int) -> int:
    """Does nothing (sync like RadLoop's activities, so it runs on the same kind of executor)."""
    return n


@activity.defn(name="bench_open_task")
def bench_open_task(n: int) -> int:
    """No I/O: only tells the in-process driver that task `n` of this workflow is open."""
    READY.add((activity.info().workflow_id, n))
    return n


def steps(script: str) -> list[str]:
    """`AT[AA]U` -> ["A", "T", "AA", "U"]: each item runs after the previous one, its letters together."""
    out: list[str] = []
    batch: str | None = None
    for ch in script:
        if ch == "[":
            batch = ""
        elif ch == "]":
            out.append(batch or "")
            batch = None
        elif batch is not None:
            batch += ch
        else:
            out.append(ch)
    return out


@workflow.defn(name=BARE_WORKFLOW)
class BareLoop:
    def __init__(self) -> None:
        self.completed = 0
        self.opened = 0
        self.waited = 0

    @workflow.run
    async def run(self, script: str) -> int:
        for i, step in enumerate(steps(script)):
            await asyncio.gather(*(self._op(op, i) for op in step))
        return self.completed

    async def _op(self, op: str, i: int) -> None:
        if op == "A":
            await workflow.execute_activity(bench_noop, i, start_to_close_timeout=timedelta(seconds=30))
        elif op == "T":
            self.opened += 1
            await workflow.execute_activity(bench_open_task, self.opened, start_to_close_timeout=timedelta(seconds=30))
        elif op == "a":
            await workflow.execute_local_activity(bench_noop, i, start_to_close_timeout=timedelta(seconds=30))
        elif op == "t":
            self.opened += 1
            await workflow.execute_local_activity(bench_open_task, self.opened,
                                                  start_to_close_timeout=timedelta(seconds=30))
        elif op == "U":
            self.waited += 1
            target = self.waited
            await workflow.wait_condition(lambda: self.completed >= target)
        elif op == "S":
            workflow.upsert_search_attributes([LOOP_STEP.value_set(f"step-{i}")])

    @workflow.update
    def complete(self, n: int) -> int:
        self.completed += 1
        return self.completed

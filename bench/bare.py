"""The baseline: a bare Temporal workflow with RadLoop's shape and none of its work.

The shape is a script read off a RadLoop history of the same run
(`bench.history.script_of`): `A` = one activity, `T` = the activity that opens a
human task, `U` = wait for one update, `S` = upsert the LoopStep search attribute
(only in the attribution variant: it shows what RadLoop's visibility writes cost). Every activity is a no-op; `T` only
records, in this process, that a task is ready, which is how the baseline's
"staff" learn what to complete (RadLoop's learn it from the `human_task` rows).
Default data converter, no search attributes, no validators, no database.

Side-effect free at import: the workflow sandbox re-imports this module.
"""
from __future__ import annotations

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


@workflow.defn(name=BARE_WORKFLOW)
class BareLoop:
    def __init__(self) -> None:
        self.completed = 0

    @workflow.run
    async def run(self, script: str) -> int:
        opened = waited = 0
        for i, op in enumerate(script):
            if op == "A":
                await workflow.execute_activity(bench_noop, i, start_to_close_timeout=timedelta(seconds=30))
            elif op == "T":
                opened += 1
                await workflow.execute_activity(bench_open_task, opened, start_to_close_timeout=timedelta(seconds=30))
            elif op == "U":
                waited += 1
                target = waited
                await workflow.wait_condition(lambda: self.completed >= target)
            elif op == "S":
                workflow.upsert_search_attributes([LOOP_STEP.value_set(f"step-{i}")])
        return self.completed

    @workflow.update
    def complete(self, n: int) -> int:
        self.completed += 1
        return self.completed

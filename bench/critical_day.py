"""A simulated day of critical values on the time-skipping server (`make bench-critical`).

The day: 5,000 exams, 2% with a critical finding (100 critical values) raised at
random times; clinicians answer after random delays; 20% of first-level pages are
never answered (the backup, the head or the phone call answers instead); one
notification channel fails for an hour (10:00-11:00), so those values go to the
phone at once and are back-filled later. The exam loops themselves are measured
by `loop_throughput`; here the critical-value workflows are started directly, at
the moments the 2% of exams would raise them, with the seeded dictionary's
ladder (clinician 0 s, backup 180 s, head 360 s, phone 480 s).

Printed: share notified within 10 minutes, share acknowledged within the
deadline and at each level, escalation lag (actual minus scheduled, from the
server-side time of each notification attempt) p50/p99, lost and duplicated
notifications, wall time. Targets: 100% acknowledged within 10 minutes whenever
some rung answers in its window; lag p99 < 1 s; 0 lost, 0 duplicated.
"""
from __future__ import annotations

import argparse
import asyncio
import heapq
import os
import random
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LADDER_STARTS = [0, 180, 360, 480]  # seconds after raising: clinician, backup, head, phone task


@dataclass(order=True)
class Event:
    at: float
    seq: int
    kind: str = field(compare=False)
    cv: int = field(compare=False)


@dataclass
class Plan:
    """Who answers a critical value, when (seconds after it was raised)."""

    raised_at: float
    answer_level: int  # 0..2 by ack, 3 = phone call
    answer_after: float
    action_after: float
    in_outage: bool


def make_plans(n: int, day_seconds: int, outage: tuple[int, int], rng: random.Random) -> list[Plan]:
    plans = []
    for t in sorted(rng.uniform(60, day_seconds - 3600) for _ in range(n)):
        in_outage = outage[0] <= t < outage[1]
        if in_outage:
            level, after = 3, rng.uniform(30, 110)  # phone call straight away
        elif rng.random() >= 0.2:
            level, after = 0, rng.uniform(15, 170)
        else:  # the first page is never answered
            level = rng.choice([1, 1, 1, 2, 3])
            after = LADDER_STARTS[level] + rng.uniform(10, 110)
        plans.append(Plan(raised_at=t, answer_level=level, answer_after=after,
                          action_after=after + rng.uniform(60, 900), in_outage=in_outage))
    return plans


async def run(args: argparse.Namespace) -> int:
    import logging

    logging.getLogger("temporalio.activity").setLevel(logging.ERROR)  # the outage's failed deliveries are expected
    tmp = Path(tempfile.mkdtemp(prefix="radloop-bench-critical-"))
    os.environ |= {"RADLOOP_DATABASE_URL": f"sqlite:///{tmp / 'radloop.db'}", "RADLOOP_DATA_DIR": str(tmp)}
    from sqlmodel import Session, select
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
    from temporalio.client import WorkflowExecutionStatus
    from temporalio.testing import WorkflowEnvironment

    from activities.critical import PlanRequest, critical_plan
    from core.config import reset_settings_cache
    from core.db import get_engine
    from core.migrate import upgrade_head
    from core.seed import seed_demo
    from core.temporal import SEARCH_ATTRIBUTES, data_converter
    from domain.enums import Role
    from domain.loop import CriticalAck, CriticalValueInput, TaskCompletion
    from domain.tables import CriticalValue, NotificationAttempt
    from services import loop_commands
    from bench.inbox import actor
    from bench.sink import NotifySink
    from worker import build_worker
    from workflows.critical_value.workflow import CriticalValueWorkflow

    upgrade_head()
    with Session(get_engine()) as s:
        seed_demo(s)
        s.commit()
    rng = random.Random(args.seed)
    n_critical = round(args.exams * args.critical_share)
    outage = (10 * 3600, 11 * 3600)
    plans = make_plans(n_critical, 24 * 3600, outage, rng)
    print(f"simulated day: {args.exams} exams, {n_critical} critical values, channel outage 10:00-11:00, seed {args.seed}")

    with NotifySink() as sink:
        os.environ["RADLOOP_NOTIFY_DEFAULT_URL"] = sink.url
        reset_settings_cache()
        env = await WorkflowEnvironment.start_time_skipping(
            test_server_existing_path=str(Path(sys.executable).parent / "temporal-test-server"),
            data_converter=data_converter())
        kinds = {"Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD, "Bool": IndexedValueType.INDEXED_VALUE_TYPE_BOOL}
        await env.client.operator_service.add_search_attributes(AddSearchAttributesRequest(
            namespace="default", search_attributes={k: kinds[v] for k, v in SEARCH_ATTRIBUTES.items()}))
        tq = f"bench-critical-{uuid.uuid4().hex[:6]}"
        plan = critical_plan(PlanRequest(accession_number="SIM", finding="tension pneumothorax",
                                         item_code="tension_pneumothorax", modality="CT"))
        events: list[Event] = []
        seq = 0
        for i, p in enumerate(plans):
            for kind, at in (("raise", p.raised_at), ("answer", p.raised_at + p.answer_after),
                             ("action", p.raised_at + p.action_after)):
                heapq.heappush(events, Event(at, seq := seq + 1, kind, i))
        for kind, at in (("outage_on", outage[0]), ("outage_off", outage[1])):
            heapq.heappush(events, Event(at, seq := seq + 1, kind, -1))

        wall0 = time.perf_counter()
        sim_start = await env.get_current_time()
        ids = [f"critical-SIM{i:04d}-1" for i in range(len(plans))]
        async with build_worker(env.client, tq):
            now = 0.0
            while events:
                ev = heapq.heappop(events)
                if ev.at > now:
                    await env.sleep(timedelta(seconds=ev.at - now))
                    now = ev.at
                if ev.kind == "outage_on":
                    sink.fail = True
                elif ev.kind == "outage_off":
                    sink.fail = False
                elif ev.kind == "raise":
                    await env.client.start_workflow(
                        CriticalValueWorkflow.run,
                        CriticalValueInput(
                            critical_value_id=ids[ev.cv], accession_number=f"SIM{ev.cv:04d}", finding="tension pneumothorax",
                            raised_by=actor(Role.senior_radiologist), ordering_clinician_id="u-clinician",
                            ordering_department="respiratory", ladder=plan.ladder, item_code=plan.item_code,
                            item_name=plan.item_name, dictionary_version=plan.dictionary_version,
                            deadline_seconds=plan.deadline_seconds, response_seconds=plan.response_seconds),
                        id=ids[ev.cv], task_queue=tq)
                elif ev.kind == "answer":
                    await _answer(env, loop_commands, plans[ev.cv], ids[ev.cv], CriticalAck, TaskCompletion, actor, Role)
                elif ev.kind == "action":
                    await _complete(env, loop_commands, ids[ev.cv], "critical_response", actor(Role.clinician),
                                    {"action_taken": "treated"}, TaskCompletion)
            await env.sleep(timedelta(hours=6))  # back-fill retries after the outage, closing
            for wid in ids:
                handle = env.client.get_workflow_handle(wid)
                for _ in range(200):
                    if (await handle.describe()).status != WorkflowExecutionStatus.RUNNING:
                        break
                    await asyncio.sleep(0.05)
        wall = time.perf_counter() - wall0
        await env.shutdown()

    with Session(get_engine()) as s:
        values = {r.id: r for r in s.exec(select(CriticalValue))}
        attempts = list(s.exec(select(NotificationAttempt)))
    report(plans, ids, values, attempts, wall, sim_start)
    return 0


async def _complete(env, loop_commands, wid: str, task_type: str, who, data: dict, TaskCompletion) -> None:
    for _ in range(400):
        st = await env.client.get_workflow_handle(wid).query("status")
        task = next((t for t in st["open_tasks"] if t["task_type"] == task_type), None)
        if task:
            await loop_commands.complete_task(env.client, wid, TaskCompletion(task_id=task["task_id"], actor=who, data=data))
            return
        await asyncio.sleep(0.02)
    raise RuntimeError(f"{wid}: no open {task_type} task")


async def _answer(env, loop_commands, p: Plan, wid: str, CriticalAck, TaskCompletion, actor, Role) -> None:
    if p.answer_level == 3:
        await _complete(env, loop_commands, wid, "critical_phone_call", actor(Role.nurse),
                        {"called_person_name": "值班医生", "read_back": "tension pneumothorax"}, TaskCompletion)
    else:
        await loop_commands.acknowledge_critical(env.client, wid, CriticalAck(
            actor=actor(Role.clinician), clinician_name="值班医生", read_back="tension pneumothorax, understood"))


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))] if ordered else float("nan")


def report(plans: list[Plan], ids: list[str], values: dict, attempts: list, wall: float, sim_start: datetime) -> None:
    def utc(dt: datetime) -> datetime:
        return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt

    by_cv: dict[str, list] = defaultdict(list)
    for a in attempts:
        if a.critical_value_id:
            by_cv[a.critical_value_id].append(a)
    notified10 = acked10 = closed = 0
    acked_at_level: Counter[int] = Counter()
    lags: list[float] = []
    lost = duplicated = 0
    for wid, p in zip(ids, plans):
        row = values.get(wid)
        if row is None:
            lost += 1
            continue
        raised = utc(row.raised_at)
        rows = by_cv[wid]
        first = min((utc(a.attempted_at) for a in rows if a.delivered and a.purpose == "critical_value"), default=None)
        if first is None and row.ack_channel == "phone_call":
            first = utc(row.acked_at)
        notified10 += first is not None and (first - raised).total_seconds() <= 600
        acked10 += row.acked_at is not None and (utc(row.acked_at) - raised).total_seconds() <= 600
        closed += row.state == "closed"
        if row.acked_at is not None:
            acked_at_level[3 if row.ack_channel == "phone_call" else row.level] += 1
        per_level: dict[int, list] = defaultdict(list)
        for a in rows:
            if a.purpose == "critical_value":
                per_level[int(a.id.split("/level-")[1].split("/")[0])].append(a)
        for level, tries in per_level.items():
            duplicated += max(0, sum(t.delivered for t in tries) - 1)
            if level > 0 and tries:
                lags.append((min(utc(t.attempted_at) for t in tries) - raised).total_seconds() - LADDER_STARTS[level])
        reached = row.level if row.ack_channel != "phone_call" or not p.in_outage else -1
        for level in range(0, min(reached, 2) + 1):
            if not p.in_outage and not any(t.delivered for t in per_level.get(level, [])):
                lost += 1
        if p.in_outage and not any(a.purpose == "critical_backfill" and a.delivered for a in rows):
            lost += 1
    n = len(plans)
    print(f"critical values closed (sent, acknowledged, acted upon): {closed}/{n}")
    print(f"notified within 10 minutes:   {notified10 / n:.1%}   (R8.7 measure)")
    print(f"acknowledged within 10 min:   {acked10 / n:.1%}   (target 100%: every value here has a rung that answers)")
    for level, name in enumerate(["ordering clinician", "backup clinician", "department head", "phone call"]):
        planned = sum(p.answer_level == level for p in plans)
        print(f"  acknowledged at level {level} ({name:18}): {acked_at_level[level]:3d}   planned {planned}")
    if lags:
        print(f"escalation lag (actual - scheduled): p50 {_pct(lags, 50) * 1000:.0f} ms, p99 {_pct(lags, 99) * 1000:.0f} ms,"
              f" max {max(lags) * 1000:.0f} ms over {len(lags)} escalations   (target p99 < 1 s)")
    print(f"lost notifications: {lost}   duplicated notifications: {duplicated}   (target 0 and 0)")
    print(f"wall time: {wall:.1f} s for a simulated day starting {sim_start:%Y-%m-%d %H:%M} (time-skipping server)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.critical_day", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exams", type=int, default=5000)
    parser.add_argument("--critical-share", type=float, default=0.02)
    parser.add_argument("--seed", type=int, default=20261127)
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())

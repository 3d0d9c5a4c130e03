"""Loops per second: RadLoop's exam loop against a bare Temporal loop of the same shape.

One embedded dev server (SQLite file, like `make run`), one in-process worker per
kind, the same "staff" polling loop for both. The N loops of each kind are run
in R alternating rounds (RadLoop then bare, bare then RadLoop, ...): in each
round a batch of N/R loops is started at once and driven from order to closed,
so both kinds meet the same machine load on average (other work on a shared
machine drifts over minutes). loops/s = loops / summed batch wall time; CPU
seconds per loop (server and this process) are printed too, being much less
sensitive to what else runs on the machine.
RadLoop loops run the whole happy path: order QC, booking, check-in, exam,
image QC, draft, preliminary, review and sign, publish; the correction window is
0 days (RADLOOP_CORRECTION_WINDOW_DAYS=0) so a loop closes right after
publishing, which the benchmark checks (no timer fires in any history; the booking
reminder's timer is started and dropped when the loop closes).

The baseline is `bench.bare.BareLoop` running the script read from a RadLoop
warm-up history of this very run: same activities (no-ops), same updates, same
order. The ratio RadLoop / bare is what RadLoop's own work costs (database
activities, payload encryption, search attributes, validators) on this server.

    python -m bench.loop_throughput [--loops 60] [--rounds 3] [--budget 150] [--warmup 2] [--attribution]

Rounds are whole (each kind runs the same batches), so when the machine is too busy
for 60 loops of each kind within --budget seconds the run stops after the last round
that fits and says so; every printed figure covers the rounds that ran.
"""
from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import math
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from bench import history
from bench.bare import READY, BareLoop, bench_noop, bench_open_task
from bench.center import Center, embedded_center
from bench.cpu import CpuMeter, child_pid
from bench.inbox import Inbox, OpenTask, RadLoopStaff
from bench.sink import NotifySink
from bench.stats import machine_note, table

TARGET_RATIO = 0.7
SLOTS_PER_DAY = 80  # CT: 2 seeded rooms x 10 opening hours x 4 slots of 15 min


@dataclass
class Phase:
    kind: str
    label: str
    loops: int
    seconds: float
    counts: dict[str, float]
    server_cpu: float | None
    own_cpu: float
    workflow_ids: list[str]

    @property
    def rate(self) -> float:
        return self.loops / self.seconds


@dataclass
class Kind:
    """One kind of loop under test: how to start one, who drives it, where its histories are."""

    name: str
    start: Callable[[], Awaitable[WorkflowHandle]]
    inbox: Inbox
    client: Client


async def wait_closed(handles: Sequence[WorkflowHandle], inbox: Inbox, timeout: float) -> None:
    """Wait for every result; stop early with the reason if a completion failed or time ran out."""
    results = asyncio.ensure_future(asyncio.gather(*(h.result() for h in handles)))
    deadline = time.monotonic() + timeout
    while not results.done():
        await asyncio.wait({results}, timeout=0.5)
        if not results.done() and (inbox.errors or time.monotonic() > deadline):
            results.cancel()
            reason = inbox.errors[0] if inbox.errors else f"not all closed after {timeout:.0f}s"
            raise RuntimeError(f"{len(handles)} loops did not all close: {reason}")
    results.result()


async def measure(kind: Kind, label: str, n: int, meter: CpuMeter, timeout: float) -> Phase:
    """Start `n` loops at once, wait until all are closed, then read their histories."""
    cpu0 = meter.read()
    t0 = time.perf_counter()
    handles = await asyncio.gather(*(kind.start() for _ in range(n)))
    await wait_closed(handles, kind.inbox, timeout)
    seconds = time.perf_counter() - t0
    server_cpu, own_cpu = meter.since(cpu0)
    events = await asyncio.gather(*(history.fetch(kind.client, h.id) for h in handles))
    # The booking reminder starts a timer (due hours before arrival) that the closing loop drops;
    # a timer that fired would mean a loop waited on one, e.g. a correction window left open.
    fired = sum(1 for evs in events for ev in evs if ev.event_type == EventType.EVENT_TYPE_TIMER_FIRED)
    if kind.name == "radloop" and fired:
        raise RuntimeError(f"{fired} timers fired in RadLoop histories: the correction window did not close at 0 days")
    counts = history.mean_counts([history.counts(evs) for evs in events])
    return Phase(kind.name, label, n, seconds, counts, server_cpu, own_cpu, [h.id for h in handles])


def bare_inbox(client: Client, poll_seconds: float) -> Inbox:
    """The baseline's staff: take ready markers from `bench.bare.READY`, send the update."""

    async def list_open() -> list[OpenTask]:
        taken = list(READY)
        READY.difference_update(taken)
        return [OpenTask(task_id=f"{wid}/{n}", workflow_id=wid, accession="", task_type="bare") for wid, n in taken]

    async def complete(task: OpenTask) -> None:
        # The task ID as update ID: a resend after a client-side timeout is deduplicated by the server.
        await client.get_workflow_handle(task.workflow_id).execute_update(BareLoop.complete, 0, id=task.task_id)

    return Inbox(list_open, complete, poll_seconds)


def fmt_cpu(seconds: float | None, loops: int) -> str:
    return "n/a" if seconds is None else f"{seconds / loops * 1000:.0f}"


def _row(label: str, group: list[Phase]) -> list[object]:
    loops = sum(p.loops for p in group)
    seconds = sum(p.seconds for p in group)
    mean = {k: sum(p.counts[k] * p.loops for p in group) / loops for k in group[0].counts}
    server = None if any(p.server_cpu is None for p in group) else sum(p.server_cpu or 0 for p in group)
    return [label, loops, f"{seconds:.1f}", f"{loops / seconds:.2f}", f"{mean['events']:.0f}",
            f"{mean['activities']:.0f}", f"{mean['local_activities']:.0f}", f"{mean['updates'] + mean['signals']:.0f}", f"{mean['workflow_tasks']:.0f}",
            fmt_cpu(server, loops), fmt_cpu(sum(p.own_cpu for p in group), loops)]


def _totals(phases: list[Phase], kind: str) -> tuple[float, float | None]:
    """(loops/s over all rounds, CPU seconds per loop on server + this process, if readable)."""
    group = [p for p in phases if p.kind == kind]
    loops = sum(p.loops for p in group)
    rate = loops / sum(p.seconds for p in group)
    if any(p.server_cpu is None for p in group):
        return rate, None
    return rate, sum((p.server_cpu or 0) + p.own_cpu for p in group) / loops


def report(phases: list[Phase], script: str) -> None:
    kinds = list(dict.fromkeys(p.kind for p in phases))
    rows = [_row(p.label, [p]) for p in phases]
    rows += [_row(f"{k} (all rounds)", [p for p in phases if p.kind == k]) for k in kinds]
    print(table(rows, ["phase", "loops", "seconds", "loops/s", "events/loop", "activities/loop", "local/loop", "updates/loop",
                       "WFTs/loop", "server CPU ms/loop", "bench CPU ms/loop"]))
    (rad, rad_cpu), (bare, bare_cpu) = _totals(phases, "radloop"), _totals(phases, "bare")
    ratio = rad / bare
    verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
    print(f"\nRadLoop {rad:.2f} loops/s, bare Temporal {bare:.2f} loops/s, "
          f"ratio {ratio:.2f}x (target >= {TARGET_RATIO:.2f}x: {verdict})")
    if rad_cpu and bare_cpu:
        print(f"CPU per loop (server + bench process): RadLoop {rad_cpu * 1000:.0f} ms, bare {bare_cpu * 1000:.0f} ms: "
              f"as a capacity ratio {bare_cpu / rad_cpu:.2f}x (what the loops/s ratio would be if CPU-bound alone)")
    if "bare+upserts" in kinds:
        up, up_cpu = _totals(phases, "bare+upserts")
        cpu = f", CPU per loop {up_cpu * 1000:.0f} ms" if up_cpu else ""
        print(f"bare + RadLoop's search-attribute upserts: {up:.2f} loops/s ({up / bare:.2f}x bare){cpu}: "
              f"what the visibility writes alone cost")
    if "bare, queued activities" in kinds:
        q, q_cpu = _totals(phases, "bare, queued activities")
        cpu = f", CPU per loop {q_cpu * 1000:.0f} ms" if q_cpu else ""
        print(f"bare with every activity on the task queue (no local activities): {q:.2f} loops/s "
              f"({rad / q:.2f}x for RadLoop){cpu}: what local database writes buy")
    print(f"script read from RadLoop ({len(script)} steps, S = upsert, left out of the plain baseline): {script}")
    print("server CPU = the dev server process; bench CPU = this process (workers, staff, order intake).")
    print(machine_note())


async def run(args: argparse.Namespace) -> int:
    settings = {"RADLOOP_CORRECTION_WINDOW_DAYS": "0"}
    loops_needed = 3 * (args.loops + args.warmup)
    if loops_needed > 12 * SLOTS_PER_DAY:  # the default 14-day booking horizon would run out of CT slots
        settings["RADLOOP_BOOKING_HORIZON_DAYS"] = str(math.ceil(loops_needed / SLOTS_PER_DAY) + 2)
    with NotifySink() as sink:
        settings["RADLOOP_NOTIFY_DEFAULT_URL"] = sink.url
        async with embedded_center(settings) as center:
            return await _run_in(center, args)


async def _run_in(center: Center, args: argparse.Namespace) -> int:
    meter = CpuMeter(child_pid("temporal"))
    staff = RadLoopStaff(center.client, center.task_queue, args.poll)
    bare_client = await Client.connect(center.target, namespace=center.client.namespace)
    bare_queue = f"bench-bare-{uuid.uuid4().hex[:8]}"
    bare_staff = bare_inbox(bare_client, args.poll)
    bare_worker = Worker(
        bare_client, task_queue=bare_queue, workflows=[BareLoop], activities=[bench_noop, bench_open_task],
        activity_executor=concurrent.futures.ThreadPoolExecutor(max_workers=32), max_concurrent_activities=32,
    )
    scripts: dict[str, str] = {}

    async def start_radloop() -> WorkflowHandle:
        order = await staff.place()
        return center.client.get_workflow_handle(order.workflow_id)

    def start_bare(script_name: str) -> Callable[[], Awaitable[WorkflowHandle]]:
        async def start() -> WorkflowHandle:
            return await bare_client.start_workflow(BareLoop.run, scripts[script_name],
                                                    id=f"bare-{uuid.uuid4().hex[:12]}", task_queue=bare_queue)
        return start

    radloop = Kind("radloop", start_radloop, staff.inbox, center.client)
    kinds = [radloop, Kind("bare", start_bare("bare"), bare_staff, bare_client)]
    if args.attribution:
        kinds.append(Kind("bare+upserts", start_bare("full"), bare_staff, bare_client))
        kinds.append(Kind("bare, queued activities", start_bare("queued"), bare_staff, bare_client))
    batch = math.ceil(args.loops / args.rounds)
    print(f"loop_throughput: {batch * args.rounds} loops of each kind in {args.rounds} alternating round(s) of "
          f"{batch} started at once, "
          f"one dev server (SQLite file) on {center.target}, one in-process worker per kind", flush=True)
    print(machine_note(), flush=True)
    phases: list[Phase] = []
    async with bare_worker, staff.inbox.working(), bare_staff.working():
        warm = await measure(radloop, "warm-up", args.warmup, meter, args.timeout)
        scripts["full"] = history.script_of(await history.fetch(center.client, warm.workflow_ids[0]))
        scripts["bare"] = scripts["full"].replace("S", "").replace("[]", "")
        scripts["queued"] = scripts["bare"].replace("a", "A").replace("t", "T")
        print(f"warm-up: {args.warmup} RadLoop loops closed in {warm.seconds:.1f}s; shape read from a RadLoop "
              f"history: {history.activity_count(scripts['bare'])} activities "
              f"({sum(map(scripts['bare'].count, 'at'))} of them local, "
              f"{sum(map(scripts['bare'].count, 'Tt'))} open a "
              f"task, {scripts['bare'].count('[')} concurrent batches), {scripts['bare'].count('U')} updates",
              flush=True)
        for kind in kinds[1:]:
            await measure(kind, "warm-up", args.warmup, meter, args.timeout)
        measuring = time.monotonic()
        for r in range(1, args.rounds + 1):
            spent = time.monotonic() - measuring
            if r > 1 and args.budget and spent / (r - 1) * r > args.budget:
                print(f"  stopping after {r - 1} of {args.rounds} rounds: another would pass the {args.budget:g}s "
                      f"budget (the machine is slower or busier than the defaults assume; --budget 0 runs all)",
                      flush=True)
                break
            for kind in kinds if r % 2 else list(reversed(kinds)):
                phase = await measure(kind, f"{kind.name} round {r}", batch, meter, args.timeout)
                print(f"  {phase.label}: {phase.loops} loops in {phase.seconds:.1f}s = {phase.rate:.2f} loops/s",
                      flush=True)
                phases.append(phase)
    print()
    report(phases, scripts["full"])
    print(center.activity_failures.note())
    print(f"update calls resent after a client timeout (server overloaded): RadLoop {staff.inbox.timeouts}, "
          f"bare {bare_staff.timeouts}")
    return 0


def parse(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.loop_throughput", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--loops", type=int, default=60, help="measured loops of each kind (default 60)")
    p.add_argument("--rounds", type=int, default=3,
                   help="alternating rounds the loops are split into, each a batch started at once; odd rounds "
                        "run RadLoop first, even rounds bare first (default 3: batches of 20)")
    p.add_argument("--warmup", type=int, default=2, help="unmeasured loops of each kind first (default 2)")
    p.add_argument("--budget", type=float, default=150,
                   help="seconds for the measured rounds: no round is started that would end past it "
                        "(the first always runs; default 150, 0 = no limit)")
    p.add_argument("--attribution", action="store_true",
                   help="also run the baseline with RadLoop's search-attribute upserts (one more phase per round)")
    p.add_argument("--poll", type=float, default=0.05, help="staff inbox poll interval in seconds (default 0.05)")
    p.add_argument("--timeout", type=float, default=600, help="give up on a phase after this many seconds")
    return p.parse_args(list(argv))


def main(argv: Sequence[str] = ()) -> int:
    return asyncio.run(run(parse(argv)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""HL7 orders: MLLP receipt -> durable AA, against the same order placed over REST, in one run.

One embedded dev server (SQLite file, like `make run`); the RadLoop worker (`worker.py`),
the API (uvicorn, uvloop + httptools) and the MLLP listener (`python -m
integrations.hl7.listener`) each in a process of their own, as the launcher starts them,
so the sender here, like a HIS, shares no interpreter with the center (`--in-process`
puts the worker, API and listener in this process instead, sharing one Temporal client
and one GIL with the sender: a stalled GIL then shows as AA latency that no HIS would
see). Each order is new (own placer number
and patient); an order counts when its AA (MLLP) or 201 (REST) is back, i.e. when its
rows are committed and its loop exists. Phases:

1. paced: orders at a fixed rate (default 5/s for 30 s) over MLLP and over REST: p50/p99
   of the time to the AA / 201 (target p99 AA < 250 ms);
2. throughput: one unmeasured burst per path (the first burst on a fresh center runs
   far faster than any later one, whichever path sends it), then N orders over C
   concurrent connections, REST and MLLP rounds alternating (so the worker's
   background load is shared fairly); orders/s = N / wall time, with p50/p99.

With separate processes each phase also reports CPU ms per order of the process that
took the orders (API for REST; listener and any child process for MLLP), measured from
/proc while the phase runs and until the worker has taken its loops to their first
human step: on a shared machine that ratio moves far less than orders/s does.

Work per order is not identical, by design: MLLP also looks the message up for a
resend, logs it with its ACK, and registers the patient through the EMPI (candidate
scoring, review queue), which REST intake does not; both audit each order.

Target: MLLP orders/s >= 0.9 x REST orders/s.

    python -m bench.hl7_orders [--orders 60] [--concurrency 6] [--rounds 4] [--rate 5] [--paced-seconds 30]
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn

TARGET_RATIO = 0.9
TARGET_P99_MS = 250.0
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], p: float) -> float:
    """Nearest rank: an observed value (for n <= 100, p99 is the maximum)."""
    ordered = sorted(values)
    return ordered[max(1, -(-int(p * len(ordered)) // 100)) - 1]


SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹"
GIVEN = ["伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超",
         "秀英", "建华", "志强", "海燕", "晓东", "丽娟", "建国", "春梅", "子涵", "雨轩", "浩然", "欣怡", "梓萱"]


def person(n: str) -> tuple[str, str, str, date]:
    """A plausible, varied patient per order (family, given, sex, birth date): namesakes are rare, as in life."""
    h = int(hashlib.sha256(n.encode()).hexdigest(), 16)
    born = date(1940, 1, 1) + timedelta(days=h % 25000)
    return SURNAMES[h % len(SURNAMES)], GIVEN[(h // 31) % len(GIVEN)], "MF"[(h // 7) % 2], born


# An outpatient mix over four modalities (code, name, modality, body part as in domain/procedures.py):
# all of one code would fill its rooms' 14-day booking window within one run.
PROCEDURES = [("CT-CHEST", "胸部CT平扫", "CT", "CHEST"), ("DX-CHEST", "胸部正位片", "DX", "CHEST"),
              ("US-ABD", "腹部超声", "US", "ABDOMEN"), ("MR-HEAD", "头颅MR平扫", "MR", "HEAD")]


def procedure(n: str) -> tuple[str, str, str, str]:
    return PROCEDURES[int(hashlib.sha256(b"p" + n.encode()).hexdigest(), 16) % len(PROCEDURES)]


def rest_body(n: str) -> dict[str, Any]:
    family, given, sex, born = person(n)
    code, name, modality, body_part = procedure(n)
    return {
        "placer_order_number": f"R{n}", "placer_system": "HIS",
        "patient": {"identifiers": [{"system": "MRN", "value": f"MR{n}"}], "name": family + given, "sex": sex,
                    "birth_date": born.isoformat()},
        "procedure": {"code": code, "name": name, "modality": modality, "body_part": body_part},
        "priority": "routine",
        "ordering": {"clinician_id": "D001", "clinician_name": "孙医生", "department": "呼吸内科"},
        "clinical": {"history": "咳嗽两周", "diagnosis": "肺炎", "purpose": "排除肺部感染"},
    }


def orm_message(n: str) -> bytes:
    """The same order as `rest_body`, as ORM^O01 v2.5.1 in UTF-8."""
    family, given, sex, born = person(n)
    code, name, modality, body_part = procedure(n)
    return "\r".join([
        f"MSH|^~\\&|HIS|MAIN|RADLOOP|RAD|20261127120000||ORM^O01^ORM_O01|C{n}|P|2.5.1|||||||UNICODE UTF-8",
        f"PID|1||MH{n}^^^MRN^MR||{family}^{given}||{born:%Y%m%d}|{sex}",
        "PV1|1|O|RESP",
        f"ORC|NW|H{n}^HIS|||||^^^^^R|||||D001^孙^医生|||||^呼吸内科",
        f"OBR|1|H{n}^HIS||{code}^{name}|||||||||咳嗽两周||^^^{body_part}|||||||||{modality}|||||||^排除肺部感染",
        "DG1|1||J18.9^肺炎^I10",
    ]).encode()


@dataclass
class Phase:
    path: str
    label: str
    latencies_ms: list[float]
    seconds: float
    failures: int
    cpu_seconds: float | None = None  # of the process that took this phase's orders (API or listener)
    sent_at_s: list[float] = field(default_factory=list)  # per latency: when it was sent, from the phase start

    def slowest(self, k: int = 5) -> str:
        worst = sorted(zip(self.latencies_ms, self.sent_at_s), reverse=True)[:k]
        return ", ".join(f"{ms:.0f} ms at {at:.1f} s" for ms, at in worst)

    @property
    def rate(self) -> float:
        return len(self.latencies_ms) / self.seconds

    @property
    def cpu_ms_per_order(self) -> float | None:
        if self.cpu_seconds is None or not self.latencies_ms:
            return None
        return self.cpu_seconds * 1000 / len(self.latencies_ms)


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of `pid` and every live descendant (a listener child process counts as the listener)."""
    from bench.cpu import _stat, cpu_seconds

    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            parents[int(entry.name)] = int(fields[2])
    tree, grew = {pid}, True
    while grew:
        more = {child for child, parent in parents.items() if parent in tree} - tree
        tree |= more
        grew = bool(more)
    return sum(cpu_seconds(p) or 0.0 for p in tree)


@dataclass
class Center:
    api_port: int
    mllp_port: int
    api_pid: int | None = None  # None: in this process
    listener_pid: int | None = None
    worker_pid: int | None = None

    def cpu_pid(self, path: str) -> int | None:
        return self.api_pid if path == "rest" else self.listener_pid


Sender = Callable[[str], Awaitable[None]]


async def _wait_for_port(port: int, proc: subprocess.Popen[bytes], name: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode} before listening on {port}")
        try:
            _reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 1)
        except (OSError, TimeoutError):
            await asyncio.sleep(0.1)
            continue
        writer.close()
        return
    raise RuntimeError(f"{name} not listening on {port} after {timeout:g}s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.asynccontextmanager
async def center(in_process: bool = False) -> AsyncIterator[Center]:
    """Dev server here; worker, API (uvicorn) and MLLP listener in their own processes (or here), all private."""
    from temporalio.testing import WorkflowEnvironment

    tmp = tempfile.TemporaryDirectory(prefix="radloop-bench-hl7-")
    data = Path(tmp.name)
    api_port, mllp_port = free_port(), free_port()
    settings_env = {
        "RADLOOP_MODE": "development", "RADLOOP_DATA_DIR": str(data),
        "RADLOOP_DATABASE_URL": f"sqlite:///{data / 'radloop.db'}",
        "RADLOOP_TEMPORAL_TASK_QUEUE": f"bench-hl7-{uuid.uuid4().hex[:8]}",
        "RADLOOP_API_PORT": str(api_port), "RADLOOP_HL7_PORT": str(mllp_port),
    }
    before = {k: os.environ.get(k) for k in [*settings_env, "RADLOOP_TEMPORAL_ADDRESS"]}  # restored on exit
    os.environ.update(settings_env)
    from sqlmodel import Session

    from core.config import get_settings, reset_settings_cache
    from core.db import get_engine, reset_engine_cache
    from core.migrate import upgrade_head
    from core.seed import seed_demo
    from core.temporal import data_converter, dev_server_search_attribute_args
    from worker import build_worker

    reset_settings_cache()
    reset_engine_cache()
    upgrade_head()
    with Session(get_engine()) as s:
        seed_demo(s)
        s.commit()
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(VENV_BIN / "temporal"),
        dev_server_database_filename=str(data / "temporal.db"),
        dev_server_extra_args=dev_server_search_attribute_args(), dev_server_log_level="error",
        data_converter=data_converter(), ui=False,
    )
    client = env.client
    queue = get_settings().temporal_task_queue
    stack = contextlib.AsyncExitStack()
    try:
        if in_process:
            yield_center = await stack.enter_async_context(_in_process(client, queue, api_port))
            await stack.enter_async_context(build_worker(client, task_queue=queue))
        else:
            os.environ["RADLOOP_TEMPORAL_ADDRESS"] = client.service_client.config.target_host
            yield_center = await stack.enter_async_context(_processes(api_port, mllp_port, data))
        yield yield_center
    finally:
        await stack.aclose()
        await env.shutdown()
        get_engine().dispose()
        tmp.cleanup()
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        reset_settings_cache()
        reset_engine_cache()


@contextlib.asynccontextmanager
async def _processes(api_port: int, mllp_port: int, data: Path) -> AsyncIterator[Center]:
    """The API, the listener and the worker as the launcher starts them (core.launcher.app_commands)."""
    py = sys.executable
    commands = {
        "api": [py, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1", "--port", str(api_port),
                "--loop", "uvloop", "--http", "httptools", "--log-level", "warning"],
        "hl7": [py, "-m", "integrations.hl7.listener"],
        "worker": [py, "worker.py"],
    }
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, argv in commands.items():
            with open(data / f"{name}.log", "wb") as out:
                procs[name] = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ))
        await _wait_for_port(api_port, procs["api"], "the API")
        await _wait_for_port(mllp_port, procs["hl7"], "the HL7 listener")
        yield Center(api_port, mllp_port, api_pid=procs["api"].pid, listener_pid=procs["hl7"].pid,
                     worker_pid=procs["worker"].pid)
    finally:
        await asyncio.gather(*(asyncio.to_thread(_stop, proc) for proc in procs.values()))


@contextlib.asynccontextmanager
async def _in_process(client: Any, queue: str, api_port: int) -> AsyncIterator[Center]:
    """API and listener in this process, sharing the worker's Temporal client (the bench's earlier layout)."""
    from api.main import create_app
    from integrations.hl7.audit import HL7Auditor
    from integrations.hl7.context import InboundContext
    from integrations.hl7.inbound import InboundProcessor
    from integrations.hl7.listener import use_listener_threads
    from integrations.hl7.mllp import MLLPServer

    async def temporal():
        return client

    use_listener_threads()  # as `python -m integrations.hl7.listener` does in its own process
    auditor = HL7Auditor()  # audited like the listener (and like REST, through the API's audit middleware)
    mllp = MLLPServer(InboundProcessor(InboundContext(temporal=temporal, task_queue=queue, audit=auditor.submit)))
    mllp_port = await mllp.start("127.0.0.1", 0)
    api = uvicorn.Server(uvicorn.Config(create_app(client), host="127.0.0.1", port=api_port, log_level="warning",
                                        loop="none", lifespan="on"))
    api_task = asyncio.create_task(api.serve())
    while not api.started:
        await asyncio.sleep(0.05)
    try:
        yield Center(api_port, mllp_port)
    finally:
        api.should_exit = True
        await api_task
        await mllp.close()
        await asyncio.to_thread(auditor.flush)


class MLLPPool:
    """C persistent MLLP connections, as a HIS keeps them; each order takes a free one."""

    def __init__(self, port: int, size: int) -> None:
        from integrations.hl7.mllp import MLLPClient

        self.clients = [MLLPClient("127.0.0.1", port, timeout=30) for _ in range(size)]
        self.free: asyncio.Queue[Any] = asyncio.Queue()

    async def open(self) -> None:
        for c in self.clients:
            await c.connect()
            self.free.put_nowait(c)

    async def send(self, n: str) -> None:
        client = await self.free.get()
        try:
            ack = await client.send(orm_message(n))
        finally:
            self.free.put_nowait(client)
        if b"MSA|AA|" not in ack:
            raise RuntimeError(f"not AA: {ack[:300]!r}")

    async def close(self) -> None:
        for c in self.clients:
            await c.close()


async def run_phase(path: str, label: str, send: Sender, count: int, concurrency: int,
                    rate: float | None = None, cpu_pid: int | None = None) -> Phase:
    """Send `count` orders; with `cpu_pid`, also the CPU that process tree used for them, until the worker
    has taken them to their first human step (the listener's audit writer finishes by then too)."""
    cpu0 = tree_cpu_seconds(cpu_pid) if cpu_pid else None
    latencies: list[float] = []
    sent_at: list[float] = []
    failures = 0
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        nonlocal failures
        async with gate:
            t0 = time.perf_counter()
            try:
                await send(f"{label[:1]}{uuid.uuid4().hex[:10]}{i}")
                latencies.append((time.perf_counter() - t0) * 1000)
                sent_at.append(t0 - started)
            except Exception as err:  # noqa: BLE001 - counted and shown, the run goes on
                failures += 1
                print(f"  {path} order failed: {err}", flush=True)

    started = time.perf_counter()
    if rate is None:
        await asyncio.gather(*(one(i) for i in range(count)))
    else:
        tasks = []
        for i in range(count):
            due = started + i / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
    seconds = time.perf_counter() - started
    cpu = None
    if cpu_pid and cpu0 is not None:
        await drain()
        cpu = tree_cpu_seconds(cpu_pid) - cpu0
    return Phase(path, label, latencies, seconds, failures, cpu, sent_at)


def row(p: Phase) -> list[str]:
    lat = p.latencies_ms or [float("nan")]
    cpu = p.cpu_ms_per_order
    return [p.path, p.label, str(len(p.latencies_ms)), str(p.failures), f"{p.rate:.1f}",
            f"{statistics.median(lat):.1f}", f"{percentile(lat, 99):.1f}", "-" if cpu is None else f"{cpu:.1f}"]


def load_average() -> str:
    one, five, _fifteen = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} (1 / 5 min, {os.cpu_count()} CPUs)"


def table(rows: list[list[str]], header: list[str]) -> str:
    cells = [header] + rows
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _busy_loops() -> int:
    """Loops still in their automatic first steps (order QC, booking) and not waiting on a person."""
    from sqlmodel import Session, col, func, select

    from core.db import get_engine
    from domain.tables import ExamOrder, HumanTask

    waiting = select(HumanTask.accession_number).where(HumanTask.state == "open")
    with Session(get_engine()) as s:
        return s.exec(select(func.count()).select_from(ExamOrder)
                      .where(col(ExamOrder.step).in_(("order_qc", "scheduling")))
                      .where(col(ExamOrder.accession_number).not_in(waiting))).one()


def _loops() -> int:
    from sqlmodel import Session, func, select

    from core.db import get_engine
    from domain.tables import ExamOrder

    with Session(get_engine()) as s:
        return s.exec(select(func.count()).select_from(ExamOrder)).one()


QUIET_CPU_SHARE = 0.15  # of one CPU, over a second, for the whole center (worker, API, listener, dev server)


async def drain(timeout: float = 120) -> None:
    """Wait until the worker has taken every loop so far to its first human step and the center has
    worked off what follows (notifications, outbound HL7, audit): each phase starts on a quiet center,
    so a phase measures its own orders, not the tail of the phase before."""
    deadline = time.monotonic() + timeout
    while await asyncio.to_thread(_busy_loops) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    while time.monotonic() < deadline:
        before = _center_cpu_seconds()
        await asyncio.sleep(1.0)
        if _center_cpu_seconds() - before < QUIET_CPU_SHARE:
            return


def _center_cpu_seconds() -> float:
    """CPU of every process this one started (dev server, worker, API, listener), not its own."""
    return tree_cpu_seconds(os.getpid()) - time.process_time()


async def run(args: argparse.Namespace) -> int:
    print(f"start: {load_average()}", flush=True)
    async with center(in_process=args.in_process) as c:
        pool = MLLPPool(c.mllp_port, args.concurrency)
        await pool.open()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{c.api_port}", timeout=30,
                                     headers={"Authorization": "Bearer dev-his_system"},
                                     limits=httpx.Limits(max_connections=args.concurrency)) as http:
            async def rest(n: str) -> None:
                r = await http.post("/api/v1/orders", json=rest_body(n))
                if r.status_code != 201:
                    raise RuntimeError(f"REST {r.status_code}: {r.text[:300]}")

            await run_phase("rest", "warmup", rest, args.warmup, 2)
            await run_phase("mllp", "warmup", pool.send, args.warmup, 2)
            phases: list[Phase] = []
            # Paced first, on a quiet center: the throughput phases leave the worker busy for a while.
            paced_n = int(args.rate * args.paced_seconds)
            for path, send in (("mllp", pool.send), ("rest", rest)):
                await drain()
                phases.append(await run_phase(path, f"paced@{args.rate:g}/s", send, paced_n, 50, rate=args.rate,
                                              cpu_pid=c.cpu_pid(path)))
                print("  " + " ".join(row(phases[-1])), flush=True)
            # One unmeasured burst per path first: the first burst on a fresh center ran ~1.6x faster
            # than every later one (either path), which favoured whichever path led round 1.
            if args.rounds:
                for path, send in (("rest", rest), ("mllp", pool.send)):
                    await drain()
                    await run_phase(path, "burst warm-up", send, args.orders, args.concurrency)
            for r in range(args.rounds):
                order = [("rest", rest), ("mllp", pool.send)] if r % 2 == 0 else [("mllp", pool.send), ("rest", rest)]
                for path, send in order:
                    await drain()
                    phases.append(await run_phase(path, f"throughput{r + 1}", send, args.orders, args.concurrency,
                                                  cpu_pid=c.cpu_pid(path)))
                    print("  " + " ".join(row(phases[-1])), flush=True)
        await pool.close()
        await drain()
        worker_note = None
        if c.worker_pid is not None:
            loops = await asyncio.to_thread(_loops)
            worker_note = (f"worker      {tree_cpu_seconds(c.worker_pid) * 1000 / loops:.0f} ms CPU per loop, "
                           f"order to its first human step ({loops} loops, warm-ups included)")
        return report(phases, args, worker_note)


def report(phases: list[Phase], args: argparse.Namespace, worker_note: str | None = None) -> int:
    print()
    print(table([row(p) for p in phases],
                ["path", "phase", "orders", "failed", "orders/s", "p50 ms", "p99 ms", "CPU ms/order"]))

    def total_rate(path: str) -> float:
        ps = [p for p in phases if p.path == path and p.label.startswith("throughput")]
        return sum(len(p.latencies_ms) for p in ps) / sum(p.seconds for p in ps)

    for p in phases:
        if p.label.startswith("paced") and p.latencies_ms:
            print(f"slowest     {p.path} paced: {p.slowest()}")
    paced = next(p for p in phases if p.path == "mllp" and p.label.startswith("paced"))
    p99 = percentile(paced.latencies_ms, 99) if paced.latencies_ms else float("inf")
    print()
    if args.rounds:  # `--rounds 0`: the paced phases only
        ratio = total_rate("mllp") / total_rate("rest")
        print(f"throughput  MLLP {total_rate('mllp'):.1f} orders/s vs REST {total_rate('rest'):.1f} orders/s: "
              f"ratio {ratio:.2f} (target >= {TARGET_RATIO}) -> {'MET' if ratio >= TARGET_RATIO else 'MISSED'}")
    print(f"paced       MLLP p99 AA {p99:.1f} ms at {args.rate:g} orders/s (target < {TARGET_P99_MS:g} ms) -> "
          f"{'MET' if p99 < TARGET_P99_MS else 'MISSED'}")
    if all(p.cpu_seconds is not None for p in phases):
        def cpu_per_order(path: str) -> float:
            ps = [p for p in phases if p.path == path]
            return sum(p.cpu_seconds or 0 for p in ps) * 1000 / sum(len(p.latencies_ms) for p in ps)

        mllp_cpu, rest_cpu = cpu_per_order("mllp"), cpu_per_order("rest")
        print(f"CPU         listener {mllp_cpu:.1f} ms per MLLP order vs API "
              f"{rest_cpu:.1f} ms per REST order: as a capacity ratio {rest_cpu / mllp_cpu:.2f}")
    if worker_note:
        print(worker_note)
    print(f"end: {load_average()}", flush=True)
    failed = sum(p.failures for p in phases)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hl7_orders", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=60, help="orders per throughput phase")
    parser.add_argument("--concurrency", type=int, default=6, help="concurrent connections per path")
    parser.add_argument("--rounds", type=int, default=4,
                        help="REST/MLLP throughput rounds, alternating which goes first (the machine's load drifts)")
    parser.add_argument("--rate", type=float, default=5.0, help="orders per second in the paced phase")
    parser.add_argument("--paced-seconds", type=float, default=30.0,
                        help="length of the paced phase (150 orders at 5/s: a p99 that is not just the maximum)")
    parser.add_argument("--warmup", type=int, default=6)
    parser.add_argument("--in-process", action="store_true",
                        help="worker, API and listener in the bench process (one GIL with the sender); no CPU figures")
    args = parser.parse_args(argv or [])
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""HL7 orders: MLLP receipt -> durable AA, against the same order placed over REST, in one run.

One embedded dev server (SQLite file, like `make run`), one in-process RadLoop
worker, the real FastAPI app under uvicorn and the real MLLP listener, each on a
free port, both sharing one Temporal client. Each order is new (own placer
number and patient); an order counts when its AA (MLLP) or 201 (REST) is back,
i.e. when its rows are committed and its loop exists. Phases:

1. throughput: N orders over C concurrent connections, REST and MLLP rounds
   alternating (so the worker's background load is shared fairly);
   orders/s = N / wall time, with per-order latency p50/p99;
2. paced: orders at a fixed rate (default 5/s) over MLLP and over REST: p50/p99
   of the time to the AA / 201 (target p99 AA < 250 ms).

Target: MLLP orders/s >= 0.9 x REST orders/s.

    python -m bench.hl7_orders [--orders 30] [--concurrency 6] [--rounds 4] [--rate 5] [--paced-seconds 8]
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
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


def rest_body(n: str) -> dict[str, Any]:
    family, given, sex, born = person(n)
    return {
        "placer_order_number": f"R{n}", "placer_system": "HIS",
        "patient": {"identifiers": [{"system": "MRN", "value": f"MR{n}"}], "name": family + given, "sex": sex,
                    "birth_date": born.isoformat()},
        "procedure": {"code": "CT-CHEST", "name": "胸部CT平扫", "modality": "CT", "body_part": "CHEST"},
        "priority": "routine",
        "ordering": {"clinician_id": "D001", "clinician_name": "孙医生", "department": "呼吸内科"},
        "clinical": {"history": "咳嗽两周", "diagnosis": "肺炎", "purpose": "排除肺部感染"},
    }


def orm_message(n: str) -> bytes:
    """The same order as `rest_body`, as ORM^O01 v2.5.1 in UTF-8."""
    family, given, sex, born = person(n)
    return "\r".join([
        f"MSH|^~\\&|HIS|MAIN|RADLOOP|RAD|20261127120000||ORM^O01^ORM_O01|C{n}|P|2.5.1|||||||UNICODE UTF-8",
        f"PID|1||MH{n}^^^MRN^MR||{family}^{given}||{born:%Y%m%d}|{sex}",
        "PV1|1|O|RESP",
        f"ORC|NW|H{n}^HIS|||||^^^^^R|||||D001^孙^医生|||||^呼吸内科",
        f"OBR|1|H{n}^HIS||CT-CHEST^胸部CT平扫|||||||||咳嗽两周||^^^CHEST|||||||||CT|||||||^排除肺部感染",
        "DG1|1||J18.9^肺炎^I10",
    ]).encode()


@dataclass
class Phase:
    path: str
    label: str
    latencies_ms: list[float]
    seconds: float
    failures: int

    @property
    def rate(self) -> float:
        return len(self.latencies_ms) / self.seconds


Sender = Callable[[str], Awaitable[None]]


@contextlib.asynccontextmanager
async def center() -> AsyncIterator[tuple[Any, str, int, int]]:
    """Dev server + worker + API (uvicorn) + MLLP listener, all private to this run."""
    from temporalio.testing import WorkflowEnvironment

    tmp = tempfile.TemporaryDirectory(prefix="radloop-bench-hl7-")
    data = Path(tmp.name)
    api_port = free_port()
    settings_env = {
        "RADLOOP_MODE": "development", "RADLOOP_DATA_DIR": str(data),
        "RADLOOP_DATABASE_URL": f"sqlite:///{data / 'radloop.db'}",
        "RADLOOP_TEMPORAL_TASK_QUEUE": f"bench-hl7-{uuid.uuid4().hex[:8]}",
        "RADLOOP_API_PORT": str(api_port),
    }
    before = {k: os.environ.get(k) for k in settings_env}  # restored on exit: `python -m bench` runs on
    os.environ.update(settings_env)
    from sqlmodel import Session

    from api.main import create_app
    from core.config import get_settings, reset_settings_cache
    from core.db import get_engine, reset_engine_cache
    from core.migrate import upgrade_head
    from core.seed import seed_demo
    from core.temporal import data_converter, dev_server_search_attribute_args
    from integrations.hl7.audit import HL7Auditor
    from integrations.hl7.context import InboundContext
    from integrations.hl7.inbound import InboundProcessor
    from integrations.hl7.listener import use_listener_threads
    from integrations.hl7.mllp import MLLPServer
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
        async with build_worker(client, task_queue=queue):
            yield client, queue, api_port, mllp_port
    finally:
        api.should_exit = True
        await api_task
        await mllp.close()
        await asyncio.to_thread(auditor.flush)
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
                    rate: float | None = None) -> Phase:
    latencies: list[float] = []
    failures = 0
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        nonlocal failures
        async with gate:
            t0 = time.perf_counter()
            try:
                await send(f"{label[:1]}{uuid.uuid4().hex[:10]}{i}")
                latencies.append((time.perf_counter() - t0) * 1000)
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
    return Phase(path, label, latencies, time.perf_counter() - started, failures)


def row(p: Phase) -> list[str]:
    lat = p.latencies_ms or [float("nan")]
    return [p.path, p.label, str(len(p.latencies_ms)), str(p.failures), f"{p.rate:.1f}",
            f"{statistics.median(lat):.1f}", f"{percentile(lat, 99):.1f}"]


def table(rows: list[list[str]], header: list[str]) -> str:
    cells = [header] + rows
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _busy_loops() -> int:
    """Loops still in their automatic first steps (order QC, booking)."""
    from sqlmodel import Session, col, func, select

    from core.db import get_engine
    from domain.tables import ExamOrder

    with Session(get_engine()) as s:
        return s.exec(select(func.count()).select_from(ExamOrder)
                      .where(col(ExamOrder.step).in_(("order_qc", "scheduling")))).one()


async def drain(timeout: float = 120) -> None:
    """Wait until the worker has taken every loop so far to its first human step: each phase starts quiet."""
    deadline = time.monotonic() + timeout
    while await asyncio.to_thread(_busy_loops) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)


async def run(args: argparse.Namespace) -> int:
    async with center() as (_client, _queue, api_port, mllp_port):
        pool = MLLPPool(mllp_port, args.concurrency)
        await pool.open()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}", timeout=30,
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
                phases.append(await run_phase(path, f"paced@{args.rate:g}/s", send, paced_n, 50, rate=args.rate))
                print("  " + " ".join(row(phases[-1])), flush=True)
            for r in range(args.rounds):
                order = [("rest", rest), ("mllp", pool.send)] if r % 2 == 0 else [("mllp", pool.send), ("rest", rest)]
                for path, send in order:
                    await drain()
                    phases.append(await run_phase(path, f"throughput{r + 1}", send, args.orders, args.concurrency))
                    print("  " + " ".join(row(phases[-1])), flush=True)
        await pool.close()

    print()
    print(table([row(p) for p in phases], ["path", "phase", "orders", "failed", "orders/s", "p50 ms", "p99 ms"]))

    def total_rate(path: str) -> float:
        ps = [p for p in phases if p.path == path and p.label.startswith("throughput")]
        return sum(len(p.latencies_ms) for p in ps) / sum(p.seconds for p in ps)

    ratio = total_rate("mllp") / total_rate("rest")
    paced = next(p for p in phases if p.path == "mllp" and p.label.startswith("paced"))
    p99 = percentile(paced.latencies_ms, 99) if paced.latencies_ms else float("inf")
    print()
    print(f"throughput  MLLP {total_rate('mllp'):.1f} orders/s vs REST {total_rate('rest'):.1f} orders/s: "
          f"ratio {ratio:.2f} (target >= {TARGET_RATIO}) -> {'MET' if ratio >= TARGET_RATIO else 'MISSED'}")
    print(f"paced       MLLP p99 AA {p99:.1f} ms at {args.rate:g} orders/s (target < {TARGET_P99_MS:g} ms) -> "
          f"{'MET' if p99 < TARGET_P99_MS else 'MISSED'}")
    failed = sum(p.failures for p in phases)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hl7_orders", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=30, help="orders per throughput phase")
    parser.add_argument("--concurrency", type=int, default=6, help="concurrent connections per path")
    parser.add_argument("--rounds", type=int, default=4,
                        help="REST/MLLP throughput rounds, alternating which goes first (the machine's load drifts)")
    parser.add_argument("--rate", type=float, default=5.0, help="orders per second in the paced phase")
    parser.add_argument("--paced-seconds", type=float, default=8.0)
    parser.add_argument("--warmup", type=int, default=6)
    args = parser.parse_args(argv or [])
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

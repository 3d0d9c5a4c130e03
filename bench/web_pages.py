"""Server-side render time of the pages with a full inbox (issue 7 quality bar: < 300 ms with
1,000 open tasks in the database).

A fresh SQLite database (migrated, demo-seeded) gets `--tasks` open check-in tasks, each with
its order and patient (a share of them special or overdue). The app runs in-process behind
httpx's ASGI transport (no network), authenticated as the demo registrar; the figures are the
time from request to the last byte of the page:

- inbox: `GET /web/inbox` (first page of 100, sorted, joined with order and patient, rendered);
- baseline: `GET /api/v1/tasks?limit=100` (the JSON inbox: same rows, no join, no template),
  measured in the same run on the same data;
- task page: `GET /web/tasks/<id>` (the form rendered from its JSON Schema);
- report editor: `GET /web/tasks/<review id>` as the senior radiologist (two versions diffed,
  the critical-value dictionary, text-rule hints, phrases, earlier reports);
- dashboard: `GET /web/dashboard` as the manager (every chart, device utilisation included).

Each page's p95 must stay under the target.

    python -m bench.web_pages [--tasks 1000] [--rounds 30]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_MS = 300.0


def prepare(url: str, n: int) -> tuple[str, str]:
    from sqlmodel import Session

    from core.config import reset_settings_cache
    from core.db import get_engine, reset_engine_cache
    from core.migrate import upgrade_head
    from core.seed import seed_demo
    from domain.tables import ExamOrder, HumanTask, Patient, ReportVersion

    os.environ["RADLOOP_DATABASE_URL"] = url
    os.environ.pop("RADLOOP_MODE", None)
    reset_settings_cache()
    reset_engine_cache()
    upgrade_head(url)
    now = datetime.now(timezone.utc)
    with Session(get_engine()) as s:
        seed_demo(s)
        for i in range(n):
            acc = f"B{i:08d}"
            s.add(Patient(id=f"p-{acc}", name=f"患者{i}", sex="MF"[i % 2], birth_date=date(1930 + i % 80, 1 + i % 12, 1)))
        s.flush()  # orders reference their patients
        for i in range(n):
            acc = f"B{i:08d}"
            s.add(ExamOrder(accession_number=acc, workflow_id=f"exam-loop-{acc}", placer_system="HIS",
                            placer_order_number=acc, patient_id=f"p-{acc}", procedure_code="CT-CHEST",
                            procedure_name="胸部CT平扫", modality="CT", body_part="CHEST",
                            priority=("stat", "urgent", "routine", "routine")[i % 4], ordering_clinician_id="u-clinician",
                            ordering_clinician_name="孙医生", ordering_department="respiratory",
                            special_mdro=i % 17 == 0, special_infectious=i % 23 == 0))
            s.add(HumanTask(id=f"exam-loop-{acc}/check_in/1", workflow_id=f"exam-loop-{acc}", accession_number=acc,
                            task_type="check_in", role="registrar", roles=" registrar nurse ", state="open",
                            priority_rank=1 + i % 3, due_at=now + timedelta(minutes=(i % 120) - 30),
                            form_schema="check_in", title="Check in patient", context={}))
        review = f"exam-loop-B{1:08d}/report_review/1"
        s.add(HumanTask(id=review, workflow_id=f"exam-loop-B{1:08d}", accession_number=f"B{1:08d}",
                        task_type="report_review", role="senior_radiologist", roles=" senior_radiologist ",
                        state="open", priority_rank=2, due_at=now, form_schema="report_review",
                        title="Review and sign report", context={"version": 2}))
        findings = "胸廓对称，气管居中。双肺纹理清晰。" * 20
        for v, tier, extra in ((1, "draft", ""), (2, "preliminary", "右侧张力性气胸，纵隔左移。")):
            s.add(ReportVersion(accession_number=f"B{1:08d}", version=v, tier=tier, findings=findings + extra,
                                impression="右侧张力性气胸" if v == 2 else "气胸", author_id="u-resident", author_role="resident"))
        s.commit()
    return f"exam-loop-B{0:08d}/check_in/1", review


async def measure(rounds: int, task_id: str, review_id: str) -> dict[str, list[float]]:
    import httpx

    from api.main import create_app

    paths = {"inbox": ("/web/inbox", "registrar"), "baseline": ("/api/v1/tasks?limit=100", "registrar"),
             "task page": (f"/web/tasks/{task_id}", "registrar"),
             "report editor": (f"/web/tasks/{review_id}", "senior_radiologist"),
             "dashboard": ("/web/dashboard", "manager")}
    out: dict[str, list[float]] = {k: [] for k in paths}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app()), base_url="http://bench") as c:
        for name, (path, who) in paths.items():  # warm-up: templates compiled, connections open
            r = await c.get(path, headers={"Authorization": f"Bearer dev-{who}"})
            assert r.status_code == 200, (path, r.status_code, r.text[:300])
        for _ in range(rounds):  # alternate, so load on the machine hits every page alike
            for name, (path, who) in paths.items():
                started = time.perf_counter()
                r = await c.get(path, headers={"Authorization": f"Bearer dev-{who}"})
                out[name].append((time.perf_counter() - started) * 1000)
                assert r.status_code == 200
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.web_pages", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=30)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="radloop-bench-web-") as tmp:
        os.environ["RADLOOP_DATA_DIR"] = tmp
        task_id, review_id = prepare(f"sqlite:///{Path(tmp) / 'web.db'}", args.tasks)
        results = asyncio.run(measure(args.rounds, task_id, review_id))
        from core.db import get_engine

        get_engine().dispose()
    print(f"web pages: {args.tasks} open tasks for the registrar, {args.rounds} rounds, SQLite, in-process (ASGI)")
    for name, ms in results.items():
        q = statistics.quantiles(ms, n=20, method="inclusive")
        print(f"  {name:13s} p50 {statistics.median(ms):7.1f} ms   p95 {q[18]:7.1f} ms   max {max(ms):7.1f} ms")
    ratio = statistics.median(results["inbox"]) / statistics.median(results["baseline"])
    pages = [k for k in results if k != "baseline"]
    p95 = {k: statistics.quantiles(results[k], n=20, method="inclusive")[18] for k in pages}
    ok = all(v < TARGET_MS for v in p95.values())
    worst = max(p95, key=p95.__getitem__)
    print(f"  inbox page / JSON inbox (p50): {ratio:.2f}x; slowest page p95 ({worst}) {p95[worst]:.1f} ms "
          f"vs target {TARGET_MS:.0f} ms: {'OK' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""MWL C-FIND latency at scale (R4.2.2): `python -m bench.dicom_mwl [--steps 10000 [100000]] [--queries 100]`.

For each `--steps` size, builds a scratch center with that many scheduled procedure
steps of which `--matches` (default 50) fall on one day in room CT1, starts the real
listener as a child process and times `findscu -W` (one association per query, as a
modality does) for that day's CT1 worklist, with the listener's CPU time per query
(from /proc) and the machine's load average, since wall-clock percentiles on a shared
machine follow the load. At the first size the same items are written as .wl files
for DCMTK's wlmscpfs and queried the same way in the same run, as the baseline
(wlmscpfs reads every file per query: at 100,000 steps it would take minutes).
Targets (issue 3): p99 < 150 ms at 10,000 steps and < 200 ms at 100,000;
listener peak memory < 300 MB.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time
import uuid
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import insert
from sqlmodel import Session

from bench.cpu import cpu_seconds
from bench.dicom_common import (
    DCMTK_ENV, center_env, children_of, dcmtk_server, free_port, listener, peak_rss_mb, percentile, prepare_database,
    scratch_dir,
)
from core.db import make_engine
from domain.scheduling import study_instance_uid
from domain.tables import ExamOrder, Patient, WorklistEntry
from integrations.dicom import worklist
from integrations.dicom.handlers.mwl import item_dataset

TZ = "Asia/Shanghai"
ROOMS = ["CT1", "CT2", "MR1", "DX1", "US1"]
MODALITY = {"CT1": "CT", "CT2": "CT", "MR1": "MR", "DX1": "DX", "US1": "US"}
SPS = "ScheduledProcedureStepSequence[0]"


def build_rows(steps: int, matches: int, day0: date) -> tuple[list[Patient], list[ExamOrder], list[WorklistEntry]]:
    zone = ZoneInfo(TZ)
    patients, orders, entries = [], [], []
    for i in range(steps):
        if i < matches:
            room, day, minute = "CT1", day0, 8 * 60 + i * 10
        else:
            room = ROOMS[i % len(ROOMS)]
            day = day0 + timedelta(days=1 + (i % 19))
            minute = 8 * 60 + (i // len(ROOMS)) % 60 * 10
        start = datetime.combine(day, datetime.min.time(), tzinfo=zone) + timedelta(minutes=minute)
        acc = f"B{i:08d}"
        pid = str(uuid.UUID(int=i + 1))
        patients.append(Patient(id=pid, name=f"张{i}" if i % 2 else f"Li^Si{i}", sex="M", birth_date=date(1970, 1, 1)))
        orders.append(ExamOrder(
            accession_number=acc, workflow_id=f"exam-loop-{acc}", placer_system="BENCH", placer_order_number=acc,
            patient_id=pid, procedure_code="CT-CHEST", procedure_name="胸部CT平扫 / CT chest", modality=MODALITY[room],
            body_part="CHEST", priority="routine", ordering_clinician_id="u-clinician", ordering_clinician_name="孙医生",
            ordering_department="respiratory", status="scheduled", step="scheduled"))
        entries.append(WorklistEntry(
            id=f"{acc}-1", accession_number=acc, patient_id=pid, modality=MODALITY[room], station_ae_title=room,
            room_id=room, scheduled_start=start.astimezone(timezone.utc), procedure_code="CT-CHEST",
            procedure_name="胸部CT平扫 / CT chest", study_instance_uid=study_instance_uid(acc)))
    return patients, orders, entries


def load(url: str, rows: tuple[list[Patient], list[ExamOrder], list[WorklistEntry]]) -> None:
    engine = make_engine(url)
    with Session(engine) as s:
        for batch in rows:
            model = type(batch[0])
            s.execute(insert(model), [r.model_dump() for r in batch])
        s.commit()
    engine.dispose()


def write_wl_files(root: Path, rows: tuple[list[Patient], list[ExamOrder], list[WorklistEntry]]) -> None:
    ae_dir = root / "RADLOOP"
    ae_dir.mkdir(parents=True)
    (ae_dir / "lockfile").touch()
    zone = ZoneInfo(TZ)
    for p, o, e in zip(*rows):
        item = worklist.WorklistItem(
            e.id, e.accession_number, p.id, e.modality, e.station_ae_title, e.room_id, e.room_id, e.scheduled_start,
            e.study_instance_uid, e.status, p.name, p.birth_date, p.sex, o.procedure_code, o.procedure_name,
            o.body_part, o.priority, o.ordering_clinician_name, o.ordering_department, o.clinical_purpose,
            o.special_mdro, o.special_infectious)
        ds = item_dataset(item, zone)
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.save_as(ae_dir / f"{e.id}.wl", implicit_vr=False, little_endian=True)


def time_queries(port: int, day: str, n: int, expect: int, out_dir: Path) -> list[float]:
    keys = [f"{SPS}.Modality=CT", f"{SPS}.ScheduledStationAETitle=CT1", f"{SPS}.ScheduledProcedureStepStartDate={day}",
            f"{SPS}.ScheduledProcedureStepStartTime", f"{SPS}.ScheduledProcedureStepID",
            f"{SPS}.ScheduledProcedureStepDescription", "PatientName", "PatientID", "PatientBirthDate", "PatientSex",
            "AccessionNumber", "StudyInstanceUID", "RequestedProcedureID", "RequestedProcedureDescription",
            "SpecificCharacterSet=ISO_IR 192"]
    base = ["findscu", "-W", "-aet", "BENCH", "-aec", "RADLOOP"] + [a for k in keys for a in ("-k", k)]
    base += ["127.0.0.1", str(port)]
    out_dir.mkdir(exist_ok=True)
    subprocess.run(base[:1] + ["-X", "-od", str(out_dir)] + base[1:], env=DCMTK_ENV, check=True,
                   capture_output=True)
    got = len(list(out_dir.glob("rsp*.dcm")))
    if got != expect:
        raise RuntimeError(f"expected {expect} matches, got {got}")
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(base, env=DCMTK_ENV, check=True, capture_output=True)
        samples.append((time.perf_counter() - t0) * 1000)
    return samples


def target_ms(steps: int) -> float:
    """Issue 3: p99 < 150 ms up to 10,000 steps, < 200 ms at 100,000."""
    return 150.0 if steps <= 10_000 else 200.0


def listener_cpu(pid: int) -> float:
    """CPU seconds of the listener and its worker processes so far."""
    return sum(cpu_seconds(p) or 0.0 for p in [pid, *children_of(pid)])


def load_average() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def run_size(steps: int, args: argparse.Namespace, baseline: bool) -> bool:
    """One scratch center with `steps` steps; prints its figures, returns whether the targets were met."""
    day0 = date.today() + timedelta(days=1)
    rows = build_rows(steps, args.matches, day0)
    day = day0.strftime("%Y%m%d")
    results: dict[str, list[float]] = {}
    with scratch_dir("radloop-bench-mwl-") as d:
        port = free_port()
        env = center_env(d, port)
        prepare_database(env)
        t0 = time.perf_counter()
        load(env["RADLOOP_DATABASE_URL"], rows)
        print(f"loaded {steps} scheduled steps in {time.perf_counter() - t0:.1f}s")
        with listener(env, port) as proc:
            load_before = load_average()
            cpu0 = listener_cpu(proc.pid)
            results["RadLoop listener"] = time_queries(port, day, args.queries, args.matches, d / "rsp")
            cpu_ms = (listener_cpu(proc.pid) - cpu0) * 1000 / (args.queries + 1)
            load_after = load_average()
            rss = peak_rss_mb([proc.pid, *children_of(proc.pid)])
        if baseline:
            write_wl_files(d / "wl", rows)
            wport = free_port()
            with dcmtk_server(["wlmscpfs", "-dfp", str(d / "wl"), str(wport)], wport):
                results["DCMTK wlmscpfs"] = time_queries(wport, day, args.queries, args.matches, d / "rsp2")
    print(f"\nMWL C-FIND, {args.matches} matches of {steps} steps, {args.queries} queries, one association each")
    print(f"{'server':<18} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    for name, s in results.items():
        print(f"{name:<18} {statistics.median(s):8.1f} {percentile(s, 99):8.1f} {statistics.mean(s):8.1f}")
    ours = results["RadLoop listener"]
    p99 = percentile(ours, 99)
    print(f"listener CPU per query (association included): {cpu_ms:.1f} ms; "
          f"load average (1/5/15 min) before {load_before}, after {load_after}")
    if "DCMTK wlmscpfs" in results:
        ratio = statistics.median(results["DCMTK wlmscpfs"]) / statistics.median(ours)
        print(f"speed vs wlmscpfs (median latency ratio): {ratio:.2f}x")
    target = target_ms(steps)
    print(f"target p99 < {target:.0f} ms at {steps} steps: {'met' if p99 < target else 'MISSED'} ({p99:.1f} ms); "
          f"listener peak RSS {rss:.0f} MB (target < 300 MB: {'met' if rss < 300 else 'MISSED'})")
    return p99 < target and rss < 300


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.dicom_mwl", description=__doc__)
    ap.add_argument("--steps", type=int, nargs="+", default=[10_000],
                    help="worklist sizes, each in its own scratch center (e.g. --steps 10000 100000)")
    ap.add_argument("--matches", type=int, default=50)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--no-baseline", action="store_true", help="skip DCMTK wlmscpfs")
    args = ap.parse_args(argv)
    for n, steps in enumerate(args.steps):
        if n:
            print()
        run_size(steps, args, baseline=not args.no_baseline and n == 0)
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))

"""MWL C-FIND latency at scale (R4.2.2): `python -m bench.dicom_mwl [--steps 10000] [--queries 100]`.

Builds a scratch center with `--steps` scheduled procedure steps of which `--matches`
(default 50) fall on one day in room CT1, starts the real listener as a child
process and times `findscu -W` (one association per query, as a modality does)
for that day's CT1 worklist. The same items are written as .wl files for DCMTK's
wlmscpfs and queried the same way in the same run, as the baseline.
Target (issue 3): p99 < 150 ms at 10,000 steps; listener peak memory < 300 MB.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import time
import uuid
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import insert
from sqlmodel import Session

from bench.dicom_common import (
    DCMTK_ENV, center_env, dcmtk_server, free_port, listener, peak_rss_mb, percentile, prepare_database, scratch_dir,
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
        ds = item_dataset(worklist.WorklistItem(e, o, p, [], e.room_id), zone)
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


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.dicom_mwl", description=__doc__)
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--matches", type=int, default=50)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--no-baseline", action="store_true", help="skip DCMTK wlmscpfs")
    args = ap.parse_args(argv)
    day0 = date.today() + timedelta(days=1)
    rows = build_rows(args.steps, args.matches, day0)
    day = day0.strftime("%Y%m%d")
    results: dict[str, list[float]] = {}
    with scratch_dir("radloop-bench-mwl-") as d:
        port = free_port()
        env = center_env(d, port)
        prepare_database(env)
        t0 = time.perf_counter()
        load(env["RADLOOP_DATABASE_URL"], rows)
        print(f"loaded {args.steps} scheduled steps in {time.perf_counter() - t0:.1f}s")
        with listener(env, port) as proc:
            results["RadLoop listener"] = time_queries(port, day, args.queries, args.matches, d / "rsp")
            rss = peak_rss_mb([proc.pid])
        if not args.no_baseline:
            write_wl_files(d / "wl", rows)
            wport = free_port()
            with dcmtk_server(["wlmscpfs", "-dfp", str(d / "wl"), str(wport)], wport):
                results["DCMTK wlmscpfs"] = time_queries(wport, day, args.queries, args.matches, d / "rsp2")
    print(f"\nMWL C-FIND, {args.matches} matches of {args.steps} steps, {args.queries} queries, one association each")
    print(f"{'server':<18} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    for name, s in results.items():
        print(f"{name:<18} {statistics.median(s):8.1f} {percentile(s, 99):8.1f} {statistics.mean(s):8.1f}")
    ours = results["RadLoop listener"]
    p99 = percentile(ours, 99)
    if "DCMTK wlmscpfs" in results:
        ratio = statistics.median(results["DCMTK wlmscpfs"]) / statistics.median(ours)
        print(f"speed vs wlmscpfs (median latency ratio): {ratio:.2f}x")
    print(f"target p99 < 150 ms: {'met' if p99 < 150 else 'MISSED'} ({p99:.1f} ms); "
          f"listener peak RSS {rss:.0f} MB (target < 300 MB: {'met' if rss < 300 else 'MISSED'})")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))

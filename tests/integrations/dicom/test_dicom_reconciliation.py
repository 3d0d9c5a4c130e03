"""Reconciliation API (R4.2.3): images and MPPS that matched no order are listed and linked, gated and audited."""
from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path

import httpx
import pytest
from pydicom.uid import generate_uid
from sqlmodel import Session, select

from core.config import reset_settings_cache
from core.db import get_engine
from domain.imaging_tables import ImagingStudy, MppsRecord
from domain.security_tables import AuditRecord
from domain.tables import DomainEvent, ExamOrder, Patient
from integrations.dicom import completeness
from tests.support.dicom_files import in_progress, make_image
from tests.support.dicom_tools import free_port, mpps_send, run_tool, running_listener

TECH = {"Authorization": "Bearer dev-technologist"}
QC = {"Authorization": "Bearer dev-qc_officer"}
CLINICIAN = {"Authorization": "Bearer dev-clinician"}


def _order(accession: str) -> None:
    with Session(get_engine()) as s:
        if s.get(Patient, "p-rec") is None:
            s.add(Patient(id="p-rec", name="张三", sex="M", birth_date=date(1970, 5, 1)))
            s.flush()
        s.add(ExamOrder(
            accession_number=accession, workflow_id=f"exam-loop-{accession}", placer_system="HIS",
            placer_order_number=f"PO-{accession}", patient_id="p-rec", procedure_code="CT-CHEST",
            procedure_name="CT chest", modality="CT", body_part="CHEST", priority="routine",
            ordering_clinician_id="c-1", ordering_clinician_name="Dr Li", ordering_department="ED"))
        s.commit()


async def test_list_and_link_unmatched_images_and_mpps(database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from api.main import create_app

    monkeypatch.setenv("RADLOOP_TEMPORAL_ADDRESS", f"127.0.0.1:{free_port()}")  # Temporal is down
    reset_settings_cache()

    acc, other = f"REC{generate_uid()[-10:]}", f"REC{generate_uid()[-9:]}X"
    _order(acc)
    _order(other)
    study = generate_uid()
    files = [make_image(tmp_path / f"{i}.dcm", study_uid=study, patient_id="P-STRAY", accession="WRONG-ACC",
                        instance=i + 1, seed=i) for i in range(2)]
    async with running_listener() as lsn:
        res = await run_tool(["storescu", "-aet", "CT1", "-aec", "RADLOOP", "127.0.0.1", str(lsn.port), *map(str, files)])
        assert res.code == 0, res.stderr
        mpps_uid = generate_uid()
        sent = await asyncio.to_thread(mpps_send, lsn.port, "CT1", "create", mpps_uid, in_progress("NOSUCHACC"))
        assert sent.status == 0x0000
    study_item, mpps_item = f"unmatched_study:{study}", f"unmatched_mpps:{mpps_uid}"

    app = create_app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        assert (await client.get("/api/v1/reconciliation", headers=CLINICIAN)).status_code == 403
        listed = (await client.get("/api/v1/reconciliation", headers=TECH)).json()["items"]
        by_id = {i["id"]: i for i in listed}
        assert set(by_id) == {study_item, mpps_item}
        assert by_id[study_item]["num_instances"] == 2 and by_id[study_item]["patient_name"] == "张三"
        assert by_id[study_item]["accession_number"] == "WRONG-ACC" and by_id[study_item]["linked_accession"] is None
        masked = (await client.get("/api/v1/reconciliation", headers=QC, params={"kind": "unmatched_study"})).json()
        assert [i["id"] for i in masked["items"]] == [study_item]
        assert masked["items"][0]["patient_name"] != "张三"  # QC sees names masked

        url = f"/api/v1/reconciliation/{study_item}/resolve"
        body = {"accession_number": acc, "note": "phoned the CT room: typo in the accession"}
        assert (await client.post(url, json=body, headers=CLINICIAN)).status_code == 403
        unknown = await client.post(url, json={**body, "accession_number": "NOPE"}, headers=TECH)
        assert unknown.status_code == 422 and "NOPE" in unknown.json()["detail"]
        assert (await client.post(url, json={"accession_number": acc}, headers=TECH)).status_code == 422
        missing = await client.post("/api/v1/reconciliation/unmatched_study:1.2.3/resolve", json=body, headers=TECH)
        assert missing.status_code == 404
        with Session(get_engine()) as s:
            assert s.get(ImagingStudy, study).order_accession is None  # refusals changed nothing

        linked = await client.post(url, json=body, headers=TECH)
        assert linked.status_code == 200, linked.text
        assert linked.json()["state"] == "resolved" and linked.json()["linked_accession"] == acc
        again = await client.post(url, json=body, headers=TECH)
        assert again.status_code == 200 and again.json()["linked_accession"] == acc  # idempotent
        elsewhere = await client.post(url, json={**body, "accession_number": other}, headers=TECH)
        assert elsewhere.status_code == 409 and acc in elsewhere.json()["detail"]
        # Linked, the study counts for the order: the stability rule marks its images received.
        received = completeness.sweep(0)
        assert [(r.accession, r.study_instance_uid, r.num_instances) for r in received] == [(acc, study, 2)]

        mpps = await client.post(f"/api/v1/reconciliation/{mpps_item}/resolve", headers=QC,
                                 json={"accession_number": acc, "note": "same exam"})
        assert mpps.status_code == 200 and mpps.json()["linked_accession"] == acc
        # Without Temporal the link stands and the MPPS's step waits to be told to the loop (linking again sends it).
        assert mpps.json()["replay"] == [{"kind": "started", "outcome": "pending", "reason": "not yet told to the loop"}]

        assert (await client.get("/api/v1/reconciliation", headers=TECH)).json()["items"] == []
        resolved = (await client.get("/api/v1/reconciliation", headers=TECH, params={"state": "resolved"})).json()
        assert {i["id"]: i["linked_accession"] for i in resolved["items"]} == {study_item: acc, mpps_item: acc}

    with Session(get_engine()) as s:
        assert s.get(ImagingStudy, study).order_accession == acc
        assert s.get(MppsRecord, mpps_uid).accession_number == acc
        event = s.get(DomainEvent, f"reconciled:{study_item}")
        assert event is not None and event.accession_number == acc and event.actor == "user:u-technologist"
        assert event.detail["received_accession"] == "WRONG-ACC" and event.detail["note"].startswith("phoned")
        audits = s.exec(select(AuditRecord).where(AuditRecord.object_id == study_item)
                        .order_by(AuditRecord.seq)).all()
        assert [(a.username, a.outcome, a.detail["status"]) for a in audits if a.detail["method"] == "POST"] == [
            ("clinician", "failure", 403), ("technologist", "failure", 422), ("technologist", "failure", 422),
            ("technologist", "success", 200), ("technologist", "success", 200), ("technologist", "failure", 409)]

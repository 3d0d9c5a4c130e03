"""A clinician sees their own patients' exams; beyond that only by breaking the glass, with a reason,
for a limited time, every read flagged in the audit trail (R7.1.5, R10.3). The same rule holds for what
is kept per patient (consents) and for images (DICOMweb)."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from sqlmodel import col, select

from api.main import create_app
from core.config import get_settings
from core.db import make_engine
from domain.security_tables import AuditRecord
from domain.tables import Patient
from security.audit import AuditTrail
from security.clock import ManualClock

MINE, OTHER = "A2026010100001", "A2026010100002"
REASON = {"reason": "patient collapsed in the ward; prior CT needed for the resuscitation team"}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime.now(timezone.utc))


@pytest.fixture
async def client(users, clock, make_order):
    make_order(MINE)  # ordered from ED, the test clinician's department
    make_order(OTHER, ordering_department="oncology", placer_order_number="PO-onc")
    app = create_app(clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://radloop.test") as c:
        c.app = app  # type: ignore[attr-defined]
        yield c


def _reads(session, accession: str) -> list[AuditRecord]:
    session.expire_all()
    return list(session.exec(select(AuditRecord).where(AuditRecord.object_id == accession)
                             .order_by(col(AuditRecord.seq))).all())


async def test_own_department_yes_other_department_no(client, auth) -> None:
    assert (await client.get(f"/api/v1/orders/{MINE}", headers=auth("clinician"))).status_code == 200
    refused = await client.get(f"/api/v1/orders/{OTHER}", headers=auth("clinician"))
    assert refused.status_code == 403 and "break the glass" in refused.json()["detail"]
    assert (await client.get(f"/api/v1/loops/{OTHER}/reports", headers=auth("clinician"))).status_code == 403
    # imaging staff work on every exam of the center
    assert (await client.get(f"/api/v1/orders/{OTHER}", headers=auth("radiologist"))).status_code == 200


async def test_the_ordering_clinician_sees_their_order_from_any_department(client, auth, make_order) -> None:
    make_order("A2026010100003", ordering_department="oncology", ordering_clinician_id="u-clinician",
               placer_order_number="PO-own")
    assert (await client.get("/api/v1/orders/A2026010100003", headers=auth("clinician"))).status_code == 200


async def test_break_glass_opens_one_exam_for_a_while_and_flags_every_read(client, auth, clock, session) -> None:
    glass = await client.post("/api/v1/break-glass", json={"accession_number": OTHER, **REASON}, headers=auth("clinician"))
    assert glass.status_code == 201, glass.text
    assert (await client.get(f"/api/v1/orders/{OTHER}", headers=auth("clinician"))).status_code == 200
    assert (await client.get(f"/api/v1/loops/{OTHER}/reports", headers=auth("clinician"))).status_code == 200
    grant, *reads = _reads(session, OTHER)
    assert (grant.event_type, grant.event_id, grant.detail["reason"]) == ("break_glass", "110113", REASON["reason"])
    assert [(r.username, r.detail.get("access")) for r in reads] == [("clinician", "break_glass")] * 2
    clock.advance(timedelta(hours=4, minutes=1))
    assert (await client.get(f"/api/v1/orders/{OTHER}", headers=auth("clinician"))).status_code == 403


async def test_break_glass_needs_a_reason_and_is_for_clinicians(client, auth) -> None:
    short = await client.post("/api/v1/break-glass", json={"accession_number": OTHER, "reason": "need"},
                              headers=auth("clinician"))
    assert short.status_code == 422
    assert (await client.post("/api/v1/break-glass", json={"accession_number": OTHER, **REASON},
                              headers=auth("registrar"))).status_code == 403
    assert (await client.post("/api/v1/break-glass", json={"accession_number": "A404", **REASON},
                              headers=auth("clinician"))).status_code == 404


async def test_no_break_glass_while_it_cannot_be_recorded(client, auth, session, tmp_path: Path) -> None:
    live: AuditTrail = client.app.state.audit_trail
    dead = make_engine(f"sqlite:///{tmp_path / 'gone' / 'audit.db'}")
    client.app.state.audit_trail = AuditTrail(lambda: dead, live.spool_dir, get_settings().audit_checkpoint_keys)
    r = await client.post("/api/v1/break-glass", json={"accession_number": OTHER, **REASON}, headers=auth("clinician"))
    assert r.status_code == 503
    client.app.state.audit_trail = live  # back up: the spooled attempt is replayed, and still grants nothing
    assert (await client.get(f"/api/v1/orders/{OTHER}", headers=auth("clinician"))).status_code == 403
    attempt = _reads(session, OTHER)[0]
    assert (attempt.event_type, attempt.outcome, attempt.detail["refused"]) == ("break_glass", "failure", "audit store down")


# ---- records kept per patient: consents (R10.3.2) ---------------------------------------------------

THEIRS = "A2026010100007"  # the oncology patient's exam


def _oncology_patient(session, make_order) -> str:
    session.add(Patient(id="p-onc", name="Wang Wu", sex="F", birth_date=date(1960, 3, 4)))
    session.commit()
    make_order(THEIRS, patient_id="p-onc", ordering_department="oncology", placer_order_number="PO-theirs")
    return "p-onc"


def _consent() -> dict:
    return {"scope": "contrast_agent", "purpose": "iodinated contrast for the staging CT", "method": "written",
            "given_at": (datetime.now(timezone.utc) - timedelta(hours=1)).isoformat()}


async def test_consents_of_a_patient_outside_the_department_are_refused(client, auth, session, make_order) -> None:
    pid = _oncology_patient(session, make_order)
    mine = await client.get("/api/v1/patients/p-1/consents", headers=auth("clinician"))  # p-1: MINE, from ED
    assert mine.status_code == 200, mine.text
    refused = await client.get(f"/api/v1/patients/{pid}/consents", headers=auth("clinician"))
    assert refused.status_code == 403 and "break the glass" in refused.json()["detail"]
    write = await client.post(f"/api/v1/patients/{pid}/consents", json=_consent(), headers=auth("clinician"))
    assert write.status_code == 403
    # the desk records it (registrars work for every patient of the center) ...
    recorded = await client.post(f"/api/v1/patients/{pid}/consents", json=_consent(), headers=auth("registrar"))
    assert recorded.status_code == 201, recorded.text
    # ... and the clinician can neither withdraw it nor learn that it exists
    cid = recorded.json()["id"]
    assert (await client.post(f"/api/v1/consents/{cid}/withdraw", json={"reason": "changed their mind"},
                              headers=auth("clinician"))).status_code == 403
    assert (await client.get(f"/api/v1/patients/{pid}/consents", headers=auth("radiologist"))).status_code == 200
    # an unknown patient is a 404 for everyone, as for exams
    assert (await client.get("/api/v1/patients/p-none/consents", headers=auth("clinician"))).status_code == 404
    session.expire_all()
    denied = session.exec(select(AuditRecord).where(AuditRecord.object_id == pid, AuditRecord.username == "clinician")).all()
    assert [a.outcome for a in denied] == ["failure", "failure"]  # every refusal is in the trail too


async def test_break_glass_for_the_patient_opens_their_consents_flagged(client, auth, session, make_order, clock) -> None:
    pid = _oncology_patient(session, make_order)
    for bad in ({"patient_id": pid, "accession_number": THEIRS, **REASON}, REASON):
        assert (await client.post("/api/v1/break-glass", json=bad, headers=auth("clinician"))).status_code == 422
    assert (await client.post("/api/v1/break-glass", json={"patient_id": "p-none", **REASON},
                              headers=auth("clinician"))).status_code == 404
    glass = await client.post("/api/v1/break-glass", json={"patient_id": pid, **REASON}, headers=auth("clinician"))
    assert glass.status_code == 201 and glass.json()["patient_id"] == pid, glass.text
    assert (await client.get(f"/api/v1/patients/{pid}/consents", headers=auth("clinician"))).status_code == 200
    w = await client.post(f"/api/v1/patients/{pid}/consents", json=_consent(), headers=auth("clinician"))
    assert w.status_code == 201, w.text
    grant, *uses = _reads(session, pid)
    assert (grant.event_type, grant.object_type, grant.detail["reason"]) == ("break_glass", "patient", REASON["reason"])
    assert [(u.event_type, u.detail.get("access")) for u in uses] == [
        ("patient_read", "break_glass"), ("patient_change", "break_glass")]
    # a patient grant opens the patient's records, not their exams: those need their own reason
    assert (await client.get(f"/api/v1/orders/{THEIRS}", headers=auth("clinician"))).status_code == 403
    clock.advance(timedelta(hours=4, minutes=1))
    assert (await client.get(f"/api/v1/patients/{pid}/consents", headers=auth("clinician"))).status_code == 403


async def test_break_glass_for_one_of_the_patients_exams_opens_their_consents(client, auth, session, make_order) -> None:
    pid = _oncology_patient(session, make_order)
    assert (await client.post("/api/v1/break-glass", json={"accession_number": THEIRS, **REASON},
                              headers=auth("clinician"))).status_code == 201
    r = await client.get(f"/api/v1/patients/{pid}/consents", headers=auth("clinician"))
    assert r.status_code == 200, r.text


# ---- images (DICOMweb) -----------------------------------------------------------------------------


async def _stow(client, tmp_path: Path, auth) -> dict[str, str]:
    """One study per accession (MINE, OTHER, and one that matches no order), stored by a technologist."""
    from pydicom.uid import generate_uid

    from integrations.dicom.multipart import new_boundary
    from tests.support.dicom_files import make_image

    studies = {acc: generate_uid() for acc in (MINE, OTHER, "UNLINKED1")}
    files = [make_image(tmp_path / f"{acc}.dcm", study_uid=uid, patient_id="P-IMG", accession=acc).read_bytes()
             for acc, uid in studies.items()]
    boundary = new_boundary()
    body = b"".join(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + f + b"\r\n" for f in files)
    body += f"--{boundary}--\r\n".encode()
    r = await client.post("/dicomweb/studies", content=body, headers={
        **auth("technologist"), "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}'})
    assert r.status_code == 200, r.text
    return studies


async def test_images_follow_the_need_to_know_of_their_order(client, auth, session, tmp_path: Path) -> None:
    studies = await _stow(client, tmp_path, auth)

    def uids(r) -> set[str]:
        assert r.status_code == 200, r.text
        return {s["0020000D"]["Value"][0] for s in r.json()}

    assert uids(await client.get("/dicomweb/studies", headers=auth("radiologist"))) == set(studies.values())
    assert uids(await client.get("/dicomweb/studies", headers=auth("clinician"))) == {studies[MINE]}
    assert (await client.get(f"/dicomweb/studies/{studies[MINE]}/metadata", headers=auth("clinician"))).status_code == 200
    for acc in (OTHER, "UNLINKED1"):  # another department's exam; a study no order claims yet
        for path in (f"/dicomweb/studies/{studies[acc]}/metadata", f"/dicomweb/studies/{studies[acc]}",
                     f"/dicomweb/studies/{studies[acc]}/series"):
            r = await client.get(path, headers=auth("clinician"))
            assert r.status_code == 403 and "break the glass" in r.json()["detail"], (path, r.status_code)
    series = (await client.get(f"/dicomweb/studies/{studies[OTHER]}/series", headers=auth("radiologist"))).json()
    series_uid = series[0]["0020000E"]["Value"][0]
    sop = (await client.get(f"/dicomweb/studies/{studies[OTHER]}/series/{series_uid}/instances",
                            headers=auth("radiologist"))).json()[0]["00080018"]["Value"][0]
    wado_uri = {"requestType": "WADO", "studyUID": studies[OTHER], "seriesUID": series_uid, "objectUID": sop}
    assert (await client.get("/dicomweb/wado", params=wado_uri, headers=auth("clinician"))).status_code == 403
    assert (await client.get(f"/dicomweb/studies/{studies[OTHER]}/series/{series_uid}/instances/{sop}/rendered",
                             headers=auth("clinician"))).status_code == 403

    assert (await client.post("/api/v1/break-glass", json={"accession_number": OTHER, **REASON},
                              headers=auth("clinician"))).status_code == 201
    assert uids(await client.get("/dicomweb/studies", headers=auth("clinician"))) == {studies[MINE], studies[OTHER]}
    assert (await client.get("/dicomweb/wado", params=wado_uri, headers=auth("clinician"))).status_code == 200
    opened = await client.get(f"/dicomweb/studies/{studies[OTHER]}/metadata", headers=auth("clinician"))
    assert opened.status_code == 200
    reads = _reads(session, studies[OTHER])
    assert reads[-1].detail.get("access") == "break_glass"
    assert (await client.get(f"/dicomweb/studies/{studies['UNLINKED1']}", headers=auth("clinician"))).status_code == 403


async def test_critical_values_follow_need_to_know_or_the_page(client, auth, session) -> None:
    """A clinician sees critical values of their patients, and one they were paged for on the ladder
    (a backup clinician elsewhere); any other is refused with the way to break the glass."""
    from domain.tables import CriticalValue, NotificationAttempt

    at = datetime.now(timezone.utc)
    for acc in (MINE, OTHER):
        session.add(CriticalValue(id=f"cv-{acc}", accession_number=acc, finding="tension pneumothorax",
                                  raised_by="u-radiologist", raised_at=at))
    session.commit()
    listed = await client.get("/api/v1/critical-values", headers=auth("clinician"))
    assert listed.status_code == 200 and [r["accession_number"] for r in listed.json()] == [MINE]
    refused = await client.get(f"/api/v1/critical-values/cv-{OTHER}", headers=auth("clinician"))
    assert refused.status_code == 403 and "break the glass" in refused.json()["detail"]
    assert (await client.get(f"/api/v1/critical-values/cv-{OTHER}", headers=auth("radiologist"))).status_code == 200

    session.add(NotificationAttempt(id=f"n-{OTHER}", accession_number=OTHER, critical_value_id=f"cv-{OTHER}",
                                    purpose="critical_value", recipient="user:u-clinician", channel="json://x",
                                    delivered=True))
    session.commit()
    paged = await client.get(f"/api/v1/critical-values/cv-{OTHER}", headers=auth("clinician"))
    assert paged.status_code == 200 and paged.json()["notifications"][0]["recipient"] == "user:u-clinician"
    listed = await client.get("/api/v1/critical-values", headers=auth("clinician"))
    assert sorted(r["accession_number"] for r in listed.json()) == sorted([MINE, OTHER])


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
async def test_the_critical_value_list_filters_in_the_database_row_for_row_and_pages(
        client, auth, session, clock, make_order, users) -> None:
    """The list's SQL condition agrees with the per-row need-to-know check on every kind of row
    (department, ordering clinician, paged as a user or a department, a grant in force or expired,
    no order), and pages stay full: no hidden row takes a place."""
    from domain.tables import CriticalValue, NotificationAttempt
    from security import need_to_know

    orders = {"ED1": {}, "ED2": {"ordering_department": "ed"}, "OWN": {"ordering_department": "oncology",
              "ordering_clinician_id": "u-clinician"}, "ONC1": {"ordering_department": "oncology"},
              "ONC2": {"ordering_department": "oncology"}, "ONC3": {"ordering_department": "oncology"},
              "GLASS": {"ordering_department": "oncology"}, "OLDGLASS": {"ordering_department": "oncology"},
              "CARD": {"ordering_department": "cardiology"}}
    for acc, kw in orders.items():
        make_order(acc, placer_order_number=f"PO-{acc}", **kw)
    base = clock.now()
    for i, acc in enumerate([*orders, "NOORDER"]):
        for n in (1, 2):
            session.add(CriticalValue(id=f"cv-{acc}-{n}", accession_number=acc, finding="pneumothorax",
                                      raised_by="u-radiologist", raised_at=base - timedelta(minutes=3 * i + n)))
    for cv, recipient in [("cv-ONC1-1", "user:u-clinician"), ("cv-ONC2-2", "department:ED"),
                          ("cv-ONC3-1", "user:u-other"), ("cv-CARD-1", "department:cardiology")]:
        session.add(NotificationAttempt(id=f"n-{cv}", accession_number=cv.split("-")[1], critical_value_id=cv,
                                        purpose="critical_value", recipient=recipient, channel="json://x",
                                        delivered=True))
    session.commit()
    assert (await client.post("/api/v1/break-glass", json={"accession_number": "OLDGLASS", **REASON},
                              headers=auth("clinician"))).status_code == 201
    clock.advance(timedelta(hours=5))  # that grant has lapsed
    assert (await client.post("/api/v1/break-glass", json={"accession_number": "GLASS", **REASON},
                              headers=auth("clinician"))).status_code == 201

    session.expire_all()
    everything = session.exec(select(CriticalValue).order_by(col(CriticalValue.raised_at).desc())).all()
    clinician = users["clinician"]
    expected = [r.id for r in everything if need_to_know.critical_value_basis(
        session, clinician, r.accession_number, r.id, clock.now()) is not None]
    assert set(expected) == {f"cv-{a}-{n}" for a in ("ED1", "ED2", "OWN", "GLASS", "NOORDER") for n in (1, 2)} | {
        "cv-ONC1-1", "cv-ONC2-2"}
    paged: list[str] = []
    for offset in range(0, 30, 4):
        page = await client.get(f"/api/v1/critical-values?limit=4&offset={offset}", headers=auth("clinician"))
        assert page.status_code == 200
        rows = [r["id"] for r in page.json()]
        assert len(rows) == min(4, max(0, len(expected) - offset))  # full pages until the end
        paged += rows
    assert paged == expected
    staff = await client.get("/api/v1/critical-values?limit=500", headers=auth("radiologist"))
    assert [r["id"] for r in staff.json()] == [r.id for r in everything]
    too_many = await client.get("/api/v1/critical-values?limit=501", headers=auth("radiologist"))
    assert too_many.status_code == 422


async def test_a_clinicians_task_on_another_departments_patient_needs_to_know(client, auth, session) -> None:
    from domain.tables import HumanTask

    for acc in (MINE, OTHER):
        session.add(HumanTask(id=f"exam-loop-{acc}/order_qc/1", workflow_id=f"exam-loop-{acc}", accession_number=acc,
                              task_type="order_qc", role="clinician", roles="clinician", form_schema="order_qc",
                              title="Order needs a fix"))
    session.add(HumanTask(id=f"exam-loop-{OTHER}/critical_call/1", workflow_id=f"exam-loop-{OTHER}",
                          accession_number=OTHER, task_type="critical_call", role="clinician", roles="clinician",
                          assignee_id="u-clinician", form_schema="critical_call", title="Call back"))
    session.commit()
    assert (await client.get(f"/api/v1/tasks/exam-loop-{MINE}/order_qc/1", headers=auth("clinician"))).status_code == 200
    refused = await client.get(f"/api/v1/tasks/exam-loop-{OTHER}/order_qc/1", headers=auth("clinician"))
    assert refused.status_code == 403 and "break the glass" in refused.json()["detail"]
    assigned = await client.get(f"/api/v1/tasks/exam-loop-{OTHER}/critical_call/1", headers=auth("clinician"))
    assert assigned.status_code == 200

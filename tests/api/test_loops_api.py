"""Loop reads that come from the rows: report versions, their diff, and the business timeline."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from domain.tables import DomainEvent, ReportVersion

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=timezone.utc)


@pytest.fixture
def reports(session, make_order):
    make_order("A1")
    rows = [
        ReportVersion(accession_number="A1", version=1, tier="draft", status="working", author_id="u-resident",
                      author_role="resident", findings="Nodule 8 mm in the right upper lobe.\nNo effusion.",
                      impression="Pulmonary nodule.", created_at=T0),
        ReportVersion(accession_number="A1", version=2, tier="final", status="recalled", author_id="u-senior_radiologist",
                      author_role="senior_radiologist", findings="Nodule 8 mm in the right upper lobe.\nNo effusion.",
                      impression="Pulmonary nodule, follow-up CT in 6 months.", created_at=T0 + timedelta(hours=1),
                      signed_by="u-senior_radiologist", signed_at=T0 + timedelta(hours=1)),
        ReportVersion(accession_number="A1", version=3, tier="amended", status="valid", author_id="u-radiologist",
                      author_role="radiologist", findings="Nodule 8 mm in the left upper lobe.\nNo effusion.",
                      impression="Pulmonary nodule, follow-up CT in 6 months.", created_at=T0 + timedelta(days=1)),
    ]
    session.add_all(rows)
    session.commit()
    return rows


async def test_lists_every_version_oldest_first(api, auth, reports):
    r = await api.get("/api/v1/loops/A1/reports", headers=auth("clinician"))
    assert r.status_code == 200, r.text
    got = [(v["version"], v["tier"], v["status"], v["author_id"]) for v in r.json()]
    assert got == [
        (1, "draft", "working", "u-resident"),
        (2, "final", "recalled", "u-senior_radiologist"),
        (3, "amended", "valid", "u-radiologist"),
    ]
    assert r.json()[1]["signed_at"].startswith("2026-03-01T09:00:00")


async def test_diff_per_field(api, auth, reports):
    r = await api.get("/api/v1/loops/A1/reports/diff", params={"from": 2, "to": 3}, headers=auth("radiologist"))
    assert r.status_code == 200, r.text
    fields = {f["field"]: f for f in r.json()["fields"]}
    assert fields["findings"]["changed"] is True
    assert "-Nodule 8 mm in the right upper lobe." in fields["findings"]["diff"]
    assert "+Nodule 8 mm in the left upper lobe." in fields["findings"]["diff"]
    assert fields["findings"]["diff"].startswith("--- v2/findings\n+++ v3/findings")
    assert fields["impression"] == {"field": "impression", "changed": False, "diff": ""}


async def test_diff_and_reports_404(api, auth, reports):
    assert (await api.get("/api/v1/loops/A1/reports/diff", params={"from": 1, "to": 9}, headers=auth("clinician"))).status_code == 404
    assert (await api.get("/api/v1/loops/A9/reports", headers=auth("clinician"))).status_code == 404
    missing = await api.get("/api/v1/loops/A1/reports/diff", params={"to": 2}, headers=auth("clinician"))
    assert missing.status_code == 422 and missing.json()["detail"][0]["field"] == "from"


async def test_timeline_without_temporal_is_the_business_events_in_time_order(api, auth, session, make_order):
    make_order("A2")
    # Inserted out of order on purpose: the timeline orders by time, not by insertion.
    session.add_all([
        DomainEvent(id="e3", accession_number="A2", at=T0 + timedelta(minutes=30), actor="u-technologist",
                    kind="exam_completed", summary="CT chest done"),
        DomainEvent(id="e1", accession_number="A2", at=T0, actor="system", kind="order_accepted", summary="QC passed"),
        DomainEvent(id="e2", accession_number="A2", at=T0 + timedelta(minutes=5), actor="u-registrar",
                    kind="checked_in", summary="ID card checked"),
        DomainEvent(id="x", accession_number="A3", at=T0, actor="system", kind="other", summary="other loop"),
    ])
    session.commit()
    r = await api.get("/api/v1/loops/A2/timeline", headers=auth("clinician"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["temporal_available"] is False
    assert body["temporal_ui_url"].endswith("/namespaces/default/workflows/exam-loop-A2")
    assert [(e["who"], e["what"]) for e in body["entries"]] == [
        ("system", "order_accepted"), ("u-registrar", "checked_in"), ("u-technologist", "exam_completed"),
    ]
    assert {e["source"] for e in body["entries"]} == {"domain"}


async def test_timeline_unknown_accession_is_404(api, auth):
    assert (await api.get("/api/v1/loops/A404/timeline", headers=auth("clinician"))).status_code == 404

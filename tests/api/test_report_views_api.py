"""Rendered reports (R10.3.4 (5), R10.2.4): watermarked with viewer and time, signature shown, view audited."""
from __future__ import annotations

import re
from datetime import datetime, timezone

from sqlalchemy import text
from sqlmodel import Session, select

from domain.enums import Role
from domain.security_tables import AuditRecord
from domain.tables import ReportVersion
from security.signatures import sign_version

ACC = "A2026010100001"


def _hex(s: str) -> str:
    return "<" + "".join(f"{ord(c):04X}" for c in s) + ">"


def _report(session: Session, settings) -> None:
    session.add(ReportVersion(accession_number=ACC, version=1, tier="final", status="valid", findings="右肺下叶磨玻璃影。",
                              impression="考虑感染性病变。", recommendation="抗炎后复查。", author_id="u-senior_radiologist",
                              author_role="senior_radiologist"))
    session.commit()
    sign_version(session, ACC, 1, "u-senior_radiologist", "Senior", "senior_radiologist",
                 datetime(2026, 1, 1, 12, tzinfo=timezone.utc), settings.signature_keys)
    session.commit()


async def test_html_report_is_watermarked_masked_by_role_and_shows_the_signature(api, auth, make_order, session, settings):
    make_order(ACC)
    _report(session, settings)
    url = f"/api/v1/loops/{ACC}/reports/1/rendered"
    r = await api.get(url, headers=auth(Role.clinician))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "右肺下叶磨玻璃影" in r.text and "Zhang San" in r.text and "is exactly what u-senior_radiologist signed" in r.text
    label = re.search(r'<meta name="radloop-watermark" content="([^"]+)"', r.text).group(1)
    assert label.startswith("RadLoop · u-clinician · ") and 'class="radloop-watermark"' in r.text
    qc = await api.get(url, headers=auth(Role.qc_officer))
    assert "Z**** S**" in qc.text and "Zhang San" not in qc.text and "u-qc_officer" in qc.text
    session.execute(text("UPDATE report_version SET findings = '未见异常。'"))
    session.commit()
    changed = await api.get(url, headers=auth(Role.senior_radiologist))
    assert "was changed after it was signed" in changed.text
    session.expire_all()
    views = session.exec(select(AuditRecord).where(AuditRecord.detail["rendered"].as_string() == "html")).all()
    assert [v.role for v in views] == ["clinician", "qc_officer", "senior_radiologist"]
    assert views[0].detail["watermark"] == label


async def test_pdf_report_is_a_well_formed_pdf_with_the_watermark_on_its_page(api, auth, make_order, session, settings):
    make_order(ACC)
    _report(session, settings)
    r = await api.get(f"/api/v1/loops/{ACC}/reports/1/rendered?format=pdf", headers=auth(Role.radiologist))
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    pdf = r.content
    assert pdf.startswith(b"%PDF-1.4") and pdf.rstrip().endswith(b"%%EOF")
    startxref = int(pdf.rsplit(b"startxref", 1)[1].split()[0])
    assert pdf[startxref:startxref + 4] == b"xref"
    entries = pdf[startxref:].split(b"\n")[3:]
    for n, entry in enumerate(entries, start=1):  # every offset points at its object
        if not entry.endswith(b" n "):
            break
        assert pdf[int(entry[:10]):].startswith(b"%d 0 obj" % n)
    session.expire_all()
    (view,) = session.exec(select(AuditRecord).where(AuditRecord.detail["rendered"].as_string() == "pdf")).all()
    assert view.detail["watermark"].startswith("RadLoop · u-radiologist · ")
    assert _hex(view.detail["watermark"]).encode() in pdf and _hex("右肺下叶磨玻璃影。").encode() in pdf


async def test_missing_versions_and_bad_formats_are_refused(api, auth, make_order):
    make_order(ACC)
    missing = await api.get(f"/api/v1/loops/{ACC}/reports/2/rendered", headers=auth(Role.radiologist))
    assert missing.status_code == 404 and "no report version 2" in missing.json()["detail"]
    bad = await api.get(f"/api/v1/loops/{ACC}/reports/1/rendered?format=docx", headers=auth(Role.radiologist))
    assert bad.status_code == 422

"""Handwritten consent signatures (R6.1.4): uploaded first as a PNG (data URL or file), checked to be a
real, complete, non-blank PNG within the size limit, stored content-addressed under the data directory;
check-in completions naming an upload that does not agree are refused before the loop is asked."""
from __future__ import annotations

import base64
import hashlib

import pytest

from domain.consent_notices import notice_sha256
from domain.consent_tables import ConsentSignature
from services.consent_signatures import path_of
from tests.support.signatures import signature_png

ACC = "A2026010100001"


def data_url(data: bytes, media: str = "image/png") -> str:
    return f"data:{media};base64,{base64.b64encode(data).decode()}"


def body(image: str, **kw) -> dict:
    return {"accession_number": ACC, "notices": ["contrast_consent"], "lang": "zh-CN", "image": image, **kw}


async def test_upload_stores_the_png_under_its_hash_and_answers_the_reference(api, auth, make_order, session, settings) -> None:
    make_order(ACC)
    png = signature_png()
    r = await api.post("/api/v1/consent-signatures", headers=auth("registrar"), json=body(data_url(png)))
    assert r.status_code == 201, r.text
    out = r.json()
    digest = hashlib.sha256(png).hexdigest()
    assert out["signature_sha256"] == digest and (out["width"], out["height"], out["size_bytes"]) == (600, 200, len(png))
    assert out["notice_sha256"] == notice_sha256(["contrast_consent"], "zh-CN")
    stored = path_of(settings.data_dir, digest)
    assert stored == settings.data_dir / "consent_signatures" / digest[:2] / f"{digest}.png"
    assert stored.read_bytes() == png
    row = session.get(ConsentSignature, out["signature_ref"])
    assert (row.accession_number, row.patient_id, row.uploaded_by, row.notices, row.signer) == (
        ACC, "p-1", "u-registrar", ["contrast_consent"], "patient")

    # The same image as a multipart file: another reference, the same content-addressed file.
    r2 = await api.post("/api/v1/consent-signatures/upload", headers=auth("nurse"),
                        files={"image": ("sig.png", png, "image/png")},
                        data={"accession_number": ACC, "notices": ["contrast_consent", "radiation_notice"], "lang": "en"})
    assert r2.status_code == 201, r2.text
    assert r2.json()["signature_sha256"] == digest and r2.json()["signature_ref"] != out["signature_ref"]
    assert r2.json()["notice_sha256"] == notice_sha256(["contrast_consent", "radiation_notice"], "en")
    assert len(list((settings.data_dir / "consent_signatures").rglob("*.png"))) == 1

    image = await api.get(f"/api/v1/consent-signatures/{out['signature_ref']}/image", headers=auth("nurse"))
    assert image.status_code == 200 and image.headers["content-type"] == "image/png" and image.content == png
    stored.write_bytes(png + b"tampered")
    refused = await api.get(f"/api/v1/consent-signatures/{out['signature_ref']}/image", headers=auth("nurse"))
    assert refused.status_code == 422 and "no longer matches" in refused.json()["detail"]


@pytest.mark.parametrize(("image", "status", "reason"), [
    (data_url(signature_png(fmt="JPEG"), "image/jpeg"), 422, "data:image/png;base64"),
    (data_url(signature_png(fmt="JPEG")), 422, "not a PNG"),
    (data_url(signature_png(fmt="GIF")), 422, "not a PNG"),
    (data_url(signature_png()[:-40]), 422, "not a readable PNG"),
    (data_url(signature_png(ink=False)), 422, "blank"),
    (data_url(signature_png(width=8, height=8)), 422, "pixels"),
    ("data:image/png;base64,@@@@", 422, "data:image/png;base64"),
    (data_url(b"\x89PNG\r\n\x1a\n" + bytes(300 * 1024)), 413, "larger than 256 KB"),
])
async def test_what_is_not_a_signature_png_is_refused_with_the_reason(api, auth, make_order, settings, image, status, reason) -> None:
    make_order(ACC)
    r = await api.post("/api/v1/consent-signatures", headers=auth("registrar"), json=body(image))
    assert r.status_code == status, r.text
    assert reason in r.text
    assert not (settings.data_dir / "consent_signatures").exists()


async def test_file_uploads_are_limited_and_facts_checked(api, auth, make_order) -> None:
    make_order(ACC)
    big = await api.post("/api/v1/consent-signatures/upload", headers=auth("registrar"),
                         files={"image": ("sig.png", b"\x89PNG\r\n\x1a\n" + bytes(257 * 1024), "image/png")},
                         data={"accession_number": ACC, "notices": ["contrast_consent"]})
    assert big.status_code == 413
    guardian = await api.post("/api/v1/consent-signatures", headers=auth("registrar"),
                              json=body(data_url(signature_png()), signer="guardian"))
    assert guardian.status_code == 422 and "signer_name" in guardian.text
    unknown = await api.post("/api/v1/consent-signatures", headers=auth("registrar"),
                             json=body(data_url(signature_png()), accession_number="A404"))
    assert unknown.status_code == 404
    assert (await api.post("/api/v1/consent-signatures", headers=auth("radiologist"),
                           json=body(data_url(signature_png())))).status_code == 403


async def test_check_in_naming_a_signature_that_does_not_agree_is_refused_before_the_loop(
        api, auth, make_order, make_task, settings) -> None:
    make_order(ACC)
    make_order("A2026010100002")
    task = make_task("check_in", accession=ACC, context={"required": ["contrast_consent"]})
    png = signature_png()
    other = (await api.post("/api/v1/consent-signatures", headers=auth("registrar"),
                            json=body(data_url(png), accession_number="A2026010100002"))).json()
    mine = (await api.post("/api/v1/consent-signatures", headers=auth("registrar"), json=body(data_url(png)))).json()
    form = {"identity_document_type": "id_card", "identity_verified": True, "signed": ["contrast_consent"]}

    async def complete(**sig) -> list[dict]:
        r = await api.post(f"/api/v1/tasks/{task.id}/complete", headers=auth("registrar"), json={"data": form | sig})
        assert r.status_code == 422, r.text
        return r.json()["detail"]

    [err] = await complete(signature_ref="nope", signature_sha256=mine["signature_sha256"])
    assert err["field"] == "data.signature_ref" and "upload the signature image first" in err["msg"]
    [err] = await complete(signature_ref=mine["signature_ref"], signature_sha256="0" * 64)
    assert "does not match" in err["msg"]
    [err] = await complete(signature_ref=other["signature_ref"], signature_sha256=other["signature_sha256"])
    assert "uploaded for exam A2026010100002" in err["msg"]
    form["signed"] = ["contrast_consent", "radiation_notice"]
    [err] = await complete(signature_ref=mine["signature_ref"], signature_sha256=mine["signature_sha256"])
    assert "not shown: radiation_notice" in err["msg"]
    form["signed"] = ["contrast_consent"]
    path_of(settings.data_dir, mine["signature_sha256"]).unlink()
    [err] = await complete(signature_ref=mine["signature_ref"], signature_sha256=mine["signature_sha256"])
    assert "is missing" in err["msg"]

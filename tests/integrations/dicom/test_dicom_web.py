"""DICOMweb (QIDO-RS, WADO-RS, WADO-URI, STOW-RS) on the same store the listener fills."""
from __future__ import annotations

from pathlib import Path

import httpx
import pydicom
from pydicom.uid import JPEG2000Lossless, generate_uid

from integrations.dicom.multipart import boundary_of, new_boundary, split_parts
from tests.support.dicom_files import compressed_copy, dataset_bytes, make_image

TECH = {"Authorization": "Bearer dev-technologist"}
DOCTOR = {"Authorization": "Bearer dev-radiologist"}


def _stow_body(files: list[bytes]) -> tuple[bytes, str]:
    boundary = new_boundary()
    body = b"".join(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + f + b"\r\n" for f in files)
    return body + f"--{boundary}--\r\n".encode(), f'multipart/related; type="application/dicom"; boundary={boundary}'


async def test_stow_qido_wado_round_trip(sqlite_database, tmp_path: Path) -> None:
    from api.main import create_app

    app = create_app()
    study = generate_uid()
    plain = make_image(tmp_path / "a.dcm", study_uid=study, patient_id="WEB1", accession="W1")
    j2k = compressed_copy(plain, tmp_path / "b.dcm", JPEG2000Lossless)
    no_ts = make_image(tmp_path / "c.dcm", study_uid=study, patient_id="WEB1")
    ds = pydicom.dcmread(no_ts)
    del ds.file_meta.TransferSyntaxUID
    ds.save_as(no_ts, enforce_file_format=False)
    originals = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID): p for p in (plain, j2k)}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        body, ctype = _stow_body([plain.read_bytes(), j2k.read_bytes(), no_ts.read_bytes()])
        assert (await client.post("/dicomweb/studies", content=body, headers={"Content-Type": ctype})).status_code == 401
        assert (await client.post("/dicomweb/studies", content=body,
                                  headers={**DOCTOR, "Content-Type": ctype})).status_code == 403
        r = await client.post("/dicomweb/studies", content=body, headers={**TECH, "Content-Type": ctype})
        assert r.status_code == 202, r.text  # two stored, one refused
        result = r.json()
        stored = {i["00081155"]["Value"][0] for i in result["00081199"]["Value"]}
        assert stored == set(originals)
        assert [i["00081197"]["Value"][0] for i in result["00081198"]["Value"]] == [0xC000]

        studies = (await client.get("/dicomweb/studies", params={"PatientID": "WEB1"}, headers=DOCTOR)).json()
        assert [s["0020000D"]["Value"][0] for s in studies] == [study]
        assert studies[0]["00100010"]["Value"][0]["Alphabetic"] == "张三"
        assert studies[0]["00201208"]["Value"][0] == 2
        assert (await client.get("/dicomweb/studies", params={"PatientID": "NOBODY"}, headers=DOCTOR)).json() == []
        series = (await client.get(f"/dicomweb/studies/{study}/series", headers=DOCTOR)).json()
        series_uid = series[0]["0020000E"]["Value"][0]
        instances = (await client.get(f"/dicomweb/studies/{study}/series/{series_uid}/instances", headers=DOCTOR)).json()
        assert {i["00080018"]["Value"][0] for i in instances} == set(originals)

        # WADO-RS: the stored Part 10 files, byte for byte, as multipart/related.
        r = await client.get(f"/dicomweb/studies/{study}", headers=DOCTOR)
        assert r.status_code == 200 and 'type="application/dicom"' in r.headers["content-type"]
        parts = split_parts(r.content, boundary_of(r.headers["content-type"]))
        assert len(parts) == 2
        for _headers, payload in parts:
            sop = str(pydicom.dcmread(__import__("io").BytesIO(payload), stop_before_pixels=True).SOPInstanceUID)
            assert payload[132:] and dataset_bytes(originals[sop]) in payload
        meta = (await client.get(f"/dicomweb/studies/{study}/metadata", headers=DOCTOR)).json()
        assert len(meta) == 2 and all("7FE00010" not in m for m in meta)

        # WADO-URI for viewers configured with wadouri.
        sop = next(iter(originals))
        r = await client.get("/dicomweb/wado", headers=DOCTOR, params={
            "requestType": "WADO", "studyUID": study, "seriesUID": series_uid, "objectUID": sop})
        assert r.status_code == 200 and r.headers["content-type"] == "application/dicom"
        assert dataset_bytes(originals[sop]) in r.content
        assert (await client.get(f"/dicomweb/studies/{generate_uid()}", headers=DOCTOR)).status_code == 404

        # Frames as stored (what OHIF's wadors rendering asks for): native bytes and the J2K bitstream.
        for sop_uid, path in originals.items():
            r = await client.get(f"/dicomweb/studies/{study}/series/{series_uid}/instances/{sop_uid}/frames/1",
                                 headers=DOCTOR)
            assert r.status_code == 200, r.text
            [(headers, frame)] = split_parts(r.content, boundary_of(r.headers["content-type"]))
            source = pydicom.dcmread(path)
            if source.file_meta.TransferSyntaxUID.is_encapsulated:
                from pydicom.encaps import generate_frames
                assert headers["content-type"].startswith("image/jp2")
                assert frame == next(generate_frames(source.PixelData, number_of_frames=1))
            else:
                assert frame == source.PixelData and headers["content-type"].startswith("application/octet-stream")
        assert (await client.get(f"/dicomweb/studies/{study}/series/{series_uid}/instances/{sop}/frames/2",
                                 headers=DOCTOR)).status_code == 404

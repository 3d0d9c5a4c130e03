"""Bad input (issue 3): refused with the right status, quarantined with a reason, listener stays up."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid
from sqlmodel import Session, select

from core.db import get_engine
from domain.imaging_tables import ImagingInstance, QuarantinedObject
from tests.support.dicom_files import make_image
from tests.support.dicom_tools import run_tool, running_listener, store_raw


def _rewrite(path: Path, old: bytes, new: bytes) -> Path:
    raw = path.read_bytes()
    assert raw.count(old) >= 1
    path.write_bytes(raw.replace(old, new, 1))
    return path


async def test_bad_objects_are_quarantined_and_the_listener_survives(sqlite_database, tmp_path: Path) -> None:
    async with running_listener() as lsn:
        def image(name: str) -> Path:
            return make_image(tmp_path / name, study_uid=generate_uid())

        truncated = image("truncated.dcm")
        truncated.write_bytes(truncated.read_bytes()[:-1000])
        bad_vr = _rewrite(image("badvr.dcm"), b"\x10\x00\x10\x00PN", b"\x10\x00\x10\x00ZZ")
        huge = image("huge.dcm")
        ds = pydicom.dcmread(huge)
        ds.add_new(0x00090010, "LO", "RADLOOPTEST")
        ds.add_new(0x00091010, "OB", b"\x00" * 16)
        ds.save_as(huge, enforce_file_format=True)
        _rewrite(huge, b"\x09\x00\x10\x10OB\x00\x00\x10\x00\x00\x00", b"\x09\x00\x10\x10OB\x00\x00\xf0\xff\xff\xff")
        mismatch = image("mismatch.dcm")
        uid = str(pydicom.dcmread(mismatch).SOPInstanceUID).encode()
        other = uid[:-1] + (b"1" if uid[-1:] != b"1" else b"2")
        raw = mismatch.read_bytes()
        cut = raw.rindex(uid)  # the data set's copy; the file meta (and so the command) keep the original
        mismatch.write_bytes(raw[:cut] + other + raw[cut + len(uid):])

        expected = {truncated: 0xC000, bad_vr: 0xC000, huge: 0xC000, mismatch: 0xA900}
        for path, status in expected.items():
            answer, _ = await asyncio.to_thread(store_raw, lsn.port, path)
            assert answer is not None and answer.status == status, (path.name, answer)

        # An unknown SOP class is refused at negotiation; the association and listener carry on.
        good = image("good.dcm")
        answer, accepted = await asyncio.to_thread(store_raw, lsn.port, good, "1.2.3.4.5.6.7.8")
        assert not accepted and answer is not None and answer.status == 0x0000

        echo = await run_tool(["echoscu", "-aec", "RADLOOP", "127.0.0.1", str(lsn.port)])
        assert echo.code == 0
        store = lsn.ctx.store  # type: ignore[attr-defined]
        with Session(get_engine()) as s:
            rows = s.exec(select(QuarantinedObject)).all()
            reasons = " | ".join(sorted(r.reason for r in rows))
            assert len(rows) == 4, reasons
            assert "beyond the end" in reasons and "invalid VR 'ZZ'" in reasons and "differ from the C-STORE" in reasons
            for r in rows:
                assert store.path(r.rel_path).stat().st_size == r.size_bytes > 0
            assert len(s.exec(select(ImagingInstance)).all()) == 1  # only the good one
        assert not list(store.incoming.glob("*"))  # no spool files left behind

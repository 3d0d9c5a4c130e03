"""Verification and Modality Worklist (R4.2.2) against the real listener, queried with DCMTK."""
from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from core.config import get_settings
from core.db import get_engine
from domain.enums import Role
from domain.loop import CancelRequest
from domain.tables import WorklistEntry
from services import loop_commands
from tests.support.dicom_tools import findscu_worklist, run_tool, running_listener
from tests.support.loop_driver import LoopDriver, actor
from worker import build_worker

SPS = "ScheduledProcedureStepSequence[0]"
RETURN_KEYS = [
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "RequestedProcedureID",
    "RequestedProcedureDescription", "RequestedProcedurePriority", "ReferringPhysicianName",
    f"{SPS}.ScheduledStationAETitle", f"{SPS}.ScheduledProcedureStepStartDate",
    f"{SPS}.ScheduledProcedureStepStartTime", f"{SPS}.ScheduledProcedureStepID",
    f"{SPS}.ScheduledProcedureStepDescription",
]


def _entry(acc: str) -> WorklistEntry:
    with Session(get_engine()) as s:
        return s.exec(select(WorklistEntry).where(WorklistEntry.accession_number == acc)).one()


async def test_echo(ts_env, sqlite_database) -> None:
    async with running_listener(ts_env.client) as lsn:
        res = await run_tool(["echoscu", "-aec", "RADLOOP", "127.0.0.1", str(lsn.port)])
        assert res.code == 0, res.stderr


async def test_worklist_matching_charsets_and_cancel(ts_env, database, task_queue, tmp_path: Path) -> None:
    async with build_worker(ts_env.client, task_queue), running_listener(ts_env.client) as lsn:
        d = LoopDriver(ts_env.client, task_queue)
        ct = (await d.place()).accession_number  # 张三, CT chest
        mr = (await d.place(
            patient={"name": "李四", "identifiers": [{"system": "MRN", "value": "MRN-LISI-1"}]},
            procedure={"code": "MR-HEAD", "name": "头颅MR / MR head", "modality": "MR", "body_part": "HEAD"},
        )).accession_number
        await d.wait_step(ct, "scheduled")
        await d.wait_step(mr, "scheduled")
        entry = _entry(ct)
        local = entry.scheduled_start.astimezone(ZoneInfo(get_settings().timezone))
        day = local.strftime("%Y%m%d")
        out = tmp_path / "rsp"

        async def find(*keys: str | bytes) -> list:
            return await findscu_worklist(lsn.port, [*RETURN_KEYS, *keys], out)  # later keys win

        # By accession: exactly the one step, with the IHE SWF return keys filled in.
        [hit] = await find(f"AccessionNumber={ct}", f"{SPS}.Modality")
        assert hit.AccessionNumber == ct
        assert hit.PatientName == "张三"
        assert hit.PatientID == entry.patient_id
        assert hit.PatientSex == "M" and hit.PatientBirthDate == "19700501"
        assert hit.StudyInstanceUID == entry.study_instance_uid
        assert hit.RequestedProcedurePriority == "ROUTINE"
        assert hit.ReferringPhysicianName == "孙医生"
        sps = hit.ScheduledProcedureStepSequence[0]
        assert (sps.Modality, sps.ScheduledStationAETitle, sps.ScheduledProcedureStepID) == ("CT", entry.station_ae_title, entry.id)
        assert sps.ScheduledProcedureStepStartDate == day
        assert sps.ScheduledProcedureStepStartTime == local.strftime("%H%M%S")
        assert "SpecificCharacterSet" in hit and hit.SpecificCharacterSet == "ISO_IR 192"
        assert "ReasonForTheRequestedProcedure" not in hit  # not asked for, not returned

        # Modality, station AE title and date range select; wrong ones exclude.
        accs = lambda hits: {h.AccessionNumber for h in hits}  # noqa: E731
        assert ct in accs(await find("AccessionNumber", f"{SPS}.Modality=CT", f"{SPS}.ScheduledStationAETitle={entry.station_ae_title}"))
        assert ct not in accs(await find("AccessionNumber", f"{SPS}.Modality=MR"))
        assert mr in accs(await find("AccessionNumber", f"{SPS}.Modality=MR"))
        assert ct not in accs(await find("AccessionNumber", f"{SPS}.Modality=CT", f"{SPS}.ScheduledStationAETitle=NOSUCHAE"))
        before = (local - timedelta(days=1)).strftime("%Y%m%d")
        assert ct in accs(await find("AccessionNumber", f"{SPS}.ScheduledProcedureStepStartDate={before}-{day}"))
        assert ct in accs(await find("AccessionNumber", f"{SPS}.ScheduledProcedureStepStartDate={day}"))
        assert ct not in accs(await find("AccessionNumber", f"{SPS}.ScheduledProcedureStepStartDate=-{before}"))
        hhmm = local.strftime("%H%M")
        assert ct in accs(await find("AccessionNumber", f"{SPS}.ScheduledProcedureStepStartDate={day}",
                                     f"{SPS}.ScheduledProcedureStepStartTime={hhmm}-{hhmm}"))
        after = (local + timedelta(minutes=1)).strftime("%H%M")
        assert ct not in accs(await find("AccessionNumber", f"{SPS}.ScheduledProcedureStepStartDate={day}",
                                         f"{SPS}.ScheduledProcedureStepStartTime={after}-"))
        # Patient ID: the RadLoop ID or an identifier the patient carries.
        assert accs(await find(f"PatientID={entry.patient_id}", "AccessionNumber")) == {ct}
        assert accs(await find("PatientID=MRN-LISI-1", "AccessionNumber")) == {mr}

        # Chinese names: wildcard in UTF-8, exact in GB18030 (answered in GB18030).
        utf8 = await find("SpecificCharacterSet=ISO_IR 192", "PatientName=张*", "AccessionNumber")
        assert ct in accs(utf8) and mr not in accs(utf8)
        gb = await find("SpecificCharacterSet=GB18030", "PatientName=张三".encode("gb18030"), "AccessionNumber")
        assert ct in accs(gb) and mr not in accs(gb)
        assert all(h.SpecificCharacterSet == "GB18030" and h.PatientName == "张三" for h in gb)
        assert mr in accs(await find("SpecificCharacterSet=GB18030", "PatientName=李?".encode("gb18030"), "AccessionNumber"))
        assert ct not in accs(await find("SpecificCharacterSet=ISO_IR 192", "PatientName=张四", "AccessionNumber"))

        # Cancelling the order takes it off the worklist at once.
        await loop_commands.cancel(ts_env.client, ct, CancelRequest(actor=actor(Role.registrar), reason="patient left"))
        for _ in range(100):
            if not await find(f"AccessionNumber={ct}"):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("cancelled order still on the worklist")
        assert accs(await find(f"AccessionNumber={mr}")) == {mr}

"""OMI^O23 with several IPC segments: each scheduled step is stored and offered by the worklist."""
from __future__ import annotations

from pydicom.dataset import Dataset
from sqlmodel import Session, col, select

from core.db import get_engine
from domain.procedure_tables import ScheduledStep
from integrations.dicom.handlers.mwl import matches
from integrations.dicom.responses import to_dataset
from tests.integrations.hl7.messages import ack_fields, err_segments, msh, pid, seg
from tests.integrations.hl7.test_orders_mllp import accession_of, center  # noqa: F401 - fixture

__all__ = ["center"]


def omi(control_id: str, placer: str, ipcs: list[dict[int, str]], control: str = "NW") -> bytes:
    lines = [
        msh("OMI^O23^OMI_O23", control_id, "2.5.1"), pid(f"MRN-{placer}"),
        seg("ORC", {1: control, 2: f"{placer}^HIS", 12: "D001^孙^医生", 17: "respiratory"}),
        seg("OBR", {1: "1", 2: f"{placer}^HIS", 4: "CT-CHEST^胸部CT平扫", 13: "咳嗽两周",
                   15: "^^^CHEST", 31: "^排除肺部感染"}),
        seg("DG1", {1: "1", 3: "R10.1^上腹痛^I10"}),
        *[seg("IPC", fields) for fields in ipcs],
    ]
    return "\r".join(lines).encode()


def steps(accession: str) -> list[ScheduledStep]:
    with Session(get_engine()) as s:
        return list(s.exec(select(ScheduledStep).where(ScheduledStep.accession_number == accession)
                           .order_by(col(ScheduledStep.seq))).all())


def worklist_query(accession: str) -> Dataset:
    q = Dataset()
    q.AccessionNumber = accession
    sps = Dataset()
    sps.Modality = ""
    sps.ScheduledProcedureStepID = ""
    q.ScheduledProcedureStepSequence = [sps]
    return q


async def test_each_ipc_segment_is_a_scheduled_step_on_the_worklist(center, sqlite_database) -> None:
    ipcs = [
        {1: "ACC-X", 2: "RP1", 3: "1.2.3.4", 4: "SPS-PLAIN", 5: "CT", 6: "P-CH-LUNG^肺窗", 9: "CT1"},
        {1: "ACC-X", 2: "RP1", 3: "1.2.3.4", 4: "SPS-PORTAL", 5: "CT", 6: "P-CH-MED^纵隔窗", 9: "CT1"},
    ]
    ack = await center.listener.send(omi("OMI-S1", "POMIS1", ipcs))
    assert ack_fields(ack)["MSA"][1] == "AA", ack
    accession = accession_of(ack)
    assert [(s.step_id, s.protocol_code, s.protocol_name) for s in steps(accession)] == [
        ("SPS-PLAIN", "P-CH-LUNG", "肺窗"), ("SPS-PORTAL", "P-CH-MED", "纵隔窗")]
    await center.driver.wait_step(accession, "scheduled")
    items = [to_dataset(v) for v in matches(worklist_query(accession), "Asia/Shanghai")]
    offered = [(i.ScheduledProcedureStepSequence[0].ScheduledProcedureStepID,
                i.ScheduledProcedureStepSequence[0].ScheduledProtocolCodeSequence[0].CodeValue) for i in items]
    assert offered == [("SPS-PLAIN", "P-CH-LUNG"), ("SPS-PORTAL", "P-CH-MED")]
    assert {i.AccessionNumber for i in items} == {accession}
    # A resend changes nothing: the same two steps.
    again = await center.listener.send(omi("OMI-S1", "POMIS1", ipcs))
    assert again == ack and len(steps(accession)) == 2
    # XO before the exam with one step: the loop admits it, the worklist offers only that step.
    changed = await center.listener.send(omi("OMI-S1X", "POMIS1", ipcs[:1], control="XO"))
    assert ack_fields(changed)["MSA"][1] == "AA" and "scheduled_steps" in ack_fields(changed)["MSA"][3], changed
    assert [s.step_id for s in steps(accession)] == ["SPS-PLAIN"]
    items = [to_dataset(v) for v in matches(worklist_query(accession), "Asia/Shanghai")]
    assert [i.ScheduledProcedureStepSequence[0].ScheduledProcedureStepID for i in items] == ["SPS-PLAIN"]


async def test_a_step_on_a_modality_no_room_performs_is_ae_at_that_ipc(center, sqlite_database) -> None:
    ipcs = [{4: "SPS-1", 5: "CT"}, {4: "SPS-2", 5: "PT"}]
    ack = await center.listener.send(omi("OMI-S2", "POMIS2", ipcs))
    assert ack_fields(ack)["MSA"][1] == "AE"
    [err] = err_segments(ack)
    assert "103^" in err and "IPC^2^5" in err and "'PT'" in err
    with Session(get_engine()) as s:
        assert s.exec(select(ScheduledStep)).first() is None

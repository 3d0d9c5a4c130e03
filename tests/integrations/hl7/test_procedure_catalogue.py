"""Orders naming a procedure the center does not perform: AE 103 with ERR at the field, nothing written."""
from __future__ import annotations

from sqlmodel import Session

from core.db import get_engine
from domain.procedure_tables import Procedure
from tests.integrations.hl7.conftest import counts, messages
from tests.integrations.hl7.messages import ack_fields, err_segments, orm


async def test_unknown_procedure_code_is_ae_at_obr_4(offline_listener) -> None:
    ack = await offline_listener.send(orm(control_id="PC-1", code="CT-NOSUCH", name="CT of nothing").encode())
    assert ack_fields(ack)["MSA"][1] == "AE"
    [err] = err_segments(ack)
    assert "103^" in err and "OBR^1^4" in err and "unknown procedure code 'CT-NOSUCH'" in err
    assert counts()["orders"] == 0 and counts()["patients"] == 0
    assert messages()[-1].status == "error" and "CT-NOSUCH" in (messages()[-1].error or "")


async def test_a_code_on_another_modality_is_ae_at_obr_24(offline_listener) -> None:
    # MR-HEAD exists, and some room does CT: the catalogue still says MR-HEAD is an MR exam.
    ack = await offline_listener.send(orm(control_id="PC-2", code="MR-HEAD", modality="CT", body="HEAD").encode())
    assert ack_fields(ack)["MSA"][1] == "AE"
    [err] = err_segments(ack)
    assert "103^" in err and "OBR^1^24" in err and "performed on MR, not CT" in err
    assert counts()["patients"] == 0


async def test_a_retired_code_is_refused_by_name(offline_listener) -> None:
    with Session(get_engine()) as s:
        row = s.get(Procedure, "CT-CHEST")
        row.active = False
        s.add(row)
        s.commit()
    ack = await offline_listener.send(orm(control_id="PC-3").encode())
    assert ack_fields(ack)["MSA"][1] == "AE" and "retired" in err_segments(ack)[0]
    # A known code still reaches the next step: Temporal is down here, so "not now" (AR), not AE.
    ok = await offline_listener.send(orm(control_id="PC-4", code="CT-HEAD", body="HEAD").encode())
    assert ack_fields(ok)["MSA"][1] == "AR" and "207^" in err_segments(ok)[0]

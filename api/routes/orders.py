"""Orders from a HIS over REST (interfaces.md): create-or-return one loop per placer order."""
from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Response, status
from fastapi.exceptions import RequestValidationError
from sqlmodel import Session, col, select

from api.deps import TemporalConnectorDep, in_thread, patient_scope, require
from api.errors import ErrorBody, ValidationErrorBody
from core.db import session_scope
from domain.enums import Priority, Sex
from domain.loop import LoopStatus
from domain.orders import ClinicalIn, OrderAccepted, OrderIn, OrderingIn, OrderPublic, ProcedureIn, SpecialIn
from domain.tables import Appointment, ExamOrder, Patient, User
from services.errors import NotFound
from security.masking import masked_model
from security.permissions import Permission
from services.order_intake import ensure_loop_started, find_by_placer, record_order
from services.procedure_catalogue import ProcedureRefused, check_procedure

router = APIRouter(prefix="/api/v1/orders", tags=["orders"])

PlacingUser = Annotated[User, Depends(require(Permission.order_place))]
OrderReader = Annotated[User, Depends(require(Permission.order_read))]

# The loop's own answer refines the row's step, but a slow or absent worker must not stall a read.
STATUS_QUERY_TIMEOUT = timedelta(seconds=1.5)


@router.post(
    "",
    response_model=OrderAccepted,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": OrderAccepted, "description": "This placer order already has a loop"},
        403: {"model": ErrorBody},
        422: {"model": ValidationErrorBody, "description": "Field-level reasons; nothing was created"},
    },
)
async def place_order(
    order: OrderIn, _user: PlacingUser, connector: TemporalConnectorDep, response: Response
) -> OrderAccepted:
    """Record the order (idempotent on placer system + number), then make sure its loop runs.

    Temporal is reached before anything is written, so while it is down the
    sender gets 503 and nothing is half-created; a crash after the write heals
    on the sender's retry (the loop starts with USE_EXISTING).
    """
    try:
        await in_thread(_check_new_order, order)  # an unknown procedure is 422 even while Temporal is down
        client = await connector.get()
        result = await in_thread(record_order, session_scope, order)
    except ProcedureRefused as err:  # field-level 422, like every other invalid field
        raise RequestValidationError([{"loc": ("body", *err.field), "msg": err.reason, "type": "unknown_procedure"}]) \
            from None
    workflow_id = await ensure_loop_started(client, result.order)
    if not result.created:
        response.status_code = status.HTTP_200_OK
    row = result.order
    return OrderAccepted(
        accession_number=row.accession_number, workflow_id=workflow_id, patient_id=row.patient_id, status=row.status
    )


def _check_new_order(order: OrderIn) -> None:
    """The procedure catalogue's answer for a new order (a known placer order is returned as it is)."""
    with session_scope() as session:
        if find_by_placer(session, order.placer_system, order.placer_order_number) is None:
            check_procedure(session, order.procedure)


def order_public(session: Session, accession: str) -> OrderPublic:
    row = session.get(ExamOrder, accession)
    if row is None:
        raise NotFound(f"no order with accession number {accession}")
    patient = session.get(Patient, row.patient_id)
    assert patient is not None, "exam_order.patient_id is a foreign key"
    appt = session.exec(
        select(Appointment).where(Appointment.accession_number == accession).order_by(col(Appointment.booked_at).desc())
    ).first()
    return OrderPublic(
        accession_number=row.accession_number,
        workflow_id=row.workflow_id,
        patient_id=row.patient_id,
        placer_system=row.placer_system,
        placer_order_number=row.placer_order_number,
        status=row.status,
        step=row.step,
        priority=Priority(row.priority),
        procedure=ProcedureIn(
            code=row.procedure_code, name=row.procedure_name, modality=row.modality,
            body_part=row.body_part, laterality=row.laterality,
        ),
        ordering=OrderingIn(
            clinician_id=row.ordering_clinician_id, clinician_name=row.ordering_clinician_name,
            department=row.ordering_department,
        ),
        clinical=ClinicalIn(history=row.clinical_history, diagnosis=row.clinical_diagnosis, purpose=row.clinical_purpose),
        special=SpecialIn(critical=row.special_critical, mdro=row.special_mdro, infectious=row.special_infectious),
        patient_name=patient.name,
        patient_sex=Sex(patient.sex),
        patient_birth_date=patient.birth_date,
        room_id=appt.room_id if appt else None,
        scheduled_start=appt.start_at.isoformat() if appt else None,
    )


def _load(accession: str) -> OrderPublic:
    with session_scope() as session:
        return order_public(session, accession)


@router.get("/{accession}", response_model=OrderPublic, dependencies=[Depends(patient_scope)],
            responses={403: {"model": ErrorBody}, 404: {"model": ErrorBody}})
async def get_order(accession: str, user: OrderReader, connector: TemporalConnectorDep) -> OrderPublic:
    """The order with its current loop step: the row, refined by the running loop when it answers."""
    order = await in_thread(_load, accession)
    if connector.connected:
        try:
            client = await connector.get()
            status_now = await client.get_workflow_handle(order.workflow_id).query(
                "status", result_type=LoopStatus, rpc_timeout=STATUS_QUERY_TIMEOUT
            )
            order.step = status_now.step.value
        except Exception:  # noqa: BLE001 - the row's step is the fallback by design
            pass
    return masked_model(order, user.role)  # names, ID numbers and phones as the role may see them (R10.3.4)

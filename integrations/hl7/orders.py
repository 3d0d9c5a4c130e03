"""ORM^O01 and OMI^O23 -> the same OrderIn REST takes -> the same intake service.

An HL7 order starts its loop exactly as a REST order does (services.order_intake:
record the rows, then ensure the loop runs), so the same placer order can never
start two loops whichever edge it came through, and the AA is sent only once the
rows are committed and the workflow exists.

Field mapping (ORC/OBR are read the same way for both message types):
- ORC-1 order control: NW new, CA cancel, XO change (the whole order as it should
  be now: the loop's `change_order` update applies the difference before the exam;
  once the exam started it opens a task for a person instead (AA, the row unchanged); modality or priority changes are
  AE 103: cancel and reorder); anything else is AE (table value not found);
- ORC-2.1 (else OBR-2.1) placer order number; ORC-2.2 namespace, else MSH-3, is
  the placing system (REST's `placer_system`); ORC-3.1 filler number = accession;
- OMI: one scheduled procedure step per IPC segment (IPC-4 step ID, IPC-5 modality,
  IPC-6 protocol, IPC-7/8/9 station), stored for the worklist (services.procedure_steps);
- OBR-4.1/.2 procedure code/name (a code not in the procedure catalogue, or on
  another modality, is AE 103); modality OBR-24, or IPC-5 for OMI; body part
  OBR-15.4 (body site), laterality OBR-15.5 (site modifier);
- priority TQ1-9 (v2.5) else ORC-7.6 else OBR-27.6: S -> stat, A/P/T/C -> urgent,
  R/empty -> routine;
- ordering clinician ORC-12 (else OBR-16) id^family^given; department ORC-17
  (text, else code), else PV1-3.1, else PV1-10;
- clinical history OBR-13, diagnosis DG1-3 (text, else code) or DG1-4, purpose
  OBR-31 (text, else code); OBR-12 danger code -> infectious (MDRO -> mdro).
A cancel is the loop's cancel saga through services.loop_commands, performed as
role `clinician` with user id `his:<MSH-3>`: the loop's cancel validator admits
registrars, nurses and the ordering side (clinician), and the HIS cancels on the
ordering clinician's behalf.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from sqlmodel import Session, select
from temporalio.client import Client

from core.db import get_engine
from domain.enums import Role
from domain.loop import Actor, CancelRequest
from domain.order_changes import SENT_TO_REVIEW, OrderChange
from domain.orders import OrderIn
from domain.orders import PatientIdentifier as IdentifierIn
from domain.tables import ExamOrder, Patient, PatientIdentifier, Room
from integrations.hl7.context import InboundContext, Outcome, SessionFactory, temporal_or_not_now
from integrations.hl7.parse import ErrorCode, HL7Reject, Issue, Location, ParsedMessage, reject
from domain.empi import PersonFacts
from integrations.hl7.patient import join_name, patient_facts
from security.field_crypto import display_identifier, identifier_index
from services import loop_commands
from services.errors import Conflict, LoopError, NotFound
from services.order_changes import change_order as change_loop_order
from services.order_changes import ChangeRefused, order_changes
from services.order_intake import IdentifierRace, IntakeResult, ensure_loop_started, find_by_placer, record_order
from services.procedure_catalogue import ProcedureRefused, check_procedure_with
from services.procedure_steps import StepIn, record_steps, steps_by_accession
from services.patient_registry import RegisteredMeanwhile, register_in

PRIORITY = {"S": "stat", "A": "urgent", "P": "urgent", "T": "urgent", "C": "urgent", "R": "routine", "": "routine"}

# OrderIn field path -> where it came from, so a validation error points at the HL7 field.
FIELD_LOCATIONS: dict[tuple[str, ...], Location] = {
    ("placer_order_number",): Location("ORC", 2, 1),
    ("placer_system",): Location("ORC", 2, 2),
    ("patient", "identifiers"): Location("PID", 3),
    ("patient", "name"): Location("PID", 5),
    ("patient", "sex"): Location("PID", 8),
    ("patient", "birth_date"): Location("PID", 7),
    ("procedure", "code"): Location("OBR", 4, 1),
    ("procedure", "name"): Location("OBR", 4, 2),
    ("procedure", "modality"): Location("OBR", 24),
    ("procedure", "body_part"): Location("OBR", 15, 4),
    ("procedure", "laterality"): Location("OBR", 15, 5),
    ("ordering", "clinician_id"): Location("ORC", 12, 1),
    ("ordering", "clinician_name"): Location("ORC", 12, 2),
    ("ordering", "department"): Location("ORC", 17),
    ("clinical", "history"): Location("OBR", 13),
    ("clinical", "diagnosis"): Location("DG1", 3),
    ("clinical", "purpose"): Location("OBR", 31),
}


def _location(loc: tuple[Any, ...]) -> Location | None:
    path = tuple(str(p) for p in loc if not isinstance(p, int))
    while path:
        if path in FIELD_LOCATIONS:
            return FIELD_LOCATIONS[path]
        path = path[:-1]
    return None


def validation_reject(err: ValidationError, modality_from_ipc: bool) -> HL7Reject:
    issues = []
    for e in err.errors():
        location = _location(e["loc"])
        if modality_from_ipc and location == FIELD_LOCATIONS[("procedure", "modality")]:
            location = Location("IPC", 5)
        missing = e["type"] in ("missing", "string_too_short", "too_short")
        code = ErrorCode.required_field_missing if missing else ErrorCode.data_type_error
        text = e["msg"] if location else f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
        issues.append(Issue(code, text, location))
    return HL7Reject("AE", issues)


def procedure_reject(err: ProcedureRefused, modality_from_ipc: bool) -> HL7Reject:
    """A procedure the catalogue does not have (or not on this modality): AE 103 at OBR-4 / OBR-24 / IPC-5."""
    location = FIELD_LOCATIONS[err.field]
    if modality_from_ipc and err.field == ("procedure", "modality"):
        location = Location("IPC", 5)
    return reject("AE", ErrorCode.table_value_not_found, err.reason, location)


def scheduled_steps(msg: ParsedMessage, order_modality: str) -> list[StepIn]:
    """OMI^O23: one scheduled procedure step per IPC segment (IPC-4 ID, IPC-5 modality, IPC-6 protocol)."""
    out = []
    for n, ipc in enumerate(msg.all("IPC"), start=1):
        out.append(StepIn(
            step_id=_first(msg.get(ipc, 4), f"SPS{n}"), modality=_first(msg.get(ipc, 5), order_modality).upper(),
            requested_procedure_id=msg.get(ipc, 2), placer_study_instance_uid=msg.get(ipc, 3),
            protocol_code=msg.get(ipc, 6, 1), protocol_name=_first(msg.get(ipc, 6, 2), msg.get(ipc, 6, 1)),
            station_name=msg.get(ipc, 7), location=msg.get(ipc, 8), station_ae_title=msg.get(ipc, 9),
        ))
    return out


def _first(*values: str) -> str:
    return next((v for v in values if v), "")


def order_fields(msg: ParsedMessage, facts: PersonFacts) -> tuple[dict[str, Any], bool]:
    """The OrderIn body read from ORC/OBR/IPC/PV1/DG1 (validated by the caller)."""
    orc, obr = msg.first("ORC"), msg.first("OBR")
    ipc, pv1, dg1, tq1 = msg.first("IPC"), msg.first("PV1"), msg.first("DG1"), msg.first("TQ1")
    ipc_modality = msg.get(ipc, 5)
    clinician = orc if msg.get(orc, 12) else obr
    clinician_field = 12 if clinician is orc else 16
    clinician_name = join_name(msg.get(clinician, clinician_field, 2), msg.get(clinician, clinician_field, 3))
    danger = _first(msg.get(obr, 12, 1), msg.get(obr, 12, 2)).upper()
    priority_code = _first(msg.get(tq1, 9), msg.get(orc, 7, 6), msg.get(obr, 27, 6)).upper()[:1]
    body = {
        "placer_order_number": _first(msg.get(orc, 2), msg.get(obr, 2)),
        "placer_system": _first(msg.get(orc, 2, 2), msg.get(obr, 2, 2), msg.header.sending_application, "HIS"),
        "patient": {
            "identifiers": [i.model_dump() for i in facts.identifiers],
            "name": facts.name, "sex": facts.sex or None, "birth_date": facts.birth_date,
        },
        "procedure": {
            "code": msg.get(obr, 4, 1), "name": _first(msg.get(obr, 4, 2), msg.get(obr, 4, 1)),
            "modality": _first(ipc_modality, msg.get(obr, 24)).upper(),
            "body_part": msg.get(obr, 15, 4), "laterality": msg.get(obr, 15, 5).upper() or None,
        },
        "priority": PRIORITY.get(priority_code, "routine"),
        "ordering": {
            "clinician_id": msg.get(clinician, clinician_field, 1),
            "clinician_name": _first(clinician_name, msg.get(clinician, clinician_field, 1)),
            "department": _first(msg.get(orc, 17, 2), msg.get(orc, 17, 1), msg.get(pv1, 3, 1), msg.get(pv1, 10)),
        },
        "clinical": {
            "history": msg.get(obr, 13),
            "diagnosis": _first(msg.get(dg1, 3, 2), msg.get(dg1, 3, 1), msg.get(dg1, 4)),
            "purpose": _first(msg.get(obr, 31, 2), msg.get(obr, 31, 1)),
        },
        "special": {"mdro": "MDRO" in danger, "infectious": bool(danger) and "MDRO" not in danger},
    }
    return body, bool(ipc_modality)


def _known_patient(sessions: SessionFactory, facts: PersonFacts) -> Patient | None:
    with sessions() as s:
        for ident in facts.identifiers:
            row = s.exec(select(PatientIdentifier).where(
                PatientIdentifier.system == ident.system,
                PatientIdentifier.value_bidx == identifier_index(ident.system, ident.value))).first()
            if row is not None:
                return s.get(Patient, row.patient_id)
    return None


MODALITY_CACHE_SECONDS = 60.0
_modalities: dict[str, tuple[float, set[str]]] = {}  # database URL -> (read at, modalities)


def _read_modalities(sessions: SessionFactory) -> set[str]:
    with sessions() as s:
        found = {m for room in s.exec(select(Room)).all() for m in room.modalities.split()}
        _modalities[str(s.get_bind().url)] = (time.monotonic(), found)
    return found


async def center_modalities(sessions: SessionFactory) -> set[str]:
    """Modalities some room performs; rooms change rarely, so the answer is kept for a minute."""
    cached = _modalities.get(str(get_engine().url))
    if cached is not None and time.monotonic() - cached[0] < MODALITY_CACHE_SECONDS:
        return cached[1]
    return await asyncio.to_thread(_read_modalities, sessions)


_temporal = temporal_or_not_now


def _registration(facts: PersonFacts, source: str) -> Callable[[Session], str]:
    """The order's patient registered through the EMPI (link or create; demographics left to ADT),
    as a step of the order's transaction (services.order_intake.record_order)."""
    def register_patient(session: Session) -> str:
        try:
            return register_in(session, facts, source, update=False).patient_id
        except RegisteredMeanwhile as err:  # the intake rolls back and starts over
            raise IdentifierRace(str(err)) from err
    return register_patient


async def new_order(msg: ParsedMessage, ctx: InboundContext, summary: dict[str, Any]) -> Outcome:
    facts = patient_facts(msg, msg.first("PID"))
    if not facts.identifiers:
        raise reject("AE", ErrorCode.required_field_missing, "PID-3 patient identifier is required",
                     Location("PID", 3))
    summary.update(patient_identifier=facts.identifiers[0].value,
                   patient_identifier_system=facts.identifiers[0].system)
    if not facts.complete:
        known = await asyncio.to_thread(_known_patient, ctx.sessions, facts)
        if known is None:
            raise reject("AE", ErrorCode.unknown_key,
                         f"unknown patient {facts.identifiers[0].system}:"
                         f"{display_identifier(facts.identifiers[0].system, facts.identifiers[0].value)}: "
                         "not registered, and PID-5/7/8 are incomplete", Location("PID", 3))
        facts = facts.model_copy(update={"name": facts.name or known.name, "sex": facts.sex or known.sex,
                                         "birth_date": facts.birth_date or known.birth_date})
    body, from_ipc = order_fields(msg, facts)
    summary["placer_order_number"] = body["placer_order_number"]
    try:
        order = OrderIn.model_validate(body)
    except ValidationError as err:
        raise validation_reject(err, from_ipc) from None
    performed = await center_modalities(ctx.sessions)
    if order.procedure.modality not in performed:
        raise reject("AE", ErrorCode.table_value_not_found,
                     f"no room in this center performs modality {order.procedure.modality!r}",
                     Location("IPC", 5) if from_ipc else Location("OBR", 24))
    steps = scheduled_steps(msg, order.procedure.modality)
    if unperformed := [i for i, st in enumerate(steps) if st.modality not in performed]:
        raise HL7Reject("AE", [Issue(ErrorCode.table_value_not_found,
                                     f"no room in this center performs modality {steps[i].modality!r}",
                                     Location("IPC", 5, sequence=i + 1)) for i in unperformed])
    try:
        await asyncio.to_thread(check_procedure_with, ctx.sessions, order.procedure)
    except ProcedureRefused as err:
        raise procedure_reject(err, from_ipc) from None
    client = await _temporal(ctx)  # before writing, so "not now" leaves nothing half-created
    # Through the EMPI, in the order's own transaction: concurrent orders for one new patient make one
    # patient (the intake's own lookup would race), and the patient gets its matching keys and review pairs.
    source = f"hl7:{msg.header.sending_application or 'HIS'}:{msg.header.control_id}"

    def with_log_row(session: Session, result: IntakeResult) -> None:
        """The message's log row and ACK in the order's own commit (the AA still waits for the loop)."""
        summary.update(accession_number=result.order.accession_number, patient_id=result.order.patient_id,
                       workflow_id=result.order.workflow_id)
        if steps:
            summary["scheduled_steps"] = [st.step_id for st in steps]
        if ctx.journal is not None:
            ctx.journal.stage(session, _order_text(result), summary)

    try:
        result = await asyncio.to_thread(record_order, ctx.sessions, order,
                                         _registration(facts, source) if facts.complete else None, with_log_row)
    except Conflict as err:
        raise reject("AE", ErrorCode.duplicate_key, err.reason, Location("PID", 3)) from None
    except ProcedureRefused as err:  # the catalogue changed in between
        raise procedure_reject(err, from_ipc) from None
    if steps:  # before the loop starts, so its first worklist entry already offers every step
        await asyncio.to_thread(record_steps, ctx.sessions, result.order.accession_number, steps)
    await start_loop(client, result.order, ctx)
    return Outcome(text=_order_text(result))


def _order_text(result: IntakeResult) -> str:
    return f"order {'created' if result.created else 'already known'}: accession {result.order.accession_number}"


async def start_loop(client: Client, order: ExamOrder, ctx: InboundContext) -> None:
    """The order's loop, started or already running; AR "not now" when Temporal cannot say."""
    try:
        await ensure_loop_started(client, order, task_queue=ctx.task_queue)
    except Exception as err:  # noqa: BLE001 - the resend heals it (USE_EXISTING); say "not now"
        raise reject("AR", ErrorCode.internal_error, f"the loop could not be started now: {err}",
                     transient=True) from err


def _accepted_order(sessions: SessionFactory, summary: dict[str, Any]) -> ExamOrder | None:
    with sessions() as s:
        return s.get(ExamOrder, summary["accession_number"])


async def heal_replayed(summary: dict[str, Any] | None, ctx: InboundContext) -> None:
    """Before a resent NW order gets its stored AA: the loop exists. The log row commits with the order,
    before the loop is started, so a crash in between leaves an AA stored that was never sent; the
    HIS resends, and this starts the loop (USE_EXISTING: a running loop is left alone). Raises
    HL7Reject(AR, transient) when Temporal is not reachable."""
    if not summary or summary.get("order_control") != "NW" or not summary.get("accession_number"):
        return
    order = await asyncio.to_thread(_accepted_order, ctx.sessions, summary)
    if order is not None:
        await start_loop(await _temporal(ctx), order, ctx)


def _find_order_in(s: Session, placer_system: str, placer_number: str, filler: str) -> ExamOrder | None:
    row = find_by_placer(s, placer_system, placer_number) if placer_number else None
    if row is None and filler:
        row = s.get(ExamOrder, filler)
    return row


def _find_order(sessions: SessionFactory, placer_system: str, placer_number: str, filler: str) -> ExamOrder | None:
    with sessions() as s:
        return _find_order_in(s, placer_system, placer_number, filler)


def _order_keys(msg: ParsedMessage, summary: dict[str, Any]) -> tuple[str, str, str]:
    """(placing system, placer order number, filler number = accession) of CA/XO; AE when neither number."""
    orc, obr = msg.first("ORC"), msg.first("OBR")
    placer_number = _first(msg.get(orc, 2), msg.get(obr, 2))
    placer_system = _first(msg.get(orc, 2, 2), msg.get(obr, 2, 2), msg.header.sending_application, "HIS")
    filler = _first(msg.get(orc, 3), msg.get(obr, 3))
    summary["placer_order_number"] = placer_number
    if not placer_number and not filler:
        raise reject("AE", ErrorCode.required_field_missing, "ORC-2 placer or ORC-3 filler order number is required",
                     Location("ORC", 2))
    return placer_system, placer_number, filler


def _no_such_order(placer_system: str, placer_number: str, filler: str) -> HL7Reject:
    return reject("AE", ErrorCode.unknown_key,
                  f"no order {placer_system}:{placer_number or '-'} / accession {filler or '-'}", Location("ORC", 2))


async def cancel_order(msg: ParsedMessage, ctx: InboundContext, summary: dict[str, Any]) -> Outcome:
    placer_system, placer_number, filler = _order_keys(msg, summary)
    orc = msg.first("ORC")
    row = await asyncio.to_thread(_find_order, ctx.sessions, placer_system, placer_number, filler)
    if row is None:
        raise _no_such_order(placer_system, placer_number, filler)
    summary.update(accession_number=row.accession_number, patient_id=row.patient_id)
    if row.status == "cancelled":
        return Outcome(text=f"order {row.accession_number} already cancelled")
    client = await _temporal(ctx)
    sender = msg.header.sending_application or "HIS"
    reason = _first(msg.get(orc, 16, 2), msg.get(orc, 16, 1), f"cancelled by {sender} (ORC-1 CA)")
    request = CancelRequest(actor=Actor(user_id=f"his:{sender}", role=Role.clinician, name=sender), reason=reason)
    try:
        ack = await loop_commands.cancel(client, row.accession_number, request)
    except Conflict as err:
        if "already being cancelled" in err.reason:
            return Outcome(text=f"order {row.accession_number} is already being cancelled")
        raise reject("AE", ErrorCode.record_locked, err.reason, Location("ORC", 1)) from None
    except NotFound as err:
        raise reject("AE", ErrorCode.unknown_key, err.reason, Location("ORC", 3)) from None
    except LoopError as err:
        raise reject("AE", ErrorCode.record_locked, err.reason, Location("ORC", 1)) from None
    except Exception as err:  # noqa: BLE001 - Temporal unreachable mid-call: the resend retries
        raise reject("AR", ErrorCode.internal_error, f"the cancel could not be delivered now: {err}",
                     transient=True) from err
    return Outcome(text=f"cancel accepted for {row.accession_number} at step {ack.step.value}")


def _steps_differ(sessions: SessionFactory, accession: str, steps: list[StepIn]) -> bool:
    with sessions() as s:
        stored = steps_by_accession(s, [accession]).get(accession, [])
        fields = list(StepIn.model_fields)
        return [StepIn(**{f: getattr(st, f) for f in fields}) for st in stored] != steps


def _order_and_patient(sessions: SessionFactory, placer_system: str, placer_number: str,
                       filler: str) -> tuple[ExamOrder, Patient] | None:
    with sessions() as s:
        row = _find_order_in(s, placer_system, placer_number, filler)
        return None if row is None else (row, s.get(Patient, row.patient_id))


async def change_order(msg: ParsedMessage, ctx: InboundContext, summary: dict[str, Any]) -> Outcome:
    """ORC-1 XO: the order as it should be now; the loop applies the difference before the exam,
    after it a person decides (an order_change_review task)."""
    if msg.first("OBR") is None:
        raise reject("AE", ErrorCode.segment_sequence, "OBR segment is required for an order change", Location("OBR"))
    placer_system, placer_number, filler = _order_keys(msg, summary)
    orc = msg.first("ORC")
    found = await asyncio.to_thread(_order_and_patient, ctx.sessions, placer_system, placer_number, filler)
    if found is None:
        raise _no_such_order(placer_system, placer_number, filler)
    row, patient = found
    summary.update(accession_number=row.accession_number, patient_id=row.patient_id)
    # The patient is not what XO changes (A08 does): the order's own patient fills PatientIn.
    facts = PersonFacts(identifiers=patient_facts(msg, msg.first("PID")).identifiers
                        or [IdentifierIn(system="RADLOOP", value=patient.id)],
                        name=patient.name, sex=patient.sex, birth_date=patient.birth_date)
    body, from_ipc = order_fields(msg, facts)
    body["placer_order_number"], body["placer_system"] = row.placer_order_number, row.placer_system
    try:
        order = OrderIn.model_validate(body)
    except ValidationError as err:
        raise validation_reject(err, from_ipc) from None
    try:
        await asyncio.to_thread(check_procedure_with, ctx.sessions, order.procedure)
        changes = order_changes(row, order)
    except ProcedureRefused as err:
        raise procedure_reject(err, from_ipc) from None
    except ChangeRefused as err:
        modality_at = Location("IPC", 5) if from_ipc else Location("OBR", 24)
        raise reject("AE", ErrorCode.table_value_not_found, err.reason,
                     modality_at if err.field == "modality" else Location("ORC", 7)) from None
    steps = scheduled_steps(msg, row.modality)
    performed = await center_modalities(ctx.sessions)
    if unperformed := [i for i, st in enumerate(steps) if st.modality not in performed]:
        raise HL7Reject("AE", [Issue(ErrorCode.table_value_not_found,
                                     f"no room in this center performs modality {steps[i].modality!r}",
                                     Location("IPC", 5, sequence=i + 1)) for i in unperformed])
    steps_changed = bool(steps) and await asyncio.to_thread(_steps_differ, ctx.sessions, row.accession_number, steps)
    summary["changed"] = sorted(changes) + (["scheduled_steps"] if steps_changed else [])
    if not changes and not steps_changed:
        return Outcome(text=f"order {row.accession_number} unchanged")
    client = await _temporal(ctx)
    sender = msg.header.sending_application or "HIS"
    change = OrderChange(actor=Actor(user_id=f"his:{sender}", role=Role.clinician, name=sender), changes=changes,
                         source=f"hl7:{sender}:{msg.header.control_id}",
                         reason=_first(msg.get(orc, 16, 2), msg.get(orc, 16, 1)))
    try:
        ack = await change_loop_order(client, row.accession_number, change)
    except NotFound as err:
        raise reject("AE", ErrorCode.unknown_key, err.reason, Location("ORC", 3)) from None
    except LoopError as err:  # Conflict: the exam started, the loop is closed or being cancelled
        raise reject("AE", ErrorCode.record_locked, err.reason, Location("ORC", 1)) from None
    except Exception as err:  # noqa: BLE001 - Temporal unreachable mid-call: the resend retries
        raise reject("AR", ErrorCode.internal_error, f"the change could not be delivered now: {err}",
                     transient=True) from err
    if ack.detail.startswith(SENT_TO_REVIEW):  # after the exam: a person decides, nothing changed here
        summary["sent_to_review"] = True
        return Outcome(text=f"{ack.detail}, {row.accession_number}")
    if steps_changed:  # the loop admitted the change (before the exam): the worklist offers the new steps
        await asyncio.to_thread(record_steps, ctx.sessions, row.accession_number, steps)
        summary["scheduled_steps"] = [st.step_id for st in steps]
    return Outcome(text=f"order changed: {', '.join(summary['changed'])} ({ack.step.value}, {row.accession_number})")


async def handle_order(msg: ParsedMessage, ctx: InboundContext, summary: dict[str, Any]) -> Outcome:
    """ORM^O01 / OMI^O23: dispatch on ORC-1."""
    orc = msg.first("ORC")
    if orc is None:
        raise reject("AE", ErrorCode.segment_sequence, "ORC segment is required", Location("ORC"))
    control = msg.get(orc, 1).upper()
    summary["order_control"] = control
    if control == "NW":
        if msg.first("OBR") is None:
            raise reject("AE", ErrorCode.segment_sequence, "OBR segment is required for a new order", Location("OBR"))
        return await new_order(msg, ctx, summary)
    if control == "CA":
        return await cancel_order(msg, ctx, summary)
    if control == "XO":
        return await change_order(msg, ctx, summary)
    if not control:
        raise reject("AE", ErrorCode.required_field_missing, "ORC-1 order control is required", Location("ORC", 1))
    raise reject("AE", ErrorCode.table_value_not_found, f"ORC-1 order control {control!r} is not NW/CA/XO",
                 Location("ORC", 1))

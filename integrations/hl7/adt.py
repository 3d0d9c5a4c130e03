"""ADT^A01/A04 (register), A08 (update demographics) -> services.patient_registry; A40 (merge) -> services.patient_merge.

A registration needs an identifier, a name, sex and birth date (AE 101 naming
the missing field otherwise). A08 changes what it sends on the patient its
trusted identifiers name (AE 204 for a patient we do not know). Identifiers
that point at two different patients are AE 205: that is a merge decision for
a person (or an A40), never something an update quietly resolves.

A40: PID-3 names the surviving patient, MRG-1 the one merged into it; both are
looked up by whose identifiers they were before any merge, so a resent A40 is a
no-op (AA) and an inverse one is refused (AE) with the reason. Every open loop of
the merged patient then follows the surviving ID (its `patient_merged` update);
AA only once they have (Temporal down: AR, and the resend tells them).
"""
from __future__ import annotations

import asyncio
from typing import Any

from domain.orders import PatientIdentifier as IdentifierIn
from integrations.hl7.context import InboundContext, Outcome, SessionFactory, temporal_or_not_now
from integrations.hl7.parse import ErrorCode, HL7Reject, Issue, Location, ParsedMessage, reject
from integrations.hl7.patient import identifiers_from, patient_facts
from security.field_crypto import display_identifier
from services.errors import Conflict, Invalid, NotFound
from domain.order_changes import PatientMerged
from services.order_changes import follow_merge
from services.patient_merge import has_open_orders, merge, owner_before_merges
from services.patient_registry import register, update_demographics


def _owner(sessions: SessionFactory, identifiers: list[IdentifierIn], location: Location) -> str:
    with sessions() as s:
        owners = {o for i in identifiers if (o := owner_before_merges(s, i.system, i.value))}
    if not owners:
        named = ", ".join(f"{i.system}:{display_identifier(i.system, i.value)}" for i in identifiers)
        raise reject("AE", ErrorCode.unknown_key, f"no patient with identifiers {named}", location)
    if len(owners) > 1:
        raise reject("AE", ErrorCode.duplicate_key, f"{location} identifiers name {len(owners)} different patients",
                     location)
    return owners.pop()


async def handle_merge(msg: ParsedMessage, ctx: InboundContext, summary: dict[str, Any]) -> Outcome:
    """ADT^A40: merge the MRG-1 patient into the PID-3 patient."""
    facts = patient_facts(msg, msg.first("PID"))
    mrg = msg.first("MRG")
    if not facts.identifiers:
        raise reject("AE", ErrorCode.required_field_missing, "PID-3 surviving patient identifier is required",
                     Location("PID", 3))
    if mrg is None:
        raise reject("AE", ErrorCode.segment_sequence, "MRG segment is required for a merge", Location("MRG"))
    prior_ids = identifiers_from(msg, msg.reps(mrg, 1), Location("MRG", 1))
    if not prior_ids:
        raise reject("AE", ErrorCode.required_field_missing, "MRG-1 prior patient identifier is required",
                     Location("MRG", 1))
    surviving = await asyncio.to_thread(_owner, ctx.sessions, facts.identifiers, Location("PID", 3))
    merged = await asyncio.to_thread(_owner, ctx.sessions, prior_ids, Location("MRG", 1))
    summary.update(patient_id=surviving, patient_identifier=facts.identifiers[0].value,
                   patient_identifier_system=facts.identifiers[0].system, merged_patient_id=merged)
    sender = msg.header.sending_application or "HIS"
    # Before writing: when the merged patient has open loops, they must hear of the merge before the AA.
    client = await temporal_or_not_now(ctx) if await asyncio.to_thread(has_open_orders, ctx.sessions, merged) \
        else None
    try:
        result = await asyncio.to_thread(merge, ctx.sessions, surviving, merged, f"his:{sender}",
                                         f"hl7:{sender}:{msg.header.control_id}", "ADT^A40")
    except NotFound as err:
        raise reject("AE", ErrorCode.unknown_key, err.reason, Location("MRG", 1)) from None
    except (Conflict, Invalid) as err:
        raise reject("AE", ErrorCode.record_locked, err.reason, Location("MRG", 1)) from None
    summary.update(merge_id=result.merge_id, moved_orders=result.moved_orders, open_accessions=result.open_accessions)
    if client is None and result.open_accessions:  # an order arrived in between
        client = await temporal_or_not_now(ctx)
    try:
        followed = await follow_merge(client, result.open_accessions, PatientMerged(
            merge_id=result.merge_id, from_patient_id=merged, to_patient_id=surviving, actor=f"his:{sender}"))
    except Exception as err:  # noqa: BLE001 - rows are merged; the resend (already done) tells the loops again
        raise reject("AR", ErrorCode.internal_error, f"the merge is recorded but its loops could not be told now: {err}",
                     transient=True) from err
    summary.update(loops_followed=followed.followed, loops_not_followed=followed.failed)
    if result.already_done:
        return Outcome(text=f"{merged} was already merged into {surviving}")
    return Outcome(text=f"merged {merged} into {surviving}: {result.moved_identifiers} identifiers, "
                        f"{len(result.moved_orders)} orders")


async def handle_adt(msg: ParsedMessage, ctx: InboundContext, summary: dict[str, Any]) -> Outcome:
    if msg.header.trigger_event == "A40":
        return await handle_merge(msg, ctx, summary)
    facts = patient_facts(msg, msg.first("PID"))
    if not facts.identifiers:
        raise reject("AE", ErrorCode.required_field_missing, "PID-3 patient identifier is required",
                     Location("PID", 3))
    summary.update(patient_identifier=facts.identifiers[0].value,
                   patient_identifier_system=facts.identifiers[0].system)
    source = f"hl7:{msg.header.sending_application or 'HIS'}:{msg.header.control_id}"
    try:
        if msg.header.trigger_event in ("A01", "A04"):
            missing = [Issue(ErrorCode.required_field_missing, f"{what} is required to register a patient", loc)
                       for what, loc, value in (("PID-5 name", Location("PID", 5), facts.name),
                                                ("PID-7 birth date", Location("PID", 7), facts.birth_date),
                                                ("PID-8 sex", Location("PID", 8), facts.sex)) if not value]
            if missing:
                raise HL7Reject("AE", missing)
            result = await asyncio.to_thread(register, ctx.sessions, facts, source)
        else:
            result = await asyncio.to_thread(update_demographics, ctx.sessions, facts, source)
    except NotFound as err:
        raise reject("AE", ErrorCode.unknown_key, err.reason, Location("PID", 3)) from None
    except Conflict as err:
        raise reject("AE", ErrorCode.duplicate_key, err.reason, Location("PID", 3)) from None
    summary.update(patient_id=result.patient_id, created=result.created, changed=sorted(result.changed),
                   possible_same_person=[{"patient_id": p, "score": s} for p, s in result.reviews],
                   open_accessions=result.open_accessions)
    if result.created:
        text = f"patient registered: {result.patient_id}"
        if result.reviews:
            text += f"; {len(result.reviews)} possible same person to review"
    else:
        text = f"patient {result.patient_id} updated: {', '.join(sorted(result.changed)) or 'no change'}"
    return Outcome(text=text)

"""ADT^A01/A04 (register) and ADT^A08 (update demographics) -> services.patient_registry.

A registration needs an identifier, a name, sex and birth date (AE 101 naming
the missing field otherwise). A08 changes what it sends on the patient its
trusted identifiers name (AE 204 for a patient we do not know). Identifiers
that point at two different patients are AE 205: that is a merge decision for
a person (or an A40), never something an update quietly resolves.
"""
from __future__ import annotations

import asyncio
from typing import Any

from integrations.hl7.context import InboundContext, Outcome
from integrations.hl7.parse import ErrorCode, HL7Reject, Issue, Location, ParsedMessage, reject
from integrations.hl7.patient import patient_facts
from services.errors import Conflict, NotFound
from services.patient_registry import register, update_demographics


async def handle_adt(msg: ParsedMessage, ctx: InboundContext, summary: dict[str, Any]) -> Outcome:
    facts = patient_facts(msg, msg.first("PID"))
    if not facts.identifiers:
        raise reject("AE", ErrorCode.required_field_missing, "PID-3 patient identifier is required",
                     Location("PID", 3))
    summary["patient_identifier"] = facts.identifiers[0].value
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

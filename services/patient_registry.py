"""Patient registration and demographic updates through the EMPI (ADT today, the registrar desk later).

Why a service and not the HL7 handler: registration rules (exact link on trusted
identifiers, scored review otherwise, never a silent merge) must be the same
whichever edge registers a person. Loops carry only the patient ID, so a
demographic change reaches every open loop by itself (worklist, order views and
reports read the patient row); each open loop also gets a timeline event, so the
people working on it can see that the name or birth date changed under them.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, or_, select

from domain.empi import PersonFacts, is_trusted, name_key, score
from domain.empi_tables import PatientMatchReview
from domain.orders import PatientIdentifier as IdentifierIn
from domain.tables import DomainEvent, ExamOrder, Patient, PatientIdentifier, utcnow
from security.field_crypto import identifier_index, phone_index
from security.masking import is_personal_number, mask_id_number, mask_phone
from services.errors import Conflict, NotFound

SessionFactory = Callable[[], AbstractContextManager[Session]]
CLOSED_STEPS = ("closed", "cancelled")
CANDIDATE_LIMIT = 200
# A registrar reviews the few likeliest matches, not every namesake born the same day.
REVIEWS_PER_REGISTRATION = 5


@dataclass(frozen=True)
class Registration:
    patient_id: str
    created: bool
    changed: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    reviews: list[tuple[str, float]] = field(default_factory=list)  # (other patient ID, score)
    open_accessions: list[str] = field(default_factory=list)


Owners = dict[tuple[str, str], str | None]  # (system, value) -> the patient holding it, if any


def _owner(session: Session, ident: IdentifierIn) -> str | None:
    row = session.exec(select(PatientIdentifier).where(
        PatientIdentifier.system == ident.system,
        PatientIdentifier.value_bidx == identifier_index(ident.system, ident.value))).first()
    return row.patient_id if row else None


def _owners(session: Session, facts: PersonFacts) -> Owners:
    """Who holds each identifier now, looked up once and before the first write (on SQLite the write
    lock is held from the first write to the commit); a concurrent registration that takes one in
    between still fails on the unique key, and the caller starts over."""
    return {(i.system, i.value): _owner(session, i) for i in facts.identifiers}


def _shown(ident: Any) -> str:
    """An identifier as error and note texts show it: personal numbers masked, since those texts
    end up in clear columns (HL7 log errors, ACK text, HTTP details)."""
    value = mask_id_number(ident.value) if is_personal_number(ident.system) else ident.value
    return f"{ident.system}:{value}"


def _linked_patient(session: Session, facts: PersonFacts, held: Owners) -> Patient | None:
    """The one patient the trusted identifiers point at; Conflict if they point at several."""
    owners = {o for i in facts.identifiers if is_trusted(i.system) and (o := held[(i.system, i.value)])}
    if len(owners) > 1:
        raise Conflict(f"identifiers {', '.join(_shown(i) for i in facts.identifiers)} "
                       f"belong to different patients ({', '.join(sorted(owners))}): a merge decision is needed")
    return session.get(Patient, owners.pop()) if owners else None


def _attach_identifiers(session: Session, patient: Patient, facts: PersonFacts, held: Owners) -> list[str]:
    """Add identifiers the patient lacks; an untrusted one held by someone else is left out (and said)."""
    notes = []
    for ident in facts.identifiers:
        owner = held[(ident.system, ident.value)]
        if owner == patient.id:
            continue
        if owner is not None:
            if is_trusted(ident.system):
                raise Conflict(f"{_shown(ident)} belongs to patient {owner}")
            notes.append(f"{_shown(ident)} is already on patient {owner}")
            continue
        held[(ident.system, ident.value)] = patient.id  # the same identifier sent twice is added once
        session.add(PatientIdentifier(patient_id=patient.id, system=ident.system, value=ident.value))
    return notes


def _apply(patient: Patient, facts: PersonFacts) -> dict[str, tuple[Any, Any]]:
    """Copy the facts that were sent (empty means "not sent", never "erase").

    The phone is compared by its blind index (the row keeps only its display form) and the change is
    recorded masked: timeline events hold no phone number.
    """
    changed: dict[str, tuple[Any, Any]] = {}
    new: dict[str, Any] = {"name": facts.name, "sex": facts.sex, "birth_date": facts.birth_date}
    for key, value in new.items():
        if value and getattr(patient, key) != value:
            old = getattr(patient, key)
            changed[key] = (old.isoformat() if isinstance(old, date) else old,
                            value.isoformat() if isinstance(value, date) else value)
            setattr(patient, key, value)
    if facts.phone and phone_index(facts.phone) != patient.phone_bidx:
        changed["phone"] = (patient.phone, mask_phone(facts.phone))
        patient.phone = facts.phone  # sealed, indexed and masked on flush (security.field_crypto)
    if "name" in changed:
        patient.name_key = name_key(patient.name)
    if changed:
        patient.updated_at = utcnow()
    return changed


def _candidates(session: Session, patient: Patient, phone_key: str | None) -> list[Patient]:
    """People sharing a blocking key (pinyin name, birth date, phone by its blind index); each key is indexed."""
    keys = [Patient.birth_date == patient.birth_date]
    if patient.name_key:
        keys.append(Patient.name_key == patient.name_key)
    if phone_key is not None:
        keys.append(Patient.phone_bidx == phone_key)
    return list(session.exec(
        select(Patient).where(Patient.id != patient.id, col(Patient.merged_into).is_(None), or_(*keys))
        .limit(CANDIDATE_LIMIT)).all())


def _keyed(facts: PersonFacts) -> PersonFacts:
    """The registration's phone and identifiers as blind indexes, comparable with stored people's."""
    return facts.model_copy(update={
        "phone_key": phone_index(facts.phone) or "",
        "identifier_keys": [(i.system, identifier_index(i.system, i.value)) for i in facts.identifiers]})


def _likely_same(session: Session, patient: Patient, facts: PersonFacts) -> list[tuple[float, str, Any]]:
    """Score the people who share a blocking key; the likeliest few, best first.

    Reads only: a new patient is scored before its first write, so on SQLite the write lock is
    not held while people are compared."""
    facts = _keyed(facts)
    candidates = _candidates(session, patient, facts.phone_key or None)
    if not candidates:
        return []
    keys: dict[str, list[tuple[str, str]]] = {}
    for row in session.exec(select(PatientIdentifier).where(
            col(PatientIdentifier.patient_id).in_([c.id for c in candidates]))).all():
        if row.value_bidx:
            keys.setdefault(row.patient_id, []).append((row.system, row.value_bidx))
    scored = []
    for other in candidates:
        result = score(facts, PersonFacts(identifier_keys=keys.get(other.id, []), name=other.name,
                                          sex=other.sex, birth_date=other.birth_date,
                                          phone_key=other.phone_bidx or ""))
        if result.review:
            scored.append((result.score, other.id, result))
    scored.sort(key=lambda t: -t[0])
    return scored[:REVIEWS_PER_REGISTRATION]


def _open_reviews(session: Session, patient: Patient, likely: list[tuple[float, str, Any]],
                  source: str) -> list[tuple[str, float]]:
    """Queue a new patient's likely namesakes for a registrar (a new ID has no review yet)."""
    for value, other_id, result in likely:
        a, b = sorted((patient.id, other_id))
        session.add(PatientMatchReview(id=str(uuid.uuid4()), patient_a=a, patient_b=b, score=value,
                                       reasons=result.reasons, source=source))
    return [(other_id, value) for value, other_id, _result in likely]


def _tell_open_loops(session: Session, patient_id: str, changed: dict[str, tuple[Any, Any]], source: str) -> list[str]:
    orders = session.exec(select(ExamOrder).where(
        ExamOrder.patient_id == patient_id, col(ExamOrder.step).not_in(CLOSED_STEPS))).all()
    for order in orders:
        event_id = f"{source}:patient-updated:{order.accession_number}"
        if session.get(DomainEvent, event_id) is None:
            session.add(DomainEvent(
                id=event_id, accession_number=order.accession_number, actor=source, kind="patient_updated",
                summary="patient details changed: " + ", ".join(sorted(changed)),
                detail={"changed": {k: list(v) for k, v in changed.items()}},
            ))
    return [o.accession_number for o in orders]


class RegisteredMeanwhile(Exception):
    """A concurrent registration of the same person committed first: start over and link to it."""


def _retrying(work: Callable[[Session], Registration], sessions: SessionFactory) -> Registration:
    for _attempt in range(5):
        with sessions() as session:
            try:
                result = work(session)
                session.commit()
                return result
            except (IntegrityError, RegisteredMeanwhile):
                session.rollback()  # a concurrent registration took an identifier: look again
    raise RuntimeError("patient registration could not complete after concurrent retries")


def register(sessions: SessionFactory, facts: PersonFacts, source: str, update: bool = True) -> Registration:
    """ADT A01/A04: link on a trusted identifier (and update), or create and queue likely duplicates.

    `update=False` (an order's PID): link or create, but leave a known patient's demographics to
    the registration feed; new identifiers are still attached.
    """
    if not facts.identifiers or not facts.complete:
        raise ValueError("registration needs at least one identifier, a name, sex and birth date")
    return _retrying(lambda session: register_in(session, facts, source, update), sessions)


def register_in(session: Session, facts: PersonFacts, source: str, update: bool = True) -> Registration:
    """`register` inside the caller's transaction (an HL7 order registers its patient in the order's
    own commit); the caller commits, and on IntegrityError or RegisteredMeanwhile rolls back and
    starts over, as `register` does."""
    if not facts.identifiers or not facts.complete:
        raise ValueError("registration needs at least one identifier, a name, sex and birth date")
    held = _owners(session, facts)
    patient = _linked_patient(session, facts, held)
    if patient is not None:
        changed = _apply(patient, facts) if update else {}
        _attach_identifiers(session, patient, facts, held)
        session.add(patient)
        opened = _tell_open_loops(session, patient.id, changed, source) if changed else []
        return Registration(patient.id, created=False, changed=changed, open_accessions=opened)
    assert facts.birth_date is not None
    patient = Patient(id=str(uuid.uuid4()), name=facts.name, sex=facts.sex, birth_date=facts.birth_date,
                      phone=facts.phone or None, name_key=name_key(facts.name))
    likely = _likely_same(session, patient, facts)
    session.add(patient)
    session.flush()
    try:
        _attach_identifiers(session, patient, facts, held)
    except Conflict as err:
        raise RegisteredMeanwhile(str(err)) from err
    session.flush()
    reviews = _open_reviews(session, patient, likely, source)
    return Registration(patient.id, created=True, reviews=reviews)


def update_demographics(sessions: SessionFactory, facts: PersonFacts, source: str) -> Registration:
    """ADT A08: change what was sent on the patient the trusted identifiers name."""

    def work(session: Session) -> Registration:
        held = _owners(session, facts)
        patient = _linked_patient(session, facts, held)
        if patient is None:
            raise NotFound("no patient with identifiers "
                           + ", ".join(_shown(i) for i in facts.identifiers))
        changed = _apply(patient, facts)
        _attach_identifiers(session, patient, facts, held)
        session.add(patient)
        opened = _tell_open_loops(session, patient.id, changed, source) if changed else []
        return Registration(patient.id, created=False, changed=changed, open_accessions=opened)

    return _retrying(work, sessions)

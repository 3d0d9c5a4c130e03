"""Notifications through apprise (R7.1.3): every delivery attempt is a row with its result.

A recipient resolves to one or more apprise URLs: the user's own, the people of
a department's ladder rung (backup clinician, head, duty officer...), the
department's channels (WeCom, DingTalk, SMS gateway, e-mail, webhook), or the
configured default (in development the API's own sink, a real `json://`
endpoint). They are sent in parallel; the notice counts as delivered when any
channel took it. When none did, the activity raises so Temporal retries it; the
workflow sees the final failure and falls back (phone call for critical values).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import apprise
from pydantic import BaseModel
from sqlmodel import col, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from core.config import get_settings
from core.db import session_scope
from domain.critical_tables import DepartmentChannel, DepartmentContact
from domain.tables import Department, NotificationAttempt, User

CONTACT_RUNGS = {"backup_clinician", "department_head", "duty_officer", "senior_radiologist"}


class Notice(BaseModel):
    key: str
    accession_number: str
    recipient_kind: str  # user | department_oncall | backup_clinician | department_head | duty_officer | patient ...
    recipient_id: str
    title: str
    body: str
    critical_value_id: str | None = None
    purpose: str = "info"
    at: datetime
    department_id: str | None = None  # also send to this department's channels


class Delivery(BaseModel):
    attempt_id: str
    delivered: bool
    channel: str


def redact(url: str) -> str:
    """Keep the scheme and host only: URLs can carry tokens."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/')[0].split('@')[-1]}"


def resolve_urls(recipient_kind: str, recipient_id: str, department_id: str | None = None) -> list[str]:
    urls: list[str] = []
    with session_scope() as s:
        if recipient_kind == "user":
            user = s.get(User, recipient_id)
            if user is not None and user.notify_url:
                urls.append(user.notify_url)
        elif recipient_kind == "department_oncall":
            dept = s.get(Department, recipient_id)
            if dept is not None and dept.oncall_notify_url:
                urls.append(dept.oncall_notify_url)
        elif recipient_kind in CONTACT_RUNGS:
            for contact in s.exec(select(DepartmentContact).where(
                DepartmentContact.department_id == recipient_id, DepartmentContact.rung == recipient_kind
            )):
                urls += contact.notify_urls
        if department_id:
            urls += [c.apprise_url for c in s.exec(select(DepartmentChannel).where(
                DepartmentChannel.department_id == department_id, DepartmentChannel.enabled == True  # noqa: E712
            ))]
    urls = list(dict.fromkeys(urls))
    return urls or [get_settings().resolved_notify_url]


def _send(url: str, title: str, body: str) -> str | None:
    sender = apprise.Apprise()
    if not sender.add(url):
        return "invalid apprise URL"
    return None if sender.notify(title=title, body=body) else "delivery failed"


def _already_delivered(key: str) -> NotificationAttempt | None:
    """A retry after a crash between sending and completing must not page anyone twice."""
    with session_scope() as s:
        return s.exec(select(NotificationAttempt).where(
            col(NotificationAttempt.id).startswith(f"{key}/try-"), NotificationAttempt.delivered == True  # noqa: E712
        )).first()


@activity.defn
def send_notification(n: Notice) -> Delivery:
    done = _already_delivered(n.key)
    if done is not None:
        return Delivery(attempt_id=done.id, delivered=True, channel=done.channel)
    attempt = activity.info().attempt
    base_id = f"{n.key}/try-{attempt}"
    urls = resolve_urls(n.recipient_kind, n.recipient_id, n.department_id)
    body = f"{n.body}\n\n[recipient={n.recipient_kind}:{n.recipient_id} accession={n.accession_number} ref={n.key}]"
    with ThreadPoolExecutor(max_workers=min(len(urls), 8)) as pool:
        errors = list(pool.map(lambda u: _send(u, n.title, body), urls))
    # Server time of this attempt: true under time skipping too, unlike the wall clock.
    at = activity.info().current_attempt_scheduled_time
    with session_scope() as s:
        for i, (url, error) in enumerate(zip(urls, errors)):
            attempt_id = base_id if i == 0 else f"{base_id}/{i}"
            row = s.get(NotificationAttempt, attempt_id) or NotificationAttempt(
                id=attempt_id, accession_number=n.accession_number, critical_value_id=n.critical_value_id,
                purpose=n.purpose, recipient=f"{n.recipient_kind}:{n.recipient_id}", channel=redact(url),
            )
            row.attempted_at, row.delivered, row.error = at, error is None, error
            s.add(row)
    delivered = [u for u, e in zip(urls, errors) if e is None]
    if not delivered:
        raise ApplicationError(
            f"{errors[0]} to {n.recipient_kind}:{n.recipient_id} via {', '.join(map(redact, urls))}",
            type="DeliveryFailed")
    return Delivery(attempt_id=base_id, delivered=True, channel=", ".join(map(redact, delivered)))

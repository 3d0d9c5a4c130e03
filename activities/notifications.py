"""Notifications through apprise (R7.1.3): every attempt is a row with its result.

Recipients resolve to an apprise URL: the user's own, the department's on-call
URL, or the configured default (in development the API's own sink, a real
`json://` endpoint). A failed delivery raises so Temporal retries it; the
workflow sees the final failure and falls back (phone call for critical values).
"""
from __future__ import annotations

from datetime import datetime

import apprise
from pydantic import BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError

from core.config import get_settings
from core.db import session_scope
from domain.tables import Department, NotificationAttempt, User


class Notice(BaseModel):
    key: str
    accession_number: str
    recipient_kind: str  # user | department_oncall | patient
    recipient_id: str
    title: str
    body: str
    critical_value_id: str | None = None
    purpose: str = "info"
    at: datetime


class Delivery(BaseModel):
    attempt_id: str
    delivered: bool
    channel: str


def _redact(url: str) -> str:
    """Keep the scheme and host only: URLs can carry tokens."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/')[0].split('@')[-1]}"


def resolve_url(recipient_kind: str, recipient_id: str) -> str:
    with session_scope() as s:
        if recipient_kind == "user":
            user = s.get(User, recipient_id)
            if user is not None and user.notify_url:
                return user.notify_url
        elif recipient_kind == "department_oncall":
            dept = s.get(Department, recipient_id)
            if dept is not None and dept.oncall_notify_url:
                return dept.oncall_notify_url
    return get_settings().resolved_notify_url


@activity.defn
def send_notification(n: Notice) -> Delivery:
    attempt = activity.info().attempt
    attempt_id = f"{n.key}/try-{attempt}"
    url = resolve_url(n.recipient_kind, n.recipient_id)
    sender = apprise.Apprise()
    error: str | None = None
    if not sender.add(url):
        error = "invalid apprise URL"
    else:
        body = f"{n.body}\n\n[recipient={n.recipient_kind}:{n.recipient_id} accession={n.accession_number} ref={n.key}]"
        if not sender.notify(title=n.title, body=body):
            error = "delivery failed"
    with session_scope() as s:
        row = s.get(NotificationAttempt, attempt_id) or NotificationAttempt(
            id=attempt_id, accession_number=n.accession_number, critical_value_id=n.critical_value_id,
            purpose=n.purpose, recipient=f"{n.recipient_kind}:{n.recipient_id}", channel=_redact(url),
        )
        # Server time of this attempt: true under time skipping too, unlike the wall clock.
        row.attempted_at = activity.info().current_attempt_scheduled_time
        row.delivered, row.error = error is None, error
        s.add(row)
    if error is not None:
        raise ApplicationError(f"{error} to {n.recipient_kind}:{n.recipient_id} via {_redact(url)}", type="DeliveryFailed")
    return Delivery(attempt_id=attempt_id, delivered=True, channel=_redact(url))

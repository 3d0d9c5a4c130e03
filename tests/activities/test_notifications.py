"""The apprise adapter: per-channel attempt rows, parallel channels, no double paging on retry."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlmodel import Session, select
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.notifications import Notice, send_notification
from core.db import get_engine
from domain.critical_tables import DepartmentChannel, DepartmentContact
from domain.tables import NotificationAttempt
from tests.support.notify_sink import NotifySink


def notice(key: str = "k1", **kw) -> Notice:
    return Notice(**({"key": key, "accession_number": "A1", "recipient_kind": "user", "recipient_id": "u-clinician",
                      "title": "[CRITICAL] A1", "body": "tension pneumothorax", "at": datetime.now(timezone.utc)} | kw))


def rows(key: str) -> list[NotificationAttempt]:
    with Session(get_engine()) as s:
        return list(s.exec(select(NotificationAttempt).where(NotificationAttempt.id.startswith(key))))  # type: ignore[attr-defined]


def test_a_retried_activity_does_not_page_twice(sqlite_database, notify_sink) -> None:
    env = ActivityEnvironment()
    first = env.run(send_notification, notice())
    again = env.run(send_notification, notice())  # e.g. the worker died before reporting completion
    assert first.delivered and again.attempt_id == first.attempt_id
    assert len(notify_sink.received) == 1 and len(rows("k1/")) == 1


def test_failure_is_recorded_and_raised_for_temporal_to_retry(sqlite_database, notify_sink) -> None:
    notify_sink.fail = True
    with pytest.raises(ApplicationError, match="delivery failed"):
        ActivityEnvironment().run(send_notification, notice("k2"))
    [row] = rows("k2/")
    assert not row.delivered and row.error == "delivery failed" and row.channel.startswith("json://127.0.0.1")


def test_department_rung_and_channels_go_out_in_parallel(sqlite_database, notify_sink) -> None:
    with NotifySink() as wecom, NotifySink() as sms:
        sms.fail = True
        with Session(get_engine()) as s:
            s.merge(DepartmentContact(id="respiratory-department_head", department_id="respiratory", rung="department_head",
                                      name="主任", notify_urls=[notify_sink.url]))
            s.add(DepartmentChannel(id="resp-wecom", department_id="respiratory", name="WeCom group", apprise_url=wecom.url))
            s.add(DepartmentChannel(id="resp-sms", department_id="respiratory", name="SMS gateway", apprise_url=sms.url))
            s.commit()
        out = ActivityEnvironment().run(send_notification, notice(
            "k3", recipient_kind="department_head", recipient_id="respiratory", department_id="respiratory"))
        assert out.delivered
        assert len(notify_sink.received) == 1 and len(wecom.received) == 1 and sms.received == []
        got = sorted((r.delivered, r.error) for r in rows("k3/"))
        assert got == [(False, "delivery failed"), (True, None), (True, None)]

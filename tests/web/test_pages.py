"""The pages over HTTP (no browser): who gets in, what the inbox shows and in which order, CSRF,
audit of page views, no patient data in titles or URLs."""
from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta, timezone

import httpx
import pyotp
import pytest
from sqlmodel import Session, select

from api.main import create_app
from core.db import get_engine
from domain.enums import Role
from domain.security_tables import AuditRecord
from domain.tables import ExamOrder, HumanTask, Patient
from domain.task_forms import TASK_SPECS
from tests.support.people import PASSWORD

NOW = datetime.now(timezone.utc)


def add_order(s: Session, acc: str, name: str, birth: date, priority: str = "routine", **special: bool) -> None:
    s.add(Patient(id=f"p-{acc}", name=name, sex="F", birth_date=birth))
    s.flush()
    s.add(ExamOrder(accession_number=acc, workflow_id=f"exam-loop-{acc}", placer_system="HIS",
                    placer_order_number=f"PO-{acc}", patient_id=f"p-{acc}", procedure_code="CT-CHEST",
                    procedure_name="胸部CT平扫", modality="CT", body_part="CHEST", priority=priority,
                    ordering_clinician_id="u-clinician", ordering_clinician_name="孙医生",
                    ordering_department="respiratory", **{f"special_{k}": v for k, v in special.items()}))


def add_task(s: Session, acc: str, task_type: str = "check_in", rank: int = 3, due_in: timedelta = timedelta(hours=1),
             state: str = "open") -> str:
    spec = TASK_SPECS[task_type]  # type: ignore[index]
    tid = f"exam-loop-{acc}/{task_type}/1"
    s.add(HumanTask(id=tid, workflow_id=f"exam-loop-{acc}", accession_number=acc, task_type=task_type,
                    role=spec.roles[0].value, roles=f" {' '.join(r.value for r in spec.roles)} ", state=state,
                    priority_rank=rank, due_at=NOW + due_in, form_schema=task_type, title=spec.title, context={}))
    return tid


@pytest.fixture
def rows(sqlite_database) -> None:
    with Session(get_engine()) as s:
        add_order(s, "A1", "李四", date(1990, 1, 1))
        add_order(s, "A2", "王五", date(1935, 3, 3), mdro=True)  # elderly + MDRO
        add_order(s, "A3", "赵六", date(1980, 1, 1), priority="stat", infectious=True)
        s.flush()
        add_task(s, "A1", rank=3, due_in=timedelta(minutes=-5))  # overdue routine
        add_task(s, "A2", rank=3, due_in=timedelta(minutes=30))
        add_task(s, "A3", rank=1, due_in=timedelta(minutes=50))  # stat first despite the later due time
        add_task(s, "A1", "perform_exam")  # not a registrar's
        s.commit()


@pytest.fixture
async def web(rows) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app()), base_url="http://radloop.test") as c:
        yield c


async def log_in(client: httpx.AsyncClient, role: Role) -> None:
    from tests.web.conftest import person

    who = person(role)
    r = await client.post("/web/login", data={"username": who.username, "password": PASSWORD,
                                              "totp": pyotp.TOTP(who.totp_secret).now(), "next": "/web/inbox"})
    assert r.status_code == 303 and r.headers["location"] == "/web/inbox", r.text
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict"), cookie


def title(html: str) -> str:
    return re.search(r"<title>(.*?)</title>", html, re.S).group(1)


async def test_anonymous_get_the_login_page_with_401(web) -> None:
    r = await web.get("/web/inbox")
    assert r.status_code == 401 and 'name="totp"' in r.text and "请先登录" in r.text
    assert 'name="next" value="/web/inbox"' in r.text


async def test_wrong_code_is_refused_without_saying_which_factor(web) -> None:
    from tests.web.conftest import person

    who = person(Role.registrar)
    r = await web.post("/web/login", data={"username": who.username, "password": PASSWORD, "totp": "000000"})
    assert r.status_code == 401 and "用户名、密码或验证码不正确" in r.text
    assert (await web.get("/web/inbox")).status_code == 401


async def test_inbox_order_flags_and_overdue(web) -> None:
    await log_in(web, Role.registrar)
    r = await web.get("/web/inbox")
    assert r.status_code == 200
    order = re.findall(r'data-task="exam-loop-(A\d)/', r.text)
    assert order == ["A3", "A1", "A2"]  # priority first, then due time; the technologist's task absent
    a1 = r.text.split('data-task="exam-loop-A1')[1].split("</tr>")[0]
    a2 = r.text.split('data-task="exam-loop-A2')[1].split("</tr>")[0]
    a3 = r.text.split('data-task="exam-loop-A3')[1].split("</tr>")[0]
    assert "已超时" in a1 and "已超时" not in a2
    assert "flag-elderly" in a2 and "flag-mdro" in a2
    assert "flag-emergency" in a3 and "flag-infectious" in a3
    assert "李四" not in title(r.text) and "/web/inbox" in str(r.url)


async def test_english_from_the_language_cookie(web) -> None:
    await log_in(web, Role.registrar)
    web.cookies.set("radloop_lang", "en")
    r = await web.get("/web/inbox")
    assert "<title>Inbox · RadLoop</title>" in r.text and "overdue" in r.text


async def test_cookie_post_without_csrf_token_is_refused(web) -> None:
    await log_in(web, Role.registrar)
    tid = "exam-loop-A1/check_in/1"
    r = await web.post(f"/web/tasks/{tid}/claim", data={})
    assert r.status_code == 403
    with Session(get_engine()) as s:
        assert s.get(HumanTask, tid).state == "open"
    page = await web.get(f"/web/tasks/{tid}")
    token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.text).group(1)
    r = await web.post(f"/web/tasks/{tid}/claim", data={"csrf_token": token})
    assert r.status_code == 303
    with Session(get_engine()) as s:
        assert s.get(HumanTask, tid).state == "claimed"


async def test_task_page_titles_carry_no_patient_data_and_views_are_audited(web) -> None:
    await log_in(web, Role.registrar)
    tid = "exam-loop-A2/check_in/1"
    r = await web.get(f"/web/tasks/{tid}")
    assert r.status_code == 200 and "王五" in r.text and "王五" not in title(r.text)
    r = await web.get("/web/loops/A2")
    assert r.status_code == 200 and "王五" in r.text and title(r.text) == "检查 A2 · RadLoop"
    with Session(get_engine()) as s:
        audited = s.exec(select(AuditRecord).where(AuditRecord.username == "registrar")).all()
    routes = {(a.detail.get("route"), a.object_id, a.event_type) for a in audited}
    assert ("/web/tasks/{task_id}", tid, "patient_query") in routes
    assert ("/web/loops/{accession}", "A2", "patient_read") in routes


async def test_form_errors_are_shown_next_to_their_fields_and_nothing_is_sent(web) -> None:
    await log_in(web, Role.registrar)
    tid = "exam-loop-A1/check_in/1"
    page = await web.get(f"/web/tasks/{tid}")
    token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.text).group(1)
    r = await web.post(f"/web/tasks/{tid}/complete", data={"csrf_token": token, "_booleans": "identity_verified",
                                                          "identity_document_type": "", "note": "x"})
    assert r.status_code == 422
    doc = r.text.split('id="field-identity_document_type"')[1].split('id="field-')[0]
    ok = r.text.split('id="field-identity_verified"')[1].split('id="field-')[0]
    assert "必填项" in doc and "field-error" in ok
    assert 'value="x"' in r.text or ">x<" in r.text  # what was typed is kept


async def test_dashboard_for_managers_only(web) -> None:
    await log_in(web, Role.registrar)
    assert (await web.get("/web/dashboard")).status_code == 403


async def test_dashboard_svg_and_csv(rows) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app()), base_url="http://radloop.test") as c:
        await log_in_as(c, Role.manager)
        r = await c.get("/web/dashboard")
        assert r.status_code == 200 and r.text.count("<svg") == 4
        csv_r = await c.get("/web/dashboard/turnaround.csv")
        assert csv_r.status_code == 200 and csv_r.text.startswith("accession_number,exam_completed_at")


async def log_in_as(client: httpx.AsyncClient, role: Role) -> None:
    from tests.web.conftest import person

    who = person(role)
    r = await client.post("/web/login", data={"username": who.username, "password": PASSWORD,
                                              "totp": pyotp.TOTP(who.totp_secret).now()})
    assert r.status_code == 303, r.text


async def test_the_elderly_flag_follows_the_published_care_policy(web) -> None:
    """Inbox and queue agree on who is elderly: publishing "elderly from 95" takes the flag off a 91-year-old."""
    from services import care_policy
    from services.care_policy import PolicyPublishIn
    from tests.services.test_care_policy import _elderly_from

    await log_in(web, Role.registrar)
    before = (await web.get("/web/inbox")).text.split('data-task="exam-loop-A2')[1].split("</tr>")[0]
    assert "flag-elderly" in before
    with Session(get_engine()) as s:
        care_policy.publish(s, PolicyPublishIn(based_on=1, note="elderly from 95", policy=_elderly_from(95)),
                            "u-manager", datetime.now(timezone.utc))
        s.commit()
    after = (await web.get("/web/inbox")).text.split('data-task="exam-loop-A2')[1].split("</tr>")[0]
    assert "flag-elderly" not in after and "flag-mdro" in after


async def test_the_critical_board_shows_a_clinician_only_what_they_need_to_know(web) -> None:
    from domain.tables import CriticalValue

    with Session(get_engine()) as s:
        s.add(Patient(id="p-B1", name="钱七", sex="M", birth_date=date(1970, 1, 1)))
        s.flush()
        s.add(ExamOrder(accession_number="B1", workflow_id="exam-loop-B1", placer_system="HIS",
                        placer_order_number="PO-B1", patient_id="p-B1", procedure_code="CT-CHEST",
                        procedure_name="胸部CT平扫", modality="CT", body_part="CHEST", priority="stat",
                        ordering_clinician_id="u-someone", ordering_clinician_name="周医生",
                        ordering_department="oncology"))
        for acc in ("A1", "B1"):
            s.add(CriticalValue(id=f"c-{acc}", accession_number=acc, finding="张力性气胸",
                                raised_by="u-radiologist", raised_at=NOW, state="notifying"))
        s.commit()
    await log_in(web, Role.clinician)
    for path in ("/web/critical", "/web/critical/live"):
        board = (await web.get(path)).text
        assert 'data-cv="c-A1"' in board and 'data-cv="c-B1"' not in board, path
    web.cookies.clear()
    await log_in(web, Role.radiologist)
    board = (await web.get("/web/critical")).text
    assert 'data-cv="c-A1"' in board and 'data-cv="c-B1"' in board

"""The pages in a real browser (Debian Chromium, headless, 1366x768): log in with TOTP, claim and
complete a task through its form and see a validation error, session expiry and logout; the queue
screen updating live when a patient is called; acknowledging a critical value with the read-back
and opening the loop's timeline. Screenshots of each page: tmp_path/screens/*.png."""
from __future__ import annotations

import asyncio
from datetime import timedelta

from playwright.async_api import expect
from sqlmodel import Session

from core.db import get_engine
from domain.enums import Role
from domain.loop import exam_loop_workflow_id
from domain.queueing.policy import PatientTraits
from domain.tables import HumanTask
from security.clock import ManualClock
from services import queueing
from tests.support.critical import raise_by_signing, wait_status
from tests.support.loop_driver import LoopDriver
from tests.web.conftest import VIEWPORT, log_in, person, serve
from worker import build_worker

WAIT_MS = 30_000  # a loaded 2-core machine


async def _row(task_id: str, timeout: float = 45) -> HumanTask:
    async def poll() -> HumanTask:
        while True:
            with Session(get_engine()) as s:
                row = s.get(HumanTask, task_id)
                if row is not None:
                    return row
            await asyncio.sleep(0.1)

    return await asyncio.wait_for(poll(), timeout)


async def test_login_claim_complete_with_a_validation_error_then_expiry_and_logout(
        ts_env, sqlite_database, task_queue, browser, tmp_path) -> None:
    clock = ManualClock()
    registrar = person(Role.registrar, clock)
    async with build_worker(ts_env.client, task_queue):
        d = LoopDriver(ts_env.client, task_queue)
        acc = (await d.place()).accession_number
        task_id = await d.wait_task(exam_loop_workflow_id(acc), "check_in")
        await _row(task_id)
        async with serve(tmp_path, ts_env.client, clock) as site:
            page = await browser.new_page(viewport=VIEWPORT)
            await log_in(page, site, registrar, "/web/inbox", clock)
            row = page.locator(f'tr[data-task="{task_id}"]')
            await expect(row).to_be_visible(timeout=WAIT_MS)
            assert acc not in await page.title() and "张三" not in await page.title()
            await site.shot(page, "1-inbox")

            await row.locator("a.task-link").click()
            await page.click("#claim")
            await expect(page.locator("#release")).to_be_visible(timeout=WAIT_MS)
            await page.select_option("#f-identity_document_type", "id_card")
            await page.click("#complete")  # identity not confirmed: refused, next to the field
            await expect(page.locator("#field-identity_verified .field-error")).to_be_visible(timeout=WAIT_MS)
            await expect(page.locator("#f-identity_document_type")).to_have_value("id_card")
            await site.shot(page, "2-task-validation-error")
            with Session(get_engine()) as s:
                assert s.get(HumanTask, task_id).state == "claimed"

            await page.check("#f-identity_verified")
            await page.click("#complete")
            await expect(page.locator("#flash")).to_be_visible(timeout=WAIT_MS)
            await d.wait_step(acc, "arrived")
            with Session(get_engine()) as s:
                done = s.get(HumanTask, task_id)
                assert (done.state, done.completed_by) == ("done", "u-registrar")
            await site.shot(page, "3-inbox-after-complete")

            clock.advance(timedelta(minutes=31))  # idle longer than the 30-minute timeout
            await page.goto(site.url("/web/inbox"))
            await expect(page.locator("#login-reason")).to_contain_text("超时", timeout=WAIT_MS)
            await site.shot(page, "4-session-expired")

            await log_in(page, site, registrar, "/web/inbox", clock)
            await page.click("#logout")
            await expect(page.locator("#login-reason")).to_contain_text("退出", timeout=WAIT_MS)
            await page.goto(site.url("/web/inbox"))
            await expect(page.locator("#username")).to_be_visible(timeout=WAIT_MS)
            await page.close()


async def test_queue_screen_updates_live_when_a_patient_is_called(sqlite_database, browser, tmp_path) -> None:
    with Session(get_engine()) as s:
        queueing.define_queue(s, "q-ct", "CT", ["CT1"])
        s.commit()
    for acc, name in (("Q1", "张三丰"), ("Q2", "李小龙")):
        await asyncio.to_thread(queueing.join, acc, name, "q-ct", PatientTraits(age=40), "u-nurse")
    manager = person(Role.manager)
    async with serve(tmp_path) as site:
        page = await browser.new_page(viewport=VIEWPORT)
        await log_in(page, site, manager, "/web/queues/CT1")
        await expect(page.locator("#room-name")).to_contain_text("CT 一室", timeout=WAIT_MS)
        await expect(page.locator("#waiting-count")).to_have_text("2", timeout=WAIT_MS)
        await expect(page.locator("#next-list li").first).to_have_text("张*丰")
        await expect(page.locator("#live-state")).to_have_text("实时", timeout=WAIT_MS)
        await site.shot(page, "5-queue-before")
        await asyncio.to_thread(queueing.call_next, "CT1", "u-technologist")
        await expect(page.locator("#now-calling")).to_have_text("张*丰", timeout=WAIT_MS)  # no reload
        await expect(page.locator("#waiting-count")).to_have_text("1")
        assert "张三丰" not in await page.content()
        await site.shot(page, "6-queue-called")

        await page.goto(site.url("/web/dashboard"))
        await expect(page.locator("#chart-critical svg")).to_be_visible(timeout=WAIT_MS)
        await expect(page.locator("#csv-turnaround")).to_be_visible()
        await site.shot(page, "7-dashboard")
        await page.close()


async def test_acknowledge_a_critical_value_on_the_board_then_open_the_timeline(
        ts_env, sqlite_database, task_queue, notify_sink, browser, tmp_path) -> None:
    async with build_worker(ts_env.client, task_queue):
        d = LoopDriver(ts_env.client, task_queue)
        acc, cv = await raise_by_signing(d)
        clinician = person(Role.clinician)
        async with serve(tmp_path, ts_env.client) as site:
            page = await browser.new_page(viewport=VIEWPORT)
            await log_in(page, site, clinician, "/web/critical")
            row = page.locator(f'tr[data-cv="{cv}"]')
            await expect(row).to_be_visible(timeout=WAIT_MS)
            await expect(row.locator(".elapsed")).to_have_text(__import__("re").compile(r"^\d+:\d\d$"))
            await site.shot(page, "8-critical-board")

            await row.locator("textarea").fill("右侧气胸")  # does not name the finding: the loop refuses it
            await row.locator("button[type=submit]").click()
            await expect(page.locator(f'tr[data-cv="{cv}"] .field-error')).to_contain_text("read-back", timeout=WAIT_MS)
            await expect(page.locator(f'tr[data-cv="{cv}"] textarea')).to_have_value("右侧气胸")  # typed text kept
            await site.shot(page, "9-critical-read-back-refused")
            await page.locator(f'tr[data-cv="{cv}"] textarea').fill("tension pneumothorax, right side / 张力性气胸，右侧")
            await page.locator(f'tr[data-cv="{cv}"] button[type=submit]').click()
            await expect(page.locator("#flash")).to_be_visible(timeout=WAIT_MS)
            st = await wait_status(ts_env.client, cv, lambda st: st.acknowledged)
            assert st.acked_by == "u-clinician"
            await site.shot(page, "10-critical-acknowledged")

            await page.goto(site.url(f"/web/loops/{acc}"))
            assert await page.title() == f"检查 {acc} · RadLoop"
            await expect(page.locator("#report-v3")).to_be_attached(timeout=WAIT_MS)
            await expect(page.locator("#report-v3 .diff ins").first).to_be_attached()
            await expect(page.locator(".critical-ladder .attempt").first).to_be_visible()
            await expect(page.locator(".critical-ladder")).to_contain_text("张力性气胸，右侧")
            href = await page.locator("#temporal-link").get_attribute("href")
            assert href.endswith(f"/namespaces/default/workflows/exam-loop-{acc}")
            assert await page.locator("#timeline tbody tr").count() > 10
            await site.shot(page, "11-loop-timeline")
            await page.close()

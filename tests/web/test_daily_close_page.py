"""The daily-close task in Chromium: one row per unfinished patient, a refused completion keeps the
choices and names the row, a good one closes the tickets through the queue and the workflow ends."""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from playwright.async_api import expect
from sqlmodel import Session, select

from activities.daily_close import DAILY_CLOSE_WORKFLOW, DailyCloseInput, DailyCloseResult, daily_close_workflow_id
from core.config import get_settings
from core.db import get_engine
from domain.enums import Role
from domain.queue_tables import QueueTicket
from domain.queueing.policy import PatientTraits
from domain.tables import HumanTask
from services import queueing
from tests.web.conftest import VIEWPORT, log_in, person, serve
from tests.web.test_browser import WAIT_MS, _row
from worker import build_worker

ADULT = PatientTraits(age=40)


async def test_dispositions_are_chosen_per_row_and_close_the_day(
        ts_env, sqlite_database, task_queue, browser, tmp_path) -> None:
    with Session(get_engine()) as s:
        queueing.define_queue(s, "q-ct", "CT", ["CT1"])
        s.commit()
    queueing.join("A1", "张三", "q-ct", ADULT, "u-registrar")
    queueing.join("A2", "李四", "q-ct", ADULT, "u-registrar")
    called = queueing.call_next("CT1", "u-tech")  # A1 called and never finished; A2 still waiting
    day = datetime.now(timezone.utc).astimezone(ZoneInfo(get_settings().timezone)).date()
    wid = daily_close_workflow_id(day)
    registrar = person(Role.registrar)
    async with build_worker(ts_env.client, task_queue):
        handle = await ts_env.client.start_workflow(
            DAILY_CLOSE_WORKFLOW, DailyCloseInput(day=day), id=wid, task_queue=task_queue,
            result_type=DailyCloseResult)
        task_id = f"{wid}/daily_close/1"
        await _row(task_id)
        async with serve(tmp_path, ts_env.client) as site:
            page = await browser.new_page(viewport=VIEWPORT)
            await log_in(page, site, registrar, f"/web/tasks/{task_id}")
            await page.click("#claim")
            rows = page.locator("#f-dispositions tbody tr")
            await expect(rows).to_have_count(2, timeout=WAIT_MS)
            await expect(rows.nth(0)).to_contain_text("A1")
            await expect(rows.nth(1)).to_contain_text("李*")
            await page.select_option("#f-dispositions\\.0\\.disposition", "finished")
            await page.select_option("#f-dispositions\\.1\\.disposition", "left")
            await page.click("#complete")  # `left` without a reason: refused on that row
            await expect(page.locator("#row-dispositions-1 .field-error")).to_contain_text(
                "reason", timeout=WAIT_MS)
            await expect(page.locator("#f-dispositions\\.1\\.disposition")).to_have_value("left")
            await site.shot(page, "daily-close-refused")
            with Session(get_engine()) as s:
                assert s.get(HumanTask, task_id).state == "claimed"

            await page.fill("#f-dispositions\\.1\\.reason", "went home before the exam")
            await page.click("#complete")
            await expect(page.locator("#flash")).to_be_visible(timeout=WAIT_MS)
            result = await handle.result()
            await page.close()
    assert (result.listed, result.finished, result.left) == (2, 1, 1)
    with Session(get_engine()) as s:
        states = {t.accession_number: t.state for t in s.exec(select(QueueTicket))}
        assert called.accession_number == "A1" and states == {"A1": "done", "A2": "left"}

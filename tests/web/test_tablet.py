"""Tablets (the quality bar: every page usable on a tablet): at 1024x768 and 768x1024 with touch,
the inbox, a task form and the report editor fit the width (no horizontal scrolling), and
their buttons are on screen, large enough to tap, and work when tapped. 1366x768 is the
other browser tests' viewport."""
from __future__ import annotations

import pytest
from playwright.async_api import Page, expect
from sqlmodel import Session

from core.db import get_engine
from domain.enums import Role
from domain.tables import HumanTask
from tests.web.conftest import log_in, person, serve
from tests.web.test_pages import rows  # noqa: F401 - fixture
from tests.web.test_report_editor import review_task  # noqa: F401 - fixture

WAIT_MS = 30_000
TABLETS = [{"width": 1024, "height": 768}, {"width": 768, "height": 1024}]
MIN_TAP = 32  # px, a finger's target


async def fits_width(page: Page) -> None:
    overflow = await page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{page.url}: {overflow}px wider than the screen"


async def reachable(page: Page, selector: str) -> None:
    button = page.locator(selector)
    await button.scroll_into_view_if_needed()
    box = await button.bounding_box()
    size = page.viewport_size
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= size["width"], (selector, box)
    assert box["height"] >= MIN_TAP, (selector, box)


@pytest.mark.parametrize("viewport", TABLETS, ids=["landscape", "portrait"])
async def test_inbox_task_form_and_report_editor_on_a_tablet(rows, review_task, browser, tmp_path, viewport) -> None:  # noqa: F811
    name = f"{viewport['width']}x{viewport['height']}"
    async with serve(tmp_path) as site:
        context = await browser.new_context(viewport=viewport, has_touch=True, is_mobile=True)
        page = await context.new_page()
        await log_in(page, site, person(Role.registrar), "/web/inbox")
        await expect(page.locator("#inbox tbody tr").first).to_be_visible(timeout=WAIT_MS)
        await fits_width(page)
        await site.shot(page, f"tablet-{name}-inbox")
        await page.locator('tr[data-task="exam-loop-A1/check_in/1"] a.task-link').tap()
        await expect(page.locator("#task-form")).to_be_visible(timeout=WAIT_MS)
        await fits_width(page)
        await reachable(page, "#claim")
        await page.locator("#claim").tap()
        await expect(page.locator("#release")).to_be_visible(timeout=WAIT_MS)
        with Session(get_engine()) as s:
            assert s.get(HumanTask, "exam-loop-A1/check_in/1").state == "claimed"
        await reachable(page, "#complete")
        await site.shot(page, f"tablet-{name}-task")
        await context.close()

        context = await browser.new_context(viewport=viewport, has_touch=True, is_mobile=True)
        page = await context.new_page()
        await log_in(page, site, person(Role.senior_radiologist), f"/web/tasks/{review_task}")
        await expect(page.locator("#diff-findings")).to_be_visible(timeout=WAIT_MS)
        await fits_width(page)
        for selector in ("#claim", "#sign", "#return", "#field-findings .phrase >> nth=0"):
            await reachable(page, selector)
        await page.locator("#field-impression .phrase >> nth=0").tap()
        await expect(page.locator("#f-impression")).to_have_value("右下肺炎\n双肺未见明显异常。")
        await site.shot(page, f"tablet-{name}-report")
        await context.close()

"""The report editor (R4.2.6, R7.1): phrase catalogue, word-level diff, the page over HTTP
(previous version and diff, dictionary choice, text-rule hints, server-side refusals next to
their fields with the typed text kept), and in Chromium: a resident drafts with inserted
phrases, a senior sees the diff and signs with a critical item from the dictionary."""
from __future__ import annotations

import asyncio
import re
from datetime import date

import httpx
import pytest
from playwright.async_api import expect
from sqlmodel import Session, select

from api.main import create_app
from api.routes.ui_schemas import load_schema
from core.db import get_engine
from domain.enums import Role
from domain.loop import exam_loop_workflow_id
from domain.tables import CriticalValue, HumanTask, ReportVersion
from tests.support.loop_driver import LoopDriver
from tests.web.conftest import VIEWPORT, log_in, person, serve
from tests.web.test_pages import add_order, add_task, log_in as http_log_in
from web.phrase_catalogue import SECTIONS, catalogue, phrases_for
from web.report_diff import inline_diff
from worker import build_worker

WAIT_MS = 30_000


def test_phrase_catalogue_same_keys_in_both_languages_and_fits_the_fields() -> None:
    zh, en = catalogue("zh-CN"), catalogue("en")
    assert set(zh) == set(en) and "*/*" in zh
    limits = {name: load_schema("report_review")["properties"][name].get("maxLength") for name in SECTIONS}
    for cat in (zh, en):
        for key, sections in cat.items():
            assert re.fullmatch(r"(\*|[A-Z]{2,4})/(\*|[A-Z]+)", key), key
            assert set(sections) <= set(SECTIONS), key
            assert all(p.strip() and len(p) <= limits[name] for name, items in sections.items() for p in items), key


def test_phrases_most_specific_first_and_fallbacks() -> None:
    chest = phrases_for("zh-CN", "CT", "CHEST")
    assert chest["findings"][0] == "胸廓对称，气管居中。"
    assert "扫描范围内未见明显异常密度影。" in chest["findings"]  # CT/*
    assert chest["recommendation"][-1] == "建议临床随诊。"  # */* last
    assert phrases_for("en", "CT", "CHEST")["impression"][0] == "No significant abnormality of either lung."
    assert phrases_for("fr", "XA", "HAND")["impression"] == ["未见明显异常。", "请结合临床。"]  # unknown: general zh-CN


def test_inline_diff_is_word_level() -> None:
    segs = inline_diff("右肺下叶片状影", "右肺下叶片状实变影")
    assert [(s.op, s.text) for s in segs] == [("same", "右肺下叶片状"), ("ins", "实变"), ("same", "影")]
    assert [(s.op, s.text) for s in inline_diff("no acute finding", "acute finding")] == [("del", "no "), ("same", "acute finding")]
    assert [(s.op, s.text) for s in inline_diff("右下肺炎", "右侧气胸")] == [("same", "右"), ("del", "下肺炎"), ("ins", "侧气胸")]
    assert inline_diff("", "") == []


@pytest.fixture
def review_task(sqlite_database) -> str:
    """A review task over v2 (preliminary) that changed v1 (draft); the text names a pneumothorax."""
    with Session(get_engine()) as s:
        add_order(s, "R1", "钱七", date(1960, 2, 2))
        s.flush()
        tid = add_task(s, "R1", "report_review")
        s.get(HumanTask, tid).context = {"version": 2, "correction": False}
        s.add(ReportVersion(accession_number="R1", version=1, tier="draft", findings="右肺下叶片状影",
                            impression="右下肺炎", author_id="u-resident", author_role="resident"))
        s.add(ReportVersion(accession_number="R1", version=2, tier="preliminary", findings="右肺下叶片状实变影，右侧张力性气胸",
                            impression="右下肺炎", recommendation="复查", author_id="u-radiologist", author_role="radiologist"))
        s.commit()
    return tid


async def test_review_page_shows_the_diff_the_dictionary_and_hints_and_refuses_with_reasons(review_task) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app()), base_url="http://radloop.test") as web:
        await http_log_in(web, Role.senior_radiologist)
        r = await web.get(f"/web/tasks/{review_task}")
        assert r.status_code == 200 and 'id="task-form"' in r.text and 'id="sign"' in r.text
        diff = r.text.split('id="diff-findings"')[1].split("</div>")[0]
        assert "<ins>实变</ins>" in diff and "张力性气胸" in diff
        assert 'id="base-version"' in r.text and "v2" in r.text.split('id="base-version"')[1][:80]
        box = r.text.split('id="f-critical_item_code"')[1].split("</select>")[0]
        assert 'value="tension_pneumothorax"' in box and "张力性气胸" in box
        hints = r.text.split('id="critical-hints"')[1].split("</div>")[0]
        assert 'data-item="tension_pneumothorax"' in hints
        assert 'class="phrase"' in r.text and "胸廓对称，气管居中。" in r.text

        token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', r.text).group(1)
        form = {"csrf_token": token, "_booleans": "critical", "action": "sign", "findings": "右侧张力性气胸（已改）",
                "impression": "张力性气胸", "critical": "on", "critical_finding": "", "critical_item_code": "made_up"}
        r = await web.post(f"/web/tasks/{review_task}/complete", data=form)
        assert r.status_code == 422
        finding = r.text.split('id="field-critical_finding"')[1].split('id="field-')[0]
        assert "field-error" in finding  # the form model's rule, next to its field
        assert "右侧张力性气胸（已改）" in r.text  # typed text kept
        r = await web.post(f"/web/tasks/{review_task}/complete", data={**form, "critical_finding": "张力性气胸"})
        assert r.status_code == 422
        code = r.text.split('id="field-critical_item_code"')[1].split('id="field-')[0]
        assert "不在危急值字典中" in code
        with Session(get_engine()) as s:
            assert s.get(HumanTask, review_task).state == "open"  # nothing reached the loop


async def _wait_for(fn, timeout: float = 45):
    async def poll():
        while (value := fn()) is None:
            await asyncio.sleep(0.1)
        return value

    return await asyncio.wait_for(poll(), timeout)


def _version(acc: str, n: int) -> ReportVersion | None:
    with Session(get_engine()) as s:
        return s.exec(select(ReportVersion).where(ReportVersion.accession_number == acc, ReportVersion.version == n)).first()


async def test_resident_drafts_with_phrases_senior_sees_the_diff_and_signs_with_a_critical_item(
        ts_env, sqlite_database, task_queue, notify_sink, browser, tmp_path) -> None:
    resident, senior = person(Role.resident), person(Role.senior_radiologist)
    async with build_worker(ts_env.client, task_queue):
        d = LoopDriver(ts_env.client, task_queue)
        acc = (await d.place()).accession_number
        await d.check_in(acc)
        await d.perform_exam(acc)
        await d.grade(acc, "A")
        draft_id = await d.wait_task(exam_loop_workflow_id(acc), "report_draft")
        await _wait_for(lambda: _task_row(draft_id))
        async with serve(tmp_path, ts_env.client) as site:
            page = await browser.new_page(viewport=VIEWPORT)
            await log_in(page, site, resident, f"/web/tasks/{draft_id}")
            await page.click("#claim")
            await expect(page.locator("#release")).to_be_visible(timeout=WAIT_MS)
            await expect(page.locator("#clinical")).to_contain_text("咳嗽两周")  # the clinical question beside the text
            await page.locator("#field-findings .phrase", has_text="胸廓对称，气管居中。").click()
            await page.locator("#f-findings").press("End")
            await page.locator("#f-findings").type("右侧见气胸线。")
            await page.click("#complete")  # no impression yet: refused next to it, the findings kept
            await expect(page.locator("#field-impression .field-error")).to_be_visible(timeout=WAIT_MS)
            await expect(page.locator("#f-findings")).to_have_value("胸廓对称，气管居中。右侧见气胸线。")
            await site.shot(page, "r1-draft-refused")
            await page.locator("#field-impression .phrase", has_text="张力性气胸。").click()
            await page.click("#complete")
            await expect(page.locator("#flash")).to_be_visible(timeout=WAIT_MS)
            v1 = await _wait_for(lambda: _version(acc, 1))
            assert (v1.findings, v1.impression, v1.author_id) == ("胸廓对称，气管居中。右侧见气胸线。", "张力性气胸。", "u-resident")
            await page.close()

            await d.complete(acc, "report_preliminary", Role.radiologist, {
                "findings": "胸廓对称，气管居中。右侧见气胸线，纵隔左移。", "impression": "右侧张力性气胸。", "recommendation": ""})
            review_id = await d.wait_task(exam_loop_workflow_id(acc), "report_review")
            await _wait_for(lambda: _task_row(review_id))
            page = await browser.new_page(viewport=VIEWPORT)
            await log_in(page, site, senior, f"/web/tasks/{review_id}")
            await page.click("#claim")
            await expect(page.locator("#release")).to_be_visible(timeout=WAIT_MS)
            await expect(page.locator("#diff-findings ins")).to_have_text("，纵隔左移", timeout=WAIT_MS)
            await expect(page.locator("#diff-impression ins")).to_have_text("右侧")
            await expect(page.locator("#critical-hints [data-item=tension_pneumothorax]")).to_be_visible()
            await page.locator("#f-impression").fill("右侧张力性气胸，膈下游离气体。")
            await expect(page.locator("#diff-impression ins").last).to_have_text("，膈下游离气体", timeout=WAIT_MS)
            await expect(page.locator("#critical-hints [data-item=free_air]")).to_be_visible(timeout=WAIT_MS)  # hints follow the text
            await site.shot(page, "r2-review-diff")
            await page.select_option("#f-critical_item_code", "tension_pneumothorax")
            await expect(page.locator("#f-critical")).to_be_checked()
            await expect(page.locator("#f-critical_finding")).to_have_value("张力性气胸")
            await site.shot(page, "r3-review-critical")
            await page.click("#sign")
            await expect(page.locator("#flash")).to_be_visible(timeout=WAIT_MS)
            v3 = await _wait_for(lambda: (v := _version(acc, 3)) and v.signed_at and v)
            assert (v3.tier, v3.critical, v3.critical_finding, v3.signed_by) == ("final", True, "张力性气胸", "u-senior_radiologist")
            cv = await _wait_for(lambda: _critical(acc))
            assert cv.item_code == "tension_pneumothorax"
            await page.close()


def _task_row(task_id: str) -> HumanTask | None:
    with Session(get_engine()) as s:
        return s.get(HumanTask, task_id)


def _critical(acc: str) -> CriticalValue | None:
    with Session(get_engine()) as s:
        return s.exec(select(CriticalValue).where(CriticalValue.accession_number == acc)).first()


@pytest.mark.parametrize("task_type,base,compared", [("report_preliminary", 1, 1), ("correction_amend", 2, 2),
                                                      ("report_draft", None, None)])
async def test_each_report_task_starts_from_and_compares_with_the_right_version(
        review_task, task_type, base, compared) -> None:
    with Session(get_engine()) as s:
        tid = add_task(s, "R1", task_type)
        s.get(HumanTask, tid).context = {"base_version": base} if base else {}
        s.commit()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app()), base_url="http://radloop.test") as web:
        await http_log_in(web, Role.senior_radiologist)
        r = await web.get(f"/web/tasks/{tid}")
        assert r.status_code == 200 and 'id="complete"' in r.text and 'id="sign"' not in r.text
        findings = r.text.split('id="f-findings"')[1].split("</textarea>")[0]
        if base is None:
            assert findings.endswith(">") and 'id="diff-findings"' not in r.text  # a draft starts empty
            return
        text = "右肺下叶片状影" if base == 1 else "右肺下叶片状实变影，右侧张力性气胸"
        assert findings.endswith(text)
        assert f"v{compared}" in r.text.split('id="compare"')[1].split("</h2>")[0]
        assert "<ins>" not in r.text.split('id="diff-findings"')[1].split("</div>")[0]  # unchanged yet
        assert ('name="kind"' in r.text) == (task_type == "correction_amend")

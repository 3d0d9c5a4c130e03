"""The check-in signature pad in a real browser (Debian Chromium, headless): the registrar opens the
check-in of a contrast CT, the patient reads the notice and signs on the <canvas> (pointer events from
the mouse), completing check-in uploads the PNG first and sends only its reference and hash; the
consent record names the stored image, which decodes to what was drawn. Screenshot: screens/12-*.png."""
from __future__ import annotations

import hashlib
import io
from datetime import datetime, timezone

from PIL import Image
from playwright.async_api import expect
from sqlmodel import Session, select

from core.config import get_settings
from core.db import get_engine
from domain.consent_tables import ConsentRecord, ConsentSignature
from domain.enums import Role
from domain.loop import exam_loop_workflow_id
from domain.tables import DomainEvent, HumanTask
from services.consent_signatures import path_of
from tests.support.loop_driver import LoopDriver
from tests.web.conftest import VIEWPORT, log_in, person, serve
from tests.web.test_browser import WAIT_MS, _row
from worker import build_worker

CONTRAST_CT = {"code": "CT-ABD-C", "name": "腹部增强CT / CT abdomen contrast", "modality": "CT", "body_part": "ABDOMEN"}


async def test_sign_on_the_pad_and_complete_check_in(ts_env, sqlite_database, task_queue, browser, tmp_path) -> None:
    registrar = person(Role.registrar)
    async with build_worker(ts_env.client, task_queue):
        d = LoopDriver(ts_env.client, task_queue)
        acc = (await d.place(procedure=CONTRAST_CT)).accession_number
        await d.complete(acc, "schedule_exam", Role.registrar, {
            "action": "retry", "egfr": 90, "egfr_at": datetime.now(timezone.utc).isoformat()})
        task_id = await d.wait_task(exam_loop_workflow_id(acc), "check_in")
        await _row(task_id)
        async with serve(tmp_path, ts_env.client) as site:
            page = await browser.new_page(viewport=VIEWPORT)
            await log_in(page, site, registrar, f"/web/tasks/{task_id}")
            await page.click("#claim")
            await expect(page.locator("#release")).to_be_visible(timeout=WAIT_MS)
            await expect(page.locator('#signature li[data-notice="contrast_consent"]')).to_contain_text("对比剂")

            await page.select_option("#f-identity_document_type", "id_card")
            await page.check("#f-identity_verified")
            await page.check('#f-signed input[value="contrast_consent"]')
            await page.click("#complete")  # nothing drawn: the pad says so and nothing is sent
            await expect(page.locator("#sig-status")).to_have_class("error", timeout=WAIT_MS)
            with Session(get_engine()) as s:
                assert s.exec(select(ConsentSignature)).first() is None

            await page.locator("#sig-canvas").scroll_into_view_if_needed()
            box = await page.locator("#sig-canvas").bounding_box()  # viewport coordinates, as the mouse takes them
            x, y, w, h = box["x"], box["y"], box["width"], box["height"]
            await page.mouse.move(x + 0.1 * w, y + 0.7 * h)
            await page.mouse.down()
            for i in range(1, 21):  # a wavy stroke across the pad
                await page.mouse.move(x + (0.1 + 0.04 * i) * w, y + (0.5 + (0.25 if i % 2 else -0.25)) * h, steps=3)
            await page.mouse.up()
            await site.shot(page, "12-signature-pad")
            await page.click("#complete")  # uploads the drawing, fills reference and hash, submits
            await expect(page.locator("#flash")).to_be_visible(timeout=WAIT_MS)
            await d.wait_step(acc, "arrived")
            await page.close()

    with Session(get_engine()) as s:
        [upload] = s.exec(select(ConsentSignature).where(ConsentSignature.accession_number == acc)).all()
        [consent] = s.exec(select(ConsentRecord).where(ConsentRecord.accession_number == acc)).all()
        done = s.get(HumanTask, task_id)
        event = s.exec(select(DomainEvent).where(DomainEvent.accession_number == acc,
                                                 DomainEvent.kind == "checked_in")).one()
    assert (done.state, done.result["signature_ref"], done.result["signature_sha256"]) == (
        "done", upload.id, upload.sha256)
    assert "image" not in done.result and "base64" not in str(done.result)  # only reference + hash travelled
    assert (consent.signature_ref, consent.signature_sha256, consent.notice_sha256) == (
        upload.id, upload.sha256, upload.notice_sha256)
    assert (consent.witness_user_id, consent.signer, upload.uploaded_by) == ("u-registrar", "patient", "u-registrar")
    assert event.detail["signature_ref"] == upload.id
    png = path_of(get_settings().data_dir, upload.sha256).read_bytes()
    assert hashlib.sha256(png).hexdigest() == upload.sha256
    with Image.open(io.BytesIO(png)) as img:
        assert (img.format, img.size) == ("PNG", (600, 200))
        alpha = img.convert("RGBA").getchannel("A")
        inked = sum(1 for a in alpha.tobytes() if a > 0)
    assert inked > 500  # the stroke drawn, not an empty pad

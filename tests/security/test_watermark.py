"""Watermarks (R10.3.4 (5)): viewer ID and time drawn into images and pages."""
from __future__ import annotations

import io
from datetime import datetime, timezone

import pytest
from PIL import Image, ImageChops

from security.watermark import WatermarkError, watermark_html, watermark_image, watermark_label

LABEL = watermark_label("u-radiologist", datetime(2026, 3, 2, 9, 30, 5, tzinfo=timezone.utc))


def _image(fmt: str, mode: str = "L", size: tuple[int, int] = (512, 400)) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, 40).save(out, fmt)
    return out.getvalue()


def test_label_names_viewer_and_local_time() -> None:
    assert LABEL == "RadLoop · u-radiologist · 2026-03-02 17:30:05 +0800"
    assert watermark_label("u-x", datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc), "UTC").endswith("09:00:00 +0000")


@pytest.mark.parametrize(("fmt", "media_type"), [("PNG", "image/png"), ("JPEG", "image/jpeg")])
def test_images_carry_the_mark_in_pixels_and_metadata(fmt: str, media_type: str) -> None:
    original = _image(fmt)
    marked = watermark_image(original, media_type, LABEL)
    before, after = Image.open(io.BytesIO(original)).convert("RGB"), Image.open(io.BytesIO(marked))
    assert after.format == fmt and after.size == (512, 400)
    diff = ImageChops.difference(before, after.convert("RGB")).convert("L")
    bottom = diff.crop((0, 370, 512, 400))
    middle = diff.crop((0, 0, 512, 360))
    assert bottom.getextrema()[1] > 100  # the footer line stands out
    changed = sum(middle.histogram()[9:])
    assert 0.005 * 512 * 360 < changed < 0.25 * 512 * 360  # tiled across, but the image stays readable
    meta = after.info.get("RadLoop-Watermark") if fmt == "PNG" else after.info["comment"].decode()
    assert meta == LABEL


def test_png_with_alpha_keeps_it() -> None:
    marked = watermark_image(_image("PNG", "RGBA"), "image/png", LABEL)
    assert Image.open(io.BytesIO(marked)).mode == "RGBA"


def test_bad_input_is_refused_with_a_reason() -> None:
    with pytest.raises(WatermarkError, match="PNG and JPEG only"):
        watermark_image(b"GIF89a", "image/gif", LABEL)
    with pytest.raises(WatermarkError, match="not a readable PNG"):
        watermark_image(b"\x89PNG broken", "image/png", LABEL)


def test_html_gets_an_overlay_and_a_footer_before_body_end() -> None:
    page = watermark_html("<html><body><p>所见</p></body></html>", LABEL + " <x>")
    assert page.endswith("</body></html>")
    assert 'class="radloop-watermark"' in page and "position:fixed" in page and "pointer-events:none" in page
    assert "u-radiologist" in page and "&lt;x&gt;" in page and "<x>" not in page
    assert watermark_html("fragment", LABEL).startswith("fragment<meta")

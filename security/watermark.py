"""Watermarks on what is displayed (R10.3.4 (5)): who viewed it and when, on every rendered report and image.

A screenshot, photo or printout of a rendered report or image carries the viewer's
user ID and the time it was rendered, so a leak can be traced to a viewing. The
mark is drawn into the content itself (pixels, the page), tiled across it and
translucent so the image stays readable, and also written where tools can read
it (an HTML meta tag, a PNG text chunk, a JPEG comment).
"""
from __future__ import annotations

import base64
import html
import io
from datetime import datetime
from zoneinfo import ZoneInfo

from PIL import Image, ImageDraw, ImageFont

IMAGE_TYPES = {"image/png": "PNG", "image/jpeg": "JPEG"}


class WatermarkError(ValueError):
    """The bytes are not an image this module can mark."""


def watermark_label(viewer_id: str, at: datetime, timezone: str = "Asia/Shanghai") -> str:
    """'RadLoop · u-radiologist · 2026-03-02 17:30:05 +0800': the viewer and the local time of viewing."""
    local = at.astimezone(ZoneInfo(timezone))
    return f"RadLoop · {viewer_id} · {local:%Y-%m-%d %H:%M:%S %z}"


# ---- HTML ----------------------------------------------------------------------------------


def _svg_tile(label: str) -> str:
    text = html.escape(label)
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" width="420" height="220">'
        '<text x="20" y="150" transform="rotate(-25 210 110)" fill="#808080" fill-opacity="0.22" '
        f'font-family="sans-serif" font-size="18">{text}</text></svg>'
    )
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")


def watermark_html(page: str, label: str) -> str:
    """The page with a tiled translucent overlay and a footer line naming the viewer and time.

    The overlay is fixed over the whole viewport, above everything, and lets clicks through;
    `print-color-adjust: exact` keeps it on paper and in PDFs printed from the page.
    """
    text = html.escape(label)
    mark = (
        f'<meta name="radloop-watermark" content="{text}">'
        '<div class="radloop-watermark" aria-hidden="true" style="position:fixed;inset:0;pointer-events:none;'
        f"z-index:2147483647;background-image:url('{_svg_tile(label)}');background-repeat:repeat;"
        '-webkit-print-color-adjust:exact;print-color-adjust:exact"></div>'
        f'<p class="radloop-watermark-line" style="color:#777;font-size:11px">{text}</p>'
    )
    idx = page.lower().rfind("</body>")
    return page + mark if idx < 0 else page[:idx] + mark + page[idx:]


# ---- images --------------------------------------------------------------------------------


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _overlay(size: tuple[int, int], label: str) -> Image.Image:
    """A transparent layer with the label tiled diagonally and once, solid, along the bottom edge."""
    w, h = size
    font_size = max(10, min(w, h) // 28)
    font = _font(font_size)
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    left, top, right, bottom = probe.textbbox((0, 0), label, font=font)
    tw, th = right - left + font_size, bottom - top + font_size
    tile = Image.new("RGBA", (tw, th), (0, 0, 0, 0))
    ImageDraw.Draw(tile).text((font_size // 2, font_size // 2), label, font=font, fill=(255, 255, 255, 255))
    tile = tile.rotate(25, expand=True)
    layer = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    step_x, step_y = tile.width + font_size * 2, tile.height + font_size
    for y in range(-tile.height // 2, h, step_y):
        for x in range(-tile.width // 2 + (y // step_y % 2) * step_x // 2, w, step_x):
            layer.paste(tile, (x, y), tile)  # tiles do not overlap; paste clips at the edges
    layer.putalpha(layer.getchannel("A").point(lambda a: a * 90 // 255))  # translucent: the image stays readable
    draw = ImageDraw.Draw(layer)
    strip = th + 2
    draw.rectangle((0, h - strip, w, h), fill=(0, 0, 0, 150))
    draw.text((font_size // 2, h - strip + 1), label, font=font, fill=(255, 255, 255, 230))
    return layer


def watermark_image(data: bytes, media_type: str, label: str) -> bytes:
    """A JPEG or PNG with the label drawn in; the same media type comes back."""
    fmt = IMAGE_TYPES.get(media_type)
    if fmt is None:
        raise WatermarkError(f"cannot watermark {media_type} (PNG and JPEG only)")
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except Exception as err:  # noqa: BLE001 - Pillow raises several kinds for bad bytes
        raise WatermarkError(f"not a readable {fmt} image: {err}") from err
    has_alpha = img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info
    base = img.convert("RGBA")
    marked = Image.alpha_composite(base, _overlay(base.size, label))
    out = io.BytesIO()
    if fmt == "PNG":
        from PIL.PngImagePlugin import PngInfo

        info = PngInfo()
        info.add_itxt("RadLoop-Watermark", label)
        (marked if has_alpha else marked.convert("RGB")).save(out, "PNG", pnginfo=info)
    else:
        marked.convert("RGB").save(out, "JPEG", quality=92, comment=label.encode("utf-8"))
    return out.getvalue()

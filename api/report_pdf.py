"""A report as a one-font PDF (PDF 1.4), written directly: no PDF library, no browser in the API.

Text uses the standard CJK font STSong-Light (Adobe-GB1, UniGB-UCS2-H), which every
PDF reader supplies, so Chinese text needs no embedded font. Lines wrap by width
(CJK full width, ASCII half width); pages are added as needed. The watermark label
is drawn diagonally, light grey, across every page and once in each page's footer.
"""
from __future__ import annotations

import math

PAGE_W, PAGE_H, MARGIN = 595, 842, 50  # A4 in points
_FONT = (b"<< /Type /Font /Subtype /Type0 /BaseFont /STSong-Light /Encoding /UniGB-UCS2-H "
         b"/DescendantFonts [4 0 R] >>")
_CID = (b"<< /Type /Font /Subtype /CIDFontType0 /BaseFont /STSong-Light "
        b"/CIDSystemInfo << /Registry (Adobe) /Ordering (GB1) /Supplement 2 >> /FontDescriptor 5 0 R "
        b"/DW 1000 /W [1 95 500] >>")
_DESCRIPTOR = (b"<< /Type /FontDescriptor /FontName /STSong-Light /Flags 6 /FontBBox [-25 -254 1000 880] "
               b"/ItalicAngle 0 /Ascent 880 /Descent -120 /CapHeight 880 /StemV 93 >>")


def _hex(text: str) -> str:
    return "<" + "".join(f"{ord(c):04X}" if ord(c) <= 0xFFFF else "003F" for c in text) + ">"


def _width(c: str) -> float:
    return 0.5 if ord(c) < 0x2E80 else 1.0


def wrap(text: str, size: float, width: float = PAGE_W - 2 * MARGIN) -> list[str]:
    out: list[str] = []
    for para in text.splitlines() or [""]:
        line, used = "", 0.0
        for c in para:
            w = _width(c) * size
            if used + w > width and line:
                out.append(line)
                line, used = "", 0.0
            line, used = line + c, used + w
        out.append(line)
    return out


def _watermark_ops(label: str) -> str:
    a = math.radians(30)
    cos, sin = math.cos(a), math.sin(a)
    ops = ["q 0.82 g BT /F1 14 Tf"]
    for y in range(-200, PAGE_H + 200, 150):
        for x in (-100, 250):
            ops.append(f"{cos:.4f} {sin:.4f} {-sin:.4f} {cos:.4f} {x} {y} Tm {_hex(label)} Tj")
    ops.append(f"1 0 0 1 {MARGIN} 25 Tm 0.4 g /F1 8 Tf {_hex(label)} Tj ET Q")
    return "\n".join(ops)


def render_pdf(blocks: list[tuple[str, float]], watermark: str) -> bytes:
    """`blocks` are (text, font size) paragraphs in order; every page carries `watermark`."""
    lines = [(ln, size) for text, size in blocks for ln in wrap(text, size) + [""]]
    pages: list[list[str]] = [[]]
    y = PAGE_H - MARGIN
    for text, size in lines:
        lead = size * 1.5
        if y - lead < MARGIN + 20:
            pages.append([])
            y = PAGE_H - MARGIN
        y -= lead
        if text:
            pages[-1].append(f"BT /F1 {size:g} Tf 1 0 0 1 {MARGIN} {y:.1f} Tm {_hex(text)} Tj ET")
    objects: dict[int, bytes] = {1: b"<< /Type /Catalog /Pages 2 0 R >>", 3: _FONT, 4: _CID, 5: _DESCRIPTOR}
    kids = []
    for i, ops in enumerate(pages):
        page_id, content_id = 6 + 2 * i, 7 + 2 * i
        stream = (_watermark_ops(watermark) + "\n" + "\n".join(ops)).encode("ascii")
        objects[content_id] = b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream"
        objects[page_id] = (b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] /Resources << /Font << /F1 3 0 R >> >> "
                            b"/Contents %d 0 R >>" % (PAGE_W, PAGE_H, content_id))
        kids.append(f"{page_id} 0 R")
    objects[2] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>".encode("ascii")
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    size = max(objects) + 1
    offsets = [0] * size
    for n in range(1, size):
        body = objects.get(n, b"null")
        offsets[n] = len(out)
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets[1:])
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (size, xref)
    return bytes(out)

"""Stored images rendered for people (PS3.18 rendered resources): 8-bit JPEG or PNG.

Greyscale images go through the modality LUT (rescale to Hounsfield units for CT)
and the VOI LUT or window stored in the object; without one the full range of
the frame is shown. MONOCHROME1 is inverted so that bright means dense in every
picture. Colour images are converted to RGB. Compressed transfer syntaxes are
decoded by pydicom's plugins (pylibjpeg-openjpeg, pyjpegls). The caller adds the
viewer's watermark (security.watermark): a rendered picture leaves the viewer.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.pixels import apply_modality_lut, apply_voi_lut, convert_color_space

RENDERED_TYPES = {"image/jpeg": "JPEG", "image/png": "PNG"}


class RenderError(Exception):
    """The object has no picture to render (no pixel data, or the frame does not exist)."""


def _frame(ds: Dataset, number: int) -> np.ndarray:
    if "PixelData" not in ds:
        raise RenderError("the object has no pixel data to render")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if not 1 <= number <= frames:
        raise RenderError(f"frames are numbered 1..{frames}")
    arr = ds.pixel_array
    return arr[number - 1] if frames > 1 else arr


def _to_8bit(values: np.ndarray) -> np.ndarray:
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        return np.zeros(values.shape, dtype=np.uint8)
    return ((values - lo) * (255.0 / (hi - lo))).clip(0, 255).astype(np.uint8)


def _first(value: object) -> float:
    """Window center/width may be multi-valued (several windows): the first is the default."""
    return float(value[0] if isinstance(value, (MultiValue, list, tuple)) else value)


def _window(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1 linear window onto 0..255."""
    width = max(width, 1.0)
    scaled = ((values - (center - 0.5)) / (width - 1.0) + 0.5) * 255.0
    return scaled.clip(0, 255).astype(np.uint8)


def pixels_for_display(ds: Dataset, frame: int = 1) -> np.ndarray:
    """The frame as 8-bit greyscale (H, W) or RGB (H, W, 3), as a viewer would show it."""
    arr = _frame(ds, frame)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    if int(ds.get("SamplesPerPixel", 1)) > 1:
        if photometric.startswith("YBR") and not ds.file_meta.TransferSyntaxUID.is_encapsulated:
            arr = convert_color_space(arr, photometric, "RGB")
        return arr.astype(np.uint8) if arr.dtype == np.uint8 else _to_8bit(arr.astype(np.float64))
    values = np.asarray(apply_modality_lut(arr, ds), dtype=np.float64)
    if "WindowCenter" in ds and "WindowWidth" in ds:
        grey = _window(values, _first(ds.WindowCenter), _first(ds.WindowWidth))
    elif "VOILUTSequence" in ds:
        grey = _to_8bit(np.asarray(apply_voi_lut(values, ds, index=0), dtype=np.float64))
    else:
        grey = _to_8bit(values)
    return 255 - grey if photometric == "MONOCHROME1" else grey


def render(path: Path, media_type: str, frame: int = 1, quality: int = 90) -> bytes:
    """The stored object at `path` as a JPEG or PNG picture of one frame."""
    fmt = RENDERED_TYPES.get(media_type)
    if fmt is None:
        raise RenderError(f"cannot render as {media_type} (image/jpeg or image/png)")
    ds = dcmread(path)
    pixels = pixels_for_display(ds, frame)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format=fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return out.getvalue()

"""Inline images (feature dtype "image"): PNG bytes in a parquet struct {bytes, path}, as LeRobot stores them."""

from __future__ import annotations

import io

import numpy as np


def encode_png(frame: np.ndarray, compress_level: int = 1) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(frame.squeeze(-1) if frame.shape[-1] == 1 else frame).save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def decode_png(data: bytes, source: str = "image") -> np.ndarray:
    """PNG/JPEG bytes -> (H, W, C) uint8."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            array = np.asarray(img.convert("RGB") if img.mode not in ("RGB", "L") else img)
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"cannot decode the image bytes of {source}: {e}") from e
    return array[..., None] if array.ndim == 2 else array

"""Image size from the file header only (Pillow opens lazily; no pixel data is decoded)."""

from __future__ import annotations

from pathlib import Path
from typing import IO

from PIL import Image, UnidentifiedImageError

__all__ = ['image_size']


def image_size(source: str | Path | IO[bytes]) -> tuple[int, int] | None:
    """``(width, height)`` as stored in the header, or ``None`` if it is not a readable image.

    The stored size is returned as is: an EXIF orientation tag is not applied, matching the
    pixel grid that annotation coordinates refer to in the file.
    """
    try:
        with Image.open(source) as im:
            w, h = im.size
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
        return None
    if w <= 0 or h <= 0:
        return None
    return int(w), int(h)

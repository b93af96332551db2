"""COCO run-length encoding of binary masks for the embedded server and the demo.

A thin wrapper over :mod:`synapse_sdk.formats.geometry`, which uses ``pycocotools.mask`` (the
reference codec): masks are ``(height, width)`` arrays; ``counts`` is the compressed string form
pycocotools writes (``{"size": [h, w], "counts": "..."}``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from synapse_sdk.formats.geometry import mask_to_rle, rle_compress, rle_to_mask

__all__ = ['decode', 'encode']


def encode(mask: npt.ArrayLike) -> dict[str, Any]:
    """Encode a binary ``(h, w)`` mask as compressed COCO RLE."""
    return mask_to_rle(np.asarray(mask))


def decode(rle: dict[str, Any]) -> npt.NDArray[np.uint8]:
    """Decode compressed (string) or uncompressed (list) COCO RLE into a ``(h, w)`` uint8 mask.

    Raises ``ValueError`` when the runs do not describe a mask of the given size.
    """
    return rle_to_mask(rle_compress(rle)).astype(np.uint8)

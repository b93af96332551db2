"""COCO run-length encoding of binary masks, in numpy (no pycocotools at runtime).

Masks are ``(height, width)`` arrays; runs are counted in column-major order starting with a run
of zeros, and ``counts`` is the compressed string form pycocotools writes (``{"size": [h, w],
"counts": "..."}``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ['counts_to_string', 'decode', 'encode', 'string_to_counts']


def counts_to_string(counts: list[int]) -> str:
    """Compress run lengths the way pycocotools' ``rleToString`` does."""
    out = []
    for i, count in enumerate(counts):
        x = int(count) - (int(counts[i - 2]) if i > 2 else 0)
        more = True
        while more:
            c = x & 0x1F
            x >>= 5  # arithmetic shift, as in the C original
            more = x != -1 if c & 0x10 else x != 0
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return ''.join(out)


def string_to_counts(text: str) -> list[int]:
    """Inverse of :func:`counts_to_string`."""
    counts: list[int] = []
    pos = 0
    while pos < len(text):
        x, k, more = 0, 0, True
        while more:
            c = ord(text[pos]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            pos += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def encode(mask: npt.ArrayLike) -> dict[str, Any]:
    """Encode a binary ``(h, w)`` mask as compressed COCO RLE."""
    arr = np.asarray(mask).astype(bool)
    if arr.ndim != 2:
        raise ValueError(f'mask must be 2-D, got shape {arr.shape}')
    h, w = arr.shape
    flat = arr.ravel(order='F').astype(np.int8)
    if flat.size == 0:
        return {'size': [h, w], 'counts': ''}
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate(([0], changes, [flat.size]))
    counts = np.diff(bounds).tolist()
    if flat[0]:
        counts.insert(0, 0)
    return {'size': [int(h), int(w)], 'counts': counts_to_string(counts)}


def decode(rle: dict[str, Any]) -> npt.NDArray[np.uint8]:
    """Decode compressed (string) or uncompressed (list) COCO RLE into a ``(h, w)`` uint8 mask."""
    h, w = (int(v) for v in rle['size'])
    counts = rle['counts']
    if isinstance(counts, bytes):
        counts = counts.decode('ascii')
    runs = string_to_counts(counts) if isinstance(counts, str) else [int(c) for c in counts]
    if sum(runs) != h * w:
        raise ValueError(f'RLE runs cover {sum(runs)} pixels, mask has {h * w}')
    values = np.arange(len(runs)) % 2
    flat = np.repeat(values.astype(np.uint8), runs)
    return flat.reshape((w, h)).T.copy()

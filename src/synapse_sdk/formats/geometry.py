"""Pure geometry helpers shared by the format converters.

Conventions (DESIGN section 3): coordinates are absolute pixels with the origin at the top-left
corner of the image, x to the right and y down. A box is ``[x, y, width, height]`` in that
continuous space (a box covering pixels 0..9 is ``[0, 0, 10, 10]``). ``rotation`` is in radians,
clockwise on screen (y points down) about the box centre.

Masks are COCO run-length encodings: ``{"size": [height, width], "counts": ...}`` with runs over
the column-major (Fortran order) flattened mask, starting with a run of zeros. ``counts`` is
either the compressed string form or a list of ints; both are handled here without pycocotools.

:func:`annotation_box` is the one helper that is not pure: it reports its conversions in an
:class:`~synapse_sdk.formats.base.ItemLog`, as the box-based formats (VOC, YOLO) need.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from synapse_sdk.formats.base import Unsupported

if TYPE_CHECKING:
    from synapse_sdk.formats.base import ItemLog

Point = tuple[float, float]


def rotated_corners(bbox: Sequence[float], rotation: float = 0.0) -> list[Point]:
    """Corners of a box rotated ``rotation`` radians clockwise about its centre.

    Order: the unrotated top-left, top-right, bottom-right, bottom-left corners, each rotated.
    """
    x, y, w, h = (float(v) for v in bbox[:4])
    cx, cy = x + w / 2, y + h / 2
    cos, sin = math.cos(rotation), math.sin(rotation)
    corners = []
    for dx, dy in ((-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)):
        corners.append((cx + dx * cos - dy * sin, cy + dx * sin + dy * cos))
    return corners


def box_from_corners(corners: Sequence[Sequence[float]]) -> tuple[list[float], float]:
    """Inverse of :func:`rotated_corners`: ``([x, y, w, h], rotation)`` from four corners.

    The corners must be in :func:`rotated_corners` order (a rectangle). ``rotation`` is
    normalised to ``(-pi, pi]``.
    """
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = ((float(p[0]), float(p[1])) for p in corners[:4])
    w = math.hypot(x1 - x0, y1 - y0)
    h = math.hypot(x2 - x1, y2 - y1)
    rotation = math.atan2(y1 - y0, x1 - x0)
    cx, cy = (x0 + x1 + x2 + x3) / 4, (y0 + y1 + y2 + y3) / 4
    return [cx - w / 2, cy - h / 2, w, h], rotation


def enclosing_box(points: Iterable[Sequence[float]]) -> list[float]:
    """Smallest axis-aligned ``[x, y, w, h]`` containing all ``points``."""
    pts = [(float(p[0]), float(p[1])) for p in points]
    if not pts:
        raise ValueError('no points')
    xs = [p[0] for p in pts]
    ys = [p[1] for p in pts]
    return [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]


def rotated_enclosing_box(bbox: Sequence[float], rotation: float = 0.0) -> list[float]:
    """The axis-aligned box enclosing a rotated box (the box itself when not rotated)."""
    if not rotation:
        return [float(v) for v in bbox[:4]]
    return enclosing_box(rotated_corners(bbox, rotation))


def annotation_box(
    ann: dict[str, Any], log: ItemLog, target: str, *, report: bool = True
) -> list[float]:
    """The axis-aligned ``[x, y, w, h]`` of a box, polygon, mask or keypoint annotation.

    A rotated box becomes its enclosing box (reported as a conversion); another tool becomes its
    box, reported unless ``report`` is false (e.g. the box a pose line needs). A keypoint
    annotation without ``bbox`` gets the box of its labelled points. ``target`` names the
    format in the reasons (``'voc'``, ``'yolo detect'``); other tools raise :class:`Unsupported`.
    """
    tool = ann.get('tool')
    if tool == 'bounding_box':
        rotation = float(ann.get('rotation') or 0.0)
        if rotation:
            log.convert(f'rotated box -> enclosing box ({target})')
        return rotated_enclosing_box([float(v) for v in ann['bbox']], rotation)
    if tool == 'polygon':
        box = enclosing_box(ann['points'])
    elif tool == 'segmentation':
        box = rle_bbox(ann['mask'])
    elif tool == 'keypoint':
        box = [float(v) for v in ann['bbox']] if ann.get('bbox') else _keypoint_box(ann)
    else:
        raise Unsupported(f'{tool} cannot be expressed in {target}')
    if report:
        log.convert(f'{tool} -> box ({target})')
    return box


def _keypoint_box(ann: dict[str, Any]) -> list[float]:
    labelled = [kp for kp in ann.get('keypoints') or () if len(kp) < 3 or kp[2]]
    if not labelled:
        raise Unsupported('keypoint annotation with no box and no labelled point')
    return enclosing_box(labelled)


def polygon_area(points: Sequence[Sequence[float]]) -> float:
    """Area of a simple polygon by the shoelace formula (orientation does not matter)."""
    n = len(points)
    if n < 3:
        return 0.0
    s = 0.0
    for i in range(n):
        x1, y1 = points[i][0], points[i][1]
        x2, y2 = points[(i + 1) % n][0], points[(i + 1) % n][1]
        s += x1 * y2 - x2 * y1
    return abs(s) / 2.0


def clamp_box(
    bbox: Sequence[float], width: float, height: float, tolerance: float = 0.0
) -> tuple[list[float], bool]:
    """Clip ``[x, y, w, h]`` to the image. Returns the clipped box and whether it changed.

    A box entirely outside the image comes back with zero width or height. Edges out by at most
    ``tolerance`` pixels (rounding noise of an earlier export) are left as they are.
    """
    x, y, w, h = (float(v) for v in bbox[:4])
    inside = -tolerance <= min(x, y) and x + w <= width + tolerance and y + h <= height + tolerance
    if tolerance and inside:
        return [x, y, w, h], False
    x1, y1 = min(max(x, 0.0), width), min(max(y, 0.0), height)
    x2, y2 = min(max(x + w, 0.0), width), min(max(y + h, 0.0), height)
    out = [x1, y1, max(x2 - x1, 0.0), max(y2 - y1, 0.0)]
    changed = (x1, y1, x2, y2) != (x, y, x + w, y + h)
    return out, changed


def clamp_points(
    points: Iterable[Sequence[float]], width: float, height: float, tolerance: float = 0.0
) -> tuple[list[Point], bool]:
    """Clip each point to ``[0, width] x [0, height]``; returns the points and whether any moved.

    Points out by at most ``tolerance`` pixels are left as they are.
    """
    out: list[Point] = []
    changed = False
    for p in points:
        x, y = float(p[0]), float(p[1])
        if -tolerance <= x <= width + tolerance and -tolerance <= y <= height + tolerance:
            out.append((x, y))
            continue
        cx, cy = min(max(x, 0.0), width), min(max(y, 0.0), height)
        changed = changed or (cx, cy) != (x, y)
        out.append((cx, cy))
    return out, changed


# --- COCO run-length encoding -------------------------------------------------------------


def rle_decode_counts(counts: str | bytes) -> list[int]:
    """Decode COCO's compressed RLE string (LEB128-like, 6 bits per char, deltas) to run lengths."""
    s = counts.encode('ascii') if isinstance(counts, str) else counts
    cnts: list[int] = []
    p = 0
    while p < len(s):
        x = 0
        k = 0
        more = True
        while more:
            c = s[p] - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(cnts) > 2:
            x += cnts[-2]
        cnts.append(x)
    return cnts


def rle_encode_counts(cnts: Sequence[int]) -> str:
    """Encode run lengths as COCO's compressed RLE string (inverse of :func:`rle_decode_counts`)."""
    out = []
    for i, value in enumerate(cnts):
        x = int(value)
        if i > 2:
            x -= int(cnts[i - 2])
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = x != -1 if c & 0x10 else x != 0
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return ''.join(out)


def rle_counts(rle: dict[str, Any]) -> list[int]:
    """Run lengths of an RLE dict whose ``counts`` is a string or a list."""
    counts = rle['counts']
    if isinstance(counts, str | bytes):
        return rle_decode_counts(counts)
    return [int(c) for c in counts]


def rle_compress(rle: dict[str, Any]) -> dict[str, Any]:
    """The RLE with ``counts`` in compressed string form; ``size`` is kept as ``[h, w]``."""
    h, w = (int(v) for v in rle['size'])
    counts = rle['counts']
    if isinstance(counts, bytes):
        counts = counts.decode('ascii')
    elif not isinstance(counts, str):
        counts = rle_encode_counts([int(c) for c in counts])
    return {'size': [h, w], 'counts': counts}


def rle_area(rle: dict[str, Any]) -> int:
    """Number of foreground pixels (the sum of the odd runs)."""
    return int(sum(rle_counts(rle)[1::2]))


def rle_bbox(rle: dict[str, Any]) -> list[float]:
    """Tight ``[x, y, w, h]`` around the foreground, in pixels; zeros for an empty mask."""
    h = int(rle['size'][0])
    cnts = rle_counts(rle)
    pos = 0
    xmin = ymin = math.inf
    xmax = ymax = -math.inf
    for i, run in enumerate(cnts):
        if i % 2 == 1 and run > 0:
            start, end = pos, pos + run - 1
            c0, c1 = start // h, end // h
            xmin, xmax = min(xmin, c0), max(xmax, c1)
            if c0 == c1:
                ymin, ymax = min(ymin, start % h), max(ymax, end % h)
            else:
                ymin, ymax = 0, h - 1
        pos += run
    if xmin == math.inf:
        return [0.0, 0.0, 0.0, 0.0]
    return [float(xmin), float(ymin), float(xmax - xmin + 1), float(ymax - ymin + 1)]


def mask_to_rle(mask: np.ndarray) -> dict[str, Any]:
    """Compressed RLE of a 2-d boolean mask (``mask[y, x]``)."""
    h, w = mask.shape
    flat = np.asarray(mask, dtype=bool).flatten(order='F').astype(np.int8)
    changes = np.flatnonzero(np.diff(np.concatenate(([0], flat, [0]))) != 0)
    bounds = np.concatenate(([0], changes, [flat.size]))
    runs = np.diff(bounds)
    runs = runs[: len(runs) - 1] if len(runs) > 1 and runs[-1] == 0 else runs
    return {'size': [int(h), int(w)], 'counts': rle_encode_counts([int(r) for r in runs])}


def rle_to_mask(rle: dict[str, Any]) -> np.ndarray:
    """Decode an RLE to a boolean ``(height, width)`` array."""
    h, w = (int(v) for v in rle['size'])
    flat = np.zeros(h * w, dtype=bool)
    pos = 0
    for i, run in enumerate(rle_counts(rle)):
        if i % 2 == 1:
            flat[pos : pos + run] = True
        pos += run
    return flat.reshape((w, h)).T

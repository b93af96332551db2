"""Geometry shared by the format converters: numbers checked, boxes, polygons, masks.

Conventions (DESIGN section 3): coordinates are absolute pixels with the origin at the top-left
corner of the image, x to the right and y down. A box is ``[x, y, width, height]`` in that
continuous space (a box covering pixels 0..9 is ``[0, 0, 10, 10]``). ``rotation`` is in radians,
clockwise on screen (y points down) about the box centre.

Numbers: every coordinate, size and area is checked before it is used (:func:`box4`,
:func:`points2`, :func:`keypoints3`, :func:`finite`): a value that is not an int or a float
(a string, ``None``, a bool), not finite (NaN, inf) or beyond +-2**31 pixels raises
:class:`~synapse_sdk.formats.base.Unsupported` with a reason that names the field, so the
annotation is skipped and counted instead of being written as ``nan``, ``null`` or garbage.

Masks are COCO run-length encodings ``{"size": [height, width], "counts": ...}`` (runs over the
column-major flattened mask, starting with a run of zeros); ``counts`` is the compressed string
or a list of ints. Encoding, decoding, area and box go through ``pycocotools.mask``, the
reference. Its C decoder trusts the runs it is given (runs that overrun the mask are written past
the end of the buffer), so :func:`check_mask` reads the runs first and refuses any mask whose
runs are negative, malformed or do not cover exactly ``height * width`` pixels.

Masks become polygons the way Datumaro and Ultralytics do it (:func:`mask_polygons`): OpenCV's
``findContours`` on the decoded mask, one polygon per connected region, its outer contour; holes
are filled (a polygon has none). Contour vertices are pixel indices, the convention those tools
rasterise polygons with (``cv2.fillPoly`` of the contour gives the region back exactly).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from pycocotools import mask as mask_utils

from synapse_sdk.formats.base import Unsupported

if TYPE_CHECKING:
    from synapse_sdk.formats.base import ItemLog

Point = tuple[float, float]
_T = TypeVar('_T')

#: Largest absolute coordinate accepted (pixels); beyond it a value is not a position in an image.
LIMIT = float(1 << 31)
_NUMBER = (int, float)


# --- numbers ------------------------------------------------------------------------------


def finite(value: Any, what: str) -> float:
    """``value`` as a float if it is a real finite number within +-:data:`LIMIT`."""
    t = type(value)
    if (t is float or t is int or (isinstance(value, _NUMBER) and t is not bool)) and (
        -LIMIT <= value <= LIMIT
    ):
        return float(value)
    raise Unsupported(f'{what} is not a finite number')


def box4(values: Any, what: str = 'bbox') -> tuple[float, float, float, float]:
    """``[x, y, w, h]`` as four checked floats (the fast path of every box-based format)."""
    if type(values) is not list and not isinstance(values, list | tuple):
        raise Unsupported(f'{what} is not 4 finite numbers')
    if len(values) < 4:
        raise Unsupported(f'{what} is not 4 finite numbers')
    x, y, w, h = values[0], values[1], values[2], values[3]
    for v in (x, y, w, h):
        t = type(v)
        if not (t is float or t is int or (isinstance(v, _NUMBER) and t is not bool)):
            raise Unsupported(f'{what} is not 4 finite numbers')
        if not -LIMIT <= v <= LIMIT:
            raise Unsupported(f'{what} is not 4 finite numbers')
    return float(x), float(y), float(w), float(h)


def sized_box(values: Any) -> tuple[float, float, float, float]:
    """:func:`box4` of a box with an area (a box of zero or negative width or height is not
    one: :class:`Unsupported`)."""
    box = box4(values)
    if box[2] <= 0 or box[3] <= 0:
        raise Unsupported('bounding_box with zero or negative size')
    return box


def points2(points: Any, what: str = 'points') -> list[Point]:
    """``[[x, y], ...]`` as checked float pairs."""
    if not isinstance(points, list | tuple):
        raise Unsupported(f'{what} are not [x, y] pairs of finite numbers')
    out = []
    try:
        for p in points:
            out.append((finite(p[0], what), finite(p[1], what)))
    except (TypeError, IndexError, KeyError):
        raise Unsupported(f'{what} are not [x, y] pairs of finite numbers') from None
    except Unsupported:
        raise Unsupported(f'{what} are not [x, y] pairs of finite numbers') from None
    return out


def keypoints3(keypoints: Any) -> list[tuple[float, float, int]]:
    """``[[x, y, v], ...]`` checked: finite coordinates, ``v`` 0, 1 or 2 (2 when absent)."""
    if not isinstance(keypoints, list | tuple):
        raise Unsupported('keypoints are not [x, y, v] triplets of finite numbers')
    out = []
    for kp in keypoints:
        try:
            x, y = finite(kp[0], 'keypoints'), finite(kp[1], 'keypoints')
            v: Any = kp[2] if len(kp) > 2 else 2
        except (TypeError, IndexError, KeyError, Unsupported):
            raise Unsupported('keypoints are not [x, y, v] triplets of finite numbers') from None
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if type(v) is not int or v not in (0, 1, 2):
            raise Unsupported('keypoint visibility is not 0, 1 or 2')
        out.append((x, y, v))
    return out


def fmt_fixed(value: float, precision: int) -> str:
    """Fixed-precision decimal; never ``-0.000``."""
    text = f'{value:.{precision}f}'
    if text[0] == '-' and not text.strip('-0.'):
        return text[1:]
    return text


def fmt_exact(value: float) -> str:
    """The shortest text that reads back as ``value``: ``12`` for 12.0, ``12.5``, ``0.1``."""
    if value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return repr(value)


# --- boxes and polygons -------------------------------------------------------------------


def rotated_corners(bbox: Sequence[float], rotation: float = 0.0) -> list[Point]:
    """Corners of a box rotated ``rotation`` radians clockwise about its centre.

    Order: the unrotated top-left, top-right, bottom-right, bottom-left corners, each rotated.
    """
    x, y, w, h = (float(v) for v in bbox[:4])
    if not rotation:
        return [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]
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
    it = iter(points)
    try:
        first = next(it)
    except StopIteration:
        raise ValueError('no points') from None
    x0 = x1 = float(first[0])
    y0 = y1 = float(first[1])
    for p in it:
        x, y = p[0], p[1]
        if x < x0:
            x0 = x
        elif x > x1:
            x1 = x
        if y < y0:
            y0 = y
        elif y > y1:
            y1 = y
    return [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]


def plain_points_box(
    points: Any, width: float, height: float
) -> tuple[float, float, float, float] | None:
    """The enclosing ``(x, y, w, h)`` of a polygon's points in the common case, or ``None``.

    Common: a list of three or more ``[x, y]`` lists of plain ints or floats, every point
    inside the image, and a box of positive size that ``x + w`` / ``y + h`` keep inside it.
    Then the box is the one :func:`annotation_box` computes (:func:`points2` floats through
    :func:`enclosing_box`) and needs no clamping; anything else (a point outside, NaN, a
    string, too few points) is ``None``, for the checked path to report.
    """
    if type(points) is not list or len(points) < 3:
        return None
    for p in points:
        if type(p) is not list or len(p) < 2:
            return None
        px, py = p[0], p[1]
        if type(px) not in _PLAIN_NUMBER or type(py) not in _PLAIN_NUMBER:
            return None
        if not (0.0 <= px <= width and 0.0 <= py <= height):  # NaN is not
            return None
    x0, y0, w, h = enclosing_box(points)
    if not (w > 0.0 and h > 0.0 and x0 + w <= width and y0 + h <= height):
        return None
    return x0, y0, w, h


_PLAIN_NUMBER = frozenset((int, float))


def min_area_box(points: Sequence[Sequence[float]]) -> tuple[list[float], float]:
    """The minimum-area rotated rectangle around ``points`` as ``([x, y, w, h], rotation)``.

    OpenCV's ``minAreaRect`` finds the orientation; the extent along it is then measured in
    float64 (OpenCV works in float32), so an axis-aligned input gives its exact box. The
    rotation is normalised to ``[-pi/4, pi/4)``, which makes the result unique.
    """
    import cv2

    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(pts) == 0:
        raise ValueError('no points')
    angle = math.radians(cv2.minAreaRect(pts.astype(np.float32))[2])
    angle = (angle + math.pi / 4) % (math.pi / 2) - math.pi / 4
    if abs(angle) < 1e-9:
        angle = 0.0
    cos, sin = math.cos(angle), math.sin(angle)
    u = pts[:, 0] * cos + pts[:, 1] * sin
    v = pts[:, 1] * cos - pts[:, 0] * sin
    u0, u1, v0, v1 = float(u.min()), float(u.max()), float(v.min()), float(v.max())
    uc, vc = (u0 + u1) / 2, (v0 + v1) / 2
    w, h = u1 - u0, v1 - v0
    cx, cy = uc * cos - vc * sin, uc * sin + vc * cos
    return [cx - w / 2, cy - h / 2, w, h], angle


def polygon_area(points: Sequence[Sequence[float]]) -> float:
    """Area of a simple polygon by the shoelace formula (orientation does not matter)."""
    n = len(points)
    if n < 3:
        return 0.0
    s = 0.0
    px, py = points[-1][0], points[-1][1]
    for p in points:
        x, y = p[0], p[1]
        s += px * y - x * py
        px, py = x, y
    return abs(s) / 2.0


def clamp_box(
    bbox: Sequence[float], width: float, height: float, tolerance: float = 0.0
) -> tuple[list[float], bool]:
    """Clip ``[x, y, w, h]`` to the image. Returns the clipped box and whether it changed.

    A box entirely outside the image comes back with zero width or height. Edges out by at most
    ``tolerance`` pixels (rounding noise of an earlier export) are left as they are.
    """
    x, y, w, h = bbox[0], bbox[1], bbox[2], bbox[3]
    x2, y2 = x + w, y + h
    if x >= 0.0 and y >= 0.0 and x2 <= width and y2 <= height:
        return [x, y, w, h], False
    tol = tolerance
    if tol and -tol <= min(x, y) and x2 <= width + tol and y2 <= height + tol:
        return [x, y, w, h], False
    x1, y1 = min(max(x, 0.0), width), min(max(y, 0.0), height)
    cx2, cy2 = min(max(x2, 0.0), width), min(max(y2, 0.0), height)
    out = [x1, y1, max(cx2 - x1, 0.0), max(cy2 - y1, 0.0)]
    return out, (x1, y1, cx2, cy2) != (x, y, x2, y2)


def clamp_points(
    points: Iterable[Sequence[float]], width: float, height: float, tolerance: float = 0.0
) -> tuple[list[Point], bool]:
    """Clip each point to ``[0, width] x [0, height]``; returns the points and whether any moved.

    Points out by at most ``tolerance`` pixels are left as they are.
    """
    out: list[Point] = []
    changed = False
    lo_x, lo_y, hi_x, hi_y = -tolerance, -tolerance, width + tolerance, height + tolerance
    for p in points:
        x, y = float(p[0]), float(p[1])
        if lo_x <= x <= hi_x and lo_y <= y <= hi_y:
            out.append((x, y))
            continue
        cx, cy = min(max(x, 0.0), width), min(max(y, 0.0), height)
        changed = changed or (cx, cy) != (x, y)
        out.append((cx, cy))
    return out, changed


def clamp_reported(clamped: tuple[_T, bool], log: ItemLog) -> _T:
    """What :func:`clamp_box` or :func:`clamp_points` returned, a clip counted in ``log``:
    ``box = clamp_reported(clamp_box(bbox, w, h), log)``."""
    value, changed = clamped
    if changed:
        log.clamp()
    return value


def clamped_polygon(
    ann: dict[str, Any], width: float, height: float, log: ItemLog
) -> tuple[list[Point], float]:
    """A polygon annotation's points clipped to the image (reported) and its area.

    Raises :class:`Unsupported` for points that are not finite pairs, fewer than 3 points, or
    no area left inside the image.
    """
    points = points2(ann.get('points'))
    if len(points) < 3:
        raise Unsupported('polygon with fewer than 3 points')
    points = clamp_reported(clamp_points(points, width, height), log)
    area = polygon_area(points)
    if area <= 0:
        raise Unsupported('polygon with zero area')
    return points, area


def named_keypoints(
    ann: dict[str, Any], names: Sequence[str] | None
) -> list[tuple[str, float, float, int]]:
    """A keypoint annotation's points with their configured names: ``(name, x, y, v)``.

    ``v`` is 2 when a point has none. Raises :class:`Unsupported` when the class names no
    keypoints, the count differs from the names, or a point is not finite with ``v`` 0, 1 or 2.
    """
    if not names:
        raise Unsupported('keypoint class has no keypoint names in the configuration')
    kps = list(ann.get('keypoints') or [])
    if len(kps) != len(names):
        raise Unsupported(f'{len(kps)} keypoints, the configuration names {len(names)}')
    out = []
    for name, kp in zip(names, kps, strict=True):
        x, y = float(kp[0]), float(kp[1])
        v = int(kp[2]) if len(kp) > 2 else 2
        if v not in (0, 1, 2) or not (math.isfinite(x) and math.isfinite(y)):
            raise Unsupported(f'keypoint ({x}, {y}, {v}) is not a point with v 0, 1 or 2')
        out.append((name, x, y, v))
    return out


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
        box = box4(ann.get('bbox'))
        rotation = ann.get('rotation')
        if rotation:
            rotation = finite(rotation, 'rotation')
            if rotation % (2 * math.pi):
                log.convert(f'rotated box -> enclosing box ({target})')
                return enclosing_box(rotated_corners(box, rotation))
        return list(box)
    if tool == 'polygon':
        points = points2(ann.get('points'))
        if len(points) < 3:
            raise Unsupported('polygon with fewer than 3 points')
        out = enclosing_box(points)
    elif tool == 'segmentation':
        out = rle_bbox(check_mask(ann.get('mask')))
        if out[2] <= 0 or out[3] <= 0:
            raise Unsupported('empty mask')
    elif tool == 'keypoint':
        out = list(box4(ann['bbox'])) if ann.get('bbox') else _keypoint_box(ann)
    else:
        raise Unsupported(f'{tool} cannot be expressed in {target}')
    if report:
        log.convert(f'{tool} -> box ({target})')
    return out


def _keypoint_box(ann: dict[str, Any]) -> list[float]:
    labelled = [(x, y) for x, y, v in keypoints3(ann.get('keypoints') or []) if v]
    if not labelled:
        raise Unsupported('keypoint annotation with no box and no labelled point')
    return enclosing_box(labelled)


# --- COCO run-length encoding (pycocotools) -----------------------------------------------

_MAX_PIXELS = (1 << 32) - 1  # pycocotools counts runs in 32-bit unsigned ints


def _string_runs(counts: bytes) -> list[int]:
    """Run lengths of a compressed ``counts`` string, read to check them before pycocotools
    decodes (see the module docstring); raises ``ValueError`` on malformed text."""
    runs: list[int] = []
    p, n = 0, len(counts)
    while p < n:
        x = k = 0
        more = True
        while more:
            if p >= n:
                raise ValueError('RLE counts string ends inside a number')
            c = counts[p] - 48
            if not 0 <= c < 64:
                raise ValueError(f'RLE counts has an invalid character {chr(counts[p])!r}')
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(runs) > 2:
            x += runs[-2]
        runs.append(x)
    return runs


def check_mask(mask: Any, image_size: tuple[int, int] | None = None) -> dict[str, Any]:
    """A valid RLE in compressed form (``counts`` a str), or :class:`Unsupported` saying why.

    ``image_size`` is ``(width, height)``; when given the mask must have that size.
    """
    if not isinstance(mask, dict) or 'counts' not in mask or 'size' not in mask:
        raise Unsupported('segmentation without an RLE mask')
    size = mask['size']
    if (
        not isinstance(size, list | tuple)
        or len(size) != 2
        or not all(type(v) is int and v > 0 for v in size)
        or size[0] * size[1] > _MAX_PIXELS
    ):
        raise Unsupported('mask size is not [height, width] in positive whole pixels')
    h, w = int(size[0]), int(size[1])
    if image_size is not None and (w, h) != tuple(image_size):
        raise Unsupported('mask size differs from the image size')
    counts = mask['counts']
    if isinstance(counts, str):
        try:
            counts = counts.encode('ascii')
        except UnicodeEncodeError:
            raise Unsupported('mask counts are invalid (not ASCII)') from None
    if isinstance(counts, bytes):
        try:
            runs = _string_runs(counts)
        except ValueError:
            raise Unsupported('mask counts are invalid (malformed RLE string)') from None
        _check_runs(runs, h * w)
        return {'size': [h, w], 'counts': counts.decode('ascii')}
    if not isinstance(counts, list | tuple) or not all(
        type(c) is int or (isinstance(c, int) and not isinstance(c, bool)) for c in counts
    ):
        raise Unsupported('mask counts are invalid (not a string or a list of integers)')
    _check_runs(counts, h * w)
    rle = mask_utils.frPyObjects({'size': [h, w], 'counts': [int(c) for c in counts]}, h, w)
    return {'size': [h, w], 'counts': rle['counts'].decode('ascii')}


def _check_runs(runs: Sequence[int], pixels: int) -> None:
    if any(r < 0 or r > _MAX_PIXELS for r in runs):
        raise Unsupported('mask counts are invalid (a negative or oversized run)')
    if sum(runs) != pixels:
        raise Unsupported('mask counts are invalid (runs do not cover the mask)')


def rle_counts(rle: dict[str, Any]) -> list[int]:
    """Run lengths of a checked RLE (for readers that need them; pycocotools does the rest)."""
    counts = check_mask(rle)['counts']
    return _string_runs(counts.encode('ascii'))


def _rle(rle: dict[str, Any]) -> dict[str, Any]:
    """The form pycocotools takes (bytes counts) of a checked RLE."""
    counts = rle['counts']
    return {
        'size': rle['size'],
        'counts': counts.encode('ascii') if isinstance(counts, str) else counts,
    }


def rle_compress(rle: dict[str, Any]) -> dict[str, Any]:
    """The checked RLE with ``counts`` in compressed string form (``ValueError`` if invalid)."""
    try:
        return check_mask(rle)
    except Unsupported as exc:
        raise ValueError(str(exc)) from None


def rle_area(rle: dict[str, Any]) -> int:
    """Number of foreground pixels of a checked RLE."""
    return int(mask_utils.area(_rle(rle)))


def rle_bbox(rle: dict[str, Any]) -> list[float]:
    """Tight ``[x, y, w, h]`` around the foreground of a checked RLE; zeros when empty."""
    return [float(v) for v in mask_utils.toBbox(_rle(rle))]


def mask_to_rle(mask: np.ndarray) -> dict[str, Any]:
    """Compressed RLE of a 2-d mask (``mask[y, x]``, any dtype; nonzero is foreground)."""
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise ValueError(f'mask must be 2-D, got shape {arr.shape}')
    rle = mask_utils.encode(np.asfortranarray(arr.astype(bool, copy=False), dtype=np.uint8))
    return {'size': [int(v) for v in rle['size']], 'counts': rle['counts'].decode('ascii')}


def rle_to_mask(rle: dict[str, Any]) -> np.ndarray:
    """Decode a checked RLE to a boolean ``(height, width)`` array."""
    return np.asarray(mask_utils.decode(_rle(rle)), dtype=bool)


def rle_crop(rle: dict[str, Any]) -> tuple[np.ndarray, int, int, int, int]:
    """``(mask, x, y, w, h)``: a checked RLE decoded and cropped to its tight box (whole
    pixels), for formats that store a mask within its box (CVAT, LabelMe).
    :class:`Unsupported` when the mask is empty."""
    x, y, w, h = (int(v) for v in rle_bbox(rle))
    if w <= 0 or h <= 0:
        raise Unsupported('empty mask')
    return rle_to_mask(rle)[y : y + h, x : x + w], x, y, w, h


def mask_polygons(rle: dict[str, Any]) -> tuple[list[list[Point]], int, int]:
    """Outer contours of the connected regions of a checked mask, largest region first.

    Returns ``(polygons, holes, tiny)``: the polygons (vertices are pixel indices, see the
    module docstring), how many holes were filled, and how many regions were too small for a
    polygon (fewer than 3 contour vertices: a pixel or a one-pixel line).
    """
    import cv2

    m = np.ascontiguousarray(mask_utils.decode(_rle(rle)))
    contours, hierarchy = cv2.findContours(m, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    polygons: list[tuple[float, list[Point]]] = []
    holes = tiny = 0
    for i, contour in enumerate(contours):
        if hierarchy[0][i][3] != -1:  # has a parent: a hole's contour
            holes += 1
            continue
        pts = contour.reshape(-1, 2)
        if len(pts) < 3:
            tiny += 1
            continue
        points = [(float(x), float(y)) for x, y in pts]
        polygons.append((-cv2.contourArea(contour), points))
    polygons.sort(key=lambda p: p[0])  # stable: equal areas keep OpenCV's order
    return [p for _, p in polygons], holes, tiny


def mask_pixel_corners(rle: dict[str, Any]) -> np.ndarray:
    """Corners of the boundary pixels of a checked mask (``N x 2``): the rotated rectangle
    around them covers every foreground pixel entirely, as a mask's box does."""
    import cv2

    m = np.ascontiguousarray(mask_utils.decode(_rle(rle)))
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        raise Unsupported('empty mask')
    pts = np.concatenate([c.reshape(-1, 2) for c in contours]).astype(np.float64)
    offsets = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=np.float64)
    return (pts[:, None, :] + offsets[None, :, :]).reshape(-1, 2)


def check_numbers(ann: dict[str, Any], image_size: tuple[int, int] | None = None) -> None:
    """Check every number of an annotation that is there (``bbox``, ``rotation``, ``area``,
    ``points``, ``keypoints``, ``mask``): formats that write the document as it is (dm, CSV)
    must still never write NaN, inf, a string where a number belongs, or an invalid mask."""
    bbox = ann.get('bbox')
    if bbox is not None and bbox != []:
        box4(bbox)
    if ann.get('rotation') is not None:
        finite(ann['rotation'], 'rotation')
    if ann.get('area') is not None and finite(ann['area'], 'area') < 0:
        raise Unsupported('area is not a finite number')
    if ann.get('points') is not None:
        points2(ann['points'])
    if ann.get('keypoints') is not None:
        keypoints3(ann['keypoints'])
    if ann.get('mask') is not None:
        check_mask(ann['mask'], image_size)

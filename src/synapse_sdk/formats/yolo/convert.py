"""Pure conversions between annotation documents and Ultralytics YOLO label lines.

Every coordinate is normalised by the image size (x by width, y by height), written with a
fixed number of decimals (``precision``), and clamped to ``[0, 1]`` (each clamp is reported).

Per task, one line per annotation:

- ``detect``:  ``cls cx cy w h`` (box centre and size). Rotated boxes become their enclosing
  box; polygons, masks and keypoint annotations become their box (each reported as converted);
- ``segment``: ``cls x1 y1 x2 y2 ...`` polygon. Boxes become their (true) four corners;
- ``pose``:    ``cls cx cy w h x1 y1 v1 ...`` with ``kpt_shape = [K, 3]``; ``v`` is 0 (not
  labelled, written ``0 0 0``), 1 (hidden) or 2 (visible). Classes with fewer than K keypoints
  are padded with unlabelled points;
- ``obb``:     ``cls x1 y1 x2 y2 x3 y3 x4 y4``, the true corners of the rotated box (top-left,
  top-right, bottom-right, bottom-left before rotation), so the rotation survives.

``cls`` is the 0-based index in the class map. Tools a task cannot express raise
:class:`Unsupported` with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from synapse_sdk.formats.base import ItemLog, Unsupported
from synapse_sdk.formats.geometry import (
    annotation_box,
    box_from_corners,
    clamp_box,
    clamp_points,
    enclosing_box,
    polygon_area,
    rotated_corners,
)

__all__ = ['TASKS', 'annotation_to_yolo', 'fmt', 'yolo_to_annotation']

TASKS = ('detect', 'segment', 'pose', 'obb')
_SKIPPED = ('polyline', 'classification')


def fmt(value: float, precision: int) -> str:
    """Fixed-precision decimal; never ``-0.000``."""
    text = f'{value:.{precision}f}'
    return text[1:] if text.startswith('-') and float(text) == 0 else text


def _box_of(ann: dict[str, Any], task: str, log: ItemLog) -> list[float]:
    """The axis-aligned box; a pose line's box is part of the format, not a conversion."""
    return annotation_box(ann, log, f'yolo {task}', report=task != 'pose')


def _tolerance(w: int, h: int, precision: int) -> float:
    """One unit of the last written digit, in pixels: overshoot below it is rounding noise
    (e.g. a box read back from an earlier export), not geometry outside the image."""
    return max(w, h) * 10.0**-precision


def _clamped_box(box: list[float], w: int, h: int, log: ItemLog, tol: float) -> list[float]:
    box, changed = clamp_box(box, w, h, tol)
    if box[2] <= 0 or box[3] <= 0:
        raise Unsupported('box outside the image or of zero size')
    if changed:
        log.clamp()
    return box


def _points(points: Sequence[Sequence[float]], w: int, h: int, p: int, log: ItemLog) -> list[str]:
    pts, changed = clamp_points(points, w, h, _tolerance(w, h, p))
    if changed:
        log.clamp()
    return [fmt(c, p) for x, y in pts for c in (x / w, y / h)]


def annotation_to_yolo(
    ann: dict[str, Any],
    *,
    class_index: int,
    image_size: tuple[int, int],
    task: str = 'detect',
    precision: int = 6,
    kpt_count: int = 0,
    log: ItemLog | None = None,
) -> str:
    """One label line (without newline) for ``ann``; ``kpt_count`` is K of ``kpt_shape``."""
    log = log or ItemLog()
    tool = ann.get('tool')
    if tool in _SKIPPED or tool not in ('bounding_box', 'polygon', 'segmentation', 'keypoint'):
        raise Unsupported(f'{tool} cannot be expressed in yolo {task}')
    w, h = image_size
    p = precision
    if task == 'detect':
        x, y, bw, bh = _clamped_box(_box_of(ann, task, log), w, h, log, _tolerance(w, h, p))
        values = [(x + bw / 2) / w, (y + bh / 2) / h, bw / w, bh / h]
        return ' '.join([str(class_index), *(fmt(v, p) for v in values)])
    if task == 'segment':
        if tool == 'polygon':
            points = ann['points']
            if len(points) < 3 or polygon_area(points) <= 0:
                raise Unsupported('polygon with fewer than 3 points or zero area')
        elif tool == 'bounding_box':
            points = rotated_corners(ann['bbox'], float(ann.get('rotation') or 0.0))
            log.convert('bounding_box -> polygon (yolo segment)')
        else:
            raise Unsupported(f'{tool} cannot be expressed in yolo segment')
        return ' '.join([str(class_index), *_points(points, w, h, p, log)])
    if task == 'obb':
        if tool == 'bounding_box':
            corners = rotated_corners(ann['bbox'], float(ann.get('rotation') or 0.0))
        else:
            x, y, bw, bh = _box_of(ann, task, log)
            corners = [(x, y), (x + bw, y), (x + bw, y + bh), (x, y + bh)]
        return ' '.join([str(class_index), *_points(corners, w, h, p, log)])
    if task == 'pose':
        if tool != 'keypoint':
            raise Unsupported(f'{tool} cannot be expressed in yolo pose')
        kps = ann.get('keypoints') or []
        if len(kps) > kpt_count:
            raise Unsupported(f'{len(kps)} keypoints, kpt_shape allows {kpt_count}')
        x, y, bw, bh = _clamped_box(_box_of(ann, task, log), w, h, log, _tolerance(w, h, p))
        out = [str(class_index)]
        out += [fmt(v, p) for v in ((x + bw / 2) / w, (y + bh / 2) / h, bw / w, bh / h)]
        for kp in kps:
            v = int(kp[2]) if len(kp) > 2 else 2
            if v not in (0, 1, 2):
                raise Unsupported(f'keypoint visibility {v} is not 0, 1 or 2')
            out += [*_points([kp[:2]], w, h, p, log), str(v)] if v else ['0', '0', '0']
        if len(kps) < kpt_count:
            log.convert('keypoints padded to kpt_shape (yolo pose)')
            out += ['0', '0', '0'] * (kpt_count - len(kps))
        return ' '.join(out)
    raise Unsupported(f'unknown yolo task {task!r}')


def yolo_to_annotation(
    values: Sequence[float],
    *,
    image_size: tuple[int, int],
    task: str,
    category: str,
    ann_id: str,
    kpt_shape: Sequence[int] | None = None,
) -> dict[str, Any]:
    """The inverse of :func:`annotation_to_yolo` for one parsed line without its class index."""
    w, h = image_size
    base: dict[str, Any] = {'id': ann_id, 'category': category, 'attributes': {}}
    n = len(values)

    def box_of(v: Sequence[float]) -> list[float]:
        bw, bh = v[2] * w, v[3] * h
        return [v[0] * w - bw / 2, v[1] * h - bh / 2, bw, bh]

    if task == 'pose' and kpt_shape:
        k, ndim = int(kpt_shape[0]), int(kpt_shape[1]) if len(kpt_shape) > 1 else 2
        if n != 4 + k * ndim:
            raise ValueError(
                f'pose line has {n} values, kpt_shape {list(kpt_shape)} needs {4 + k * ndim}'
            )
        box = box_of(values)
        kps = []
        for i in range(k):
            x, y = values[4 + i * ndim] * w, values[5 + i * ndim] * h
            v = int(values[6 + i * ndim]) if ndim > 2 else 2
            kps.append([x, y, v])
        return {**base, 'tool': 'keypoint', 'bbox': box, 'area': box[2] * box[3], 'keypoints': kps}
    if n == 4 and task != 'obb':
        box = box_of(values)
        return {**base, 'tool': 'bounding_box', 'bbox': box, 'area': box[2] * box[3]}
    points = [[values[i] * w, values[i + 1] * h] for i in range(0, n - 1, 2)]
    if n % 2 or n < 6:
        raise ValueError(f'{n} values do not form a box or a polygon')
    if task == 'obb' and n == 8:
        box, rotation = box_from_corners(points)
        ann = {**base, 'tool': 'bounding_box', 'bbox': box, 'area': box[2] * box[3]}
        if rotation:
            ann['rotation'] = rotation
        return ann
    geometry = {'bbox': enclosing_box(points), 'area': polygon_area(points)}
    return {**base, 'tool': 'polygon', **geometry, 'points': points}

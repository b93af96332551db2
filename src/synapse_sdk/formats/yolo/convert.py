"""Pure conversions between annotation documents and Ultralytics YOLO label lines.

Every coordinate is normalised by the image size (x by width, y by height), written with a
fixed number of decimals (``precision``), and clamped to ``[0, 1]`` (each clamp is reported).

Per task, one line per object:

- ``detect``:  ``cls cx cy w h`` (box centre and size). Rotated boxes become their enclosing
  box; polygons and masks become their box (each reported as converted);
- ``segment``: ``cls x1 y1 x2 y2 ...`` polygon. Boxes become their (true) four corners; a mask
  becomes the outer contour of each of its connected regions, one line per region, holes filled
  (as Ultralytics' and Datumaro's converters do; see :func:`~synapse_sdk.formats.geometry.
  mask_polygons`), each reported;
- ``pose``:    ``cls cx cy w h x1 y1 v1 ...`` with ``kpt_shape = [K, 3]``; ``v`` is 0 (not
  labelled, written ``0 0 0``), 1 (hidden) or 2 (visible). Classes with fewer than K keypoints
  are padded with unlabelled points;
- ``obb``:     ``cls x1 y1 x2 y2 x3 y3 x4 y4``, the corners of a rotated rectangle (top-left,
  top-right, bottom-right, bottom-left before rotation). A box keeps its rotation; a polygon
  or a mask becomes its minimum-area rotated rectangle (OpenCV ``minAreaRect``, reported);
- ``classify``: no label lines: an image goes into the folder of its image-level class (see
  the writer).

What a task cannot carry is skipped with the reason: image-level labels (tool
``classification`` or no geometry) in the object tasks, keypoints outside ``pose``, crowd
regions (YOLO has no ignore regions; Ultralytics' own COCO converter drops them too) and
polylines. ``cls`` is the 0-based index in the class map.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from synapse_sdk.formats.base import ItemLog, Unsupported, is_label_only
from synapse_sdk.formats.geometry import (
    annotation_box,
    box4,
    box_from_corners,
    check_mask,
    clamp_box,
    clamp_points,
    enclosing_box,
    finite,
    fmt_fixed,
    keypoints3,
    mask_pixel_corners,
    mask_polygons,
    min_area_box,
    plain_points_box,
    points2,
    polygon_area,
    rotated_corners,
)

__all__ = ['TASKS', 'YoloConverter', 'annotation_to_yolo', 'fmt', 'yolo_to_annotation']

TASKS = ('detect', 'segment', 'pose', 'obb', 'classify')
OBJECT_TASKS = ('detect', 'segment', 'pose', 'obb')
_TOOLS = ('bounding_box', 'polygon', 'segmentation', 'keypoint')

_PLAIN = frozenset((int, float))

#: Kept for callers of the old name.
fmt = fmt_fixed


class YoloConverter:
    """Converts annotations to label lines of one task and precision.

    Built once per export: the number formats and reasons are prepared here so the per-annotation
    path allocates little (the common case, an unrotated box in ``detect``, is one ``%`` format).
    """

    def __init__(self, task: str = 'detect', precision: int = 6, kpt_count: int = 0) -> None:
        if task not in OBJECT_TASKS:
            raise ValueError(f'unknown yolo object task {task!r}')
        self.task = task
        self.precision = precision
        self.kpt_count = kpt_count
        self.target = f'yolo {task}'
        self._detect = task == 'detect'
        self._num = f'%.{precision}f'
        self._box_line = '%d' + f' {self._num}' * 4
        self._scale = 10.0**-precision
        self._no_keypoints = f'yolo {task} has no keypoints'
        self._tag = f'image-level label: yolo {task} has only objects (task=classify writes them)'
        self._polygon_box = f'polygon -> box ({self.target})'

    def tolerance(self, w: int, h: int) -> float:
        """One unit of the last written digit, in pixels: overshoot below it is rounding noise
        (e.g. a box read back from an earlier export), not geometry outside the image."""
        return (w if w > h else h) * self._scale

    def line(self, ann: dict[str, Any], index: int, w: int, h: int, log: ItemLog) -> str:
        """The label line(s) of ``ann`` (several, newline-separated, for a mask of several
        regions in ``segment``); raises :class:`Unsupported` with the reason."""
        tool = ann.get('tool')
        task = self.task
        if self._detect and tool == 'bounding_box':
            # The common case, kept short: an unrotated box of plain numbers inside the image.
            # Anything else (NaN, a string, a box to clamp) takes the checked path below.
            bbox = ann.get('bbox')
            if type(bbox) is list and len(bbox) == 4:
                x, y, bw, bh = bbox
                if (
                    type(x) in _PLAIN
                    and type(y) in _PLAIN
                    and type(bw) in _PLAIN
                    and type(bh) in _PLAIN
                    and x >= 0
                    and y >= 0
                    and bw > 0
                    and bh > 0
                    and x + bw <= w
                    and y + bh <= h
                    and not ann.get('rotation')
                    and not ann.get('iscrowd')
                ):
                    return self._box_line % (
                        index,
                        (x + bw / 2) / w,
                        (y + bh / 2) / h,
                        bw / w,
                        bh / h,
                    )
        elif self._detect and tool == 'polygon' and not ann.get('iscrowd'):
            # A polygon inside the image: its box, as annotation_box computes it (reported).
            box = plain_points_box(ann.get('points'), w, h)
            if box is not None:
                x, y, bw, bh = box
                log.convert(self._polygon_box)
                return self._box_line % (index, (x + bw / 2) / w, (y + bh / 2) / h, bw / w, bh / h)
        if tool not in _TOOLS:
            if tool == 'classification' or (tool is None and is_label_only(ann)):
                raise Unsupported(self._tag)
            raise Unsupported(f'{tool} cannot be expressed in {self.target}')
        if is_label_only(ann):
            raise Unsupported(self._tag)
        if ann.get('iscrowd'):
            raise Unsupported('crowd region: yolo has no crowd regions')
        if tool == 'keypoint' and task != 'pose':
            raise Unsupported(self._no_keypoints)
        if task == 'detect':
            x, y, bw, bh = self._clamped(annotation_box(ann, log, self.target), w, h, log)
            return self._box_line % (index, (x + bw / 2) / w, (y + bh / 2) / h, bw / w, bh / h)
        if task == 'segment':
            return self._segment(ann, tool, index, w, h, log)
        if task == 'obb':
            return self._obb(ann, tool, index, w, h, log)
        return self._pose(ann, tool, index, w, h, log)

    # --- tasks ------------------------------------------------------------------------------
    def _clamped(self, box: list[float], w: int, h: int, log: ItemLog) -> list[float]:
        box, changed = clamp_box(box, w, h, self.tolerance(w, h))
        if box[2] <= 0 or box[3] <= 0:
            raise Unsupported('box outside the image or of zero size')
        if changed:
            log.clamp()
        return box

    def _points(self, points: Sequence[Sequence[float]], w: int, h: int, log: ItemLog) -> str:
        pts, changed = clamp_points(points, w, h, self.tolerance(w, h))
        if changed:
            log.clamp()
        num = self._num
        return ' '.join([num % (x / w) + ' ' + num % (y / h) for x, y in pts])

    def _segment(
        self, ann: dict[str, Any], tool: str, index: int, w: int, h: int, log: ItemLog
    ) -> str:
        if tool == 'polygon':
            points = points2(ann.get('points'))
            if len(points) < 3 or polygon_area(points) <= 0:
                raise Unsupported('polygon with fewer than 3 points or zero area')
            return f'{index} {self._points(points, w, h, log)}'
        if tool == 'bounding_box':
            box = box4(ann.get('bbox'))
            if box[2] <= 0 or box[3] <= 0:
                raise Unsupported('box outside the image or of zero size')
            corners = rotated_corners(box, _rotation(ann))
            log.convert('bounding_box -> polygon (yolo segment)')
            return f'{index} {self._points(corners, w, h, log)}'
        rle = check_mask(ann.get('mask'), (w, h))
        polygons, holes, tiny = mask_polygons(rle)
        if not polygons:
            raise Unsupported('mask with no region of 3 or more contour points')
        log.convert('segmentation -> polygon (yolo segment)')
        if len(polygons) > 1:
            log.convert('mask regions -> one polygon each (yolo segment)')
        if holes:
            log.convert('mask holes filled (yolo segment)')
        if tiny:
            log.convert('mask regions under 3 contour points dropped (yolo segment)')
        return '\n'.join(f'{index} {self._points(p, w, h, log)}' for p in polygons)

    def _obb(self, ann: dict[str, Any], tool: str, index: int, w: int, h: int, log: ItemLog) -> str:
        if tool == 'bounding_box':
            bbox = box4(ann.get('bbox'))
            if bbox[2] <= 0 or bbox[3] <= 0:
                raise Unsupported('box outside the image or of zero size')
            corners = rotated_corners(bbox, _rotation(ann))
        else:
            if tool == 'polygon':
                points: Any = points2(ann.get('points'))
                if len(points) < 3 or polygon_area(points) <= 0:
                    raise Unsupported('polygon with fewer than 3 points or zero area')
            else:
                points = mask_pixel_corners(check_mask(ann.get('mask'), (w, h)))
            box, rotation = min_area_box(points)
            if box[2] <= 0 or box[3] <= 0:
                raise Unsupported(f'{tool} with zero area')
            corners = rotated_corners(box, rotation)
            log.convert(f'{tool} -> rotated box (yolo obb)')
        return f'{index} {self._points(corners, w, h, log)}'

    def _pose(
        self, ann: dict[str, Any], tool: str, index: int, w: int, h: int, log: ItemLog
    ) -> str:
        if tool != 'keypoint':
            raise Unsupported(f'{tool} cannot be expressed in yolo pose')
        kps = keypoints3(ann.get('keypoints') or [])
        if len(kps) > self.kpt_count:
            raise Unsupported('more keypoints than kpt_shape allows')
        box = annotation_box(ann, log, self.target, report=False)
        x, y, bw, bh = self._clamped(box, w, h, log)
        num = self._num
        out = [self._box_line % (index, (x + bw / 2) / w, (y + bh / 2) / h, bw / w, bh / h)]
        labelled = [(kx, ky) for kx, ky, v in kps if v]
        if labelled:
            pts, changed = clamp_points(labelled, w, h, self.tolerance(w, h))
            if changed:
                log.clamp()
            it = iter(pts)
        for _, _, v in kps:
            if v:
                px, py = next(it)
                out.append(f'{num % (px / w)} {num % (py / h)} {v}')
            else:
                out.append('0 0 0')
        if len(kps) < self.kpt_count:
            log.convert('keypoints padded to kpt_shape (yolo pose)')
            out.append(' '.join(['0 0 0'] * (self.kpt_count - len(kps))))
        return ' '.join(out)


def _rotation(ann: dict[str, Any]) -> float:
    rotation = ann.get('rotation')
    return finite(rotation, 'rotation') if rotation else 0.0


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
    """The label line(s) of ``ann`` (see :class:`YoloConverter`); ``kpt_count`` is K of
    ``kpt_shape``. A one-off convenience: writers keep one :class:`YoloConverter`."""
    if task not in OBJECT_TASKS:
        raise Unsupported(f'unknown yolo task {task!r}')
    converter = YoloConverter(task, precision, kpt_count)
    return converter.line(ann, class_index, image_size[0], image_size[1], log or ItemLog())


def flip_index(names: Sequence[str]) -> list[int]:
    """Ultralytics' ``flip_idx`` from keypoint names: ``left`` and ``right`` swap (any case,
    anywhere in the name: ``left_eye`` <-> ``right_eye``, ``hand_L`` stays itself)."""
    index = {n: i for i, n in enumerate(names)}
    out = []
    for i, name in enumerate(names):
        mirrored = _swap_sides(name)
        out.append(index.get(mirrored, i) if mirrored != name else i)
    return out


def _swap_sides(name: str) -> str:
    pairs = (('left', 'right'), ('Left', 'Right'), ('LEFT', 'RIGHT'))
    for a, b in pairs:
        if a in name:
            return name.replace(a, '\0').replace(b, a).replace('\0', b)
        if b in name:
            return name.replace(b, a)
    return name


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
    if not all(math.isfinite(v) for v in values):
        raise ValueError('a value is not a finite number')

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

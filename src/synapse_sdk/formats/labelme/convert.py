"""Pure conversions between annotation documents and LabelMe shapes (labelme 5.x JSON).

A LabelMe shape is ``{"label", "points", "group_id", "description", "shape_type", "flags",
"mask"}`` (the keys and order the labelme tool writes). Written here:

- a box is a ``rectangle`` with its top-left and bottom-right corners; a rotated box has no
  5.x shape, so it is written as the ``polygon`` of its four corners (reported);
- polygons are ``polygon``, polylines ``linestrip``;
- a keypoint annotation is one ``point`` shape per labelled keypoint, all with the class as
  label, the keypoint name as ``description`` and one ``group_id``; a hidden keypoint (v = 1)
  has the flag ``occluded``; an absent one (v = 0) is not written;
- a mask is a ``mask`` shape: ``points`` are the first and last pixel of its tight box, ``mask``
  the box's pixels as a base64 PNG of 0/1 values (as labelme 5.3+ writes it);
- boolean attributes are the shape's ``flags``; other attributes go in an ``attributes`` object
  on the shape (labelme keeps unknown keys of a shape as they are).
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from synapse_sdk.formats.base import ItemLog, Unsupported
from synapse_sdk.formats.geometry import (
    box_from_corners,
    check_mask,
    check_numbers,
    enclosing_box,
    mask_to_rle,
    named_keypoints,
    polygon_area,
    rle_area,
    rle_bbox,
    rle_crop,
    rotated_corners,
    sized_box,
)

__all__ = [
    'annotation_to_shapes',
    'mask_png',
    'png_mask',
    'shape_to_annotation',
    'split_attributes',
]


def split_attributes(attributes: dict[str, Any] | None) -> tuple[dict[str, bool], dict[str, Any]]:
    """``(flags, others)``: boolean attributes become LabelMe flags."""
    flags: dict[str, bool] = {}
    others: dict[str, Any] = {}
    for key, value in sorted((attributes or {}).items()):
        if isinstance(value, bool):
            flags[str(key)] = value
        else:
            others[str(key)] = value
    return flags, others


def _shape(
    label: str,
    points: Sequence[Sequence[float]],
    shape_type: str,
    attributes: dict[str, Any] | None,
    *,
    group_id: int | None = None,
    description: str = '',
    mask: str | None = None,
) -> dict[str, Any]:
    flags, others = split_attributes(attributes)
    shape: dict[str, Any] = {
        'label': label,
        'points': [[float(p[0]), float(p[1])] for p in points],
        'group_id': group_id,
        'description': description,
        'shape_type': shape_type,
        'flags': flags,
        'mask': mask,
    }
    if others:
        shape['attributes'] = others
    return shape


def _finite(points: Sequence[Sequence[float]], tool: str) -> list[tuple[float, float]]:
    out = [(float(p[0]), float(p[1])) for p in points]
    if not all(math.isfinite(c) for p in out for c in p):
        raise Unsupported(f'{tool} with a non-finite coordinate')
    return out


def mask_png(mask: np.ndarray) -> str:
    """Base64 PNG of a boolean mask as 0/1 grey values (labelme's ``img_arr_to_b64``)."""
    buf = io.BytesIO()
    Image.fromarray(np.asarray(mask, dtype=np.uint8)).save(buf, format='PNG')
    return base64.b64encode(buf.getvalue()).decode('ascii')


def png_mask(data: str) -> np.ndarray:
    """Inverse of :func:`mask_png`: any non-zero pixel is foreground."""
    with Image.open(io.BytesIO(base64.b64decode(data, validate=True))) as im:
        arr = np.asarray(im)
    if arr.ndim == 3:
        arr = arr[..., 0] if arr.shape[2] < 4 else arr[..., 3]
    return arr.astype(bool)


def annotation_to_shapes(
    ann: dict[str, Any],
    *,
    image_size: tuple[int, int],
    keypoint_names: Sequence[str] | None = None,
    group_id: int | None = None,
    log: ItemLog | None = None,
) -> list[dict[str, Any]]:
    """The LabelMe shapes of one document annotation; :class:`Unsupported` names the reason.

    ``group_id`` is used by keypoint annotations (their points share it).
    """
    log = log or ItemLog()
    check_numbers(ann, image_size)  # NaN, inf, strings, beyond 2**31 pixels: skipped
    tool = ann.get('tool')
    label = ann['category']
    attributes = dict(ann.get('attributes') or {})
    if ann.get('iscrowd'):
        log.convert('crowd flag not expressible (labelme)')
    if tool == 'bounding_box':
        x, y, w, h = sized_box(ann.get('bbox'))
        rotation = float(ann.get('rotation') or 0.0)
        if rotation % (2 * math.pi):
            log.convert('rotated box -> polygon (labelme)')
            corners = rotated_corners([x, y, w, h], rotation)
            return [_shape(label, corners, 'polygon', attributes)]
        return [_shape(label, [(x, y), (x + w, y + h)], 'rectangle', attributes)]
    if tool == 'polygon':
        points = _finite(ann.get('points') or (), tool)
        if len(points) < 3 or polygon_area(points) <= 0:
            raise Unsupported('polygon with fewer than 3 points or zero area')
        return [_shape(label, points, 'polygon', attributes)]
    if tool == 'polyline':
        points = _finite(ann.get('points') or (), tool)
        if len(points) < 2:
            raise Unsupported('polyline with fewer than 2 points')
        return [_shape(label, points, 'linestrip', attributes)]
    if tool == 'segmentation':
        rle = check_mask(ann.get('mask'), image_size)  # valid, of the image's size
        crop, x0, y0, mw, mh = rle_crop(rle)
        corners = [(x0, y0), (x0 + mw - 1, y0 + mh - 1)]
        return [_shape(label, corners, 'mask', attributes, mask=mask_png(crop))]
    if tool == 'keypoint':
        shapes = []
        for name, x, y, v in named_keypoints(ann, keypoint_names):
            if v == 0:
                continue
            point_attrs = {**attributes, 'occluded': True} if v == 1 else attributes
            shapes.append(
                _shape(label, [(x, y)], 'point', point_attrs, group_id=group_id, description=name)
            )
        if not shapes:
            raise Unsupported('keypoint annotation with no labelled point')
        return shapes
    if tool == 'classification':
        raise Unsupported('classification is written as an image flag')  # the writer's job
    raise Unsupported(f'unknown tool {tool!r}')


def _attributes(shape: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    extra = shape.get('attributes')
    if isinstance(extra, dict):
        out.update(extra)
    flags = shape.get('flags')
    if isinstance(flags, dict):
        out.update({str(k): bool(v) for k, v in flags.items()})
    return out


def shape_to_annotation(
    shape: dict[str, Any], *, ann_id: str, image_size: tuple[int, int] | None
) -> dict[str, Any]:
    """One LabelMe shape (other than ``point``) as a document annotation.

    Raises ``ValueError`` (malformed) or :class:`Unsupported` (a shape type with no document
    tool: ``circle``, ``points``).
    """
    shape_type = shape.get('shape_type') or 'polygon'
    label = shape['label']
    if not isinstance(label, str):
        raise ValueError('label is not a string')
    points = [(float(p[0]), float(p[1])) for p in shape.get('points') or ()]
    out: dict[str, Any] = {'id': ann_id, 'category': label}
    if shape_type == 'rectangle':
        if len(points) != 2:
            raise ValueError('rectangle needs 2 points')
        box = enclosing_box(points)
        out.update(tool='bounding_box', bbox=box, area=box[2] * box[3])
    elif shape_type == 'oriented_rectangle':
        if len(points) != 4:
            raise ValueError('oriented_rectangle needs 4 points')
        box, rotation = box_from_corners(points)
        out.update(tool='bounding_box', bbox=box, area=box[2] * box[3], rotation=rotation)
    elif shape_type == 'polygon':
        if len(points) < 3:
            raise ValueError('polygon needs 3 points')
        out.update(
            tool='polygon',
            bbox=enclosing_box(points),
            area=polygon_area(points),
            points=[list(p) for p in points],
        )
    elif shape_type in ('linestrip', 'line'):
        if len(points) < 2:
            raise ValueError(f'{shape_type} needs 2 points')
        out.update(tool='polyline', bbox=enclosing_box(points), points=[list(p) for p in points])
    elif shape_type == 'mask':
        if image_size is None:
            raise ValueError('mask on an image of unknown size')
        if not isinstance(shape.get('mask'), str) or not points:
            raise ValueError('mask shape without a mask')
        crop = png_mask(shape['mask'])
        x0, y0 = round(points[0][0]), round(points[0][1])
        w, h = image_size
        if x0 < 0 or y0 < 0 or x0 + crop.shape[1] > w or y0 + crop.shape[0] > h:
            raise ValueError('mask reaches outside the image')
        full = np.zeros((h, w), dtype=bool)
        full[y0 : y0 + crop.shape[0], x0 : x0 + crop.shape[1]] = crop
        rle = mask_to_rle(full)
        out.update(tool='segmentation', bbox=rle_bbox(rle), area=float(rle_area(rle)), mask=rle)
    else:
        raise Unsupported(f'{shape_type} shapes are not supported')
    out['attributes'] = _attributes(shape)
    return out


def points_to_keypoints(
    shapes: list[dict[str, Any]], names: Sequence[str], *, ann_id: str
) -> dict[str, Any]:
    """``point`` shapes of one group (same label and ``group_id``) as a keypoint annotation.

    A point's ``description`` names its keypoint; unnamed points take the unused names in
    order. The ``occluded`` flag marks a hidden (v = 1) keypoint.
    """
    by_name: dict[str, list[float]] = {}
    attributes: dict[str, Any] = {}
    unnamed = []
    for shape in shapes:
        points: list[Any] = list(shape.get('points') or ())
        if len(points) != 1:
            raise ValueError('point shape needs 1 point')
        x, y = float(points[0][0]), float(points[0][1])
        attrs = _attributes(shape)
        v = 1 if attrs.pop('occluded', False) else 2
        attributes = attributes or attrs
        name = shape.get('description') or ''
        if name in names and name not in by_name:
            by_name[name] = [x, y, v]
        else:
            unnamed.append([x, y, v])
    for name in names:
        if name not in by_name and unnamed:
            by_name[name] = unnamed.pop(0)
    if unnamed:
        raise ValueError('more points than keypoint names')
    kps = [by_name.get(name, [0.0, 0.0, 0]) for name in names]
    labelled = [(k[0], k[1]) for k in kps if k[2]]
    box = enclosing_box(labelled)
    return {
        'id': ann_id,
        'category': shapes[0]['label'],
        'tool': 'keypoint',
        'bbox': box,
        'area': box[2] * box[3],
        'keypoints': kps,
        'attributes': attributes,
    }

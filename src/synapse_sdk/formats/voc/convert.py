"""Pure conversions between annotation documents and Pascal VOC objects.

Coordinates follow the VOC devkit: 1-based pixel indices, both ends inclusive. A document box
``[x, y, w, h]`` (continuous, 0-based, top-left origin) covers pixels ``x .. x + w - 1``, so::

    xmin = x + 1      ymin = y + 1      xmax = x + w      ymax = y + h
    x = xmin - 1      y = ymin - 1      w = xmax - xmin + 1      h = ymax - ymin + 1

With ``precision`` 0 (the default) the values are whole pixels (``x`` and ``x + w`` rounded half
to even), as the devkit and most readers (``int(...)``) expect; a higher precision writes that
many decimals. Boxes are clamped to the image (reported). ``truncated`` is the document's
``truncated`` attribute when it has one, else whether the (clamped) box reaches the border.

Rotated boxes become their enclosing box; polygons, masks and keypoint annotations become their
box (each reported). Document attributes are kept in ``<attributes>`` with JSON values, and
``difficult``, ``truncated``, ``occluded`` and ``pose`` attributes also fill VOC's own fields.
"""

from __future__ import annotations

from typing import Any

import orjson

from synapse_sdk.formats.base import ItemLog, Unsupported
from synapse_sdk.formats.geometry import annotation_box, clamp_box

__all__ = ['annotation_to_voc', 'box_to_voc', 'voc_to_annotation', 'voc_to_box']


def _num(value: float, precision: int) -> str:
    if precision == 0:
        return str(round(value))
    text = f'{value:.{precision}f}'
    return text[1:] if text.startswith('-') and float(text) == 0 else text


def box_to_voc(bbox: list[float], precision: int = 0) -> dict[str, str]:
    """``[x, y, w, h]`` -> ``{"xmin", "ymin", "xmax", "ymax"}`` as devkit strings."""
    x, y, w, h = (float(v) for v in bbox[:4])
    if precision == 0:
        x0, y0, x1, y1 = round(x), round(y), round(x + w), round(y + h)
        return {
            'xmin': str(x0 + 1),
            'ymin': str(y0 + 1),
            'xmax': str(max(x1, x0 + 1)),
            'ymax': str(max(y1, y0 + 1)),
        }
    return {
        'xmin': _num(x + 1, precision),
        'ymin': _num(y + 1, precision),
        'xmax': _num(x + w, precision),
        'ymax': _num(y + h, precision),
    }


def voc_to_box(xmin: float, ymin: float, xmax: float, ymax: float) -> list[float]:
    """Devkit corners -> document ``[x, y, w, h]`` (inverse of :func:`box_to_voc`)."""
    return [xmin - 1, ymin - 1, xmax - xmin + 1, ymax - ymin + 1]


def _at_border(box: list[float], image_size: tuple[int, int]) -> bool:
    """VOC's ``truncated`` proxy: the (clamped) box reaches the image border."""
    x, y, w, h = box
    return x <= 0 or y <= 0 or x + w >= image_size[0] or y + h >= image_size[1]


def _flag(value: Any) -> str:
    return '1' if value else '0'


def annotation_to_voc(
    ann: dict[str, Any],
    *,
    image_size: tuple[int, int],
    precision: int = 0,
    log: ItemLog | None = None,
) -> dict[str, Any]:
    """A VOC ``<object>`` as a dict (children in writing order); raises :class:`Unsupported`."""
    log = log or ItemLog()
    box, clamped = clamp_box(annotation_box(ann, log, 'voc'), *image_size)
    if box[2] <= 0 or box[3] <= 0:
        raise Unsupported('box outside the image or of zero size')
    if clamped:
        log.clamp()
    if ann.get('iscrowd'):
        log.convert('crowd flag not expressible (voc)')
    attrs = dict(ann.get('attributes') or {})
    obj: dict[str, Any] = {
        'name': ann['category'],
        'pose': str(attrs.get('pose', 'Unspecified')),
        'truncated': _flag(
            attrs['truncated'] if 'truncated' in attrs else _at_border(box, image_size)
        ),
        'difficult': _flag(attrs.get('difficult')),
    }
    if 'occluded' in attrs:
        obj['occluded'] = _flag(attrs['occluded'])
    obj['bndbox'] = box_to_voc(box, precision)
    # Always present (maybe empty): tells the reader these are the exact document attributes.
    obj['attributes'] = [
        (str(k), orjson.dumps(v, option=orjson.OPT_SORT_KEYS).decode())
        for k, v in sorted(attrs.items())
    ]
    return obj


def voc_to_annotation(obj: dict[str, Any], *, ann_id: str) -> dict[str, Any]:
    """Inverse of :func:`annotation_to_voc` for a parsed object (a box annotation)."""
    b = obj['bndbox']
    box = voc_to_box(float(b['xmin']), float(b['ymin']), float(b['xmax']), float(b['ymax']))
    if obj.get('attributes') is not None:
        attrs = {k: orjson.loads(v) for k, v in obj['attributes']}
    else:
        attrs = {}
        for key in ('difficult', 'truncated', 'occluded'):
            if obj.get(key) is not None:
                attrs[key] = obj[key].strip() == '1'
        pose = obj.get('pose')
        if pose and pose != 'Unspecified':
            attrs['pose'] = pose
    return {
        'id': ann_id,
        'category': obj['name'],
        'tool': 'bounding_box',
        'bbox': box,
        'area': box[2] * box[3],
        'attributes': attrs,
    }

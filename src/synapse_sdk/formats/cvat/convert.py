"""Pure conversions between annotation documents and CVAT for images 1.1 XML elements.

CVAT conventions written here (as CVAT's own "CVAT for images 1.1" export writes them):

- a box is ``xtl ytl xbr ybr`` (the unrotated corners) and ``rotation`` in degrees, clockwise
  about the box centre, only when non-zero; the document keeps radians, clockwise too;
- polygons, polylines and points are ``points="x1,y1;x2,y2;..."``;
- a keypoint annotation is a ``<skeleton>`` with one ``<points>`` per configured keypoint
  (label = the keypoint name); an absent keypoint (v = 0) is ``outside="1"``, a hidden one
  (v = 1) ``occluded="1"``;
- a mask is ``<mask rle left top width height>``: ``left top width height`` is the tight pixel
  box of the mask, ``rle`` the run lengths over that box in row-major order, starting with a
  run of background (CVAT's own RLE, not COCO's column-major one);
- a classification annotation is a ``<tag>``;
- the document attribute ``occluded`` is CVAT's ``occluded`` flag, ``z_order`` its
  ``z_order``; every other attribute is an ``<attribute name=...>`` child with text values
  (``true`` / ``false`` for booleans, JSON for lists and objects).

Elements are plain tuples ``(tag, attrs, children)`` here; :mod:`.writer` serialises them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson

from synapse_sdk.formats.base import ItemLog, Unsupported
from synapse_sdk.formats.geometry import (
    check_mask,
    check_numbers,
    enclosing_box,
    mask_to_rle,
    named_keypoints,
    polygon_area,
    rle_area,
    rle_bbox,
    rle_crop,
    sized_box,
)

__all__ = [
    'Element',
    'annotation_to_cvat',
    'attribute_text',
    'cvat_mask_to_rle',
    'cvat_to_annotation',
    'fmt_num',
    'parse_attribute',
    'parse_points',
    'rle_to_cvat_mask',
    'xml_safe',
]

# (tag, attributes in writing order, children)
Element = tuple[str, list[tuple[str, str]], list[Any]]

_ILLEGAL_XML = re.compile('[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]')
BUILTIN_ATTRIBUTES = ('occluded', 'z_order')


def xml_safe(text: str) -> bool:
    """Whether ``text`` only holds characters XML 1.0 allows."""
    return not _ILLEGAL_XML.search(text)


def fmt_num(value: float, precision: int) -> str:
    """Fixed decimals, as CVAT writes them (``12.50``); never ``-0.00``."""
    text = f'{float(value):.{precision}f}'
    if text.startswith('-') and float(text) == 0:
        text = text[1:]
    return text


def attribute_text(value: Any) -> str:
    """An attribute value as CVAT text: ``true``/``false``, the string itself, else JSON."""
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, str):
        return value
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def parse_attribute(text: str, input_type: str | None) -> Any:
    """Inverse of :func:`attribute_text`, guided by the label's declared ``input_type``."""
    if input_type == 'checkbox' or (input_type is None and text in ('true', 'false')):
        return text.strip().lower() == 'true'
    if input_type == 'number':
        try:
            number = float(text)
        except ValueError:
            return text
        return int(number) if number.is_integer() and '.' not in text else number
    if input_type is None and text[:1] in ('[', '{'):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            return text
    return text


def _points(points: Sequence[Sequence[float]], precision: int) -> str:
    return ';'.join(f'{fmt_num(p[0], precision)},{fmt_num(p[1], precision)}' for p in points)


def parse_points(text: str) -> list[list[float]]:
    """``"x1,y1;x2,y2"`` -> ``[[x1, y1], [x2, y2]]`` (``ValueError`` when malformed)."""
    out = []
    for pair in text.split(';'):
        if not pair.strip():
            continue
        x, y = pair.split(',')
        out.append([float(x), float(y)])
    return out


def _finite_points(raw: Any, at_least: int, tool: str) -> list[tuple[float, float]]:
    points = [(float(p[0]), float(p[1])) for p in raw or ()]
    if len(points) < at_least:
        raise Unsupported(f'{tool} with fewer than {at_least} points')
    if not all(math.isfinite(c) for p in points for c in p):
        raise Unsupported(f'{tool} with a non-finite coordinate')
    return points


# --- masks -------------------------------------------------------------------------------


def rle_to_cvat_mask(rle: dict[str, Any]) -> tuple[list[int], int, int, int, int]:
    """A document (COCO) RLE as CVAT's ``(runs, left, top, width, height)``."""
    mask, x, y, w, h = rle_crop(rle)
    crop = mask.ravel(order='C').astype(np.int8)
    changes = np.flatnonzero(np.diff(crop)) + 1
    bounds = np.concatenate(([0], changes, [crop.size]))
    runs = np.diff(bounds).tolist()
    if crop[0]:  # CVAT's runs start with background, possibly empty
        runs.insert(0, 0)
    return [int(r) for r in runs], x, y, w, h


def cvat_mask_to_rle(
    runs: Sequence[int], left: int, top: int, width: int, height: int, image_size: tuple[int, int]
) -> dict[str, Any]:
    """Inverse of :func:`rle_to_cvat_mask`: the COCO RLE of the whole image."""
    img_w, img_h = image_size
    if width <= 0 or height <= 0 or left < 0 or top < 0:
        raise ValueError(f'mask box {left},{top} {width}x{height} is not a box')
    if left + width > img_w or top + height > img_h:
        raise ValueError('mask box reaches outside the image')
    if sum(runs) != width * height or any(r < 0 for r in runs):
        raise ValueError(f'mask runs add up to {sum(runs)}, the box has {width * height} pixels')
    values = np.zeros(len(runs), dtype=bool)
    values[1::2] = True
    crop = np.repeat(values, np.asarray(runs, dtype=np.int64)).reshape(height, width)
    full = np.zeros((img_h, img_w), dtype=bool)
    full[top : top + height, left : left + width] = crop
    return mask_to_rle(full)


# --- document -> CVAT ---------------------------------------------------------------------


def _common(ann: dict[str, Any], label: str) -> tuple[list[tuple[str, str]], list[Element]]:
    """``label source occluded`` and the ``<attribute>`` children of an annotation."""
    attrs = dict(ann.get('attributes') or {})
    occluded = attrs.pop('occluded', False)
    attrs.pop('z_order', None)
    head = [('label', label), ('source', 'manual'), ('occluded', '1' if occluded else '0')]
    children: list[Element] = []
    for name, value in sorted(attrs.items()):
        text = attribute_text(value)
        if not xml_safe(str(name)) or not xml_safe(text):
            raise Unsupported('attribute with characters XML cannot hold (cvat)')
        children.append(('attribute', [('name', str(name))], [text]))
    return head, children


def _z_order(ann: dict[str, Any]) -> str:
    z = (ann.get('attributes') or {}).get('z_order', 0)
    return str(z) if isinstance(z, int) and not isinstance(z, bool) else '0'


def annotation_to_cvat(
    ann: dict[str, Any],
    *,
    image_size: tuple[int, int],
    precision: int = 2,
    keypoint_names: Sequence[str] | None = None,
    log: ItemLog | None = None,
) -> Element:
    """One document annotation as a CVAT element; raises :class:`Unsupported` with the reason
    (also for a number no reader takes: NaN, inf, a string, beyond 2**31 pixels)."""
    log = log or ItemLog()
    check_numbers(ann, image_size)
    tool = ann.get('tool')
    label = ann['category']
    if not xml_safe(label):
        raise Unsupported('class name with characters XML cannot hold (cvat)')
    head, children = _common(ann, label)
    z = [('z_order', _z_order(ann))]
    if ann.get('iscrowd'):
        log.convert('crowd flag not expressible (cvat)')
    if tool == 'bounding_box':
        x, y, w, h = sized_box(ann.get('bbox'))
        box = [
            ('xtl', fmt_num(x, precision)),
            ('ytl', fmt_num(y, precision)),
            ('xbr', fmt_num(x + w, precision)),
            ('ybr', fmt_num(y + h, precision)),
        ]
        degrees = math.degrees(float(ann.get('rotation') or 0.0)) % 360.0
        text = fmt_num(degrees, precision)
        if float(text) not in (0.0, 360.0):
            box.append(('rotation', text))
        return ('box', head + box + z, children)
    if tool in ('polygon', 'polyline'):
        points = _finite_points(ann.get('points'), 3 if tool == 'polygon' else 2, tool)
        if tool == 'polygon' and polygon_area(points) <= 0:
            raise Unsupported('polygon with zero area')
        return (tool, [*head, ('points', _points(points, precision)), *z], children)
    if tool == 'segmentation':
        rle = check_mask(ann.get('mask'), image_size)  # valid, of the image's size
        runs, left, top, mw, mh = rle_to_cvat_mask(rle)
        geometry = [
            ('rle', ', '.join(str(r) for r in runs)),
            ('left', str(left)),
            ('top', str(top)),
            ('width', str(mw)),
            ('height', str(mh)),
        ]
        return ('mask', head + geometry + z, children)
    if tool == 'keypoint':
        nodes: list[Element] = []
        for name, x, y, v in named_keypoints(ann, keypoint_names):
            node = [
                ('label', name),
                ('source', 'manual'),
                ('outside', '0' if v else '1'),
                ('occluded', '1' if v == 1 else '0'),
                ('points', _points([(x, y)], precision)),
            ]
            nodes.append(('points', node, []))
        return ('skeleton', [('label', label), ('source', 'manual'), *z], nodes + children)
    if tool == 'classification':
        return ('tag', [('label', label), ('source', 'manual')], children)
    raise Unsupported(f'unknown tool {tool!r}')


# --- CVAT -> document ---------------------------------------------------------------------


def cvat_to_annotation(
    tag: str,
    attrs: dict[str, str],
    attributes: dict[str, Any],
    *,
    ann_id: str,
    image_size: tuple[int, int] | None,
    nodes: list[tuple[dict[str, str], Any]] | None = None,
    keypoint_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """A parsed CVAT element as a document annotation (``ValueError`` / ``KeyError`` when
    malformed). ``nodes`` are a skeleton's ``(points attrs, _)``; ``keypoint_names`` orders
    them (and names the points of a ``<points>`` shape)."""
    out: dict[str, Any] = {'id': ann_id, 'category': attrs['label']}
    attributes = dict(attributes)
    if attrs.get('occluded') == '1':
        attributes['occluded'] = True
    z = int(attrs.get('z_order') or 0)
    if z:
        attributes['z_order'] = z
    if tag == 'box':
        xtl, ytl = float(attrs['xtl']), float(attrs['ytl'])
        xbr, ybr = float(attrs['xbr']), float(attrs['ybr'])
        box = [xtl, ytl, xbr - xtl, ybr - ytl]
        rotation = math.radians(float(attrs.get('rotation') or 0.0))
        if rotation > math.pi:
            rotation -= 2 * math.pi
        out.update(tool='bounding_box', bbox=box, area=box[2] * box[3], rotation=rotation)
    elif tag in ('polygon', 'polyline'):
        points = parse_points(attrs['points'])
        if len(points) < (3 if tag == 'polygon' else 2):
            raise ValueError(f'{tag} with too few points')
        out.update(tool=tag, bbox=enclosing_box(points), points=points)
        if tag == 'polygon':
            out['area'] = polygon_area(points)
    elif tag == 'mask':
        if image_size is None:
            raise ValueError('mask on an image of unknown size')
        runs = [int(r) for r in attrs['rle'].split(',') if r.strip()]
        rle = cvat_mask_to_rle(
            runs,
            int(float(attrs['left'])),
            int(float(attrs['top'])),
            int(float(attrs['width'])),
            int(float(attrs['height'])),
            image_size,
        )
        out.update(tool='segmentation', bbox=rle_bbox(rle), area=float(rle_area(rle)), mask=rle)
    elif tag in ('skeleton', 'points'):
        kps = _keypoints(tag, attrs, nodes or [], keypoint_names or [])
        labelled = [(k[0], k[1]) for k in kps if k[2]]
        out.update(tool='keypoint', keypoints=kps)
        if labelled:
            box = enclosing_box(labelled)
            out.update(bbox=box, area=box[2] * box[3])
    elif tag == 'tag':
        out['tool'] = 'classification'
    else:
        raise ValueError(f'unknown shape {tag!r}')
    out['attributes'] = attributes
    return out


def _keypoints(
    tag: str, attrs: dict[str, str], nodes: list[tuple[dict[str, str], Any]], names: Sequence[str]
) -> list[list[float]]:
    if tag == 'points':
        points = parse_points(attrs['points'])
        kps = [[x, y, 2] for x, y in points]
        return kps + [[0.0, 0.0, 0]] * max(len(names) - len(kps), 0)
    by_name: dict[str, list[float]] = {}
    for node, _ in nodes:
        pts = parse_points(node.get('points') or '')
        x, y = pts[0] if pts else (0.0, 0.0)
        if node.get('outside') == '1' or not pts:
            by_name[node['label']] = [0.0, 0.0, 0]
        else:
            by_name[node['label']] = [x, y, 1 if node.get('occluded') == '1' else 2]
    return [by_name.get(name, [0.0, 0.0, 0]) for name in names]

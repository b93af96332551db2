"""Pure conversions between annotation documents (DESIGN section 3) and COCO.

COCO conventions written here:

- ``bbox`` is ``[x, y, width, height]`` in absolute pixels, top-left origin (the document's own
  box convention, so no shift is applied);
- polygons are ``segmentation: [[x1, y1, x2, y2, ...]]``; masks are compressed RLE
  ``{"size": [h, w], "counts": "..."}``;
- ``area`` is the polygon's shoelace area or the mask's pixel count, the box's ``w * h`` only
  for boxes and keypoints;
- ``iscrowd`` is always present: 1 only when the document says ``iscrowd: true`` (a mask is not
  a crowd because it has holes);
- keypoints are ``[x1, y1, v1, ...]`` triplets in configured order, with ``num_keypoints`` the
  number of labelled (v > 0) points; unlabelled points are written ``0, 0, 0``;
- category ids are ``class index + category_id_start``; keypoint skeletons are 1-based in COCO
  and 0-based in the configuration;
- a rotated box becomes its enclosing box, with its four true corners as the segmentation
  polygon (so nothing is lost; it is imported back as a polygon).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from synapse_sdk.formats.base import ItemLog, Unsupported
from synapse_sdk.formats.classmap import ClassMap
from synapse_sdk.formats.geometry import (
    enclosing_box,
    polygon_area,
    rle_area,
    rle_bbox,
    rle_compress,
    rotated_corners,
)

__all__ = [
    'annotation_to_coco',
    'categories_to_coco',
    'coco_to_annotations',
    'coco_to_configuration',
    'image_to_coco',
]


def _box(values: Sequence[Any]) -> list[float]:
    box = [float(v) for v in values[:4]]
    if len(box) != 4 or not all(math.isfinite(v) for v in box):
        raise Unsupported('malformed bbox')
    return box


def categories_to_coco(class_map: ClassMap, start: int = 1) -> list[dict[str, Any]]:
    """One category per configured class, ids ``start, start + 1, ...`` in configured order."""
    out = []
    for i, info in enumerate(class_map):
        cat: dict[str, Any] = {'id': i + start, 'name': info.name, 'supercategory': ''}
        if info.keypoints is not None:
            cat['keypoints'] = list(info.keypoints['names'])
            cat['skeleton'] = [[a + 1, b + 1] for a, b in info.keypoints['skeleton']]
        out.append(cat)
    return out


def image_to_coco(
    image_id: int, file_name: str, width: int, height: int, classifications: dict[str, Any]
) -> dict[str, Any]:
    image: dict[str, Any] = {
        'id': image_id,
        'file_name': file_name,
        'width': width,
        'height': height,
    }
    if classifications:
        image['attributes'] = classifications
    return image


def annotation_to_coco(
    ann: dict[str, Any],
    *,
    category_id: int,
    image_size: tuple[int, int],
    keypoint_names: Sequence[str] | None = None,
    log: ItemLog | None = None,
) -> dict[str, Any]:
    """One document annotation as a COCO annotation, without ``id`` and ``image_id``.

    Raises :class:`Unsupported` (the reason) for tools COCO cannot express (polyline,
    classification) and for malformed or empty geometry.
    """
    log = log or ItemLog()
    tool = ann.get('tool')
    out: dict[str, Any] = {'category_id': category_id, 'iscrowd': 1 if ann.get('iscrowd') else 0}
    if tool == 'bounding_box':
        box = _box(ann.get('bbox') or ())
        if box[2] <= 0 or box[3] <= 0:
            raise Unsupported('bounding_box with zero or negative size')
        rotation = float(ann.get('rotation') or 0.0)
        if rotation % (2 * math.pi):
            corners = rotated_corners(box, rotation)
            out['segmentation'] = [[c for p in corners for c in p]]
            out['bbox'] = enclosing_box(corners)
            log.convert('rotated box -> enclosing box (coco)')
        else:
            out['bbox'] = box
        out['area'] = box[2] * box[3]
    elif tool == 'polygon':
        points = [(float(p[0]), float(p[1])) for p in ann.get('points') or ()]
        if len(points) < 3:
            raise Unsupported('polygon with fewer than 3 points')
        area = polygon_area(points)
        if area <= 0:
            raise Unsupported('polygon with zero area')
        out['segmentation'] = [[c for p in points for c in p]]
        out['bbox'] = enclosing_box(points)
        out['area'] = area
    elif tool == 'segmentation':
        mask = ann.get('mask')
        if not isinstance(mask, dict) or 'counts' not in mask or 'size' not in mask:
            raise Unsupported('segmentation without an RLE mask')
        rle = rle_compress(mask)
        w, h = image_size
        if rle['size'] != [h, w]:
            raise Unsupported(f'mask size {rle["size"]} differs from the image [{h}, {w}]')
        area = rle_area(rle)
        if area <= 0:
            raise Unsupported('empty mask')
        out['segmentation'] = rle
        out['bbox'] = rle_bbox(rle)
        out['area'] = float(area)
    elif tool == 'keypoint':
        if not keypoint_names:
            raise Unsupported('keypoint class has no keypoint names in the configuration')
        kps = ann.get('keypoints') or []
        if len(kps) != len(keypoint_names):
            n = len(keypoint_names)
            raise Unsupported(f'{len(kps)} keypoints, the configuration names {n}')
        flat: list[float] = []
        labelled = []
        for kp in kps:
            x, y, v = float(kp[0]), float(kp[1]), int(kp[2]) if len(kp) > 2 else 2
            if v not in (0, 1, 2):
                raise Unsupported(f'keypoint visibility {v} is not 0, 1 or 2')
            flat += [x, y, v] if v else [0, 0, 0]
            if v:
                labelled.append((x, y))
        out['keypoints'] = flat
        out['num_keypoints'] = len(labelled)
        if ann.get('bbox'):
            box = _box(ann['bbox'])
        elif labelled:
            box = enclosing_box(labelled)
        else:
            raise Unsupported('keypoint annotation with no box and no labelled point')
        out['bbox'] = box
        out['area'] = float(ann['area']) if ann.get('area') else box[2] * box[3]
    elif tool in ('polyline', 'classification'):
        raise Unsupported(f'{tool} cannot be expressed in coco')
    else:
        raise Unsupported(f'unknown tool {tool!r}')
    if ann.get('attributes'):
        out['attributes'] = ann['attributes']
    return out


def coco_to_annotations(
    coco: dict[str, Any], *, category: str, keypoint_names: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """A COCO annotation as document annotations (a multi-part polygon gives one per part)."""
    base: dict[str, Any] = {'id': str(coco['id']), 'category': category}
    if coco.get('iscrowd'):
        base['iscrowd'] = True
    base['attributes'] = dict(coco.get('attributes') or {})
    seg = coco.get('segmentation')
    box = [float(v) for v in coco.get('bbox') or (0, 0, 0, 0)]
    if keypoint_names and coco.get('keypoints'):
        flat = coco['keypoints']
        triplets = range(0, len(flat) - 2, 3)
        kps = [[float(flat[i]), float(flat[i + 1]), int(flat[i + 2])] for i in triplets]
        area = float(coco.get('area') or box[2] * box[3])
        return [{**base, 'tool': 'keypoint', 'bbox': box, 'area': area, 'keypoints': kps}]
    if isinstance(seg, dict):
        rle = rle_compress(seg)
        area = float(rle_area(rle))
        return [{**base, 'tool': 'segmentation', 'bbox': rle_bbox(rle), 'area': area, 'mask': rle}]
    if isinstance(seg, list) and seg:
        out = []
        parts = [p for p in seg if len(p) >= 6]
        for k, poly in enumerate(parts):
            points = [[float(poly[i]), float(poly[i + 1])] for i in range(0, len(poly) - 1, 2)]
            ann_id = base['id'] if len(parts) == 1 else f'{base["id"]}_{k}'
            geometry = {'bbox': enclosing_box(points), 'area': polygon_area(points)}
            out.append({**base, 'id': ann_id, 'tool': 'polygon', **geometry, 'points': points})
        return out
    return [{**base, 'tool': 'bounding_box', 'bbox': box, 'area': box[2] * box[3]}]


def _tool_of(coco: dict[str, Any], has_keypoints: bool) -> str:
    seg = coco.get('segmentation')
    if has_keypoints and coco.get('keypoints'):
        return 'keypoint'
    if isinstance(seg, dict):
        return 'segmentation'
    if isinstance(seg, list) and seg:
        return 'polygon'
    return 'bounding_box'


def coco_to_configuration(
    categories: list[dict[str, Any]], annotations: list[dict[str, Any]]
) -> dict[str, Any]:
    """Project configuration from COCO categories, ordered by id; a class's tool is that of
    its first annotation (``bounding_box`` when it has none)."""
    cats = sorted(categories, key=lambda c: c['id'])
    tools: dict[int, str] = {}
    kp_ids = {c['id'] for c in cats if c.get('keypoints')}
    for a in annotations:
        if a.get('category_id') not in tools:
            tools[a['category_id']] = _tool_of(a, a.get('category_id') in kp_ids)
    classes = []
    keypoints = {}
    for c in cats:
        tool = 'keypoint' if c['id'] in kp_ids else tools.get(c['id'], 'bounding_box')
        classes.append({'name': c['name'], 'tool': tool, 'attributes': []})
        if c.get('keypoints'):
            keypoints[c['name']] = {
                'names': list(c['keypoints']),
                'skeleton': [[a - 1, b - 1] for a, b in c.get('skeleton') or []],
            }
    return {'classes': classes, 'keypoints': keypoints}

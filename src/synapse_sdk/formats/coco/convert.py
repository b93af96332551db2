"""Pure conversions between annotation documents (DESIGN section 3) and COCO.

COCO conventions written here:

- ``bbox`` is ``[x, y, width, height]`` in absolute pixels, top-left origin (the document's own
  box convention, so no shift is applied);
- every annotation has a ``segmentation`` that pycocotools' ``annToMask`` accepts: polygons
  ``[[x1, y1, x2, y2, ...]]`` (a box's four corners, a keypoint annotation's box), masks as
  compressed RLE ``{"size": [h, w], "counts": "..."}``;
- coordinates outside the image are clamped to it (reported); numbers are checked (NaN, inf,
  strings and values beyond 2**31 pixels skip the annotation with the reason);
- ``area`` is the polygon's shoelace area or the mask's pixel count, the box's ``w * h`` only
  for boxes and keypoints;
- ``iscrowd`` is always present: 1 only when the document says ``iscrowd: true`` (a mask is not
  a crowd because it has holes);
- keypoints are ``[x1, y1, v1, ...]`` triplets in configured order, with ``num_keypoints`` the
  number of labelled (v > 0) points; unlabelled points are written ``0, 0, 0``;
- category ids are the classes' ``source_id`` (kept from a COCO import) when every class has
  one, else ``class index + category_id_start``; keypoint skeletons are 1-based in COCO and
  0-based in the configuration;
- image-level labels (tool ``classification`` or no geometry) and polylines are skipped with
  the reason;
- a rotated box becomes its enclosing box, with its four true corners as the segmentation
  polygon (so nothing is lost; it is imported back as a polygon).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from synapse_sdk.formats.base import ItemLog, Unsupported, is_label_only
from synapse_sdk.formats.classmap import ClassMap
from synapse_sdk.formats.geometry import (
    box4,
    check_mask,
    clamp_box,
    clamp_points,
    clamp_reported,
    clamped_polygon,
    enclosing_box,
    finite,
    keypoints3,
    polygon_area,
    rle_area,
    rle_bbox,
    rotated_corners,
    sized_box,
)

_TOOLS = ('bounding_box', 'polygon', 'segmentation', 'keypoint')
_GEOMETRY = {
    'bounding_box': 'bbox',
    'polygon': 'points',
    'segmentation': 'mask',
    'keypoint': 'keypoints',
}

__all__ = [
    'annotation_to_coco',
    'categories_to_coco',
    'category_ids',
    'image_to_coco',
]


def categories_to_coco(
    class_map: ClassMap, start: int = 1, *, keypoints_file: bool = False
) -> list[dict[str, Any]]:
    """One category per configured class, in configured order, with :func:`category_ids`.

    Keypoint classes carry ``keypoints`` (names) and ``skeleton``; in a ``person_keypoints``
    file (``keypoints_file``) every category does, empty for the others, as COCO readers such as
    Datumaro require there."""
    out = []
    for info, cat_id in zip(class_map, category_ids(class_map, start), strict=True):
        cat: dict[str, Any] = {'id': cat_id, 'name': info.name, 'supercategory': ''}
        if info.keypoints is not None:
            cat['keypoints'] = list(info.keypoints['names'])
            cat['skeleton'] = [[a + 1, b + 1] for a, b in info.keypoints['skeleton']]
        elif keypoints_file:
            cat['keypoints'] = []
            cat['skeleton'] = []
        out.append(cat)
    return out


def category_ids(class_map: ClassMap, start: int = 1) -> list[int]:
    """The classes' ``source_id`` when every class has one and they are unique (a dataset
    imported from COCO keeps its ids), else ``index + start``."""
    sources = [c.source_id for c in class_map]
    if sources and all(isinstance(s, int) for s in sources) and len(set(sources)) == len(sources):
        return [int(s) for s in sources if s is not None]
    return [i + start for i in range(len(class_map))]


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

    Every result has a ``segmentation`` pycocotools' ``annToMask`` accepts: a polygon (a box's
    four corners, a keypoint annotation's box) or an RLE mask. Coordinates are clamped to the
    image (reported). Raises :class:`Unsupported` (the reason) for what COCO cannot express
    (polylines, image-level labels) and for malformed, non-finite or empty geometry.
    """
    log = log or ItemLog()
    tool = ann.get('tool')
    w, h = image_size
    out: dict[str, Any] = {'category_id': category_id, 'iscrowd': 1 if ann.get('iscrowd') else 0}
    if tool == 'classification' or (
        not ann.get(_GEOMETRY.get(str(tool), 'bbox'))
        and (tool in _TOOLS or tool is None)
        and is_label_only(ann)
    ):
        raise Unsupported('image-level label: coco has only objects')
    if tool == 'bounding_box':
        x, y, bw, bh = sized_box(ann.get('bbox'))
        rotation = finite(ann['rotation'], 'rotation') if ann.get('rotation') else 0.0
        if rotation % (2 * math.pi):
            exact = rotated_corners((x, y, bw, bh), rotation)
            corners = clamp_reported(clamp_points(exact, w, h), log)
            out['bbox'] = enclosing_box(corners)
            out['area'] = polygon_area(corners)
            out['segmentation'] = [[c for p in corners for c in p]]
            log.convert('rotated box -> enclosing box (coco)')
        else:
            box = clamp_reported(clamp_box((x, y, bw, bh), w, h), log)
            x, y, bw, bh = box
            out['bbox'] = box
            out['area'] = bw * bh
            out['segmentation'] = [[x, y, x + bw, y, x + bw, y + bh, x, y + bh]]
        if out['area'] <= 0:
            raise Unsupported('box outside the image')
    elif tool == 'polygon':
        points, area = clamped_polygon(ann, w, h, log)
        out['segmentation'] = [[c for p in points for c in p]]
        out['bbox'] = enclosing_box(points)
        out['area'] = area
    elif tool == 'segmentation':
        rle = check_mask(ann.get('mask'), image_size)
        area = rle_area(rle)
        if area <= 0:
            raise Unsupported('empty mask')
        out['segmentation'] = rle
        out['bbox'] = rle_bbox(rle)
        out['area'] = float(area)
    elif tool == 'keypoint':
        out.update(_keypoints(ann, keypoint_names, w, h, log))
    elif tool == 'polyline':
        raise Unsupported('polyline cannot be expressed in coco')
    else:
        raise Unsupported(f'unknown tool {tool!r}')
    if ann.get('attributes'):
        out['attributes'] = ann['attributes']
    return out


def _keypoints(
    ann: dict[str, Any], names: Sequence[str] | None, w: int, h: int, log: ItemLog
) -> dict[str, Any]:
    if not names:
        raise Unsupported('keypoint class has no keypoint names in the configuration')
    kps = keypoints3(ann.get('keypoints') or [])
    if len(kps) != len(names):
        raise Unsupported('keypoint count differs from the configured keypoint names')
    labelled = clamp_reported(clamp_points([(x, y) for x, y, v in kps if v], w, h), log)
    flat: list[float] = []
    it = iter(labelled)
    for _, _, v in kps:
        if v:
            px, py = next(it)
            flat += [px, py, v]
        else:
            flat += [0, 0, 0]
    if ann.get('bbox'):
        box = clamp_reported(clamp_box(box4(ann['bbox']), w, h), log)
    elif labelled:
        box = enclosing_box(labelled)
    else:
        raise Unsupported('keypoint annotation with no box and no labelled point')
    x, y, bw, bh = box
    area = ann.get('area')
    area = finite(area, 'area') if area is not None else bw * bh
    if area < 0:
        raise Unsupported('area is not a finite number')
    return {
        'keypoints': flat,
        'num_keypoints': len(labelled),
        'bbox': box,
        'area': area or bw * bh,
        'segmentation': [[x, y, x + bw, y, x + bw, y + bh, x, y + bh]],
    }

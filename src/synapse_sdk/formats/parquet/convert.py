"""Pure conversions between annotation documents and Hugging Face ``datasets`` object-detection
rows, and the ``datasets`` features that describe them.

A row (one image)::

    image           {"bytes": <file bytes> | null, "path": <file name>}   datasets.Image
    image_id        int64     the record id
    width, height   int32
    objects         struct of lists, one entry per object (datasets.Sequence of a dict):
      id            int64     1, 2 ... within the export
      area          float64   box w*h, polygon area or mask pixel count
      bbox          [x, y, w, h] float64, COCO convention (absolute pixels, top-left origin)
      category      ClassLabel index into the configured classes
      iscrowd       bool
      segmentation  polygons, each [x1, y1, x2, y2, ...] (COCO's polygon form; [] for boxes)
      rle           COCO compressed RLE counts of a mask over the whole image, else null
      attributes    the annotation's attributes as JSON, null when it has none
    classifications the image's classifications as JSON, null when it has none

A rotated box is its enclosing box with its four corners as the polygon (as COCO does, so
nothing is lost); a keypoint annotation is its box (reported); polylines and classification
annotations have no object form (reported as skipped). Features are written in the classic
``Sequence`` form, which every ``datasets`` release reads.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import orjson

from synapse_sdk.formats.base import ItemLog, Unsupported
from synapse_sdk.formats.geometry import (
    annotation_box,
    check_mask,
    check_numbers,
    clamp_box,
    clamp_points,
    clamp_reported,
    clamped_polygon,
    enclosing_box,
    polygon_area,
    rle_area,
    rle_bbox,
    rotated_corners,
    sized_box,
)

__all__ = [
    'OBJECT_FIELDS',
    'annotation_to_object',
    'features',
    'features_yaml',
    'object_to_annotations',
]

OBJECT_FIELDS = ('id', 'area', 'bbox', 'category', 'iscrowd', 'segmentation', 'rle', 'attributes')


def _value(dtype: str) -> dict[str, Any]:
    return {'dtype': dtype, '_type': 'Value'}


def _seq(feature: dict[str, Any], length: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {'feature': feature}
    if length is not None:
        out['length'] = length
    out['_type'] = 'Sequence'
    return out


def features(class_names: Sequence[str]) -> dict[str, Any]:
    """The ``datasets`` features (``Features.to_dict()`` form) of every row."""
    return {
        'image': {'_type': 'Image'},
        'image_id': _value('int64'),
        'width': _value('int32'),
        'height': _value('int32'),
        'objects': _seq(
            {
                'id': _value('int64'),
                'area': _value('float64'),
                'bbox': _seq(_value('float64'), length=4),
                'category': {'names': list(class_names), '_type': 'ClassLabel'},
                'iscrowd': _value('bool'),
                'segmentation': _seq(_seq(_value('float64'))),
                'rle': _value('string'),
                'attributes': _value('string'),
            }
        ),
        'classifications': _value('string'),
    }


def _yaml_type(feature: dict[str, Any]) -> dict[str, Any]:
    """One feature in the dataset card's YAML form (without its ``name``)."""
    kind = feature['_type']
    if kind == 'Value':
        return {'dtype': feature['dtype']}
    if kind == 'Image':
        return {'dtype': 'image'}
    if kind == 'ClassLabel':
        names = {str(i): n for i, n in enumerate(feature['names'])}
        return {'dtype': {'class_label': {'names': names}}}
    inner = feature['feature']
    if '_type' not in inner:  # a Sequence of a dict: a list of named sub-features
        out: dict[str, Any] = {'sequence': features_yaml(inner)}
    else:
        sub = _yaml_type(inner)
        out = {'sequence': sub['dtype'] if list(sub) == ['dtype'] else sub}
    if 'length' in feature:
        out['length'] = feature['length']
    return out


def features_yaml(feats: dict[str, Any]) -> list[dict[str, Any]]:
    """Features as the ``dataset_info.features`` list of a dataset card."""
    return [{'name': name, **_yaml_type(feature)} for name, feature in feats.items()]


def annotation_to_object(
    ann: dict[str, Any],
    *,
    category: int,
    image_size: tuple[int, int],
    log: ItemLog | None = None,
) -> dict[str, Any]:
    """One document annotation as an object (without ``id``); :class:`Unsupported` says why
    it has none. Numbers are checked (NaN, inf, strings, beyond 2**31 pixels are skipped) and
    coordinates clamped to the image (reported), as in COCO, whose boxes these are."""
    log = log or ItemLog()
    check_numbers(ann, image_size)
    w, h = image_size
    tool = ann.get('tool')
    segmentation: list[list[float]] = []
    rle_counts: str | None = None
    box: list[float]
    if tool == 'bounding_box':
        box = list(sized_box(ann.get('bbox')))
        rotation = float(ann.get('rotation') or 0.0)
        if rotation % (2 * math.pi):
            exact = rotated_corners(box, rotation)
            corners = clamp_reported(clamp_points(exact, w, h), log)
            area = box[2] * box[3] if corners == exact else polygon_area(corners)
            segmentation = [[c for p in corners for c in p]]
            box = enclosing_box(corners)
            log.convert('rotated box -> enclosing box (parquet)')
        else:
            box = clamp_reported(clamp_box(box, w, h), log)
            area = box[2] * box[3]
    elif tool == 'polygon':
        points, area = clamped_polygon(ann, w, h, log)
        segmentation = [[c for p in points for c in p]]
        box = enclosing_box(points)
    elif tool == 'segmentation':
        rle = check_mask(ann.get('mask'), image_size)  # valid, of the image's size
        area = float(rle_area(rle))
        if area <= 0:
            raise Unsupported('empty mask')
        box = rle_bbox(rle)
        rle_counts = rle['counts']
    elif tool == 'keypoint':
        box = annotation_box(ann, log, 'parquet', report=False)
        box = clamp_reported(clamp_box(box, w, h), log)
        area = box[2] * box[3]
        log.convert('keypoint -> box (parquet)')
    elif tool in ('polyline', 'classification'):
        raise Unsupported(f'{tool} cannot be expressed in parquet')
    else:
        raise Unsupported(f'unknown tool {tool!r}')
    if box[2] <= 0 or box[3] <= 0 or area <= 0:
        raise Unsupported('box outside the image')
    attributes = ann.get('attributes') or None
    return {
        'area': float(area),
        'bbox': [float(v) for v in box],
        'category': category,
        'iscrowd': bool(ann.get('iscrowd')),
        'segmentation': segmentation,
        'rle': rle_counts,
        'attributes': (
            orjson.dumps(attributes, option=orjson.OPT_SORT_KEYS).decode() if attributes else None
        ),
    }


def object_to_annotations(
    obj: dict[str, Any], *, category: str, image_size: tuple[int, int] | None, ann_id: str
) -> list[dict[str, Any]]:
    """Inverse of :func:`annotation_to_object` (``ValueError`` when malformed); an object with
    several polygons gives one polygon annotation per part. A row written by another tool may
    lack any field but ``bbox``."""
    box = [float(v) for v in obj['bbox']]
    if len(box) != 4:
        raise ValueError('bbox is not [x, y, w, h]')
    out: dict[str, Any] = {'id': ann_id, 'category': category}
    if obj.get('iscrowd'):
        out['iscrowd'] = True
    attributes = obj.get('attributes')
    out['attributes'] = orjson.loads(attributes) if isinstance(attributes, str) else {}
    rle = obj.get('rle')
    polygons = [p for p in obj.get('segmentation') or () if p is not None and len(p) >= 6]
    if isinstance(rle, str) and rle:
        if image_size is None:
            raise ValueError('mask on an image of unknown size')
        w, h = image_size
        mask = {'size': [h, w], 'counts': rle}
        geometry = {'bbox': rle_bbox(mask), 'area': float(rle_area(mask)), 'mask': mask}
        return [{**out, 'tool': 'segmentation', **geometry}]
    if polygons:
        parts = []
        for k, poly in enumerate(polygons):
            flat = [float(v) for v in poly]
            points = [[flat[i], flat[i + 1]] for i in range(0, len(flat) - 1, 2)]
            geometry = {'bbox': enclosing_box(points), 'area': polygon_area(points)}
            part_id = ann_id if len(polygons) == 1 else f'{ann_id}_{k}'
            parts.append({**out, 'id': part_id, 'tool': 'polygon', **geometry, 'points': points})
        return parts
    area = obj.get('area')
    area = float(area) if area is not None else box[2] * box[3]
    return [{**out, 'tool': 'bounding_box', 'bbox': box, 'area': area}]

"""The annotation document (DESIGN section 3) and the platform's DM v1 form, both ways.

DM v2 is the document itself: ``{"annotations": [annotation, ...], "classifications": {...}}``.

DM v1 keeps labels and geometry apart, per media (``"image_1"`` by default)::

    {
      "annotations": {"image_1": [
          {"id": "a1", "tool": "bounding_box", "isLocked": false, "isVisible": true,
           "classification": {"class": "car", "occluded": false}}      # class + attributes
      ]},
      "annotationsData": {"image_1": [
          {"id": "a1", "coordinate": {"x": 12.5, "y": 40, "width": 100, "height": 60,
                                      "rotation": 0.3},
           "area": 6000.0}                                              # other fields as is
      ]},
      "classifications": {"weather": "sunny"}
    }

``coordinate`` by tool: ``bounding_box`` ``{x, y, width, height[, rotation]}`` (from ``bbox``
and ``rotation``); ``polygon`` / ``polyline`` ``[{x, y}, ...]`` (from ``points``);
``keypoint`` ``[{x, y, visibility}, ...]`` (from ``keypoints``); ``segmentation`` the RLE
``{size, counts}`` (from ``mask``); ``classification`` has none. Every other annotation field
(``bbox`` of non-box tools, ``area``, ``iscrowd`` ...) rides along in the data entry unchanged;
other top-level keys (``relations``, ``annotationGroups`` ...) pass through both ways.

``from_dm_v1(to_dm_v1(doc)) == doc`` for documents whose annotations carry ``attributes``, are
grouped by media, and omit ``media`` when it is the default ``"image_1"`` (the normal form
:func:`from_dm_v1` produces). An attribute may not be named ``class`` (v1 has no room for it).
"""

from __future__ import annotations

from typing import Any

__all__ = ['DEFAULT_MEDIA', 'from_dm_v1', 'is_dm_v1', 'to_dm_v1']

DEFAULT_MEDIA = 'image_1'
_V1_KEYS = ('annotations', 'annotationsData', 'classifications')
_OWN = ('id', 'category', 'tool', 'attributes', 'media')


def is_dm_v1(data: Any) -> bool:
    """True for the v1 shape (per-media ``annotations`` dict or an ``annotationsData`` key)."""
    return isinstance(data, dict) and (
        isinstance(data.get('annotations'), dict) or 'annotationsData' in data
    )


def _coordinate(ann: dict[str, Any]) -> tuple[Any, tuple[str, ...]]:
    """(v1 coordinate or None, the document keys it carries)."""
    tool = ann.get('tool')
    if tool == 'bounding_box' and 'bbox' in ann:
        x, y, w, h = ann['bbox']
        coord: dict[str, Any] = {'x': x, 'y': y, 'width': w, 'height': h}
        if 'rotation' in ann:
            coord['rotation'] = ann['rotation']
        return coord, ('bbox', 'rotation')
    if tool in ('polygon', 'polyline') and 'points' in ann:
        return [{'x': p[0], 'y': p[1]} for p in ann['points']], ('points',)
    if tool == 'keypoint' and 'keypoints' in ann:
        kps = [
            {'x': kp[0], 'y': kp[1], **({'visibility': kp[2]} if len(kp) > 2 else {})}
            for kp in ann['keypoints']
        ]
        return kps, ('keypoints',)
    if tool == 'segmentation' and 'mask' in ann:
        return ann['mask'], ('mask',)
    return None, ()


def to_dm_v1(document: dict[str, Any]) -> dict[str, Any]:
    """The DM v1 form of an annotation document."""
    out: dict[str, Any] = {k: v for k, v in document.items() if k not in _V1_KEYS}
    labels: dict[str, list[dict[str, Any]]] = {}
    geometry: dict[str, list[dict[str, Any]]] = {}
    for ann in document.get('annotations') or []:
        media = ann.get('media') or DEFAULT_MEDIA
        attrs = dict(ann.get('attributes') or {})
        if 'class' in attrs:
            raise ValueError(f'annotation {ann.get("id")!r} has an attribute named "class"')
        labels.setdefault(media, []).append(
            {
                'id': ann['id'],
                'tool': ann.get('tool'),
                'isLocked': False,
                'isVisible': True,
                'classification': {'class': ann.get('category'), **attrs},
            }
        )
        coord, carried = _coordinate(ann)
        entry: dict[str, Any] = {'id': ann['id']}
        if coord is not None:
            entry['coordinate'] = coord
        entry.update({k: v for k, v in ann.items() if k not in _OWN and k not in carried})
        geometry.setdefault(media, []).append(entry)
    out['annotations'] = labels
    out['annotationsData'] = geometry
    out['classifications'] = dict(document.get('classifications') or {})
    return out


def _from_coordinate(tool: Any, coord: Any) -> dict[str, Any]:
    if coord is None:
        return {}
    if tool == 'bounding_box':
        out: dict[str, Any] = {'bbox': [coord['x'], coord['y'], coord['width'], coord['height']]}
        if 'rotation' in coord:
            out['rotation'] = coord['rotation']
        return out
    if tool in ('polygon', 'polyline'):
        return {'points': [[p['x'], p['y']] for p in coord]}
    if tool == 'keypoint':
        return {
            'keypoints': [
                [p['x'], p['y'], p['visibility']] if 'visibility' in p else [p['x'], p['y']]
                for p in coord
            ]
        }
    if tool == 'segmentation':
        return {'mask': coord}
    return {'coordinate': coord}


def from_dm_v1(data: dict[str, Any]) -> dict[str, Any]:
    """The annotation document of a DM v1 record (see the module docstring)."""
    out: dict[str, Any] = {k: v for k, v in data.items() if k not in _V1_KEYS}
    annotations = []
    all_geometry = data.get('annotationsData') or {}
    for media, labels in (data.get('annotations') or {}).items():
        geometry = {g.get('id'): g for g in all_geometry.get(media) or [] if isinstance(g, dict)}
        for label in labels or []:
            classification = dict(label.get('classification') or {})
            ann: dict[str, Any] = {
                'id': label['id'],
                'category': classification.pop('class', None),
                'tool': label.get('tool'),
            }
            entry = geometry.get(label['id']) or {}
            ann.update(_from_coordinate(ann['tool'], entry.get('coordinate')))
            ann.update({k: v for k, v in entry.items() if k not in ('id', 'coordinate')})
            ann['attributes'] = classification
            if media != DEFAULT_MEDIA:
                ann['media'] = media
            annotations.append(ann)
    out['annotations'] = annotations
    out['classifications'] = dict(data.get('classifications') or {})
    return out

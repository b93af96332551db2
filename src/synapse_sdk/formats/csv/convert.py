"""Pure conversions between annotation documents and CSV rows.

One row per annotation, in this column order (:data:`COLUMNS`):

- ``item_id``, ``file`` (the image's unique name in the export), ``file_name_original``,
  ``split``, ``image_width``, ``image_height`` (pixels; empty when unknown), ``annotation_id``,
  ``class``, ``tool``;
- ``x``, ``y``, ``width``, ``height``: the document's ``bbox`` (absolute pixels, top-left
  origin), ``rotation`` (radians clockwise, boxes only), ``area``, ``iscrowd`` (0/1);
- ``points``, ``keypoints``, ``mask``: JSON (``[[x, y], ...]``, ``[[x, y, v], ...]``, RLE);
- ``attributes`` and ``classifications`` (the item's): JSON objects with sorted keys.

CSV expresses every tool, so nothing is converted. An image with no annotation is written as
one row whose annotation columns are empty: images are never dropped. Numbers are written as
Python's shortest round-trip repr; empty cells mean "absent". Every number is checked first: an
annotation with NaN, inf, a string for a number or an invalid mask is skipped with the reason.
"""

from __future__ import annotations

from typing import Any

import orjson

from synapse_sdk.formats.geometry import check_numbers

__all__ = ['COLUMNS', 'annotation_to_row', 'empty_row', 'row_to_annotation']

COLUMNS = (
    'item_id',
    'file',
    'file_name_original',
    'split',
    'image_width',
    'image_height',
    'annotation_id',
    'class',
    'tool',
    'x',
    'y',
    'width',
    'height',
    'rotation',
    'area',
    'iscrowd',
    'points',
    'keypoints',
    'mask',
    'attributes',
    'classifications',
)
_JSON = orjson.OPT_SORT_KEYS


def _num(value: Any) -> str:
    if value is None:
        return ''
    t = type(value)
    if t is float:
        return repr(value)
    if t is int:
        return str(value)
    if isinstance(value, bool):
        raise TypeError('boolean where a number is expected')
    return repr(float(value)) if isinstance(value, float) else str(int(value))


def _json(value: Any) -> str:
    return '' if value is None else orjson.dumps(value, option=_JSON).decode()


def _size(value: Any) -> str:
    return '' if value is None else str(int(value))


def _item_cells(item: dict[str, Any]) -> list[str]:
    """The leading cells of an item's rows (computed once per item, see :func:`item_info`)."""
    cells = item.get('_cells')
    if cells is None:
        cells = item['_cells'] = [
            str(item['item_id']),
            item['file'],
            item.get('file_name_original') or '',
            item['split'],
            _size(item.get('width')),
            _size(item.get('height')),
        ]
        item['_classifications'] = _json(item.get('classifications') or {})
        w, h = item.get('width'), item.get('height')
        item['_size'] = (w, h) if w and h else None
    return cells


def empty_row(item: dict[str, Any]) -> list[str]:
    """Row of an image without annotations. ``item``: item_id, file, file_name_original,
    split, width, height, classifications."""
    cells = _item_cells(item)
    return [*cells, *[''] * (len(COLUMNS) - 7), item['_classifications']]


def annotation_to_row(ann: dict[str, Any], item: dict[str, Any]) -> list[str]:
    """The row of one annotation; raises ``Unsupported`` for a number or mask that is not
    valid (see :func:`~synapse_sdk.formats.geometry.check_numbers`)."""
    cells = item.get('_cells') or _item_cells(item)
    check_numbers(ann, item['_size'])
    get = ann.get
    bbox = get('bbox')
    if bbox:  # checked: four int or float values (no bool); the common types formatted inline
        x, y, w, h = bbox[0], bbox[1], bbox[2], bbox[3]
        box = [
            repr(x) if type(x) is float else _num(x),
            repr(y) if type(y) is float else _num(y),
            repr(w) if type(w) is float else _num(w),
            repr(h) if type(h) is float else _num(h),
        ]
    else:
        box = _NO_BOX
    rotation, area = get('rotation'), get('area')
    points, keypoints, mask = get('points'), get('keypoints'), get('mask')
    attributes = get('attributes')
    dumps = orjson.dumps
    return [
        *cells,
        str(get('id') or ''),
        str(ann['category']),
        str(get('tool') or ''),
        *box,
        '' if rotation is None else repr(rotation) if type(rotation) is float else _num(rotation),
        '' if area is None else repr(area) if type(area) is float else _num(area),
        '1' if get('iscrowd') else '0',
        '' if points is None else dumps(points, option=_JSON).decode(),
        '' if keypoints is None else dumps(keypoints, option=_JSON).decode(),
        '' if mask is None else dumps(mask, option=_JSON).decode(),
        dumps(attributes, option=_JSON).decode() if attributes else '{}',
        item['_classifications'],
    ]


_NO_BOX = ['', '', '', '']


def _float(text: str) -> float | int:
    return float(text) if any(c in text for c in '.eEn') else int(text)


def row_to_annotation(row: dict[str, str]) -> dict[str, Any] | None:
    """Inverse of :func:`annotation_to_row` (``None`` for an empty-image row)."""
    if not row.get('class'):
        return None
    ann: dict[str, Any] = {'id': row['annotation_id'], 'category': row['class']}
    ann['tool'] = row['tool']
    if row.get('x', '') != '':
        ann['bbox'] = [_float(row[k]) for k in ('x', 'y', 'width', 'height')]
    for key in ('rotation', 'area'):
        if row.get(key, '') != '':
            ann[key] = _float(row[key])
    if row.get('iscrowd') == '1':
        ann['iscrowd'] = True
    for key in ('points', 'keypoints', 'mask'):
        if row.get(key):
            ann[key] = orjson.loads(row[key])
    ann['attributes'] = orjson.loads(row['attributes']) if row.get('attributes') else {}
    return ann

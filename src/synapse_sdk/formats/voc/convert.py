"""Pure conversions between annotation documents and Pascal VOC objects.

Coordinates (``coordinates`` option):

- ``zero_based`` (default), the convention of Datumaro, CVAT, globox, Ultralytics and
  MMDetection: ``xmin = x``, ``ymin = y``, ``xmax = x + w``, ``ymax = y + h`` and back
  ``w = xmax - xmin``, so round trips with those tools are exact (a one-pixel box stays one pixel
  wide). Values are written exactly (``12``, ``12.5``) unless ``precision`` rounds them (0:
  whole pixels, a box keeps at least one pixel; 1-6: that many decimals);
- ``one_based``, the VOC devkit's (and Detectron2's): 1-based pixel indices, both ends
  inclusive, whole pixels: the pixels the box touches, ``xmin = floor(x) + 1``,
  ``xmax = ceil(x + w)``; read back ``x = xmin - 1``, ``w = xmax - xmin + 1``.

Boxes are clamped to the image (reported). ``truncated`` is the document's ``truncated``
attribute when it has one, else whether the (clamped) box reaches the border; ``difficult`` and
``occluded`` are VOC elements (``0``/``1``, as Datumaro reads them); ``pose`` is ``Unspecified``
unless the document says. Other attributes go into ``<attributes>`` the way CVAT and Datumaro
write them: a text value per name (strings as they are, booleans ``true``/``false``, numbers
as numbers, anything else as JSON); read back, ``true``/``false``/numbers/JSON become values
again and any other text stays a string.

Rotated boxes become their enclosing box; polygons become their box (each reported). What VOC
cannot carry is skipped with the reason: masks, keypoints, polylines and image-level labels.

Text is made valid XML 1.0: characters XML cannot hold (control characters other than tab and
line breaks) become U+FFFD (reported), and a carriage return is written as ``&#13;`` so parsers
keep it. The class list (``labelmap.txt``, Datumaro's format ``name:color:parts:actions``)
escapes what a line of it cannot hold (see :func:`labelmap_name`).
"""

from __future__ import annotations

import math
import re
from typing import Any
from urllib.parse import unquote

import orjson

from synapse_sdk.formats.base import ItemLog, Unsupported, is_label_only
from synapse_sdk.formats.geometry import annotation_box, clamp_box, fmt_exact, fmt_fixed

__all__ = [
    'annotation_to_voc',
    'attribute_text',
    'box_to_voc',
    'labelmap_name',
    'labelmap_text',
    'parse_labelmap',
    'voc_to_box',
    'xml_text',
]

#: Attributes VOC has elements for; never repeated in ``<attributes>``.
BUILTIN = ('difficult', 'truncated', 'occluded', 'pose')
_XML_INVALID = re.compile('[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]')
_LABELMAP_ESCAPE = re.compile(r'%(?=[0-9A-Fa-f]{2})|[:\n\r]|^[\s#]|\s$')


#: Texts known to be valid XML (class names and poses repeat on every object): no search.
_VALID: set[str] = set()
_VALID_MAX = 4096


def xml_text(text: str, log: ItemLog | None = None) -> str:
    """``text`` with the characters XML 1.0 cannot hold replaced by U+FFFD (reported)."""
    if text in _VALID:
        return text
    if _XML_INVALID.search(text) is None:
        if len(_VALID) >= _VALID_MAX:
            _VALID.clear()
        _VALID.add(text)
        return text
    if log is not None:
        log.convert('characters XML cannot hold replaced (voc)')
    return _XML_INVALID.sub('\ufffd', text)


def box_to_voc(
    bbox: list[float], precision: int | None = None, one_based: bool = False
) -> dict[str, str]:
    """``[x, y, w, h]`` -> ``{"xmin", "ymin", "xmax", "ymax"}`` as text (see the module doc)."""
    x, y, w, h = (float(v) for v in bbox[:4])
    if one_based:
        x0, y0 = math.floor(x) + 1, math.floor(y) + 1
        x1, y1 = max(math.ceil(x + w), x0), max(math.ceil(y + h), y0)
        return {'xmin': str(x0), 'ymin': str(y0), 'xmax': str(x1), 'ymax': str(y1)}
    if precision == 0:
        x0, y0, x1, y1 = round(x), round(y), round(x + w), round(y + h)
        return {
            'xmin': str(x0),
            'ymin': str(y0),
            'xmax': str(max(x1, x0 + 1)),
            'ymax': str(max(y1, y0 + 1)),
        }
    if precision is None:
        fx1, fy1 = x + w, y + h
        return {  # fmt_exact, inline: whole numbers without ".0", others as repr
            'xmin': str(int(x)) if x.is_integer() and -1e16 < x < 1e16 else repr(x),
            'ymin': str(int(y)) if y.is_integer() and -1e16 < y < 1e16 else repr(y),
            'xmax': str(int(fx1)) if fx1.is_integer() and -1e16 < fx1 < 1e16 else repr(fx1),
            'ymax': str(int(fy1)) if fy1.is_integer() and -1e16 < fy1 < 1e16 else repr(fy1),
        }
    return {
        'xmin': fmt_fixed(x, precision),
        'ymin': fmt_fixed(y, precision),
        'xmax': fmt_fixed(x + w, precision),
        'ymax': fmt_fixed(y + h, precision),
    }


def voc_to_box(
    xmin: float, ymin: float, xmax: float, ymax: float, one_based: bool = False
) -> list[float]:
    """VOC corners -> document ``[x, y, w, h]`` (inverse of :func:`box_to_voc`)."""
    if one_based:
        return [xmin - 1, ymin - 1, xmax - xmin + 1, ymax - ymin + 1]
    return [xmin, ymin, xmax - xmin, ymax - ymin]


def _at_border(box: list[float], image_size: tuple[int, int]) -> bool:
    """VOC's ``truncated`` proxy: the (clamped) box reaches the image border."""
    x, y, w, h = box
    return x <= 0 or y <= 0 or x + w >= image_size[0] or y + h >= image_size[1]


def _flag(value: Any) -> str:
    if isinstance(value, str):
        return '1' if value.strip().lower() in ('1', 'true', 'yes') else '0'
    return '1' if value else '0'


def attribute_text(value: Any) -> str:
    """An attribute value as CVAT and Datumaro write it in ``<attributes>``."""
    if isinstance(value, str):
        return value
    if value is True or value is False:
        return 'true' if value else 'false'
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return fmt_exact(value)
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def annotation_to_voc(
    ann: dict[str, Any],
    *,
    image_size: tuple[int, int],
    precision: int | None = None,
    one_based: bool = False,
    log: ItemLog | None = None,
) -> dict[str, Any]:
    """A VOC ``<object>`` as a dict (children in writing order); raises :class:`Unsupported`."""
    log = log or ItemLog()
    tool = ann.get('tool')
    if tool == 'segmentation':
        raise Unsupported('voc has no masks (segmentation)')
    if tool == 'keypoint':
        raise Unsupported('voc has no keypoints')
    if not (tool == 'bounding_box' and ann.get('bbox')) and (  # a box is never label-only
        tool == 'classification' or (tool != 'polyline' and is_label_only(ann))
    ):
        raise Unsupported('image-level label: voc has only objects')
    box, clamped = clamp_box(annotation_box(ann, log, 'voc'), *image_size)
    if box[2] <= 0 or box[3] <= 0:
        raise Unsupported('box outside the image or of zero size')
    if clamped:
        log.clamp()
    if ann.get('iscrowd'):
        log.convert('crowd flag not expressible (voc)')
    attrs = ann.get('attributes') or {}
    if not isinstance(attrs, dict):
        raise Unsupported('attributes are not an object')
    truncated = attrs['truncated'] if 'truncated' in attrs else _at_border(box, image_size)
    occluded, difficult = attrs.get('occluded'), attrs.get('difficult')
    obj: dict[str, Any] = {
        'name': xml_text(str(ann['category']), log),
        'pose': xml_text(str(attrs.get('pose') or 'Unspecified'), log),
        'truncated': _FLAGS[truncated] if type(truncated) is bool else _flag(truncated),
        'occluded': _flag(occluded) if occluded is not None else '0',
        'difficult': _flag(difficult) if difficult is not None else '0',
        'bndbox': box_to_voc(box, precision, one_based),
        'attributes': [
            (xml_text(str(k), log), xml_text(attribute_text(v), log))
            for k, v in sorted(attrs.items(), key=lambda kv: str(kv[0]))
            if k not in BUILTIN
        ]
        if attrs
        else [],
    }
    return obj


_FLAGS = {True: '1', False: '0'}


# --- the class list ---------------------------------------------------------------------------


def labelmap_name(name: str) -> str:
    """A class name as one field of a ``labelmap.txt`` line.

    Unchanged unless it holds what such a line cannot (``:``, a line break, leading ``#`` or
    whitespace at either end, which readers strip); those characters are then percent-escaped,
    and so is a ``%`` followed by two hex digits, so :func:`parse_labelmap` gives every name
    back exactly. Datumaro reads the names unchanged (it cannot read the escaped ones at all).
    """
    return _LABELMAP_ESCAPE.sub(lambda m: ''.join(f'%{ord(c):02X}' for c in m.group()), name)


def labelmap_text(names: list[str]) -> str:
    """``labelmap.txt`` in Datumaro's format, one class per line in class-map order."""
    lines = ['# label:color_rgb:parts:actions']
    lines += [f'{labelmap_name(name)}:::' for name in names]
    return '\n'.join(lines) + '\n'


def parse_labelmap(text: str) -> list[str]:
    """Class names of a ``labelmap.txt`` (ours or Datumaro's/CVAT's), in file order."""
    names = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith('#'):
            continue
        names.append(unquote(line.rstrip('\r\n').split(':')[0]))
    return names

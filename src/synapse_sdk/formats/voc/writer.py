"""Pascal VOC writer (devkit layout, written at the export root)::

    Annotations/<stem>.xml          one per image, empty images included (no <object>)
    JPEGImages/<stem><ext>          the originals, under their unique names and own extension
    ImageSets/Main/<split>.txt      stems of each split that has items, in export order
    ImageSets/Main/trainval.txt     the train and val (validation) stems, as the devkit has it
    labelmap.txt                    the class map in Datumaro's format (what Datumaro and CVAT
                                    read): ``name:color:parts:actions`` per line
    labels.txt                      the same names, one per line (for tools that read that)

``<depth>`` is 3: the size comes from the record, without decoding the image. An item is
written all or nothing: its XML goes through a temporary name, and when a list line cannot be
written the XML is removed again.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Literal

from pydantic import Field

from synapse_sdk.formats.base import (
    AppendStream,
    CommonOptions,
    FormatItem,
    FormatWriter,
    ItemLog,
    write_error,
    write_file,
)
from synapse_sdk.formats.geometry import plain_points_box
from synapse_sdk.formats.voc.convert import (
    annotation_to_voc,
    labelmap_name,
    labelmap_text,
    xml_text,
)

__all__ = ['VocWriter', 'object_xml', 'plain_object_xml', 'voc_xml']

TRAINVAL = ('train', 'val', 'validation')


def _escape(text: str) -> str:
    """Character data as ElementTree writes it (``&``, ``<`` and ``>`` escaped)."""
    if '&' in text:
        text = text.replace('&', '&amp;')
    if '<' in text:
        text = text.replace('<', '&lt;')
    if '>' in text:
        text = text.replace('>', '&gt;')
    return text


def _leaf(tag: str, text: str, pad: str) -> str:
    """One element without children on its own line (``<tag />`` when the text is empty)."""
    if not text:
        return f'{pad}<{tag} />\n'
    return f'{pad}<{tag}>{_escape(text)}</{tag}>\n'


def _head(file_name: str, width: int, height: int) -> str:
    return (
        f'<annotation>\n  <folder>JPEGImages</folder>\n{_leaf("filename", file_name, "  ")}'
        '  <source>\n    <database>Synapse</database>\n  </source>\n  <size>\n'
        f'    <width>{width}</width>\n    <height>{height}</height>\n'
        '    <depth>3</depth>\n  </size>\n  <segmented>0</segmented>\n'
    )


def object_xml(obj: dict[str, Any]) -> str:
    """One ``<object>`` element (an :func:`~.convert.annotation_to_voc` dict) as indented text."""
    parts = ['  <object>\n']
    for key, value in obj.items():
        if key == 'bndbox':
            parts.append('    <bndbox>\n')
            for k in ('xmin', 'ymin', 'xmax', 'ymax'):
                parts.append(_leaf(k, value[k], '      '))
            parts.append('    </bndbox>\n')
        elif key == 'attributes':
            if not value:
                continue
            parts.append('    <attributes>\n')
            for name, text in value:
                parts.append('      <attribute>\n')
                parts.append(_leaf('name', name, '        '))
                parts.append(_leaf('value', text, '        '))
                parts.append('      </attribute>\n')
            parts.append('    </attributes>\n')
        else:
            parts.append(_leaf(key, value, '    '))
    parts.append('  </object>\n')
    return ''.join(parts)


def _document(file_name: str, width: int, height: int, objects: list[str]) -> str:
    # A raw carriage return would be turned into a line feed by every XML parser.
    text = f'{_head(file_name, width, height)}{"".join(objects)}</annotation>\n'
    return text.replace('\r', '&#13;') if '\r' in text else text


def voc_xml(file_name: str, width: int, height: int, objects: list[dict[str, Any]]) -> str:
    """The annotation XML of one image (text already valid XML, see ``convert.xml_text``).

    Written as text, byte for byte what ElementTree gives for the same tree indented by two
    spaces (``ET.indent``), at a fraction of its cost: one string per image, no element
    objects (``tests/formats/test_voc.py`` compares the two on hostile text).
    """
    return _document(file_name, width, height, [object_xml(obj) for obj in objects])


def plain_object_xml(
    ann: dict[str, Any], width: int, height: int, log: ItemLog | None = None
) -> str | None:
    """The ``<object>`` text of the commonest annotations, straight from the document, or
    ``None`` for anything else (then :func:`~.convert.annotation_to_voc` and
    :func:`object_xml` take it).

    Common: an unrotated, uncrowded box of plain numbers inside the image, or (with ``log``,
    where its conversion to a box is reported) a polygon of three or more such points inside
    the image; a class name that is valid XML text; no attributes but ``truncated`` /
    ``occluded`` / ``difficult`` (booleans or absent). The result, and what ``log`` hears, is
    what the general path gives with the default options (zero-based, exact numbers);
    ``tests/formats/test_voc.py`` checks that.
    """
    tool = ann.get('tool')
    if ann.get('rotation') or ann.get('iscrowd'):
        return None
    if tool == 'bounding_box':
        bbox = ann.get('bbox')
        if type(bbox) is not list or len(bbox) != 4:
            return None
        x, y, w, h = bbox
        if not (
            type(x) in _PLAIN and type(y) in _PLAIN and type(w) in _PLAIN and type(h) in _PLAIN
        ):
            return None
        x, y, w, h = float(x), float(y), float(w), float(h)
    elif tool == 'polygon' and log is not None:
        box = plain_points_box(ann.get('points'), width, height)
        if box is None:
            return None
        x, y, w, h = box  # its enclosing box, computed as the general path does
    else:
        return None
    xmax, ymax = x + w, y + h
    if not (x >= 0.0 and y >= 0.0 and xmax <= width and ymax <= height and w > 0.0 and h > 0.0):
        return None
    attrs = ann.get('attributes') or _NONE
    if type(attrs) is not dict or not attrs.keys() <= _FLAG_KEYS:
        return None
    name = ann['category']
    if type(name) is not str or not name or (name not in _VALID_NAMES and not _valid_name(name)):
        return None
    truncated = attrs.get('truncated')
    if truncated is None:
        if 'truncated' in attrs:
            return None
        truncated = x <= 0 or y <= 0 or xmax >= width or ymax >= height
    occluded, difficult = attrs.get('occluded', False), attrs.get('difficult', False)
    if type(truncated) is not bool or type(occluded) is not bool or type(difficult) is not bool:
        return None
    if tool == 'polygon':
        log.convert('polygon -> box (voc)')  # type: ignore[union-attr]
    return (
        f'  <object>\n    <name>{_escape(name)}</name>\n    <pose>Unspecified</pose>\n'
        f'    <truncated>{"1" if truncated else "0"}</truncated>\n'
        f'    <occluded>{"1" if occluded else "0"}</occluded>\n'
        f'    <difficult>{"1" if difficult else "0"}</difficult>\n    <bndbox>\n'
        f'      <xmin>{str(int(x)) if x.is_integer() and x < 1e16 else repr(x)}</xmin>\n'
        f'      <ymin>{str(int(y)) if y.is_integer() and y < 1e16 else repr(y)}</ymin>\n'
        f'      <xmax>{str(int(xmax)) if xmax.is_integer() and xmax < 1e16 else repr(xmax)}'
        '</xmax>\n'
        f'      <ymax>{str(int(ymax)) if ymax.is_integer() and ymax < 1e16 else repr(ymax)}'
        '</ymax>\n    </bndbox>\n  </object>\n'
    )


_PLAIN = frozenset((int, float))
_NONE: dict[str, Any] = {}
_FLAG_KEYS = frozenset(('truncated', 'occluded', 'difficult'))
_VALID_NAMES: set[str] = set()


def _valid_name(name: str) -> bool:
    """Whether ``name`` is XML text as it is (remembered: class names repeat)."""
    if xml_text(name) != name:
        return False
    if len(_VALID_NAMES) < 4096:
        _VALID_NAMES.add(name)
    return True


class VocOptions(CommonOptions):
    coordinates: Literal['zero_based', 'one_based'] = Field(
        'zero_based',
        description='Box convention: zero_based (xmin=x, xmax=x+w: Datumaro, CVAT, Ultralytics, '
        "MMDetection) or one_based (the VOC devkit's 1-based inclusive pixels, Detectron2)",
    )
    precision: int | None = Field(
        None,
        ge=0,
        le=6,
        description='Decimals of zero_based coordinates: none = exact (default), 0 = whole pixels',
    )


class VocWriter(FormatWriter):
    """Options: see :class:`VocOptions` (``coordinates``, ``precision``)."""

    name = 'voc'
    Options = VocOptions

    def start(self) -> None:
        self.precision: int | None = self.options['precision']
        self.one_based = self.options['coordinates'] == 'one_based'
        for d in ('Annotations', 'JPEGImages', 'ImageSets/Main'):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        self._annotations = os.path.join(self.root, 'Annotations', '')
        # the default options: plain boxes are written straight from the document
        self._plain = self.precision is None and not self.one_based
        self._sets: dict[str, AppendStream] = {}

    def _set(self, name: str) -> AppendStream:
        f = self._sets.get(name)
        if f is None:
            f = self._sets[name] = AppendStream(self.root / 'ImageSets' / 'Main' / f'{name}.txt')
        return f

    def image_relpath(self, item: FormatItem) -> str:
        return f'JPEGImages/{item.file_name}'

    def _object(self, ann: dict[str, Any], size: tuple[int, int], log: ItemLog) -> str:
        if self._plain:
            text = plain_object_xml(ann, size[0], size[1], log)
            if text is not None:
                return text
        obj = annotation_to_voc(
            ann, image_size=size, precision=self.precision, one_based=self.one_based, log=log
        )
        return object_xml(obj)

    def write_item(self, item: FormatItem) -> None:
        size = self.require_size(item)
        log = ItemLog(item.id)
        convert = self._object
        objects = self.convert_annotations(item, log, lambda ann, _: convert(ann, size, log))
        text = _document(item.file_name, size[0], size[1], objects)
        path = f'{self._annotations}{item.stem}.xml'
        write_file(path, text.encode('utf-8'), item)
        line = f'{item.stem}\n'.encode()
        lists = [item.split] + (['trainval'] if item.split in TRAINVAL else [])
        marks: list[tuple[AppendStream, int]] = []
        try:
            for name in lists:
                stream = self._set(name)
                marks.append((stream, stream.mark()))
                stream.write(line)
        except OSError as exc:
            for stream, mark in marks:
                try:
                    stream.rollback(mark)
                except OSError:
                    stream.broken = True
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            raise write_error(exc, f'ImageSets/Main/{item.split}.txt', item) from exc
        log.apply(self.report)

    def finish(self) -> None:
        for name, stream in self._sets.items():
            if stream.broken:
                raise OSError(5, f'ImageSets/Main/{name}.txt: a failed write was not rolled back')
            stream.close()
        names = self.class_map.names
        write_file(self.root / 'labelmap.txt', labelmap_text(names).encode('utf-8'))
        labels = ''.join(f'{labelmap_name(name)}\n' for name in names)
        write_file(self.root / 'labels.txt', labels.encode('utf-8'))

    def abort(self) -> None:
        for f in getattr(self, '_sets', {}).values():
            f.close()

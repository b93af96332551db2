"""Pascal VOC writer (devkit layout, written at the export root)::

    Annotations/<stem>.xml      one per image, empty images included (no <object>)
    JPEGImages/<stem><ext>      the originals, under their unique names and own extension
    ImageSets/Main/<split>.txt  stems of each split, in export order
    labels.txt                  the class map, one name per line (VOC has no class list)

``<depth>`` is 3: the size comes from the record, without decoding the image.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import IO, Any

from synapse_sdk.formats.base import FormatItem, FormatWriter, ItemLog, option_int
from synapse_sdk.formats.voc.convert import annotation_to_voc

__all__ = ['VocWriter', 'voc_xml']


def _sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    el = ET.SubElement(parent, tag)
    if text is not None:
        el.text = text
    return el


def voc_xml(file_name: str, width: int, height: int, objects: list[dict[str, Any]]) -> str:
    """The annotation XML of one image."""
    root = ET.Element('annotation')
    _sub(root, 'folder', 'JPEGImages')
    _sub(root, 'filename', file_name)
    _sub(_sub(root, 'source'), 'database', 'Synapse')
    size = _sub(root, 'size')
    _sub(size, 'width', str(width))
    _sub(size, 'height', str(height))
    _sub(size, 'depth', '3')
    _sub(root, 'segmented', '0')
    for obj in objects:
        el = _sub(root, 'object')
        for key, value in obj.items():
            if key == 'bndbox':
                box = _sub(el, 'bndbox')
                for k in ('xmin', 'ymin', 'xmax', 'ymax'):
                    _sub(box, k, value[k])
            elif key == 'attributes':
                attrs = _sub(el, 'attributes')
                for name, text in value:
                    a = _sub(attrs, 'attribute')
                    _sub(a, 'name', name)
                    _sub(a, 'value', text)
            else:
                _sub(el, key, value)
    ET.indent(root, space='  ')
    return ET.tostring(root, encoding='unicode') + '\n'


class VocWriter(FormatWriter):
    """Options: ``precision`` (decimals of coordinates, 0-6, default 0 = whole pixels)."""

    name = 'voc'

    @classmethod
    def validate_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        out = super().validate_options(options)
        out['precision'] = option_int(out, 'precision', 0, 'an integer from 0 to 6', 0, 6)
        return out

    def start(self) -> None:
        self.precision: int = self.options['precision']
        for d in ('Annotations', 'JPEGImages', 'ImageSets/Main'):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        self._sets: dict[str, IO[str]] = {}
        for split in self.split_spec.names:
            self._set(split)

    def _set(self, split: str) -> IO[str]:
        f = self._sets.get(split)
        if f is None:
            path = self.root / 'ImageSets' / 'Main' / f'{split}.txt'
            f = self._sets[split] = path.open('w', encoding='utf-8', newline='\n')
        return f

    def image_relpath(self, item: FormatItem) -> str:
        return f'JPEGImages/{item.file_name}'

    def write_item(self, item: FormatItem) -> None:
        size = self.require_size(item)
        log = ItemLog(item.id)
        objects = self.convert_annotations(
            item,
            log,
            lambda ann, _: annotation_to_voc(
                ann, image_size=size, precision=self.precision, log=log
            ),
        )
        text = voc_xml(item.file_name, size[0], size[1], objects)
        path = self.root / 'Annotations' / f'{item.stem}.xml'
        path.write_text(text, encoding='utf-8', newline='\n')
        self._set(item.split).write(f'{item.stem}\n')
        log.apply(self.report)

    def finish(self) -> None:
        self.abort()
        labels = ''.join(f'{name}\n' for name in self.class_map.names)
        (self.root / 'labels.txt').write_text(labels, encoding='utf-8', newline='\n')

    def abort(self) -> None:
        for f in getattr(self, '_sets', {}).values():
            if not f.closed:
                f.close()

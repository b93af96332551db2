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
from synapse_sdk.formats.voc.convert import annotation_to_voc, labelmap_name, labelmap_text

__all__ = ['VocWriter', 'voc_xml']

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


def voc_xml(file_name: str, width: int, height: int, objects: list[dict[str, Any]]) -> str:
    """The annotation XML of one image (text already valid XML, see ``convert.xml_text``).

    Written as text, byte for byte what ElementTree gives for the same tree indented by two
    spaces (``ET.indent``), at a fraction of its cost: one string per image, no element
    objects (``tests/formats/test_voc.py`` compares the two on hostile text).
    """
    parts = [
        '<annotation>\n  <folder>JPEGImages</folder>\n',
        _leaf('filename', file_name, '  '),
        '  <source>\n    <database>Synapse</database>\n  </source>\n  <size>\n',
        f'    <width>{width}</width>\n    <height>{height}</height>\n',
        '    <depth>3</depth>\n  </size>\n  <segmented>0</segmented>\n',
    ]
    for obj in objects:
        parts.append('  <object>\n')
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
    parts.append('</annotation>\n')
    # A raw carriage return would be turned into a line feed by every XML parser.
    return ''.join(parts).replace('\r', '&#13;')


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
        self._sets: dict[str, AppendStream] = {}

    def _set(self, name: str) -> AppendStream:
        f = self._sets.get(name)
        if f is None:
            f = self._sets[name] = AppendStream(self.root / 'ImageSets' / 'Main' / f'{name}.txt')
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
                ann, image_size=size, precision=self.precision, one_based=self.one_based, log=log
            ),
        )
        text = voc_xml(item.file_name, size[0], size[1], objects)
        path = self.root / 'Annotations' / f'{item.stem}.xml'
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
            path.unlink(missing_ok=True)
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

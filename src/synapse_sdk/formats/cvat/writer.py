"""CVAT for images 1.1 writer::

    annotations.xml              <meta> (labels, attributes, one task per split), one <image> each
    images/<split>/<file name>   the originals, when saved (where CVAT and Datumaro look)

The XML is streamed and never held as a tree: each ``<image>`` element is built completely
(so a failed item leaves nothing) and appended to an anonymous spool file as its item arrives;
:meth:`CvatWriter.finish` writes the header and ``<meta>`` (which lists every split that has
items with its size, known only then) and copies the spool in after it.
``<meta>`` is a ``<project>`` whose tasks are the splits (``<subset>``), and every ``<image>``
names its ``subset``, as CVAT's project export does; frame ids count from 0 in export order.
No ``<dumped>`` timestamp is written, so the output is byte-stable.

Image-level classifications have no place in CVAT for images; they are counted in the report
(``cvat.classifications_not_written``) instead of being written.
"""

from __future__ import annotations

import shutil
import tempfile
from typing import IO, Any
from xml.sax.saxutils import escape

from pydantic import Field, field_validator

from synapse_sdk.errors import ParamsError
from synapse_sdk.formats.base import CommonOptions, FormatItem, FormatWriter, ItemLog
from synapse_sdk.formats.classmap import ClassInfo
from synapse_sdk.formats.cvat.convert import (
    BUILTIN_ATTRIBUTES,
    Element,
    annotation_to_cvat,
    xml_safe,
)

__all__ = ['CvatWriter']

_ATTR_ESCAPES = {'"': '&quot;', '\n': '&#10;', '\r': '&#13;', '\t': '&#9;'}
_LABEL_TYPES = {
    'bounding_box': 'rectangle',
    'polygon': 'polygon',
    'polyline': 'polyline',
    'keypoint': 'skeleton',
    'segmentation': 'mask',
    'classification': 'tag',
}


def _attr(value: str) -> str:
    return escape(value, _ATTR_ESCAPES)


def _text(value: str) -> str:
    return escape(value)


def render(el: Element, level: int) -> str:
    """One element and its children, indented two spaces per level, one per line."""
    tag, attrs, children = el
    pad = '  ' * level
    head = ''.join(f' {k}="{_attr(v)}"' for k, v in attrs)
    if not children:
        return f'{pad}<{tag}{head} />\n'
    if len(children) == 1 and isinstance(children[0], str):
        return f'{pad}<{tag}{head}>{_text(children[0])}</{tag}>\n'
    inner = ''.join(
        render(c, level + 1) if not isinstance(c, str) else f'{pad}  {_text(c)}\n' for c in children
    )
    return f'{pad}<{tag}{head}>\n{inner}{pad}</{tag}>\n'


def _leaf(tag: str, text: str) -> Element:
    return (tag, [], [text])


def _attribute_spec(spec: dict[str, Any]) -> Element | None:
    """A configured class attribute as CVAT's ``<attribute>`` declaration."""
    name = str(spec.get('name') or '')
    if not name or name in BUILTIN_ATTRIBUTES or not xml_safe(name):
        return None
    kind = str(spec.get('type') or '').lower()
    values = spec.get('values') or spec.get('options') or []
    if kind in ('bool', 'boolean', 'checkbox'):
        input_type, default, listed = 'checkbox', 'false', ['false']
    elif values and isinstance(values, list):
        listed = [str(v.get('name', v) if isinstance(v, dict) else v) for v in values]
        input_type, default = ('radio' if kind == 'radio' else 'select'), listed[0]
    else:
        input_type, default, listed = 'text', '', []
    listed = [v for v in listed if xml_safe(v)]
    children: list[Any] = [
        _leaf('name', name),
        _leaf('mutable', 'False'),
        _leaf('input_type', input_type),
        _leaf('default_value', default if xml_safe(default) else ''),
        _leaf('values', '\n'.join(listed)),
    ]
    return ('attribute', [], children)


def _labels(classes: list[ClassInfo]) -> list[Element]:
    out: list[Element] = []
    for info in classes:
        specs = [_attribute_spec(a) for a in info.attributes if isinstance(a, dict)]
        attributes: list[Any] = [s for s in specs if s is not None]
        label_type = _LABEL_TYPES.get(info.tool or '', 'any')
        if label_type == 'skeleton' and not info.keypoints:
            label_type = 'points'
        out.append(
            (
                'label',
                [],
                [
                    _leaf('name', info.name),
                    _leaf('type', label_type),
                    ('attributes', [], attributes),
                ],
            )
        )
        if label_type == 'skeleton' and info.keypoints:
            for node in info.keypoints['names']:
                children: list[Any] = [
                    _leaf('name', node),
                    _leaf('type', 'points'),
                    ('attributes', [], []),
                    _leaf('parent', info.name),
                ]
                out.append(('label', [], children))
    return out


class CvatOptions(CommonOptions):
    """Options of the ``cvat`` format."""

    precision: int = Field(
        2, ge=0, le=6, description='Decimals of coordinates (CVAT itself writes 2)'
    )
    name: str | None = Field(
        None, description='Project name written in <meta> (default: the project title)'
    )

    @field_validator('name')
    @classmethod
    def _xml_name(cls, value: str | None) -> str | None:
        if value is not None and not xml_safe(value):
            reason = 'holds characters XML cannot carry (control characters)'
            raise ParamsError('Invalid extra_params', [('extra_params.name', reason)])
        return value


class CvatWriter(FormatWriter):
    """Options: ``precision`` (decimals, 0-6, default 2), ``name`` (the <meta> project name)."""

    name = 'cvat'
    Options = CvatOptions

    def start(self) -> None:
        self.precision: int = self.options['precision']
        self._frame = 0
        self._classifications = 0
        self._split_sizes: dict[str, int] = dict.fromkeys(self.split_spec.names, 0)
        (self.root / 'images').mkdir(parents=True, exist_ok=True)
        invalid = [c.name for c in self.class_map if not xml_safe(c.name)]
        if invalid:
            raise ParamsError(
                'Invalid project configuration',
                [('classes', f'cvat cannot write class names XML cannot hold: {invalid!r}')],
            )
        # <meta> lists every split with its size, known only at the end: the <image> elements
        # are spooled to an anonymous file (removed by the OS even if the process dies) and
        # copied in after the header by finish().
        self._spool: IO[bytes] = tempfile.TemporaryFile(dir=self.root, prefix='.cvat-spool-')  # noqa: SIM115

    def _meta(self) -> str:
        project = getattr(self, 'project', None) or {}
        title = self.options.get('name') or project.get('title') or 'synapse export'
        tasks: list[Any] = [
            (
                'task',
                [],
                [
                    _leaf('name', split),
                    _leaf('size', str(size)),
                    _leaf('mode', 'annotation'),
                    _leaf('subset', split),
                ],
            )
            for split, size in self._split_sizes.items()
            if size  # a split with no items is not declared
        ]
        project_el: Element = (
            'project',
            [],
            [
                _leaf('name', title if xml_safe(title) else 'synapse export'),
                ('labels', [], _labels(list(self.class_map))),
                ('tasks', [], tasks),
            ],
        )
        return (
            '<?xml version="1.0" encoding="utf-8"?>\n<annotations>\n  <version>1.1</version>\n'
            + render(('meta', [], [project_el]), 1)
        )

    def image_relpath(self, item: FormatItem) -> str:
        return f'images/{item.split}/{item.file_name}'

    def write_item(self, item: FormatItem) -> None:
        width, height = self.require_size(item)
        log = ItemLog(item.id)

        def convert(ann: dict[str, Any], _: int) -> Element:
            kp = self.class_map.keypoints(ann['category']) or {}
            return annotation_to_cvat(
                ann,
                image_size=(width, height),
                precision=self.precision,
                keypoint_names=kp.get('names'),
                log=log,
            )

        elements = self.convert_annotations(item, log, convert)
        # CVAT lists shapes first, then tags.
        elements.sort(key=lambda el: el[0] == 'tag')
        attrs = [
            ('id', str(self._frame)),
            ('name', item.file_name),
            ('subset', item.split),
            ('width', str(width)),
            ('height', str(height)),
        ]
        text = render(('image', attrs, list(elements)), 1)
        if not elements:  # CVAT writes an empty image as an open and a close tag
            text = text.replace(' />\n', '>\n  </image>\n')
        self._spool.write(text.encode('utf-8'))
        self._frame += 1
        self._split_sizes[item.split] = self._split_sizes.get(item.split, 0) + 1
        if item.classifications:
            self._classifications += 1
        log.apply(self.report)

    def finish(self) -> None:
        with (self.root / 'annotations.xml').open('wb') as fh:
            fh.write(self._meta().encode('utf-8'))
            self._spool.seek(0)
            shutil.copyfileobj(self._spool, fh)
            fh.write(b'</annotations>\n')
        self._spool.close()
        if self._classifications:
            self.report.extra.setdefault('cvat', {})['classifications_not_written'] = (
                self._classifications
            )

    def abort(self) -> None:
        spool = getattr(self, '_spool', None)
        if spool is not None and not spool.closed:
            spool.close()

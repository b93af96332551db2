"""Import a Pascal VOC dataset: the directory holding ``Annotations/`` and/or ``JPEGImages/``
(or a ``VOCdevkit`` directory with ``VOC*/`` sub-datasets).

- Classes: ``--classes`` when given, else ``labelmap.txt`` (Datumaro's
  ``# label:color_rgb:parts:actions``; its ``background`` row and part names are not classes,
  actions become boolean class attributes), else ``labels.txt`` (one name per line), else the
  object names in order of appearance. An object whose class no list declares is kept and its
  class added at the end (counted). Attribute and part names never become classes.
- Objects: the box (coordinates through :func:`~synapse_sdk.formats.voc.convert.voc_to_box`:
  ``coordinates="zero_based"`` (default) is the convention of our writer, Datumaro, CVAT,
  globox, Ultralytics and MMDetection; ``"one_based"`` reads the VOC devkit's 1-based inclusive
  pixels (Detectron2; our writer's ``-o coordinates=one_based``), ``x = xmin - 1``,
  ``w = xmax - xmin + 1``; the files do not say which they use, so it is not guessed),
  ``difficult`` / ``truncated`` / ``occluded`` elements as boolean attributes, ``pose`` unless
  ``Unspecified``, every ``<attributes>`` value (JSON when it parses as JSON, else the text as
  CVAT and Datumaro write it), ``<actions>`` as booleans, and ``<part>`` boxes as the object's
  ``parts`` (``[{"name", "bbox"}]``).
- Images: an image with no XML is a negative sample (imported, no annotations). ``<filename>``
  must resolve inside ``JPEGImages/`` (or ``--images``); otherwise the file is refused and
  reported. Per-class lists (``ImageSets/Main/<class>_<split>.txt``) flag image-level labels:
  a ``1`` for a class the image has no object of becomes a tag (``classification``).
- Splits come from ``ImageSets/Main/<split>.txt`` (lines are whole stems, spaces included;
  ``trainval`` only when nothing finer says).
- Segmentation PNGs (``SegmentationClass/``, ``SegmentationObject/``) are not read; each is
  counted as not imported.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import orjson

from synapse_sdk.errors import ParamsError
from synapse_sdk.formats._reader import (
    IMAGE_EXTS,
    NOT_FOUND,
    LazyImages,
    canonical_split,
    class_list,
    input_error,
    locate_image,
    parse_attribute_value,
    resolve_inside,
)
from synapse_sdk.formats.dataset import ImportedDataset, ImportedImage, ImportReport
from synapse_sdk.formats.images import image_size
from synapse_sdk.formats.voc.convert import voc_to_box

__all__ = ['COORDINATES', 'read_dataset']

#: The values of ``coordinates`` (``synapse data import voc --coordinates``).
COORDINATES = ('zero_based', 'one_based')

_PER_CLASS = re.compile(r'^(\S.*?)\s+(-1|0|1)$')
_FLAGS = ('difficult', 'truncated', 'occluded')


def _roots(path: Path) -> list[Path]:
    def is_root(p: Path) -> bool:
        return (p / 'Annotations').is_dir() or (p / 'JPEGImages').is_dir()

    if is_root(path):
        return [path]
    roots = sorted(p for p in path.glob('*') if p.is_dir() and is_root(p))
    if not roots:
        raise input_error(path, 'no Annotations or JPEGImages directory found')
    return roots


def _text(el: ET.Element | None, tag: str) -> str | None:
    if el is None:
        return None
    child = el.find(tag)
    return child.text.strip() if child is not None and child.text is not None else None


def _flag(text: str) -> bool:
    return text.strip().lower() in ('1', 'true', 'yes')


def _box(el: ET.Element, one_based: bool = False) -> list[float]:
    box = el.find('bndbox')
    if box is None:
        raise ValueError('no <bndbox>')
    values = []
    for key in ('xmin', 'ymin', 'xmax', 'ymax'):
        text = _text(box, key)
        if text is None:
            raise ValueError(f'no <{key}>')
        value = float(text)
        if value != value or value in (float('inf'), float('-inf')):
            raise ValueError(f'<{key}> is not a finite number')
        values.append(value)
    xmin, ymin, xmax, ymax = values
    bbox = voc_to_box(xmin, ymin, xmax, ymax, one_based=one_based)
    if bbox[2] < 0 or bbox[3] < 0:
        raise ValueError('xmax < xmin or ymax < ymin')
    return bbox


def _exact(el: ET.Element, listed: dict[str, str | None]) -> bool:
    """Whether ``<attributes>`` lists the object's exact attributes, as our writer did before
    it wrote flags as VOC elements only: every value JSON, and an ``<occluded>`` element only
    beside an ``occluded`` attribute. Then ``difficult`` / ``truncated`` elements are derived
    (truncated = touches the border) and not read. Datumaro, CVAT and the devkit never match:
    they always write ``<occluded>`` outside ``<attributes>``, or no ``<attributes>`` at all."""
    if el.find('attributes') is None:
        return False
    if el.find('occluded') is not None and 'occluded' not in listed:
        return False
    for value in listed.values():
        try:
            orjson.loads((value or '').strip())
        except orjson.JSONDecodeError:
            return False
    return True


def _object(el: ET.Element, ann_id: str, one_based: bool = False) -> dict[str, Any]:
    """One ``<object>`` as a document annotation; ValueError names what is wrong."""
    name = _text(el, 'name')
    if not name:
        raise ValueError('object without <name>')
    bbox = _box(el, one_based)
    block = el.find('attributes')
    listed: dict[str, Any] = {}
    if block is not None:
        for attr in block.findall('attribute'):
            key = _text(attr, 'name')
            if key:
                value = attr.find('value')
                listed[key] = (value.text or '') if value is not None else None
    if _exact(el, listed):
        attrs = {k: parse_attribute_value(v) for k, v in listed.items()}
    else:
        attrs = {}
        for key in _FLAGS:
            text = _text(el, key)
            if text is not None:
                attrs[key] = _flag(text)
        pose = _text(el, 'pose')
        if pose and pose != 'Unspecified':
            attrs['pose'] = pose
        point = el.find('point')
        if point is not None and _text(point, 'x') is not None:
            attrs['point'] = [float(_text(point, 'x') or 0), float(_text(point, 'y') or 0)]
        actions = el.find('actions')
        if actions is not None:
            for action in actions:
                attrs[action.tag] = _flag(action.text or '')
        attrs.update((k, parse_attribute_value(v)) for k, v in listed.items())
    ann: dict[str, Any] = {
        'id': ann_id,
        'category': name,
        'tool': 'bounding_box',
        'bbox': bbox,
        'area': bbox[2] * bbox[3],
        'attributes': attrs,
    }
    parts = []
    for part in el.findall('part'):
        part_name = _text(part, 'name')
        if part_name:
            parts.append({'name': part_name, 'bbox': _box(part, one_based)})
    if parts:
        ann['parts'] = parts
    return ann


def _main_lists(root: Path) -> tuple[dict[str, str], dict[str, set[str]], list[str]]:
    """``(split of each stem, classes flagged 1 per stem, stems in list order)``."""
    main = root / 'ImageSets' / 'Main'
    splits: dict[str, str] = {}
    flagged: dict[str, set[str]] = {}
    listed: dict[str, None] = {}
    if not main.is_dir():
        return splits, flagged, []
    files = sorted(main.glob('*.txt'), key=lambda p: (p.stem == 'trainval', p.stem))
    for f in files:
        lines = [line.strip() for line in f.read_text(encoding='utf-8').splitlines()]
        lines = [line for line in lines if line]
        matches = [_PER_CLASS.match(line) for line in lines]
        if '_' in f.stem and lines and all(matches):
            cls = f.stem.rsplit('_', 1)[0]
            for m in matches:
                if m is not None and m.group(2) == '1':
                    flagged.setdefault(m.group(1), set()).add(cls)
            continue
        for stem in lines:
            splits.setdefault(stem, f.stem)
            listed.setdefault(stem)
    return splits, flagged, list(listed)


def _labelmap(path: Path) -> tuple[list[str], dict[str, list[str]]]:
    """Class names and each class's actions from Datumaro's ``labelmap.txt``."""
    names: list[str] = []
    actions: dict[str, list[str]] = {}
    for n, line in enumerate(path.read_text(encoding='utf-8').splitlines(), 1):
        if not line.strip() or line.lstrip().startswith('#'):
            continue
        fields = line.split(':')
        name = unquote(fields[0].strip())  # our writer percent-escapes ':' and line breaks
        if not name:
            raise input_error(path, f'line {n}: no label name')
        color = fields[1].strip() if len(fields) > 1 else ''
        if name == 'background' and not names and color in ('', '0,0,0'):
            continue  # the segmentation background, not an object class
        names.append(name)
        acts = fields[3].split(',') if len(fields) > 3 else []
        actions[name] = [a.strip() for a in acts if a.strip()]
    return names, actions


def _declared(roots: list[Path]) -> tuple[list[str], dict[str, list[str]]] | None:
    for root in roots:
        if (root / 'labelmap.txt').is_file():
            return _labelmap(root / 'labelmap.txt')
    for root in roots:
        if (root / 'labels.txt').is_file():
            text = (root / 'labels.txt').read_text(encoding='utf-8')
            names = [unquote(line.split(':')[0].strip()) for line in text.splitlines()
                     if line.strip()]  # fmt: skip
            return [n for n in names if not n.startswith('#')], {}
    return None


class _Classes:
    """The configured classes; an undeclared object class is appended (and counted)."""

    def __init__(self, names: list[str], actions: dict[str, list[str]], declared: bool) -> None:
        self.declared = declared
        self.configuration: dict[str, Any] = {'classes': [], 'keypoints': {}}
        self._known: dict[str, dict[str, Any]] = {}
        self._used: set[str] = set()
        for name in names:
            self._add(name, actions.get(name, []))

    def _add(self, name: str, actions: Sequence[str] = ()) -> None:
        attributes = [{'name': a, 'type': 'bool'} for a in actions]
        entry = {'name': name, 'tool': 'bounding_box', 'attributes': attributes}
        self.configuration['classes'].append(entry)
        self._known[name] = entry

    def use(self, name: str, tool: str, report: ImportReport) -> None:
        """Note an annotation of class ``name``; the first one sets the class's tool."""
        if name not in self._known:
            self._add(name)
            if self.declared:
                report.count('classes not in the class list (added)')
        if name not in self._used:
            self._used.add(name)
            self._known[name]['tool'] = tool


def read_dataset(
    path: Path,
    images: Path | None = None,
    classes: Sequence[str] | str | None = None,
    coordinates: str = 'zero_based',
) -> ImportedDataset:
    """Read a VOC dataset (see the module docstring). The configuration is complete once the
    images have been iterated (undeclared classes are added as they are met). ``coordinates``
    is ``zero_based`` (default) or ``one_based`` (the devkit's); anything else is a
    :class:`ParamsError` naming it."""
    if coordinates not in COORDINATES:
        allowed = ', '.join(COORDINATES)
        raise ParamsError(
            'Invalid VOC import option',
            [('coordinates', f'got {coordinates!r}; allowed: {allowed}')],
        )
    one_based = coordinates == 'one_based'
    path = Path(path)
    if not path.is_dir():
        raise input_error(path, 'not a directory')
    roots = _roots(path)
    given = class_list(classes)
    found = _declared(roots)
    if given is not None:
        names, actions = given, (found[1] if found else {})
    elif found is not None:
        names, actions = found
    else:
        names, actions = [], {}
    known = _Classes(names, actions, declared=given is not None or found is not None)
    report = ImportReport()

    def produce() -> Iterator[ImportedImage]:
        for root in roots:
            yield from _read_root(root, images, known, report, one_based)

    return ImportedDataset(
        known.configuration, LazyImages(produce, report), title=path.name, report=report
    )


def _stems(root: Path, image_dir: Path, listed: list[str]) -> list[tuple[str, Path | None]]:
    """Every sample: XML stems, then stems listed in ImageSets or present as images."""
    ann_dir = root / 'Annotations'
    xmls = {p.stem: p for p in ann_dir.glob('*.xml')} if ann_dir.is_dir() else {}
    stems: dict[str, Path | None] = dict(xmls)
    for stem in listed:
        stems.setdefault(stem, None)
    if image_dir.is_dir():
        for p in image_dir.iterdir():
            if p.suffix.lower() in IMAGE_EXTS and p.is_file():
                stems.setdefault(p.stem, None)
    return sorted(stems.items())


def _read_root(
    root: Path, images: Path | None, known: _Classes, report: ImportReport, one_based: bool
) -> Iterator[ImportedImage]:
    splits, flagged, listed = _main_lists(root)
    image_dir = images or root / 'JPEGImages'
    masks = [root / 'SegmentationObject', root / 'SegmentationClass']
    for stem, xml in _stems(root, image_dir, listed):
        for folder in masks:
            if (folder / f'{stem}.png').is_file():
                report.skip('segmentation mask', f'{folder.name}/ PNGs are not imported')
        if xml is None:
            item = _negative(stem, image_dir, stem in splits, report)
        else:
            item = _read(xml, image_dir, known, report, one_based)
        if item is None:
            continue
        present = {a['category'] for a in item.annotations}
        for n, cls in enumerate(sorted(flagged.get(stem, set()) - present), 1):
            known.use(cls, 'classification', report)
            item.annotations.append(
                {'id': f'label{n}', 'category': cls, 'tool': 'classification', 'attributes': {}}
            )
            report.count('tags')
        item.split = canonical_split(splits.get(stem))
        report.count('images')
        if not item.annotations:
            report.count('images without annotations')
        yield item


def _negative(
    stem: str, image_dir: Path, listed: bool, report: ImportReport
) -> ImportedImage | None:
    name = next(
        (p.name for p in sorted(image_dir.glob(f'{_glob_escape(stem)}.*'))
         if p.suffix.lower() in IMAGE_EXTS),
        None,
    ) if image_dir.is_dir() else None  # fmt: skip
    if name is None:
        report.skip('image', 'listed in ImageSets/Main but has no XML and no image file')
        return None
    found, reason = resolve_inside(image_dir, name)
    if found is None:
        report.skip('image file', reason or NOT_FOUND)
        return None
    size = image_size(found)
    report.count('image files')
    report.count('images without annotation file')
    return ImportedImage(
        file_name=name,
        path=found,
        width=size[0] if size else None,
        height=size[1] if size else None,
    )


def _glob_escape(text: str) -> str:
    return re.sub(r'([*?\[])', r'[\1]', text)


def _read(
    xml: Path, image_dir: Path, known: _Classes, report: ImportReport, one_based: bool = False
) -> ImportedImage | None:
    try:
        root = ET.parse(xml).getroot()
    except (OSError, ET.ParseError) as exc:
        report.skip('image', f'annotation XML not readable ({type(exc).__name__})')
        return None
    file_name = _text(root, 'filename')
    found: Path | None = None
    reason: str | None = NOT_FOUND
    if file_name:
        found, reason = resolve_inside(image_dir, file_name)
    if found is None and reason == NOT_FOUND:
        fallback, why = locate_image(image_dir, xml.stem) if image_dir.is_dir() else (None, None)
        if fallback is not None:
            found, reason = resolve_inside(image_dir, fallback.name)
        else:
            reason = why or NOT_FOUND
    if found is None:
        report.skip('image file', reason or NOT_FOUND)
    else:
        report.count('image files')
    annotations = []
    for i, el in enumerate(root.findall('object'), 1):
        try:
            ann = _object(el, str(i), one_based)
        except ValueError as exc:
            report.skip('annotation', f'malformed <object>: {exc}')
            continue
        known.use(ann['category'], 'bounding_box', report)
        annotations.append(ann)
        report.count('annotations')
        report.count('parts', len(ann.get('parts', ())))
    size_el = root.find('size')
    try:
        width = int(float(_text(size_el, 'width') or 0))
        height = int(float(_text(size_el, 'height') or 0))
    except ValueError:
        width = height = 0
    if (width <= 0 or height <= 0) and found is not None:
        width, height = image_size(found) or (0, 0)
    name = Path(file_name.replace('\\', '/')).name if file_name else None
    return ImportedImage(
        file_name=name or (found.name if found else xml.stem),
        path=found,
        width=width or None,
        height=height or None,
        annotations=annotations,
    )

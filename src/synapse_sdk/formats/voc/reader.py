"""Import a Pascal VOC dataset: the directory holding ``Annotations/`` (or a ``VOCdevkit``
directory with ``VOC*/`` sub-datasets). The exact inverse of the writer.

Classes come from ``labels.txt`` when present (our exports write it), else the sorted set of
object names. Splits come from ``ImageSets/Main/<split>.txt`` (lines are whole stems,
spaces included; per-class ``<class>_<split>.txt`` lists are ignored; ``trainval`` only when
nothing finer says).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from synapse_sdk.formats._reader import LazyImages, canonical_split, find_image, input_error
from synapse_sdk.formats.dataset import ImportedDataset, ImportedImage
from synapse_sdk.formats.images import image_size
from synapse_sdk.formats.voc.convert import voc_to_annotation

__all__ = ['read_dataset']

_PER_CLASS = re.compile(r'^\S.*\s(-1|0|1)$')


def _roots(path: Path) -> list[Path]:
    if (path / 'Annotations').is_dir():
        return [path]
    roots = sorted(p for p in path.glob('*') if (p / 'Annotations').is_dir())
    if not roots:
        raise input_error(path, 'no Annotations directory found')
    return roots


def _parse(path: Path) -> ET.Element:
    try:
        return ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise input_error(path, f'not readable VOC XML ({exc})') from exc


def _text(el: ET.Element | None, tag: str) -> str | None:
    if el is None:
        return None
    child = el.find(tag)
    return child.text.strip() if child is not None and child.text is not None else None


def _object(el: ET.Element) -> dict[str, Any]:
    obj: dict[str, Any] = {
        k: _text(el, k) for k in ('name', 'pose', 'truncated', 'difficult', 'occluded')
    }
    box = el.find('bndbox')
    if box is None or obj['name'] is None:
        raise ValueError('object without name or bndbox')
    obj['bndbox'] = {k: _text(box, k) for k in ('xmin', 'ymin', 'xmax', 'ymax')}
    attrs = el.find('attributes')
    if attrs is not None:
        obj['attributes'] = [
            (_text(a, 'name') or '', _text(a, 'value') or 'null')
            for a in attrs.findall('attribute')
        ]
    return obj


def _splits(root: Path) -> dict[str, str]:
    main = root / 'ImageSets' / 'Main'
    out: dict[str, str] = {}
    if not main.is_dir():
        return out
    files = sorted(main.glob('*.txt'), key=lambda p: (p.stem == 'trainval', p.stem))
    for f in files:
        lines = [line.strip() for line in f.read_text(encoding='utf-8').splitlines()]
        lines = [line for line in lines if line]
        if '_' in f.stem and lines and all(_PER_CLASS.match(line) for line in lines):
            continue  # a per-class list: '<stem> <1|0|-1>'
        for stem in lines:
            out.setdefault(stem, f.stem)
    return out


def _labels(roots: list[Path]) -> list[str]:
    for root in roots:
        if (root / 'labels.txt').is_file():
            text = (root / 'labels.txt').read_text(encoding='utf-8')
            return [line.split(':')[0].strip() for line in text.splitlines() if line.strip()]
    names: set[str] = set()
    for root in roots:
        for xml in (root / 'Annotations').glob('*.xml'):
            names.update(n.text.strip() for n in _parse(xml).iter('name') if n.text)
    return sorted(names)


def read_dataset(path: Path, images: Path | None = None) -> ImportedDataset:
    path = Path(path)
    if not path.is_dir():
        raise input_error(path, 'not a directory')
    roots = _roots(path)
    names = _labels(roots)
    configuration = {
        'classes': [{'name': n, 'tool': 'bounding_box', 'attributes': []} for n in names],
        'keypoints': {},
    }

    def produce() -> Iterator[ImportedImage]:
        for root in roots:
            splits = _splits(root)
            image_dir = images or root / 'JPEGImages'
            for xml in sorted((root / 'Annotations').glob('*.xml')):
                yield _read(xml, image_dir, splits.get(xml.stem))

    return ImportedDataset(configuration, LazyImages(produce), title=path.name)


def _read(xml: Path, image_dir: Path, split: str | None) -> ImportedImage:
    root = _parse(xml)
    file_name = _text(root, 'filename')
    image = image_dir / file_name if file_name else find_image(image_dir, xml.stem)
    if image is not None and not image.is_file():
        image = find_image(image_dir, xml.stem) or None
    size_el = root.find('size')
    try:
        width, height = int(_text(size_el, 'width') or 0), int(_text(size_el, 'height') or 0)
        annotations = [
            voc_to_annotation(_object(el), ann_id=str(i))
            for i, el in enumerate(root.findall('object'), 1)
        ]
    except (ValueError, TypeError) as exc:
        raise input_error(xml, str(exc)) from exc
    if (width <= 0 or height <= 0) and image is not None:
        width, height = image_size(image) or (0, 0)
    return ImportedImage(
        file_name=file_name or (image.name if image else xml.stem),
        path=image,
        width=width or None,
        height=height or None,
        annotations=annotations,
        split=canonical_split(split),
    )

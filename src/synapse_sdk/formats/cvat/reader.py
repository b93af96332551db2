"""Import CVAT for images 1.1 XML: ``annotations.xml`` (or any ``*.xml`` whose root is
``<annotations>``, as Datumaro writes ``<subset>.xml``), or the directory holding them.

What is read: ``<meta>`` labels (task or project meta; skeleton sublabels name keypoints) and
their attribute declarations; per ``<image>`` its boxes (with rotation), polygons, polylines,
points, skeletons, masks (CVAT RLE) and tags, with attributes, ``occluded`` and ``z_order``.
Images are looked for in ``images`` when given, else ``images/`` beside the XML, first under
the image's subset folder, then directly; a name leading outside that folder is refused.

What is not, counted in the dataset's report per reason: ``<track>`` elements (CVAT for
video), ellipses and cuboids, malformed shapes, and shapes of images skipped for being
malformed. The XML is parsed incrementally: one ``<image>`` at a time is in memory.
"""

from __future__ import annotations

import contextlib
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from synapse_sdk.formats._reader import LazyImages, canonical_split, input_error, resolve_inside
from synapse_sdk.formats.cvat.convert import cvat_to_annotation, parse_attribute, parse_points
from synapse_sdk.formats.dataset import ImportedDataset, ImportedImage, ImportReport

__all__ = ['read_dataset']

SHAPES = ('box', 'polygon', 'polyline', 'points', 'mask', 'skeleton', 'tag')
UNSUPPORTED = ('ellipse', 'cuboid')
_TOOLS = {
    'box': 'bounding_box',
    'rectangle': 'bounding_box',
    'polygon': 'polygon',
    'polyline': 'polyline',
    'points': 'keypoint',
    'skeleton': 'keypoint',
    'mask': 'segmentation',
    'tag': 'classification',
}
_ATTR_TYPES = {'checkbox': 'bool', 'number': 'number', 'select': 'select', 'radio': 'radio'}


class _Label:
    def __init__(self, name: str) -> None:
        self.name = name
        self.type: str | None = None
        self.parent: str | None = None
        self.attributes: dict[str, dict[str, Any]] = {}
        self.nodes: list[str] = []  # skeleton sublabels, in order
        self.max_points = 0  # <points> shapes: the most points seen


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise input_error(path, 'no such file or directory')
    if (path / 'annotations.xml').is_file():
        return [path / 'annotations.xml']
    found = [p for p in sorted(path.glob('*.xml')) if _root_tag(p) == 'annotations']
    if not found:
        raise input_error(path, 'no CVAT XML file (root <annotations>) found')
    return found


def _root_tag(path: Path) -> str | None:
    try:
        for _, el in ET.iterparse(path, events=('start',)):
            return el.tag
    except (OSError, ET.ParseError):
        return None
    return None


def _text(el: ET.Element, tag: str) -> str:
    child = el.find(tag)
    return (child.text or '').strip() if child is not None else ''


def _meta(path: Path, labels: dict[str, _Label]) -> None:
    """Labels declared in ``<meta>`` (task or project), added to ``labels`` in order."""
    try:
        for _, el in ET.iterparse(path, events=('end',)):
            if el.tag != 'meta':
                continue
            for label_el in el.iter('label'):
                name = _text(label_el, 'name')
                if not name:
                    continue
                label = labels.setdefault(name, _Label(name))
                label.type = _text(label_el, 'type') or label.type
                label.parent = _text(label_el, 'parent') or None
                for attr in label_el.iter('attribute'):
                    attr_name = _text(attr, 'name')
                    if attr_name:
                        values = [v for v in _text(attr, 'values').split('\n') if v]
                        label.attributes[attr_name] = {
                            'input_type': _text(attr, 'input_type') or 'text',
                            'values': values,
                        }
            for label in labels.values():
                if label.parent and label.parent in labels:
                    parent = labels[label.parent]
                    if label.name not in parent.nodes:
                        parent.nodes.append(label.name)
            return
    except (OSError, ET.ParseError) as exc:
        raise input_error(path, f'not readable XML ({exc})') from exc
    raise input_error(path, 'no <meta> element: not a CVAT for images file')


def _survey(path: Path, labels: dict[str, _Label]) -> None:
    """First pass: labels used but not declared, their tools, the size of <points> shapes."""
    depth_skeleton = 0
    root: ET.Element | None = None
    try:
        for event, el in ET.iterparse(path, events=('start', 'end')):
            if event == 'start':
                root = el if root is None else root
                if el.tag == 'skeleton':
                    depth_skeleton += 1
                continue
            if el.tag == 'skeleton':
                depth_skeleton -= 1
            if el.tag in SHAPES and not (depth_skeleton and el.tag == 'points'):
                name = el.get('label')
                if name:
                    label = labels.setdefault(name, _Label(name))
                    label.type = label.type or el.tag
                    if el.tag == 'points':
                        with contextlib.suppress(ValueError):
                            label.max_points = max(
                                label.max_points, len(parse_points(el.get('points') or ''))
                            )
            if el.tag in ('image', 'track') and root is not None:
                root.clear()  # the parsed part of the tree is not kept
    except (OSError, ET.ParseError) as exc:
        raise input_error(path, f'not readable XML ({exc})') from exc


def _configuration(labels: dict[str, _Label]) -> dict[str, Any]:
    classes = []
    keypoints: dict[str, Any] = {}
    for label in labels.values():
        if label.parent and label.parent in labels:
            continue  # a skeleton node, not a class
        tool = _TOOLS.get(label.type or '')
        attributes = []
        for name, spec in label.attributes.items():
            entry: dict[str, Any] = {
                'name': name,
                'type': _ATTR_TYPES.get(spec['input_type'], 'text'),
            }
            if spec['input_type'] in ('select', 'radio') and spec['values']:
                entry['values'] = list(spec['values'])
            attributes.append(entry)
        classes.append({'name': label.name, 'tool': tool, 'attributes': attributes})
        if label.nodes:
            keypoints[label.name] = {'names': list(label.nodes), 'skeleton': []}
        elif tool == 'keypoint' and label.max_points:
            names = [f'p{i}' for i in range(1, label.max_points + 1)]
            keypoints[label.name] = {'names': names, 'skeleton': []}
    return {'classes': classes, 'keypoints': keypoints}


def read_dataset(path: Path, images: Path | None = None) -> ImportedDataset:
    path = Path(path)
    files = _files(path)
    labels: dict[str, _Label] = {}
    for f in files:
        _meta(f, labels)
    for f in files:
        _survey(f, labels)
    configuration = _configuration(labels)
    report = ImportReport()

    def produce() -> Iterator[ImportedImage]:
        report.clear()
        for f in files:
            image_dir = Path(images) if images else f.parent / 'images'
            split = None if f.name == 'annotations.xml' else f.stem
            yield from _images(f, image_dir, split, labels, report)

    title = path.stem if path.is_file() else path.name
    return ImportedDataset(configuration, LazyImages(produce), title=title, report=report)


def _images(
    path: Path, image_dir: Path, file_split: str | None, labels: dict[str, _Label], report: Any
) -> Iterator[ImportedImage]:
    image: dict[str, str] | None = None
    shapes: list[tuple[ET.Element, list[ET.Element]]] = []
    skeleton: ET.Element | None = None
    nodes: list[ET.Element] = []
    root: ET.Element | None = None
    for event, el in ET.iterparse(path, events=('start', 'end')):
        if event == 'start':
            root = el if root is None else root
            if el.tag == 'image':
                image, shapes = dict(el.attrib), []
            elif el.tag == 'skeleton' and image is not None:
                skeleton, nodes = el, []
            continue
        if el.tag == 'track':
            report.skip('track', 'CVAT for video tracks are not supported')
            if root is not None:
                root.clear()
        elif image is None:
            continue
        elif el.tag == 'points' and skeleton is not None:
            nodes.append(el)
        elif el.tag == 'skeleton':
            shapes.append((el, nodes))
            skeleton = None
        elif el.tag in SHAPES:
            shapes.append((el, []))
        elif el.tag in UNSUPPORTED:
            report.skip('annotation', f'{el.tag} shapes are not supported')
        elif el.tag == 'image':
            out = _image(image, shapes, image_dir, file_split, labels, report)
            if out is not None:
                yield out
            image, shapes = None, []
            if root is not None:
                root.clear()  # the parsed part of the tree is not kept


def _attributes(el: ET.Element, label: _Label | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for attr in el.findall('attribute'):
        name = attr.get('name')
        if not name:
            continue
        spec = label.attributes.get(name) if label else None
        out[name] = parse_attribute(attr.text or '', spec['input_type'] if spec else None)
    return out


def _image(
    attrs: dict[str, str],
    shapes: list[tuple[ET.Element, list[ET.Element]]],
    image_dir: Path,
    file_split: str | None,
    labels: dict[str, _Label],
    report: Any,
) -> ImportedImage | None:
    name = attrs.get('name') or ''
    try:
        width = int(attrs['width']) if attrs.get('width') else None
        height = int(attrs['height']) if attrs.get('height') else None
    except ValueError:
        report.skip('image', 'width or height is not a number')
        report.skip('annotation', 'its image was skipped', len(shapes))
        return None
    if not name:
        report.skip('image', 'no name')
        report.skip('annotation', 'its image was skipped', len(shapes))
        return None
    subset = attrs.get('subset') or file_split
    size = (width, height) if width and height else None
    annotations = []
    for n, (el, nodes) in enumerate(shapes, 1):
        label = labels.get(el.get('label') or '')
        try:
            names = label.nodes if label and label.nodes else []
            if label and not names and el.tag == 'points':
                names = [f'p{i}' for i in range(1, label.max_points + 1)]
            annotations.append(
                cvat_to_annotation(
                    el.tag,
                    dict(el.attrib),
                    _attributes(el, label),
                    ann_id=str(n),
                    image_size=size,
                    nodes=[(dict(node.attrib), None) for node in nodes],
                    keypoint_names=names,
                )
            )
        except (KeyError, ValueError, IndexError, TypeError) as exc:
            report.skip('annotation', f'malformed {el.tag} ({type(exc).__name__})')
    path = None
    candidates = [f'{subset}/{name}', name] if subset else [name]
    reason = None
    for candidate in candidates:
        path, reason = resolve_inside(image_dir, candidate)
        if path is not None or reason != 'file not found':
            break
    if path is None and image_dir.is_dir():
        report.skip('image file', reason or 'file not found')
    report.count('images')
    report.count('annotations', len(annotations))
    if path is not None:
        report.count('image files')
    return ImportedImage(
        file_name=PurePosixPath(name.replace('\\', '/')).name,
        path=path,
        width=width,
        height=height,
        annotations=annotations,
        split=canonical_split(subset),
    )

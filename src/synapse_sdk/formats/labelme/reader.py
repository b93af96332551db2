"""Import LabelMe JSON files (as the labelme tool and our export write them): one file, or a
dataset folder ``DIR``: its ``*.json`` files (the labelme tool saves each beside its image) and
those of its split folders, ``DIR/<split>/*.json`` (our export). Nothing deeper is read: a
subfolder holding a ``project.json`` or ``labels.txt`` is a dataset of its own, and so is a
folder two levels down holding JSON files; each is reported as a nested dataset not read, and a
folder holding only those is refused, naming them.

Read: ``rectangle``, ``oriented_rectangle``, ``polygon``, ``linestrip`` / ``line``, ``mask``
shapes, and ``point`` shapes grouped by label and ``group_id`` into keypoint annotations
(``description`` names the keypoint); shape ``flags`` and ``attributes`` as attributes; image
``flags`` naming a class as classification annotations, other flags and a ``classifications``
object as the image's classifications. The image is ``imagePath`` relative to the JSON file
(it must stay inside the dataset folder; ``../`` leading out is refused), or the embedded
``imageData`` when the file is missing; ``--images DIR`` looks there by file name first.

Classes are ``labels.txt`` when present (``__ignore__`` and ``_background_`` skipped), then
any other label, sorted. Not read, counted per reason: ``circle`` and ``points`` shapes,
malformed shapes, JSON files that are not LabelMe files. The split is the first folder under
the dataset root (``train/``, ``val/`` ...), when it names one.
"""

from __future__ import annotations

import base64
import binascii
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import orjson

from synapse_sdk.formats._reader import (
    ABSOLUTE,
    NOT_FOUND,
    LazyImages,
    canonical_split,
    input_error,
    is_absolute_name,
    load_project,
    resolve_inside,
)
from synapse_sdk.formats.base import Unsupported
from synapse_sdk.formats.dataset import ImportedDataset, ImportedImage, ImportReport
from synapse_sdk.formats.images import image_size
from synapse_sdk.formats.labelme.convert import points_to_keypoints, shape_to_annotation

__all__ = ['read_dataset']

_TOOLS = {
    'rectangle': 'bounding_box',
    'oriented_rectangle': 'bounding_box',
    'polygon': 'polygon',
    'linestrip': 'polyline',
    'line': 'polyline',
    'mask': 'segmentation',
    'point': 'keypoint',
}
_SKIP_LABELS = ('__ignore__', '_background_')
#: Files our exports put at the root beside the LabelMe files (not annotation files).
_OURS = ('project.json', 'export_report.json', 'error_file_list.json')


def _load(path: Path) -> dict[str, Any] | None:
    """The JSON object of a LabelMe file, or ``None`` if it is not one."""
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get('shapes'), list):
        return None
    if 'imagePath' not in data:
        return None
    return data


def _groups(shapes: list[Any]) -> tuple[list[tuple[int, dict[str, Any]]], list[list[Any]]]:
    """``(other shapes with their position, point groups)``: points grouped by label and
    ``group_id`` (a point without ``group_id`` is its own group)."""
    others: list[tuple[int, dict[str, Any]]] = []
    groups: dict[Any, list[Any]] = {}
    for n, shape in enumerate(shapes, 1):
        if isinstance(shape, dict) and shape.get('shape_type') == 'point':
            gid = shape.get('group_id')
            key = (shape.get('label'), gid) if gid is not None else ('', f'#{n}')
            groups.setdefault(key, []).append((n, shape))
        else:
            others.append((n, shape))
    return others, list(groups.values())


#: What marks a folder as a dataset of its own (not a split folder of the one above).
_DATASET_MARKS = ('project.json', 'labels.txt')


def _layout(path: Path) -> str:
    return f'expected {path}/*.json or {path}/<split>/*.json'


def _json_files(folder: Path) -> list[Path]:
    return [p for p in folder.glob('*.json') if p.is_file()]


def _discover(path: Path, early: ImportReport) -> list[Path]:
    """The JSON files of the dataset at ``path`` (see the module docstring); nested datasets
    are counted in ``early`` by name. Only ``path``, its subfolders and theirs are listed."""
    files = [p for p in _json_files(path) if p.name not in _OURS]
    nested: list[str] = []
    for sub in sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith('.')):
        if any((sub / mark).is_file() for mark in _DATASET_MARKS):
            nested.append(sub.name)
            continue
        files += _json_files(sub)
        for deeper in sorted(p for p in sub.iterdir() if p.is_dir()):
            if not deeper.name.startswith('.') and any(deeper.glob('*.json')):
                nested.append(f'{sub.name}/{deeper.name}')
    if not files:
        hint = f'; nested datasets not read: {", ".join(nested)}' if nested else ''
        raise input_error(path, f'no LabelMe JSON files ({_layout(path)}){hint}')
    for rel in nested:
        early.skip('folder', f'nested dataset {rel}, not read (import it on its own)')
    return sorted(files)


def read_dataset(path: Path, images: Path | None = None) -> ImportedDataset:
    path = Path(path)
    early = ImportReport()  # counted before images are read
    if path.is_file():
        root, files = path.parent, [path]
    elif path.is_dir():
        root, files = path, _discover(path, early)
    else:
        raise input_error(path, 'no such file or directory')
    # First pass: classes, their tools and keypoint names (files are read again lazily).
    declared: list[str] = []
    if (root / 'labels.txt').is_file():
        text = (root / 'labels.txt').read_text(encoding='utf-8-sig')
        for line in text.splitlines():
            name = line.strip()
            if name and name not in _SKIP_LABELS and name not in declared:
                declared.append(name)
    tools: dict[str, str] = {}
    kp_names: dict[str, list[str]] = {}
    kp_counts: dict[str, int] = {}
    labelme_files = []
    for f in files:
        data = _load(f)
        if data is None:
            continue
        labelme_files.append(f)
        others, groups = _groups(data['shapes'])
        for _, shape in others:
            if isinstance(shape, dict) and isinstance(shape.get('label'), str):
                tool = _TOOLS.get(str(shape.get('shape_type') or 'polygon'))
                if tool:
                    tools.setdefault(shape['label'], tool)
        for group in groups:
            label = group[0][1].get('label')
            if not isinstance(label, str):
                continue
            tools.setdefault(label, 'keypoint')
            names = kp_names.setdefault(label, [])
            for _, shape in group:
                desc = shape.get('description')
                if isinstance(desc, str) and desc and desc not in names:
                    names.append(desc)
            kp_counts[label] = max(kp_counts.get(label, 0), len(group))
        flags = data.get('flags')
        if isinstance(flags, dict):
            for key, value in flags.items():
                if key in declared and value is True:
                    tools.setdefault(key, 'classification')
    if not labelme_files:
        where = f'; {_layout(path)}' if path.is_dir() else ''
        raise input_error(
            path, f'no LabelMe JSON files found (objects with "shapes" and "imagePath"{where})'
        )
    project = load_project(root)
    configuration = dict(project['configuration']) if project else None
    if configuration is None:
        classes = declared + sorted(n for n in tools if n not in declared)
        generated: dict[str, Any] = {}
        for label, names in kp_names.items():
            generic = [f'p{i}' for i in range(len(names) + 1, kp_counts[label] + 1)]
            generated[label] = {'names': names + generic, 'skeleton': []}
        configuration = {
            'classes': [{'name': n, 'tool': tools.get(n), 'attributes': []} for n in classes],
            'keypoints': generated,
        }
    else:  # our export: the project's classes, then any label it did not know, sorted
        known = [c['name'] for c in configuration.setdefault('classes', [])]
        for name in sorted(n for n in tools if n not in known):
            configuration['classes'].append({'name': name, 'tool': tools[name], 'attributes': []})
    keypoints: dict[str, Any] = configuration.setdefault('keypoints', {})
    classes = [c['name'] for c in configuration['classes']]
    report = ImportReport()
    class_names = set(classes)

    def produce() -> Iterator[ImportedImage]:
        report.update(early)
        with tempfile.TemporaryDirectory(prefix='synapse-labelme-') as tmp:
            for f in files:
                data = _load(f)
                if data is None:
                    report.skip('file', 'not a LabelMe JSON file')
                    continue
                image = _image(f, data, root, images, Path(tmp), keypoints, class_names, report)
                yield image
                if image.path is not None and image.path.parent == Path(tmp):
                    image.path.unlink(missing_ok=True)  # an embedded image, written for the copy

    title = path.stem if path.is_file() else path.name
    if project is not None and project.get('title'):  # our export: the project's own title
        title = str(project['title'])
    return ImportedDataset(configuration, LazyImages(produce, report), title=title, report=report)


def _image_file(
    json_path: Path, data: dict[str, Any], root: Path, images: Path | None, tmp: Path, report: Any
) -> Path | None:
    image_path = str(data.get('imagePath') or '')
    name = PurePosixPath(PureWindowsPath(image_path).as_posix()).name
    if images is not None and name:
        found, _ = resolve_inside(Path(images), name)
        if found is not None:
            return found
    reason = NOT_FOUND
    if is_absolute_name(image_path):  # before it is joined to the JSON file's folder
        reason = ABSOLUTE
    elif image_path:
        rel = json_path.parent.relative_to(root).as_posix()
        candidate = f'{rel}/{PureWindowsPath(image_path).as_posix()}' if rel != '.' else image_path
        found, reason_or_none = resolve_inside(root, candidate)
        if found is not None:
            return found
        reason = reason_or_none or NOT_FOUND
    embedded = data.get('imageData')
    if embedded is not None and not isinstance(embedded, str):
        report.skip('image file', f'{reason}, and imageData must be a base64 string or null')
        return None
    if embedded:
        try:
            raw = base64.b64decode(embedded, validate=True)
        except (binascii.Error, ValueError):
            report.skip('image file', 'imageData is not base64')
            return None
        target = tmp / f'{json_path.stem}{PurePosixPath(name).suffix or ".png"}'
        target.write_bytes(raw)
        return target
    report.skip('image file', reason)
    return None


def _image(
    json_path: Path,
    data: dict[str, Any],
    root: Path,
    images: Path | None,
    tmp: Path,
    keypoints: dict[str, Any],
    class_names: set[str],
    report: Any,
) -> ImportedImage:
    image = _image_file(json_path, data, root, images, tmp, report)
    width, height = data.get('imageWidth'), data.get('imageHeight')
    if not (isinstance(width, int) and isinstance(height, int)) and image is not None:
        width, height = image_size(image) or (None, None)
    size = (width, height) if isinstance(width, int) and isinstance(height, int) else None
    others, groups = _groups(data['shapes'])
    found: list[tuple[int, dict[str, Any]]] = []
    for n, shape in others:
        try:
            if not isinstance(shape, dict):
                raise ValueError('shape is not an object')
            found.append((n, shape_to_annotation(shape, ann_id=str(n), image_size=size)))
        except Unsupported as exc:
            report.skip('annotation', str(exc))
        except (KeyError, ValueError, TypeError, IndexError) as exc:
            kind = shape.get('shape_type') if isinstance(shape, dict) else 'shape'
            report.skip('annotation', f'malformed {kind} shape ({type(exc).__name__})')
    for group in groups:
        n, first = group[0]
        names = (keypoints.get(first.get('label')) or {}).get('names') or []
        try:
            ann = points_to_keypoints([s for _, s in group], names, ann_id=str(n))
            found.append((n, ann))
        except (KeyError, ValueError, TypeError, IndexError) as exc:
            report.skip('annotation', f'malformed point shapes ({type(exc).__name__})')
    annotations = [ann for _, ann in sorted(found, key=lambda pair: pair[0])]
    classifications: dict[str, Any] = {}
    flags = data.get('flags')
    if isinstance(flags, dict):
        for key, value in flags.items():
            if key in class_names and value is True:
                annotations.append(
                    {'id': f'flag_{key}', 'category': key, 'tool': 'classification',
                     'attributes': {}}
                )  # fmt: skip
            else:
                classifications[str(key)] = value
    extra = data.get('classifications')
    if isinstance(extra, dict):
        classifications.update(extra)
    rel_parts = json_path.parent.relative_to(root).parts
    image_path = str(data.get('imagePath') or json_path.with_suffix('').name)
    report.count('images')
    report.count('annotations', len(annotations))
    if image is not None:
        report.count('image files')
    return ImportedImage(
        file_name=PurePosixPath(PureWindowsPath(image_path).as_posix()).name,
        path=image,
        width=width if isinstance(width, int) else None,
        height=height if isinstance(height, int) else None,
        annotations=annotations,
        classifications=classifications,
        split=canonical_split(rel_parts[0]) if rel_parts else None,
    )

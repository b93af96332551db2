"""Import a directory of DM json files (v1 or v2, detected per file with ``is_dm_v1``).

``path`` is the export root (``json/`` and ``origin_files/`` inside) or the json directory
itself. A file may also hold a whole record (``data`` + ``data_unit``). Image sizes come from
the record, else the image header. The project schema comes from ``project.json`` at the export
root when present (our exports write it: class order, unused classes and keypoint names kept,
CONTRACTS #2); without it, classes are the sorted set of names with their first tool. A file
that cannot be read is skipped and counted; images are only read from inside the export.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from synapse_sdk.errors import ParamsError
from synapse_sdk.formats._reader import (
    NOT_FOUND,
    LazyImages,
    input_error,
    load_project,
    locate_image,
)
from synapse_sdk.formats.dataset import ImportedDataset, ImportedImage, ImportReport
from synapse_sdk.formats.dm.convert import from_dm_v1, is_dm_v1
from synapse_sdk.formats.images import image_size

__all__ = ['load_document', 'read_dataset']


def load_document(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(document, data_unit)`` of one json file, normalised to the document form."""
    try:
        raw = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise input_error(path, f'not a readable JSON file ({exc})') from exc
    if not isinstance(raw, dict):
        raise input_error(path, 'not a JSON object')
    unit: dict[str, Any] = {}
    if isinstance(raw.get('data'), dict):
        unit = raw.get('data_unit') or {}
        raw = raw['data']
    try:
        doc = from_dm_v1(raw) if is_dm_v1(raw) else raw
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise input_error(path, f'not a readable DM document ({exc})') from exc
    if not isinstance(doc.get('annotations', []), list):
        raise input_error(path, '"annotations" is neither a list nor a DM v1 mapping')
    return doc, unit if isinstance(unit, dict) else {}


def _scan_classes(files: list[Path]) -> dict[str, Any]:
    tools: dict[str, Any] = {}
    for f in files:
        try:
            doc = load_document(f)[0]
        except ParamsError:
            continue  # counted when the images are read
        for ann in doc.get('annotations') or []:
            if isinstance(ann, dict) and isinstance(ann.get('category'), str):
                tools.setdefault(ann['category'], ann.get('tool'))
    return {
        'classes': [{'name': n, 'tool': tools[n], 'attributes': []} for n in sorted(tools)],
        'keypoints': {},
    }


def read_dataset(path: Path, images: Path | None = None) -> ImportedDataset:
    path = Path(path)
    if not path.is_dir():
        raise input_error(path, 'not a directory')
    json_dir = path / 'json' if (path / 'json').is_dir() else path
    image_dir = images or (path / 'origin_files' if (path / 'origin_files').is_dir() else json_dir)
    files = sorted(f for f in json_dir.glob('*.json') if f.name != 'project.json')
    project = load_project(path) or (load_project(path.parent) if json_dir == path else None)
    title = path.name
    if project is not None:
        configuration = dict(project['configuration'])
        title = str(project.get('title') or title)
    else:
        configuration = _scan_classes(files)
    report = ImportReport()

    def produce() -> Iterator[ImportedImage]:
        for f in files:
            try:
                doc, unit = load_document(f)
            except ParamsError:
                report.skip('image', 'annotation json not readable')
                continue
            image, reason = locate_image(image_dir, f.stem) if image_dir.is_dir() else (None, None)
            if image is None:
                report.skip('image file', reason or NOT_FOUND)
            else:
                report.count('image files')
            width, height = unit.get('width'), unit.get('height')
            if (not width or not height) and image is not None:
                width, height = image_size(image) or (None, None)
            listed = doc.get('annotations') or []
            objects = [a for a in listed if isinstance(a, dict)]
            report.skip('annotation', 'not a JSON object', len(listed) - len(objects))
            annotations = [a for a in objects if isinstance(a.get('category'), str)]
            reason = '"category" is not a class name (text)'
            report.skip('annotation', reason, len(objects) - len(annotations))
            report.count('annotations', len(annotations))
            report.count('images')
            classifications = doc.get('classifications')
            yield ImportedImage(
                file_name=str(unit.get('name') or (image.name if image else f.stem)),
                path=image,
                width=width,
                height=height,
                annotations=annotations,
                classifications=dict(classifications) if isinstance(classifications, dict) else {},
            )

    return ImportedDataset(configuration, LazyImages(produce, report), title=title, report=report)

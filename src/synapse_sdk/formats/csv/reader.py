"""Import our CSV export (``annotations.csv`` or its directory). Rows of one item are
consecutive.

The project schema comes from ``project.json`` beside the CSV when present (our exports write
it: class order, unused classes and keypoint names kept, CONTRACTS #2); without it, classes are
the sorted set of class names (CSV carries no class list). Image paths (``file``) must resolve
inside the export folder (or ``--images``); a row that cannot be read is skipped and counted.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import orjson

from synapse_sdk.formats._reader import (
    LazyImages,
    canonical_split,
    input_error,
    load_project,
    resolve_inside,
)
from synapse_sdk.formats.csv.convert import row_to_annotation
from synapse_sdk.formats.dataset import ImportedDataset, ImportedImage, ImportReport
from synapse_sdk.formats.images import image_size

__all__ = ['read_dataset']


def _rows(path: Path) -> Iterator[dict[str, str]]:
    with path.open(encoding='utf-8', newline='') as fh:
        yield from csv.DictReader(fh)


def read_dataset(path: Path, images: Path | None = None) -> ImportedDataset:
    path = Path(path)
    csv_path = path / 'annotations.csv' if path.is_dir() else path
    if not csv_path.is_file():
        raise input_error(path, 'no annotations.csv found')
    project = load_project(csv_path.parent)
    title = csv_path.parent.name
    if project is not None:
        configuration: dict[str, Any] = dict(project['configuration'])
        title = str(project.get('title') or title)
    else:
        names = sorted({r['class'] for r in _rows(csv_path) if r.get('class')})
        configuration = {
            'classes': [{'name': n, 'tool': None, 'attributes': []} for n in names],
            'keypoints': {},
        }
    base = images or csv_path.parent
    report = ImportReport()

    def produce() -> Iterator[ImportedImage]:
        current: list[dict[str, str]] = []
        for row in _rows(csv_path):
            if current and row.get('item_id') != current[0].get('item_id'):
                yield _image(current, base, images is not None, report)
                current = []
            current.append(row)
        if current:
            yield _image(current, base, images is not None, report)

    return ImportedDataset(configuration, LazyImages(produce, report), title=title, report=report)


def _int(text: str | None) -> int | None:
    try:
        value = int(float(text or ''))
    except ValueError:
        return None
    return value if value > 0 else None


def _image(
    rows: list[dict[str, str]], base: Path, flat: bool, report: ImportReport
) -> ImportedImage:
    first = rows[0]
    rel = (first.get('file') or '').replace('\\', '/')
    name = PurePosixPath(rel).name
    found, reason = resolve_inside(base, name if flat else rel) if rel else (None, 'no file')
    if found is None:
        report.skip('image file', reason or 'file not found')
    else:
        report.count('image files')
    width, height = _int(first.get('image_width')), _int(first.get('image_height'))
    if (width is None or height is None) and found is not None:
        width, height = image_size(found) or (None, None)
    annotations: list[dict[str, Any]] = []
    for row in rows:
        try:
            ann = row_to_annotation(row)
        except (ValueError, TypeError, KeyError, orjson.JSONDecodeError):
            report.skip('annotation', 'malformed row')
            continue
        if ann is not None:
            annotations.append(ann)
            report.count('annotations')
    try:
        classifications = (
            orjson.loads(first['classifications']) if first.get('classifications') else {}
        )
    except orjson.JSONDecodeError:
        classifications = {}
        report.skip('classifications', 'not a JSON object')
    report.count('images')
    if not annotations:
        report.count('images without annotations')
    return ImportedImage(
        file_name=first.get('file_name_original') or name,
        path=found,
        width=width,
        height=height,
        annotations=annotations,
        classifications=classifications if isinstance(classifications, dict) else {},
        split=canonical_split(first.get('split')),
    )

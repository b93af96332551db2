"""Import our CSV export (``annotations.csv`` or its directory). Rows of one item are
consecutive; classes are the sorted set of class names (CSV carries no class list)."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from synapse_sdk.formats._reader import LazyImages, canonical_split, input_error
from synapse_sdk.formats.csv.convert import row_to_annotation
from synapse_sdk.formats.dataset import ImportedDataset, ImportedImage
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
    names = sorted({r['class'] for r in _rows(csv_path) if r.get('class')})
    configuration: dict[str, Any] = {
        'classes': [{'name': n, 'tool': None, 'attributes': []} for n in names],
        'keypoints': {},
    }
    base = images or csv_path.parent

    def produce() -> Iterator[ImportedImage]:
        current: list[dict[str, str]] = []
        for row in _rows(csv_path):
            if current and row['item_id'] != current[0]['item_id']:
                yield _image(current, base, images is not None)
                current = []
            current.append(row)
        if current:
            yield _image(current, base, images is not None)

    return ImportedDataset(configuration, LazyImages(produce), title=csv_path.parent.name)


def _image(rows: list[dict[str, str]], base: Path, flat: bool) -> ImportedImage:
    first = rows[0]
    rel = first['file']
    image = base / (Path(rel).name if flat else rel)
    size = image_size(image) if image.is_file() else None
    annotations: list[dict[str, Any]] = []
    for row in rows:
        ann = row_to_annotation(row)
        if ann is not None:
            annotations.append(ann)
    return ImportedImage(
        file_name=first.get('file_name_original') or Path(rel).name,
        path=image if image.is_file() else None,
        width=size[0] if size else None,
        height=size[1] if size else None,
        annotations=annotations,
        classifications=orjson.loads(first['classifications'])
        if first.get('classifications')
        else {},
        split=canonical_split(first.get('split')),
    )

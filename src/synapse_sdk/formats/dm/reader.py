"""Import a directory of DM json files (v1 or v2, detected per file with ``is_dm_v1``).

``path`` is the export root (``json/`` and ``origin_files/`` inside) or the json directory
itself. A file may also hold a whole record (``data`` + ``data_unit``). Image sizes come from
the record, else the image header. Classes are the sorted set of names with their first tool.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from synapse_sdk.formats._reader import LazyImages, find_image, input_error
from synapse_sdk.formats.dataset import ImportedDataset, ImportedImage
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
    doc = from_dm_v1(raw) if is_dm_v1(raw) else raw
    if not isinstance(doc.get('annotations', []), list):
        raise input_error(path, '"annotations" is neither a list nor a DM v1 mapping')
    return doc, unit


def read_dataset(path: Path, images: Path | None = None) -> ImportedDataset:
    path = Path(path)
    if not path.is_dir():
        raise input_error(path, 'not a directory')
    json_dir = path / 'json' if (path / 'json').is_dir() else path
    image_dir = images or (path / 'origin_files' if (path / 'origin_files').is_dir() else json_dir)
    files = sorted(json_dir.glob('*.json'))
    tools: dict[str, Any] = {}
    for f in files:
        for ann in load_document(f)[0].get('annotations') or []:
            tools.setdefault(ann.get('category'), ann.get('tool'))
    configuration = {
        'classes': [
            {'name': n, 'tool': tools[n], 'attributes': []}
            for n in sorted(n for n in tools if isinstance(n, str))
        ],
        'keypoints': {},
    }

    def produce() -> Iterator[ImportedImage]:
        for f in files:
            doc, unit = load_document(f)
            image = find_image(image_dir, f.stem)
            width, height = unit.get('width'), unit.get('height')
            if (not width or not height) and image is not None:
                width, height = image_size(image) or (None, None)
            yield ImportedImage(
                file_name=unit.get('name') or (image.name if image else f.stem),
                path=image,
                width=width,
                height=height,
                annotations=list(doc.get('annotations') or []),
                classifications=dict(doc.get('classifications') or {}),
            )

    return ImportedDataset(configuration, LazyImages(produce), title=path.name)

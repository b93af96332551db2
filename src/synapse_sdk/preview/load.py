"""Find out which format a folder holds and read it back with the SDK's own readers.

Preview reads the written files, not the records they came from, so what it draws is what a
training job would load, mistakes included.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from synapse_sdk.errors import ParamsError
from synapse_sdk.formats import READERS, get_reader
from synapse_sdk.formats.dataset import ImportedImage

__all__ = ['LoadedExport', 'detect_format', 'load_export']

#: What marks each format's folder, in the order they are tried.
MARKERS = (
    ('yolo', 'data.yaml'),
    ('coco', 'annotations/instances_*.json'),
    ('voc', 'Annotations/'),
    ('csv', 'annotations.csv'),
    ('dm', 'json/'),
    ('cvat', 'annotations.xml'),
    ('parquet', 'data/*.parquet'),
    ('labelme', '[<split>/]*.json with "shapes"'),
)
#: JSON files an export writes beside its data (never LabelMe files).
_REPORT_FILES = {'export_report.json', 'error_file_list.json', 'project.json'}
#: Folders that hold images but do not name a split.
_NOT_SPLITS = {'images', 'jpegimages', 'origin_files', 'json', 'annotations'}


def detect_format(root: Path) -> str:
    """The format of the export folder ``root`` (``ParamsError`` when none matches)."""
    root = Path(root)
    if not root.is_dir():
        raise ParamsError('Cannot preview', [('EXPORT_DIR', f'{root} is not a folder')])
    if (root / 'data.yaml').is_file() or (root / 'data.yml').is_file():
        return 'yolo'
    if any((root / 'annotations').glob('instances_*.json')) or any(
        (root / 'annotations').glob('person_keypoints_*.json')
    ):
        return 'coco'
    if (root / 'Annotations').is_dir():
        return 'voc'
    if (root / 'annotations.csv').is_file():
        return 'csv'
    if (root / 'json').is_dir():
        return 'dm'
    if (root / 'annotations.xml').is_file():
        return 'cvat'
    if any((root / 'data').glob('*.parquet')):
        return 'parquet'
    if _has_labelme_file(root):
        return 'labelme'
    looked = ', '.join(f'{marker} ({fmt})' for fmt, marker in MARKERS)
    raise ParamsError(
        'Cannot preview',
        [('EXPORT_DIR', f'{root} holds no export this SDK reads; looked for {looked}')],
    )


def _has_labelme_file(root: Path) -> bool:
    """Whether the first JSON file in ``root`` or one level down is a LabelMe file."""
    for path in (*sorted(root.glob('*.json')), *sorted(root.glob('*/*.json'))):
        if path.name in _REPORT_FILES:
            continue
        data = _json(path)
        return isinstance(data, dict) and 'shapes' in data and 'imagePath' in data
    return False


@dataclass
class LoadedExport:
    """An export read back: its format, classes, images (lazy) and its own reports."""

    root: Path
    format: str
    configuration: dict[str, Any]
    images: Iterable[ImportedImage]
    report: dict[str, Any] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def class_names(self) -> list[str]:
        return [str(c.get('name')) for c in self.configuration.get('classes') or []]


def _json(path: Path) -> Any:
    try:
        return orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None


def split_of(image: ImportedImage) -> str:
    """The split an image belongs to: the reader's, else the folder its file is in."""
    if image.split:
        return image.split
    if image.path is not None:
        parent = image.path.parent
        if (
            parent.name
            and parent.name.lower() not in _NOT_SPLITS
            and (parent.parent.name.lower() in ('images', 'labels'))
        ):
            return parent.name
    return 'all'


def load_export(root: Path, fmt: str | None = None) -> LoadedExport:
    """Read the export at ``root`` (its format detected unless ``fmt`` names it)."""
    root = Path(root)
    if fmt is None:
        fmt = detect_format(root)
    elif fmt not in READERS:
        known = ', '.join(sorted(READERS))
        raise ParamsError('Cannot preview', [('--format', f'{fmt!r}; known: {known}')])
    dataset = get_reader(fmt)(root)
    report = _json(root / 'export_report.json')
    errors = _json(root / 'error_file_list.json')
    configuration = dict(dataset.configuration or {})
    project = _json(root / 'project.json')  # dm and CSV exports keep the project's classes
    saved = project.get('configuration') if isinstance(project, dict) else None
    if isinstance(saved, dict) and saved.get('classes'):
        configuration = saved
    return LoadedExport(
        root=root,
        format=fmt,
        configuration=configuration,
        images=dataset.images,
        report=report if isinstance(report, dict) else {},
        errors=errors if isinstance(errors, list) else [],
    )

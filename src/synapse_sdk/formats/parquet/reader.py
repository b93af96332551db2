"""Import Parquet files in the Hugging Face ``datasets`` object-detection layout (ours, or any
with an ``image`` and an ``objects`` column): one file, or a dataset folder ``DIR`` whose
files are ``DIR/data/*.parquet`` (the Hub layout), else ``DIR/*.parquet``, else those of its
split folders (``DIR/train/*.parquet`` ..., the names :func:`canonical_split` knows). Nothing
deeper is read: another subfolder holding parquet files is a dataset of its own, reported as
not read (a folder holding only those is refused, naming them).

Read: ``image`` (``{"bytes", "path"}`` as ``datasets.Image`` stores it, or a path string),
``image_id``, ``width``, ``height`` (else the image header), ``objects`` with ``bbox``
(COCO ``[x, y, w, h]``), ``category`` (or ``categories`` / ``label``), and when present
``area``, ``iscrowd``, ``segmentation`` (polygons), ``rle``, ``attributes``; a
``classifications`` column. Class names come from the ``ClassLabel`` in the files' ``datasets``
features (schema metadata ``huggingface``); without one, categories are named ``class_<n>``.
The split is the file name's ``<split>-00000-of-00001`` prefix.

Images with bytes are written to a temporary file for the import, one at a time; a path
without bytes must resolve inside the dataset folder (``../`` and absolute paths are refused).
Rows are read in batches, so memory stays flat. Not read, counted per reason: objects with a
malformed box or category, rows without an ``objects`` column entry.
"""

from __future__ import annotations

import io
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import orjson
from PIL import Image

from synapse_sdk.formats._reader import (
    NOT_FOUND,
    LazyImages,
    canonical_split,
    input_error,
    resolve_inside,
)
from synapse_sdk.formats.dataset import ImportedDataset, ImportedImage, ImportReport
from synapse_sdk.formats.images import image_size
from synapse_sdk.formats.parquet.convert import object_to_annotations

__all__ = ['read_dataset']

_SHARD = re.compile(r'^(?P<split>.+?)-\d{5}-of-\d{5}$')
_CATEGORY_KEYS = ('category', 'categories', 'label', 'labels')
_BATCH = 64


def _pq() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover - the extra is part of the test install
        raise input_error(
            'parquet', 'pyarrow is needed: pip install "synapse-sdk[parquet]"'
        ) from exc
    return pq


def _parquets(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob('*.parquet') if p.is_file())


def _files(path: Path, early: ImportReport) -> tuple[Path, list[Path]]:
    """The dataset's files: ``DIR/data/*.parquet`` (the Hugging Face layout our export
    writes), else ``DIR/*.parquet``, else ``DIR/<split>/*.parquet``. Other subfolders holding
    parquet files (``sub/*.parquet``, ``sub/data/*.parquet``) are datasets of their own:
    counted in ``early`` by name, not read."""
    if path.is_file():
        return path.parent, [path]
    if not path.is_dir():
        raise input_error(path, 'no such file or directory')
    data = path / 'data'
    subs = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith('.'))
    files: list[Path] = []
    for folders in ([data], [path], [s for s in subs if canonical_split(s.name)]):
        files = [f for folder in folders if folder.is_dir() for f in _parquets(folder)]
        if files:
            break
    read = {f.parent for f in files}
    nested = [
        sub.name
        for sub in subs
        if sub not in read and (any(sub.glob('*.parquet')) or any(sub.glob('data/*.parquet')))
    ]
    if not files:
        hint = f'; nested datasets not read: {", ".join(nested)}' if nested else ''
        expected = f'{data}/*.parquet, {path}/*.parquet or {path}/<split>/*.parquet'
        raise input_error(path, f'no .parquet files (expected {expected}){hint}')
    for rel in nested:
        early.skip('folder', f'nested dataset {rel}, not read (import it on its own)')
    return path, files


def _class_label(feature: Any) -> list[str] | None:
    """The names of the first ``ClassLabel`` inside a ``datasets`` feature dict."""
    if isinstance(feature, dict):
        if feature.get('_type') == 'ClassLabel' and isinstance(feature.get('names'), list):
            return [str(n) for n in feature['names']]
        for key in ('feature', *_CATEGORY_KEYS):
            if key in feature:
                found = _class_label(feature[key])
                if found is not None:
                    return found
    return None


def _names(files: list[Path]) -> list[str] | None:
    pq = _pq()
    for f in files:
        metadata = pq.read_schema(f).metadata or {}
        raw = metadata.get(b'huggingface')
        if not raw:
            continue
        try:
            feats = orjson.loads(raw).get('info', {}).get('features', {})
        except (orjson.JSONDecodeError, AttributeError):
            continue
        names = _class_label(feats.get('objects'))
        if names is not None:
            return names
    return None


def _category_key(objects: dict[str, Any]) -> str | None:
    return next((k for k in _CATEGORY_KEYS if k in objects), None)


def _rows(f: Path, columns: list[str] | None = None) -> Iterator[dict[str, Any]]:
    pq = _pq()
    parquet = pq.ParquetFile(f)
    names = parquet.schema_arrow.names
    cols = [c for c in columns if c in names] if columns else None
    for batch in parquet.iter_batches(batch_size=_BATCH, columns=cols):
        yield from batch.to_pylist()


def _tool(obj: dict[str, Any], i: int) -> str:
    rle = (obj.get('rle') or [None] * (i + 1))[i]
    seg = (obj.get('segmentation') or [None] * (i + 1))[i]
    if rle:
        return 'segmentation'
    return 'polygon' if seg else 'bounding_box'


def read_dataset(path: Path, images: Path | None = None) -> ImportedDataset:
    path = Path(path)
    early = ImportReport()  # counted before images are read
    root, files = _files(path, early)
    schema = _pq().read_schema(files[0])
    if 'objects' not in schema.names or 'image' not in schema.names:
        raise input_error(files[0], 'not an object-detection parquet (no image/objects columns)')
    names = _names(files)
    # First pass over the objects column only: each category's first tool (and, without
    # ClassLabel names, how many categories there are).
    tools: dict[int, str] = {}
    for f in files:
        for row in _rows(f, ['objects']):
            objects = row.get('objects') or {}
            key = _category_key(objects)
            for i, cat in enumerate(objects.get(key) or [] if key else []):
                if isinstance(cat, int) and cat not in tools:
                    tools[cat] = _tool(objects, i)
    if names is None:
        names = [f'class_{i}' for i in range(max(tools, default=-1) + 1)]
    configuration = {
        'classes': [
            {'name': n, 'tool': tools.get(i, 'bounding_box'), 'attributes': []}
            for i, n in enumerate(names)
        ],
        'keypoints': {},
    }
    report = ImportReport()

    def produce() -> Iterator[ImportedImage]:
        report.update(early)
        with tempfile.TemporaryDirectory(prefix='synapse-parquet-') as tmp:
            for f in files:
                match = _SHARD.match(f.stem)
                split = canonical_split(match.group('split') if match else f.stem)
                if split is None and f.parent.parent == root:  # a split folder's file
                    split = canonical_split(f.parent.name)
                for n, row in enumerate(_rows(f), 1):
                    image = _image(row, root, images, Path(tmp), names, split, report, n)
                    yield image
                    if image.path is not None and image.path.parent == Path(tmp):
                        image.path.unlink(missing_ok=True)  # written for the copy only

    title = path.stem if path.is_file() else path.name
    return ImportedDataset(configuration, LazyImages(produce, report), title=title, report=report)


def _suffix(data: bytes) -> str:
    """File extension of image bytes without a name (``.jpg``, ``.png`` ...), from the header."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt = (im.format or '').lower()
    except (OSError, ValueError):
        return '.bin'
    return {'jpeg': '.jpg', 'tiff': '.tif', '': '.bin'}.get(fmt, f'.{fmt}')


def _image_file(
    value: Any, root: Path, images: Path | None, tmp: Path, key: str, report: Any
) -> tuple[Path | None, str]:
    """``(file, file name)`` of an ``image`` cell."""
    data, name = (
        (value.get('bytes'), value.get('path')) if isinstance(value, dict) else (None, value)
    )
    name = str(name or '')
    base = PurePosixPath(PureWindowsPath(name).as_posix()).name
    if data:
        suffix = PurePosixPath(base).suffix or _suffix(data)
        target = tmp / f'{key}{suffix}'
        target.write_bytes(data)
        return target, base or target.name
    if not name:
        report.skip('image file', 'no bytes and no path')
        return None, key
    if images is not None:
        found, _ = resolve_inside(Path(images), base)
        if found is not None:
            return found, base
    found, reason = resolve_inside(root, PureWindowsPath(name).as_posix())
    if found is None:
        report.skip('image file', reason or NOT_FOUND)
    return found, base


def _image(
    row: dict[str, Any],
    root: Path,
    images: Path | None,
    tmp: Path,
    names: list[str],
    split: str | None,
    report: Any,
    n: int,
) -> ImportedImage:
    image_id = row.get('image_id')
    key = str(image_id) if isinstance(image_id, int) else f'row{n}'
    path, file_name = _image_file(row.get('image'), root, images, tmp, key, report)
    width, height = row.get('width'), row.get('height')
    if not (isinstance(width, int) and isinstance(height, int)) and path is not None:
        width, height = image_size(path) or (None, None)
    size = (width, height) if isinstance(width, int) and isinstance(height, int) else None
    objects = row.get('objects') or {}
    cat_key = _category_key(objects)
    boxes = objects.get('bbox') or []
    annotations: list[dict[str, Any]] = []
    for i in range(len(boxes)):
        obj = {
            k: (v[i] if isinstance(v, list) and i < len(v) else None) for k, v in objects.items()
        }
        cat = obj.get(cat_key) if cat_key else None
        ann_id = str(obj.get('id') if obj.get('id') is not None else i + 1)
        try:
            if not isinstance(cat, int) or not 0 <= cat < len(names):
                raise ValueError(f'category {cat!r} is not a class index')
            annotations += object_to_annotations(
                obj, category=names[cat], image_size=size, ann_id=ann_id
            )
        except (KeyError, ValueError, TypeError, IndexError, orjson.JSONDecodeError) as exc:
            report.skip('annotation', f'malformed object ({type(exc).__name__})')
    classifications: dict[str, Any] = {}
    raw = row.get('classifications')
    if isinstance(raw, str) and raw:
        try:
            loaded = orjson.loads(raw)
            classifications = loaded if isinstance(loaded, dict) else {}
        except orjson.JSONDecodeError:
            report.skip('classifications', 'not a JSON object')
    report.count('images')
    report.count('annotations', len(annotations))
    if path is not None:
        report.count('image files')
    return ImportedImage(
        file_name=file_name,
        path=path,
        width=width if isinstance(width, int) else None,
        height=height if isinstance(height, int) else None,
        annotations=annotations,
        classifications=classifications,
        split=split,
    )

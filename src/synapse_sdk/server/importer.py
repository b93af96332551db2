"""Load an :class:`~synapse_sdk.formats.dataset.ImportedDataset` into the store.

Images are streamed: each one is copied into ``media/<data unit id>/`` and written as a data
unit, a task, a submitted assignment and a ground-truth event, then forgotten.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synapse_sdk.formats._reader import SPLIT_ALIASES
from synapse_sdk.formats.names import safe_basename

if TYPE_CHECKING:
    from synapse_sdk.formats.dataset import ImportedDataset, ImportedImage
    from synapse_sdk.server.store import Store

__all__ = ['SPLIT_ALIASES', 'file_entry', 'import_dataset', 'normalise_split']


def normalise_split(split: str | None) -> str:
    """``'val'`` -> ``'validation'``; an image without a split goes to ``'train'``."""
    if not split:
        return 'train'
    return SPLIT_ALIASES.get(split.strip().lower(), split.strip().lower())


def file_entry(path: Path, relative: str, file_name_original: str) -> dict[str, Any]:
    """The stored description of one media file: size and sha256 checksum."""
    digest = hashlib.sha256()
    with path.open('rb') as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b''):
            digest.update(chunk)
    return {
        'path': relative,
        'file_name_original': file_name_original,
        'is_primary': True,
        'size': path.stat().st_size,
        'checksum': f'sha256:{digest.hexdigest()}',
    }


def _image_size(image: ImportedImage) -> tuple[int | None, int | None]:
    if image.width and image.height:
        return image.width, image.height
    if image.path is not None and Path(image.path).is_file():
        from PIL import Image

        with Image.open(image.path) as im:
            return im.width, im.height
    return image.width, image.height


def _document(image: ImportedImage) -> dict[str, Any]:
    annotations = []
    for i, ann in enumerate(image.annotations, 1):
        ann = dict(ann)
        ann['id'] = str(ann.get('id') or f'a{i}')
        ann.setdefault('media', 'image_1')
        ann.setdefault('attributes', {})
        annotations.append(ann)
    return {'annotations': annotations, 'classifications': dict(image.classifications)}


def import_dataset(
    store: Store, dataset: ImportedDataset, title: str | None = None
) -> dict[str, Any]:
    """See :meth:`Store.import_dataset`. Returns ``{project, ground_truth_dataset,
    ground_truth_dataset_version, data_units, tasks, assignments, ground_truth_events}``."""
    title = title or dataset.title
    counts = {'data_units': 0, 'tasks': 0, 'assignments': 0, 'ground_truth_events': 0}
    copied: list[Path] = []
    try:
        with store.transaction() as conn:
            pid = store.insert(
                'projects', {'title': title, 'configuration': dict(dataset.configuration)}, conn
            )
            gt_dataset = store.insert(
                'ground_truth_datasets', {'project': pid, 'name': title}, conn
            )
            version = store.insert(
                'ground_truth_dataset_versions', {'dataset': gt_dataset, 'name': 'v1'}, conn
            )
            for image in dataset.images:
                width, height = _image_size(image)
                unit = store.add_data_unit(pid, image.file_name, width, height, {}, conn)
                if image.path is not None and Path(image.path).is_file():
                    relative = f'{unit}/{safe_basename(image.file_name, "image")}'
                    target = store.media_dir / relative
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(image.path, target)
                    copied.append(target)
                    entry = file_entry(target, relative, image.file_name)
                else:
                    entry = {'path': None, 'file_name_original': image.file_name}
                conn.execute(
                    'INSERT INTO files (data_unit, key, path, file_name_original, is_primary, '
                    'size, checksum) VALUES (?, ?, ?, ?, 1, ?, ?)',
                    [unit, 'image_1', entry['path'], entry['file_name_original'],
                     entry.get('size'), entry.get('checksum')],
                )  # fmt: skip
                doc = _document(image)
                task = store.insert(
                    'tasks',
                    {'project': pid, 'data_unit': unit, 'status': 'completed', 'tags': [],
                     'data': doc},
                    conn,
                )  # fmt: skip
                store.insert(
                    'assignments',
                    {'project': pid, 'task': task, 'user': None, 'status': 'submitted',
                     'tags': [], 'data': doc},
                    conn,
                )  # fmt: skip
                counts['ground_truth_events'] += 1
                store.insert(
                    'ground_truth_events',
                    {'id': counts['ground_truth_events'], 'version': version, 'data_unit': unit,
                     'category': normalise_split(image.split), 'data': doc},
                    conn,
                )  # fmt: skip
                counts['data_units'] += 1
                counts['tasks'] += 1
                counts['assignments'] += 1
    except BaseException:
        for path in copied:  # the rows rolled back; do not leave their files behind
            path.unlink(missing_ok=True)
        raise
    return {
        'project': pid,
        'ground_truth_dataset': gt_dataset,
        'ground_truth_dataset_version': version,
        **counts,
    }

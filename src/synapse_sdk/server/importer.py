"""Load an :class:`~synapse_sdk.formats.dataset.ImportedDataset` into the store.

Images are streamed: each one is copied into a staging folder and queued as a data unit, a
task, a submitted assignment and a ground-truth event; rows are written in batches inside one
transaction. Only after the commit do the staged files move into ``media/`` (see
:mod:`synapse_sdk.server.media`), so a failed or killed import leaves neither rows nor files.
All SQL is the store's; this module only orchestrates.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from synapse_sdk.errors import ParamsError
from synapse_sdk.formats._reader import SPLIT_ALIASES
from synapse_sdk.formats.names import safe_basename
from synapse_sdk.server.media import MediaStage, file_entry

if TYPE_CHECKING:
    from synapse_sdk.formats.dataset import ImportedDataset, ImportedImage
    from synapse_sdk.server.store import Store

__all__ = ['SPLIT_ALIASES', 'file_entry', 'import_dataset', 'normalise_split']

BATCH = 500


def normalise_split(split: str | None) -> str:
    """``'val'`` -> ``'validation'``; an image without a split goes to ``'train'``."""
    if not split:
        return 'train'
    return SPLIT_ALIASES.get(split.strip().lower(), split.strip().lower())


def _image_size(image: ImportedImage) -> tuple[int | None, int | None]:
    if image.width and image.height:
        return image.width, image.height
    if image.path is not None and Path(image.path).is_file():
        from synapse_sdk.formats.images import image_size

        size = image_size(Path(image.path))
        if size:
            return size
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
    store: Store, dataset: ImportedDataset, title: str | None = None, *, batch: int = BATCH
) -> dict[str, Any]:
    """Create a project from ``dataset``; returns ``{project, storage, ground_truth_dataset,
    ground_truth_dataset_version, data_units, tasks, assignments, ground_truth_events, read,
    skipped}`` (``read`` / ``skipped``: the reader's counts, see
    :class:`~synapse_sdk.formats.dataset.ImportReport`). A dataset without a single image is
    refused (:class:`ParamsError`; nothing is created): it is not what the reader expected."""
    title = title or dataset.title
    report = dataset.report
    stage = MediaStage(store.home, store.media_dir)
    try:
        with store.transaction() as conn:
            rows = store.begin_import(conn, title, dataset.configuration)
            for image in dataset.images:
                width, height = _image_size(image)
                entry: dict[str, Any] | None = None
                if image.path is not None:
                    unit = rows.reserve_unit()
                    relative = f'{unit}/{safe_basename(image.file_name, "image")}'
                    entry = stage.add(Path(image.path), relative, image.file_name)
                    if entry is None:
                        report.skip('image file', 'not a regular file')
                rows.add(
                    name=image.file_name,
                    width=width,
                    height=height,
                    file=entry or {'path': None, 'file_name_original': image.file_name},
                    document=_document(image),
                    category=normalise_split(image.split),
                    source_id=image.source_id,
                )
                if rows.pending >= batch:
                    rows.flush()
            rows.flush()
            if not rows.count:  # not a dataset of this format, or nothing of it readable
                found = '; '.join(report.lines()) or 'nothing the reader recognised'
                raise ParamsError('Cannot import dataset', [(title, f'no images found ({found})')])
            rows.set_configuration(dataset.configuration)  # classes found while reading
    except BaseException:
        stage.discard()  # the rows rolled back; their files never reached media/
        raise
    stage.publish()
    storage = store.ensure_file_system_storage(store.home / 'storage')
    n = rows.count
    return {
        'project': rows.project,
        'storage': storage,
        'ground_truth_dataset': rows.dataset,
        'ground_truth_dataset_version': rows.version,
        'data_units': n,
        'tasks': n,
        'assignments': n,
        'ground_truth_events': n,
        **report.as_dict(),
    }

"""Import Ultralytics' classification layout: ``<split>/<class>/<image>``.

What our writer's ``-o task=classify`` writes, and what Ultralytics trains ``yolo classify`` on.
A folder is read as this layout when its ``data.yaml`` says ``task: classify``, when
``task="classify"`` is asked for, or when it has no ``data.yaml`` / ``obj.data`` and its split
folders (``train``, ``val``, ``test``, ...) hold class folders of images (and no
``images/`` / ``labels/`` folders, which are the object-task layouts).

- Splits: the yaml's ``train`` / ``val`` / ``test`` entries (folders, relative to its ``path``
  or its folder), else the split-named subfolders; ``val`` becomes ``validation``.
- Classes: ``--classes`` when given, else the yaml's ``names`` (order kept, classes without
  images kept; a folder is matched by the name our writer gives it, so names that are not
  safe folder names come back exactly), else the class folders sorted, as Ultralytics sorts
  them. A folder no name matches becomes a class added at the end (counted).
- Each image becomes an image-level label (a ``classification`` annotation of its folder's
  class). When the yaml says ``classification: NAME`` (our ``-o classification=NAME``: the
  class was that image classification's value), each image also gets ``{NAME: class}``, and
  the project declares that classification with the classes as its values. Images directly
  in a split folder (no class) are not imported (counted); every path must resolve inside the
  dataset folder. A folder two split entries name (our ``val: train`` when there is no val
  split) is read once.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from synapse_sdk.formats._reader import (
    IMAGE_EXTS,
    OUTSIDE,
    LazyImages,
    canonical_split,
    resolve_inside,
)
from synapse_sdk.formats.dataset import ImportedDataset, ImportedImage, ImportReport
from synapse_sdk.formats.images import image_size
from synapse_sdk.formats.yolo.writer import _class_dirs as class_dirs

__all__ = ['classify_config', 'read_classify']

_CONFIGS = ('data.yaml', 'data.yml', 'dataset.yaml')
_SPLIT_KEYS = ('train', 'val', 'valid', 'validation', 'test')


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def _has_images(folder: Path) -> bool:
    return any(f.suffix.lower() in IMAGE_EXTS and f.is_file() for f in folder.iterdir())


def _bare_splits(folder: Path) -> list[tuple[str, Path]]:
    """Split-named subfolders holding class folders of images (not images/ + labels/)."""
    out = []
    for sub in _subdirs(folder):
        if not canonical_split(sub.name) or (sub / 'images').is_dir() or (sub / 'labels').is_dir():
            continue
        if any(_has_images(c) for c in _subdirs(sub)):
            out.append((sub.name, sub))
    return out


def classify_config(path: Path, task: str | None) -> dict[str, Any] | None:
    """The ``data.yaml`` of a classify dataset at ``path`` (``{}`` without one), or ``None``
    when ``path`` is not one (see the module doc)."""
    folder = path if path.is_dir() else path.parent
    config = path if path.is_file() else None
    for name in _CONFIGS if config is None else ():
        if (folder / name).is_file():
            config = folder / name
            break
    data: Any = {}
    if config is not None and config.suffix in ('.yaml', '.yml'):
        try:
            data = yaml.safe_load(config.read_text(encoding='utf-8')) or {}
        except (OSError, yaml.YAMLError):
            return None  # the object-task reader reports it
        if not isinstance(data, dict):
            return None
    wanted = task or data.get('task')
    if wanted == 'classify':
        return data
    bare = config is None and not any(folder.glob('*.data')) and not any(folder.glob('*.yaml'))
    return data if wanted is None and bare and _bare_splits(folder) else None


def _split_dirs(
    folder: Path, root: Path, data: dict[str, Any], report: ImportReport
) -> list[tuple[str, Path]]:
    base = folder
    if data.get('path'):
        candidate = Path(str(data['path']))
        candidate = candidate if candidate.is_absolute() else folder / candidate
        if candidate.is_dir() and candidate.resolve().is_relative_to(root.resolve()):
            base = candidate
    entries = [(k, data[k]) for k in _SPLIT_KEYS if data.get(k)]
    if not entries:
        return _bare_splits(folder)
    out: list[tuple[str, Path]] = []
    for key, entry in entries:
        for text in entry if isinstance(entry, list) else [entry]:
            target = base / str(text).replace('\\', '/')
            if not target.is_dir():
                report.skip('split entry', f'{text!r}: not a folder inside the dataset')
            elif not target.resolve().is_relative_to(root.resolve()):
                report.skip('split entry', f'{text!r}: {OUTSIDE}')
            elif all(target != seen for _, seen in out):  # our val: train when no val split
                out.append((key, target))
    return out


def read_classify(
    path: Path,
    data: dict[str, Any],
    images: Path | None = None,
    classes: Sequence[str] | None = None,
) -> ImportedDataset:
    """Read the classify dataset at ``path`` (its ``data.yaml`` already loaded as ``data``)."""
    folder = path if path.is_dir() else path.parent
    root = Path(images) if images else folder
    early = ImportReport()
    report = ImportReport()
    splits = _split_dirs(folder, root, data, early)
    folders = sorted({c.name for _, split in splits for c in _subdirs(split)})
    given = classes if classes is not None else data.get('names')
    if isinstance(given, dict):
        given = [given[k] for k in sorted(given, key=int)]
    names = [str(n) for n in given] if given else list(folders)
    by_folder = dict(zip(class_dirs(names), names, strict=True))
    by_folder.update((n, n) for n in names if n not in by_folder)
    for name in folders:
        if name not in by_folder:
            names.append(name)
            by_folder[name] = name
            early.count('classes not in the class list (added)')
    configuration: dict[str, Any] = {
        'classes': [{'name': n, 'tool': 'classification', 'attributes': []} for n in names],
        'keypoints': {},
    }
    by = data.get('classification')  # our writer's -o classification=NAME: restored too
    by = by if isinstance(by, str) and by else None
    if by is not None:
        configuration['classifications'] = [{'name': by, 'values': list(names)}]

    def produce() -> Iterator[ImportedImage]:
        report.update(early)
        for split, split_dir in splits:
            for f in sorted(split_dir.iterdir()):
                if f.is_file() and f.suffix.lower() in IMAGE_EXTS:
                    report.skip('image', 'not in a class folder (yolo classify)')
            for class_dir in _subdirs(split_dir):
                category = by_folder[class_dir.name]
                for f in sorted(class_dir.iterdir()):
                    if f.suffix.lower() not in IMAGE_EXTS:
                        continue
                    found, reason = resolve_inside(root, os.path.relpath(f, root))
                    if found is None:
                        report.skip('image file', reason or OUTSIDE)
                        continue
                    size = image_size(found)
                    report.count('images')
                    report.count('image files')
                    report.count('tags')
                    label = {'id': '1', 'category': category, 'tool': 'classification'}
                    yield ImportedImage(
                        file_name=found.name,
                        path=found,
                        width=size[0] if size else None,
                        height=size[1] if size else None,
                        annotations=[{**label, 'attributes': {}}],
                        classifications={by: category} if by is not None else {},
                        split=canonical_split(split),
                    )

    return ImportedDataset(
        configuration, LazyImages(produce, report), title=folder.name, report=report
    )

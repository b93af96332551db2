"""Import a YOLO dataset: Ultralytics (``data.yaml``), Darknet (``obj.data``, ``obj.names``,
``train.txt``), or a bare folder of images and label files with the class names given.

- Ultralytics: split entries (``train``, ``val``, ``test``) are image folders or ``.txt`` lists
  of image paths, relative to the yaml's ``path`` or the yaml's folder (Roboflow's ``../train``
  entries are found inside the dataset too). The task is the yaml's ``task`` when present, else
  ``pose`` when ``kpt_shape`` is set, else ``detect`` with polygons read as segments.
- Darknet: ``obj.data`` names the class file and the split lists; list entries are relative to
  the dataset folder, a leading ``data/`` (Darknet's working folder) is dropped.
- Ultralytics' classify layout (``<split>/<class>/<image>``, ``task: classify`` or no yaml):
  image-level labels, see :mod:`synapse_sdk.formats.yolo.classify`.
- Neither: ``classes`` (``--classes a,b,c`` or a names file) or a names file in the folder
  (``obj.names``, ``classes.txt``, ``*.names``) gives the classes; images are those under
  ``images/[<split>/]``, ``<split>/images/`` or the folder itself.

Labels are found by swapping the last ``images`` path component for ``labels``, else beside the
image. Every image path must resolve inside the dataset folder (``--images`` when given, else
the folder holding the yaml / ``obj.data``): absolute entries, ``..`` and symlinks leading out
are refused and reported. Image sizes come from the image headers (needed to undo the
normalisation); an image that is missing or unreadable is skipped and counted, a bad label line
is skipped and counted.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from synapse_sdk.formats._reader import (
    ABSOLUTE,
    IMAGE_EXTS,
    NOT_FOUND,
    OUTSIDE,
    LazyImages,
    canonical_split,
    class_list,
    input_error,
    is_absolute_name,
    resolve_inside,
)
from synapse_sdk.formats.dataset import ImportedDataset, ImportedImage, ImportReport
from synapse_sdk.formats.images import image_size
from synapse_sdk.formats.yolo.classify import classify_config, read_classify
from synapse_sdk.formats.yolo.convert import TASKS, yolo_to_annotation

__all__ = ['read_dataset']

_TOOLS = {'detect': 'bounding_box', 'segment': 'polygon', 'pose': 'keypoint', 'obb': 'bounding_box'}
_SPLIT_KEYS = ('train', 'val', 'valid', 'validation', 'test')
_NAME_FILES = ('obj.names', 'classes.txt', 'classes.names', 'names.txt')


def _names(data: dict[str, Any], path: Path) -> list[str]:
    names = data.get('names')
    if isinstance(names, list):
        return [str(n) for n in names]
    if isinstance(names, dict):
        try:
            return [str(names[k]) for k in sorted(names, key=int)]
        except (TypeError, ValueError) as exc:
            raise input_error(path, '"names" keys must be class indices 0, 1, ...') from exc
    raise input_error(path, '"names" must be a list or a mapping')


def _read_names(path: Path) -> list[str]:
    names = class_list(path)
    assert names is not None
    return names


def _darknet(path: Path) -> dict[str, str]:
    """``key = value`` lines of an ``obj.data`` file."""
    out = {}
    for line in path.read_text(encoding='utf-8').splitlines():
        key, sep, value = line.partition('=')
        if sep and key.strip():
            out[key.strip()] = value.strip()
    return out


def _label_paths(image: Path) -> list[Path]:
    parts = list(image.parts)
    out = []
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == 'images':
            parts[i] = 'labels'
            out.append(Path(*parts).with_suffix('.txt'))
            break
    out.append(image.with_suffix('.txt'))
    return out


class _Layout:
    """Where the images of each split are, all inside ``root``."""

    def __init__(self, root: Path, report: ImportReport) -> None:
        self.root = root
        self.report = report
        self.splits: list[tuple[str | None, list[str], Path]] = []  # (split, entries, base)
        self._checked: set[Path] = set()  # label folders already checked for orphans

    def entry_path(self, base: Path, entry: str) -> Path | None:
        """A split entry (folder or list file) inside the root, or None (reported)."""
        text = entry.replace('\\', '/')
        candidates = [text]
        stripped = re.sub(r'^(\.\./)+', '', text)
        if stripped != text:
            candidates.append(stripped)  # Roboflow's '../train/images' beside data.yaml
        if text.startswith('data/'):
            candidates.append(text[5:])  # Darknet's working folder
        for candidate in candidates:
            for where in (base, self.root):
                target = where / candidate
                if target.exists() and target.resolve().is_relative_to(self.root.resolve()):
                    return target
        self.report.skip('split entry', f'{entry!r} not found inside the dataset folder')
        return None

    def images(self, split_entries: Sequence[str], base: Path) -> Iterator[Path]:
        for entry in split_entries:
            target = self.entry_path(base, str(entry))
            if target is None:
                continue
            if target.is_dir():
                stems = set()
                for f in sorted(target.iterdir()):
                    if f.suffix.lower() in IMAGE_EXTS:
                        stems.add(f.stem)
                        found, reason = resolve_inside(self.root, str(f.relative_to(self.root)))
                        if found is None:
                            self.report.skip('image', reason or OUTSIDE)
                        else:
                            yield found
                self._orphan_labels(target, stems)
            else:
                yield from self._listed(target)

    def _orphan_labels(self, folder: Path, stems: set[str]) -> None:
        """Label files of ``folder``'s ``labels/`` twin whose image is missing: counted (their
        annotations cannot be read without the image's size), never dropped silently."""
        twin = _label_paths(folder / 'x.jpg')[0].parent
        if twin == folder or not twin.is_dir() or twin in self._checked:
            return  # (a yaml's val may name the train folder again: counted once)
        self._checked.add(twin)
        if not twin.resolve().is_relative_to(self.root.resolve()):
            return
        for label in sorted(twin.glob('*.txt')):
            if label.stem not in stems:
                self.report.skip('image file', f'{NOT_FOUND} (a label file without its image)')

    def _listed(self, list_file: Path) -> Iterator[Path]:
        for line in list_file.read_text(encoding='utf-8').splitlines():
            entry = line.strip()
            if not entry or entry.startswith('#'):
                continue
            yield from self._one(entry, list_file.parent)

    def _one(self, entry: str, here: Path) -> Iterator[Path]:
        """One list entry: relative to the list's folder, else to the root (also without
        Darknet's leading ``data/``); always inside the root."""
        text = entry.replace('\\', '/')
        root = self.root.resolve()
        options = [here.resolve() / text, root / text]
        if text.startswith('data/'):
            options.append(root / text[5:])
        reason = NOT_FOUND
        for option in options:
            found, why = resolve_inside(root, os.path.relpath(option, root))
            if found is not None:
                yield found
                return
            if why != NOT_FOUND:
                reason = why or OUTSIDE
                break
        if is_absolute_name(text):  # a leading "/" or a drive (C:\\x); "a:b.jpg" is a name
            reason = ABSOLUTE
        self.report.skip('image', reason)


def _discover(
    path: Path, images: Path | None, classes: list[str] | None, report: ImportReport
) -> tuple[dict[str, Any], Path, _Layout, str]:
    """``(yaml-like config, config file or folder, layout, title)``."""
    folder = path if path.is_dir() else path.parent
    config_file: Path | None = path if path.is_file() else None
    if config_file is None:
        for name in ('data.yaml', 'data.yml', 'dataset.yaml', 'obj.data'):
            if (folder / name).is_file():
                config_file = folder / name
                break
        else:
            found = sorted(folder.glob('*.yaml')) + sorted(folder.glob('*.data'))
            config_file = found[0] if found else None
    root = Path(images) if images else folder
    layout = _Layout(root, report)
    data: dict[str, Any] = {}
    if config_file is not None and config_file.suffix == '.data':
        dn = _darknet(config_file)
        names_file = layout.entry_path(folder, dn['names']) if dn.get('names') else None
        data['names'] = _read_names(names_file) if names_file else None
        for key in ('train', 'valid', 'val', 'test'):
            if dn.get(key):
                layout.splits.append((key, [dn[key]], folder))
    elif config_file is not None:
        try:
            data = yaml.safe_load(config_file.read_text(encoding='utf-8')) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise input_error(config_file, f'not readable YAML ({exc})') from exc
        if not isinstance(data, dict):
            raise input_error(config_file, 'not a YOLO data.yaml (a mapping)')
        base = folder
        if data.get('path') and not images:
            candidate = Path(str(data['path']))
            candidate = candidate if candidate.is_absolute() else folder / candidate
            if candidate.is_dir() and candidate.resolve().is_relative_to(root.resolve()):
                base = candidate
            elif candidate.is_dir():
                report.skip('dataset path', 'outside the dataset folder (pass --images DIR)')
        for key in _SPLIT_KEYS:
            entry = data.get(key)
            if entry:
                entries = entry if isinstance(entry, list) else [entry]
                layout.splits.append((key, [str(e) for e in entries], base))
        data['names'] = _names(data, config_file) if 'names' in data else None
    if classes is not None:
        data['names'] = classes
    if data.get('names') is None:
        for name in _NAME_FILES:
            if (folder / name).is_file():
                data['names'] = _read_names(folder / name)
                break
        else:
            found_names = sorted(folder.glob('*.names'))
            if found_names:
                data['names'] = _read_names(found_names[0])
    if data.get('names') is None:
        raise input_error(
            path,
            'no class names: no data.yaml or obj.data with names, and no obj.names or '
            'classes.txt; give them with --classes a,b,c (or a names file)',
        )
    if not layout.splits:
        _bare_layout(layout, folder)
    title = folder.name
    return data, config_file or folder, layout, title


def _bare_layout(layout: _Layout, folder: Path) -> None:
    """Splits of a folder without a split config: images/<split>/, <split>/images/, images/,
    or the folder itself."""
    for parent in (folder / 'images', folder):
        for sub in sorted(p for p in parent.iterdir() if p.is_dir()) if parent.is_dir() else []:
            images = sub / 'images' if (sub / 'images').is_dir() else sub
            if canonical_split(sub.name) and any(
                f.suffix.lower() in IMAGE_EXTS for f in images.iterdir()
            ):
                layout.splits.append((sub.name, [str(images.relative_to(folder))], folder))
        if layout.splits:
            return
    for candidate in (folder / 'images', folder):
        if candidate.is_dir() and any(f.suffix.lower() in IMAGE_EXTS for f in candidate.iterdir()):
            layout.splits.append((None, [str(candidate.relative_to(folder)) or '.'], folder))
            return


def read_dataset(
    path: Path,
    images: Path | None = None,
    task: str | None = None,
    classes: Sequence[str] | str | None = None,
) -> ImportedDataset:
    """Read a YOLO dataset. ``images`` is the dataset folder every path must stay inside (and
    split entries resolve against); ``classes`` gives the names when the dataset has none."""
    path = Path(path)
    if not path.exists():
        raise input_error(path, 'no such file or directory')
    classify = classify_config(path, task)
    if classify is not None:  # <split>/<class>/<image>: image-level labels
        return read_classify(path, classify, images, class_list(classes))
    report = ImportReport()
    early = ImportReport()
    data, source, layout, title = _discover(path, images, class_list(classes), early)
    names: list[str] = [str(n) for n in data['names']]
    kpt_shape = data.get('kpt_shape')
    task = task or data.get('task') or ('pose' if kpt_shape else 'detect')
    if task not in TASKS:
        raise input_error(source, f'unknown task {task!r}; known: {", ".join(TASKS)}')
    kpt_names = data.get('kpt_names') or {}
    keypoints = {}
    if task == 'pose' and kpt_shape:
        for i, name in enumerate(names):
            kn = kpt_names.get(i) or kpt_names.get(str(i))
            if kn or not kpt_names:  # without kpt_names every class has the shared shape
                generic = [f'kp_{j}' for j in range(int(kpt_shape[0]))]
                keypoints[name] = {'names': list(kn or generic), 'skeleton': []}
    configuration = {
        'classes': [
            {
                'name': n,
                'tool': _TOOLS[task] if task != 'pose' or n in keypoints else 'bounding_box',
                'attributes': [],
            }
            for n in names
        ],
        'keypoints': keypoints,
    }

    def produce() -> Iterator[ImportedImage]:
        report.update(early)
        layout.report, layout._checked = report, set()  # a new pass counts afresh
        seen: set[Path] = set()
        for split, entries, base in layout.splits:
            for image in layout.images(entries, base):
                if image in seen:
                    continue
                seen.add(image)
                item = _read_image(image, split, names, task, kpt_shape, layout.root, report)
                if item is not None:
                    yield item

    return ImportedDataset(configuration, LazyImages(produce, report), title=title, report=report)


def _read_image(
    image: Path,
    split: str | None,
    names: list[str],
    task: str,
    kpt_shape: Any,
    root: Path,
    report: ImportReport,
) -> ImportedImage | None:
    label = next((p for p in _label_paths(image) if p.is_file()), None)
    if label is not None and not label.resolve().is_relative_to(root.resolve()):
        label = None
        report.skip('label file', OUTSIDE)
    lines = label.read_text(encoding='utf-8').splitlines() if label is not None else []
    lines = [line for line in lines if line.strip()]
    size = image_size(image)
    if size is None:
        report.skip('image', 'not a readable image (its size is needed to read the labels)')
        report.skip('annotation', 'its image is not readable', len(lines))
        return None
    annotations = []
    for n, line in enumerate(lines, 1):
        try:
            fields = line.split()
            index = int(fields[0])
            values = [float(v) for v in fields[1:]]
            if not math.isfinite(sum(values)):
                raise ValueError('a value is not a finite number')
            if not 0 <= index < len(names):
                raise ValueError('class index not in names')
            annotations.append(
                yolo_to_annotation(
                    values,
                    image_size=size,
                    task=task,
                    category=names[index],
                    ann_id=str(n),
                    kpt_shape=kpt_shape,
                )
            )
        except (ValueError, IndexError) as exc:
            reason = str(exc) if 'class index' in str(exc) else 'malformed label line'
            report.skip('annotation', reason)
            continue
        report.count('annotations')
    report.count('images')
    report.count('image files')
    if label is None:
        report.count('images without label file')
    if not annotations:
        report.count('images without annotations')
    return ImportedImage(
        file_name=PurePosixPath(image.name).name,
        path=image,
        width=size[0],
        height=size[1],
        annotations=annotations,
        split=canonical_split(split),
    )

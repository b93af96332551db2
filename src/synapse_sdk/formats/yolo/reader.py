"""Import an Ultralytics YOLO dataset: ``data.yaml`` (or the directory holding it).

Split entries (``train``, ``val``, ``test``) may be image directories or ``.txt`` lists of image
paths, relative to ``path`` or the yaml's directory; labels are found by swapping the last
``images`` path component for ``labels``. The task is the yaml's ``task`` when present (our
exports write it), else ``pose`` when ``kpt_shape`` is set, else ``detect`` with polygons read
as segments. Image sizes come from the image headers (needed to undo the normalisation).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from synapse_sdk.formats._reader import IMAGE_EXTS, LazyImages, canonical_split, input_error
from synapse_sdk.formats.dataset import ImportedDataset, ImportedImage
from synapse_sdk.formats.images import image_size
from synapse_sdk.formats.yolo.convert import TASKS, yolo_to_annotation

__all__ = ['read_dataset']

_TOOLS = {'detect': 'bounding_box', 'segment': 'polygon', 'pose': 'keypoint', 'obb': 'bounding_box'}
_SPLIT_KEYS = ('train', 'val', 'validation', 'test')


def _find_yaml(path: Path) -> Path:
    if path.is_file():
        return path
    if path.is_dir():
        for name in ('data.yaml', 'data.yml', 'dataset.yaml'):
            if (path / name).is_file():
                return path / name
        found = sorted(path.glob('*.yaml'))
        if found:
            return found[0]
    raise input_error(path, 'no data.yaml found')


def _names(data: dict[str, Any], path: Path) -> list[str]:
    names = data.get('names')
    if isinstance(names, list):
        return [str(n) for n in names]
    if isinstance(names, dict):
        return [str(names[k]) for k in sorted(names, key=int)]
    raise input_error(path, '"names" must be a list or a mapping')


def _label_path(image: Path) -> Path:
    parts = list(image.parts)
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == 'images':
            parts[i] = 'labels'
            break
    return Path(*parts).with_suffix('.txt')


def _split_images(root: Path, entry: Any) -> list[Path]:
    entries = entry if isinstance(entry, list) else [entry]
    out: list[Path] = []
    for e in entries:
        p = root / str(e)
        if p.is_dir():
            out += sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_EXTS)
        elif p.is_file() and p.suffix == '.txt':
            for line in p.read_text(encoding='utf-8').splitlines():
                if line.strip():
                    out.append((p.parent / line.strip()).resolve())
    return out


def read_dataset(
    path: Path, images: Path | None = None, task: str | None = None
) -> ImportedDataset:
    """Read a YOLO dataset. ``images`` overrides where split dirs resolve (the dataset root)."""
    yaml_path = _find_yaml(Path(path))
    try:
        data = yaml.safe_load(yaml_path.read_text(encoding='utf-8')) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise input_error(yaml_path, f'not readable YAML ({exc})') from exc
    names = _names(data, yaml_path)
    kpt_shape = data.get('kpt_shape')
    task = task or data.get('task') or ('pose' if kpt_shape else 'detect')
    if task not in TASKS:
        raise input_error(yaml_path, f'unknown task {task!r}')
    root = Path(images) if images else yaml_path.parent
    if not images and data.get('path'):
        candidate = Path(str(data['path']))
        candidate = candidate if candidate.is_absolute() else yaml_path.parent / candidate
        root = candidate if candidate.is_dir() else root
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
    splits: list[tuple[str, Any]] = [(k, data[k]) for k in _SPLIT_KEYS if data.get(k)]

    def produce() -> Iterator[ImportedImage]:
        seen: set[Path] = set()
        for key, entry in splits:
            for image in _split_images(root, entry):
                if image in seen:
                    continue
                seen.add(image)
                yield _read_image(image, key, names, task, kpt_shape)

    return ImportedDataset(configuration, LazyImages(produce), title=yaml_path.parent.name)


def _read_image(
    image: Path, split: str, names: list[str], task: str, kpt_shape: Any
) -> ImportedImage:
    label = _label_path(image)
    lines = label.read_text(encoding='utf-8').splitlines() if label.is_file() else []
    lines = [line for line in lines if line.strip()]
    size = image_size(image)
    if lines and size is None:
        raise input_error(image, 'image size unreadable; labels cannot be denormalised')
    annotations = []
    for n, line in enumerate(lines, 1):
        try:
            fields = line.split()
            index = int(fields[0])
            values = [float(v) for v in fields[1:]]
            if not 0 <= index < len(names):
                raise ValueError(f'class {index} is not in names')
            if size is None:  # lines without a size were rejected above
                raise ValueError('image size unknown')
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
            raise input_error(label, f'line {n}: {exc}') from exc
    return ImportedImage(
        file_name=image.name,
        path=image,
        width=size[0] if size else None,
        height=size[1] if size else None,
        annotations=annotations,
        split=canonical_split(split),
    )

"""Import a COCO dataset: an ``instances_<split>.json`` file, or a directory of them.

Images are looked for in ``images`` when given, else ``<root>/images/<split>/`` beside the
``annotations/`` directory (our export layout), else the json file's own directory. Category
order (by id) becomes the configured class order.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import orjson

from synapse_sdk.formats._reader import LazyImages, canonical_split, input_error
from synapse_sdk.formats.coco.convert import coco_to_annotations, coco_to_configuration
from synapse_sdk.formats.dataset import ImportedDataset, ImportedImage

__all__ = ['read_dataset']


def _load(path: Path) -> dict[str, Any]:
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise input_error(path, f'not a readable JSON file ({exc})') from exc
    if not isinstance(data, dict) or not isinstance(data.get('images'), list):
        raise input_error(path, 'not a COCO file (no "images" list)')
    return data


def _split_of(path: Path) -> str | None:
    stem = path.stem
    for prefix in ('instances_', 'person_keypoints_'):
        if stem.startswith(prefix):
            return stem[len(prefix) :]
    return None


def _image_dir(path: Path, split: str | None, images: Path | None) -> Path:
    if images is not None:
        return images
    if split and path.parent.name == 'annotations':
        candidate = path.parent.parent / 'images' / split
        if candidate.is_dir():
            return candidate
    return path.parent


def read_dataset(path: Path, images: Path | None = None) -> ImportedDataset:
    path = Path(path)
    if path.is_dir():
        base = path / 'annotations' if (path / 'annotations').is_dir() else path
        files = sorted(base.glob('*.json'))
        if not files:
            raise input_error(path, 'no COCO json files found')
    elif path.is_file():
        files = [path]
    else:
        raise input_error(path, 'no such file or directory')
    first = _load(files[0])
    categories = first.get('categories') or []
    configuration = coco_to_configuration(categories, first.get('annotations') or [])
    for f in files[1:]:
        other = _load(f).get('categories') or []
        if sorted((c['id'], c['name']) for c in other) != sorted(
            (c['id'], c['name']) for c in categories
        ):
            raise input_error(f, 'categories differ from those of ' + files[0].name)

    def produce() -> Iterator[ImportedImage]:
        for f in files:
            yield from _images(f, images)

    return ImportedDataset(configuration, LazyImages(produce), title=path.stem)


def _images(path: Path, images: Path | None) -> Iterator[ImportedImage]:
    data = _load(path)
    split = _split_of(path)
    image_dir = _image_dir(path, split, images)
    cats = {c['id']: c for c in data.get('categories') or []}
    by_image: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for ann in data.get('annotations') or []:
        by_image[ann.get('image_id')].append(ann)
    for img in data['images']:
        anns = []
        for a in by_image.get(img['id'], []):
            cat = cats.get(a.get('category_id'))
            if cat is None:
                raise input_error(path, f'annotation {a.get("id")} has unknown category')
            names = cat.get('keypoints')
            anns += coco_to_annotations(a, category=cat['name'], keypoint_names=names)
        file_name = str(img['file_name'])
        image_path = image_dir / file_name
        yield ImportedImage(
            file_name=PurePosixPath(file_name.replace('\\', '/')).name,
            path=image_path if image_path.is_file() else None,
            width=img.get('width'),
            height=img.get('height'),
            annotations=anns,
            classifications=dict(img.get('attributes') or {}),
            split=canonical_split(split),
        )

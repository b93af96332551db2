"""Import a COCO dataset: one json file, or a directory of them.

Files and splits: ``instances_<split>``, ``person_keypoints_<split>``, ``labels_<split>``,
``stuff_<split>`` and ``image_info_<split>`` (a trailing year is ignored: ``val2017``), Roboflow's
``<split>/_annotations.coco.json``, or any other name (no split). Files of one split describe
the same images: they are merged, and an annotation repeated across them (same id, category and
box, as Datumaro writes instances and stuff) is read once. ``captions_*`` and ``panoptic_*`` are
refused (exit 2), or skipped and reported when a directory also holds importable files.

Images are looked for, in order, in ``--images`` (and its ``<split>/``), else
``<root>/images/<split>/``, ``<root>/<split>/``, ``<root>/images/`` and beside the json
(``<root>`` is the parent of an ``annotations/`` folder). A ``file_name`` must resolve inside
the folder it is found in: absolute paths, ``..`` and symlinks leading out are refused and
reported.

Memory stays flat: the json is streamed (``ijson``); annotations are spilled to a temporary
file with an index by image, so a 100k-image file never exists as Python objects at once.
Category order (by id) becomes the class order; COCO image and category ids are kept as
``source_id`` (CONTRACTS #1).
"""

from __future__ import annotations

import math
import re
import tempfile
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

import ijson
import numpy as np
import orjson

from synapse_sdk.errors import ParamsError
from synapse_sdk.formats._reader import (
    NOT_FOUND,
    LazyImages,
    canonical_split,
    input_error,
    resolve_inside,
)
from synapse_sdk.formats.dataset import ImportedDataset, ImportedImage, ImportReport
from synapse_sdk.formats.geometry import (
    enclosing_box,
    polygon_area,
    rle_area,
    rle_bbox,
    rle_compress,
)

__all__ = ['coco_annotation_to_documents', 'read_dataset']

_KINDS = ('instances', 'person_keypoints', 'labels', 'stuff', 'image_info')
_REFUSED = {
    'captions': 'captions files hold sentences, not annotations',
    'panoptic': 'panoptic files need their PNG segment maps; import instances_*.json instead',
}
_PREFIX = re.compile(r'^(instances|person_keypoints|labels|stuff|image_info|captions|panoptic)_')
_ROBOFLOW = '_annotations.coco.json'
_KNOWN = 'instances, person_keypoints, labels, stuff and image_info files'


@dataclass
class _File:
    path: Path
    kind: str
    split: str | None  # the split as the file names it ('val2017'), None when it does not


@dataclass
class _Group:
    """Files describing the same images (one split), and where that split's images are."""

    split: str | None
    files: list[_File] = field(default_factory=list)


def _kind(path: Path) -> tuple[str, str | None]:
    if path.name == _ROBOFLOW:
        split = path.parent.name
        return 'instances', split if canonical_split(split) else None
    match = _PREFIX.match(path.stem)
    if match:
        return match.group(1), path.stem[match.end() :] or None
    return 'instances', None


def _discover(path: Path, report: ImportReport) -> list[_File]:
    if path.is_file():
        kind, split = _kind(path)
        if kind in _REFUSED:
            raise input_error(path, f'{_REFUSED[kind]}; synapse data import coco reads {_KNOWN}')
        return [_File(path, kind, split)]
    if not path.is_dir():
        raise input_error(path, 'no such file or directory')
    base = path / 'annotations' if (path / 'annotations').is_dir() else path
    candidates = sorted(base.glob('*.json')) + sorted(path.glob(f'*/{_ROBOFLOW}'))
    files = []
    refused = []
    for f in dict.fromkeys(candidates):
        kind, split = _kind(f)
        if kind in _REFUSED:
            refused.append(f'{f.name}: {_REFUSED[kind]}')
            report.skip('file', _REFUSED[kind])
            continue
        files.append(_File(f, kind, split))
    if not files:
        found = '; '.join(refused) or 'no json files'
        raise input_error(path, f'no importable COCO file ({found}); expected {_KNOWN}')
    return files


def _groups(files: list[_File]) -> list[_Group]:
    groups: dict[str, _Group] = {}
    for f in files:
        key = f.split if f.split is not None else f'file:{f.path}'
        groups.setdefault(key, _Group(f.split)).files.append(f)
    for g in groups.values():  # keypoint files first: their copy of a person keeps its points
        g.files.sort(key=lambda f: f.kind != 'person_keypoints')
    return list(groups.values())


def _items(fh: IO[bytes], prefix: str) -> Iterator[Any]:
    fh.seek(0)
    return ijson.items(fh, prefix, use_float=True)


def _open(path: Path) -> IO[bytes]:
    try:
        return path.open('rb')
    except OSError as exc:
        raise input_error(path, f'cannot read ({exc.strerror})') from exc


# --- conversion of one COCO annotation -----------------------------------------------------


def _finite(values: Any, n: int | None = None) -> list[float] | None:
    if not isinstance(values, list | tuple) or (n is not None and len(values) != n):
        return None
    try:
        out = [float(v) for v in values]
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(sum(out)) else None  # an inf or nan anywhere makes the sum so


def _is_box_polygon(seg: list[Any], box: list[float] | None) -> bool:
    """``seg`` is the four corners of ``box``: how writers give a box the segmentation that
    pycocotools' ``annToMask`` needs. Such an annotation is a box, not a polygon."""
    if box is None or len(seg) != 1:
        return False
    values = _finite(seg[0], 8)
    if values is None:
        return False
    x, y, w, h = box
    corners = {(values[i], values[i + 1]) for i in range(0, 8, 2)}
    return corners == {(x, y), (x + w, y), (x + w, y + h), (x, y + h)}


class Skip(Exception):
    """An annotation (or part of one) that cannot be read; the message is the reason."""


def coco_annotation_to_documents(
    coco: dict[str, Any], *, category: str, keypoint_names: list[str] | None
) -> list[dict[str, Any]]:
    """One COCO annotation as document annotations.

    Keypoints and segmentation are both kept (real ``person_keypoints`` files carry both): a
    ``keypoint`` annotation plus ``polygon`` (one per part) or ``segmentation`` annotations,
    ids ``<id>``, ``<id>_seg<k>``. Without keypoints or segmentation a box is a
    ``bounding_box``; an annotation without geometry (Datumaro's ``labels_*``, or an all-zero
    box) is an image-level tag, a ``classification`` annotation. Raises :class:`Skip`.
    """
    ann_id = str(coco.get('id'))
    base: dict[str, Any] = {'category': category}
    if coco.get('iscrowd'):
        base['iscrowd'] = True
    attributes = coco.get('attributes')
    base['attributes'] = dict(attributes) if isinstance(attributes, dict) else {}
    raw_box = coco.get('bbox')
    box = _finite(raw_box, 4) if raw_box not in (None, []) else None
    if raw_box not in (None, []) and box is None:
        raise Skip('malformed bbox')
    out: list[dict[str, Any]] = []
    flat = coco.get('keypoints')
    if isinstance(flat, list) and flat:
        values = _finite(flat)
        if values is None or len(values) % 3:
            raise Skip('malformed keypoints')
        kps = [[values[i], values[i + 1], int(values[i + 2])] for i in range(0, len(values), 3)]
        if any(v[2] not in (0, 1, 2) for v in kps):
            raise Skip('keypoint visibility not 0, 1 or 2')
        if any(v[2] for v in kps):
            labelled = [(x, y) for x, y, v in kps if v]
            kbox = box if box and box[2] > 0 and box[3] > 0 else enclosing_box(labelled)
            area = _finite([coco.get('area')], 1)
            out.append({**base, 'id': ann_id, 'tool': 'keypoint', 'keypoints': kps,
                        'bbox': kbox, 'area': area[0] if area else kbox[2] * kbox[3]})  # fmt: skip
    seg = coco.get('segmentation')
    suffix = '_seg' if out else ''
    if isinstance(seg, dict):
        try:
            rle = rle_compress(seg)
            pixels = float(rle_area(rle))
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise Skip('malformed RLE mask') from exc
        if pixels > 0:
            out.append({**base, 'id': ann_id + suffix, 'tool': 'segmentation', 'mask': rle,
                        'bbox': rle_bbox(rle), 'area': pixels})  # fmt: skip
    elif isinstance(seg, list) and seg and box is not None and _is_box_polygon(seg, box):
        if not out:  # a box written with its corners as segmentation (pycocotools needs one)
            out.append({**base, 'id': ann_id, 'tool': 'bounding_box', 'bbox': box,
                        'area': box[2] * box[3]})  # fmt: skip
    elif isinstance(seg, list) and seg:
        parts = []
        for poly in seg:
            values = _finite(poly)
            if values is None or len(values) < 6:
                raise Skip('polygon with fewer than 3 points')
            parts.append([[values[i], values[i + 1]] for i in range(0, len(values) - 1, 2)])
        for k, points in enumerate(parts):
            pid = ann_id + suffix if len(parts) == 1 else f'{ann_id}{suffix or "_"}{k}'
            out.append({**base, 'id': pid, 'tool': 'polygon', 'points': points,
                        'bbox': enclosing_box(points), 'area': polygon_area(points)})  # fmt: skip
    if out:
        return out
    if box is None or box == [0.0, 0.0, 0.0, 0.0]:
        return [{**base, 'id': ann_id, 'tool': 'classification'}]
    if box[2] <= 0 or box[3] <= 0:
        raise Skip('bbox with zero or negative size')
    return [{**base, 'id': ann_id, 'tool': 'bounding_box', 'bbox': box, 'area': box[2] * box[3]}]


def _tool(coco: dict[str, Any]) -> str:
    flat, seg = coco.get('keypoints'), coco.get('segmentation')
    if isinstance(flat, list) and any(flat[2::3]):
        return 'keypoint'
    if isinstance(seg, dict):
        return 'segmentation'
    box = coco.get('bbox')
    if isinstance(seg, list) and seg and not _is_box_polygon(seg, _finite(box, 4)):
        return 'polygon'
    return 'bounding_box' if box and any(box) else 'classification'


# --- the dataset ---------------------------------------------------------------------------


class _Categories:
    def __init__(self) -> None:
        self.by_id: dict[Any, dict[str, Any]] = {}
        self.tools: dict[Any, str] = {}
        self.kp_count: dict[Any, int] = {}

    def add(self, path: Path, cats: Iterator[Any]) -> None:
        for c in cats:
            if not isinstance(c, dict) or 'id' not in c or not isinstance(c.get('name'), str):
                raise input_error(path, f'category {c!r} needs an "id" and a "name"')
            known = self.by_id.get(c['id'])
            if known is not None and known['name'] != c['name']:
                raise input_error(
                    path, f'category id {c["id"]} is {c["name"]!r} here, {known["name"]!r} before'
                )
            if known is None or (c.get('keypoints') and not known.get('keypoints')):
                self.by_id[c['id']] = c

    def keypoint_names(self, cat_id: Any) -> list[str] | None:
        names = self.by_id[cat_id].get('keypoints')
        if isinstance(names, list) and names:
            return [str(n) for n in names]
        n = self.kp_count.get(cat_id)
        return [f'kp_{i}' for i in range(n)] if n else None

    def seen(self, coco: dict[str, Any]) -> None:
        cat_id = coco['category_id']
        if cat_id not in self.tools:
            self.tools[cat_id] = _tool(coco)
        flat = coco.get('keypoints')
        if isinstance(flat, list) and flat and cat_id not in self.kp_count:
            self.kp_count[cat_id] = len(flat) // 3

    def configuration(self, path: Path) -> dict[str, Any]:
        classes, keypoints = [], {}
        names: dict[str, Any] = {}
        for cat_id in sorted(self.by_id, key=lambda i: (not isinstance(i, int), str(i), i)):
            c = self.by_id[cat_id]
            if c['name'] in names:
                raise input_error(
                    path, f'category name {c["name"]!r} is used by ids {names[c["name"]]} and '
                    f'{cat_id}; class names must be unique',
                )  # fmt: skip
            names[c['name']] = cat_id
            kp_names = self.keypoint_names(cat_id)
            tool = 'keypoint' if kp_names else self.tools.get(cat_id, 'bounding_box')
            entry: dict[str, Any] = {'name': c['name'], 'tool': tool, 'attributes': []}
            if isinstance(cat_id, int):
                entry['source_id'] = cat_id
            classes.append(entry)
            if kp_names:
                skeleton = c.get('skeleton') or []
                keypoints[c['name']] = {
                    'names': kp_names,
                    'skeleton': [[int(a) - 1, int(b) - 1] for a, b in skeleton],
                }
        return {'classes': classes, 'keypoints': keypoints}


class _Index:
    """Raw annotations spilled to a temporary file, found again by image key."""

    def __init__(self) -> None:
        self.file: IO[bytes] = tempfile.TemporaryFile(prefix='synapse-coco-')  # noqa: SIM115
        self._keys = array('q')
        self._offsets = array('q')
        self._end = 0
        self.image_keys: dict[tuple[int, Any], int] = {}
        self._sorted: np.ndarray | None = None
        self._order: np.ndarray | None = None

    def key(self, group: int, image_id: Any) -> int:
        return self.image_keys.setdefault((group, image_id), len(self.image_keys))

    def add(self, key: int, raw: bytes) -> None:
        self._keys.append(key)
        self._offsets.append(self._end)
        self.file.write(raw)
        self._end += len(raw)

    def __len__(self) -> int:
        return len(self._keys)

    def seal(self) -> None:
        keys = np.frombuffer(self._keys, dtype=np.int64) if self._keys else np.zeros(0, np.int64)
        self._order = np.argsort(keys, kind='stable')
        self._sorted = keys[self._order]
        self._offsets.append(self._end)
        self.file.flush()

    def get(self, key: int) -> list[dict[str, Any]]:
        assert self._sorted is not None and self._order is not None
        lo = int(np.searchsorted(self._sorted, key, 'left'))
        hi = int(np.searchsorted(self._sorted, key, 'right'))
        out = []
        for r in self._order[lo:hi]:
            start, end = self._offsets[int(r)], self._offsets[int(r) + 1]
            self.file.seek(start)
            out.append(orjson.loads(self.file.read(end - start)))
        return out


def _check_annotation(path: Path, ann: Any) -> None:
    if isinstance(ann, dict) and 'category_id' not in ann:
        if 'segments_info' in ann:
            raise input_error(path, f'a panoptic file; {_REFUSED["panoptic"]}')
        if 'caption' in ann:
            raise input_error(path, f'a captions file; {_REFUSED["captions"]}')


def _malformed(ann: Any, cats: _Categories) -> str | None:
    if not isinstance(ann, dict):
        return 'not a JSON object'
    if not isinstance(ann.get('image_id'), int | str):
        return 'image_id missing or not a number or string'
    cat = ann.get('category_id')
    if not isinstance(cat, int | str) or cat not in cats.by_id:
        return 'category_id not among the categories'
    return None


def _index(groups: list[_Group], cats: _Categories, report: ImportReport) -> _Index:
    index = _Index()
    for g, group in enumerate(groups):
        dedupe = len([f for f in group.files if f.kind != 'image_info']) > 1
        seen: set[int] = set()
        for f in group.files:
            with _open(f.path) as fh:
                try:
                    for ann in _items(fh, 'annotations.item'):
                        _check_annotation(f.path, ann)
                        reason = _malformed(ann, cats)
                        if reason:
                            report.skip('annotation', reason)
                            continue
                        if dedupe:
                            box = tuple(round(v, 3) for v in _finite(ann.get('bbox')) or ())
                            mark = hash((str(ann.get('id')), ann['category_id'], box))
                            if mark in seen:
                                report.count('annotations repeated across files')
                                continue
                            seen.add(mark)
                        cats.seen(ann)
                        index.add(index.key(g, ann.get('image_id')), orjson.dumps(ann))
                except ParamsError:
                    raise
                except (ijson.JSONError, ValueError, TypeError) as exc:
                    raise input_error(f.path, f'not a readable COCO json file ({exc})') from exc
    index.seal()
    return index


def read_dataset(path: Path, images: Path | None = None) -> ImportedDataset:
    """Read a COCO file or directory (see the module docstring); annotations are indexed now,
    images are read lazily when the dataset is iterated."""
    path = Path(path)
    report, early = ImportReport(), ImportReport()  # early: counted before images are read
    files = _discover(path, early)
    cats = _Categories()
    for f in files:
        with _open(f.path) as fh:
            try:
                cats.add(f.path, _items(fh, 'categories.item'))
            except (ijson.JSONError, ValueError, TypeError) as exc:
                raise input_error(f.path, f'not a readable COCO json file ({exc})') from exc
    groups = _groups(files)
    index = _index(groups, cats, early)
    configuration = cats.configuration(files[0].path)
    names = {cat_id: c['name'] for cat_id, c in cats.by_id.items()}
    kp_names = {cat_id: cats.keypoint_names(cat_id) for cat_id in cats.by_id}

    def produce() -> Iterator[ImportedImage]:
        report.update(early)
        used = 0
        for g, group in enumerate(groups):
            dirs = _image_dirs(group, images)
            seen: set[Any] = set()
            for f in group.files:
                with _open(f.path) as fh:
                    try:
                        stream = list_images(fh, f.path)
                        for img in stream:
                            if img['id'] in seen:
                                continue
                            seen.add(img['id'])
                            key = index.image_keys.get((g, img['id']))
                            raw = index.get(key) if key is not None else []
                            used += len(raw)
                            yield _image(img, raw, group.split, dirs, names, kp_names, report)
                    except ParamsError:
                        raise
                    except (ijson.JSONError, ValueError) as exc:
                        raise input_error(f.path, f'not a readable COCO json file ({exc})') from exc
        report.skip('annotation', 'its image_id is not in the images list', len(index) - used)

    if path.is_file():
        title = path.parent.parent.name if path.parent.name == 'annotations' else path.stem
    else:
        title = path.name
    return ImportedDataset(configuration, LazyImages(produce, report), title=title, report=report)


def list_images(fh: IO[bytes], path: Path) -> Iterator[dict[str, Any]]:
    for img in _items(fh, 'images.item'):
        if not isinstance(img, dict) or not isinstance(img.get('id'), int | str):
            raise input_error(path, f'image {str(img)[:80]} needs an "id" (a number or string)')
        if not isinstance(img.get('file_name'), str):
            raise input_error(path, f'image {img["id"]!r} needs a "file_name"')
        yield img


def _image_dirs(group: _Group, images: Path | None) -> list[tuple[Path, Path]]:
    """The folders an image of ``group`` may be in, each with its resolved path."""
    split = group.split
    if images is not None:
        dirs = [images, images / split] if split else [images]
    else:
        here = group.files[0].path.parent
        root = here.parent if here.name == 'annotations' else here
        dirs = [root / 'images' / split, root / split] if split else []
        dirs += [root / 'images', here, root]
    return [(d, d.resolve()) for d in dict.fromkeys(dirs) if d.is_dir()]


def _locate(file_name: str, dirs: list[tuple[Path, Path]]) -> tuple[Path | None, str | None]:
    reason: str | None = NOT_FOUND
    for d, resolved in dirs:
        found, reason = resolve_inside(d, file_name, resolved)
        if found is not None or reason != NOT_FOUND:
            return found, reason
    return None, reason


def _size(value: Any) -> int | None:
    try:
        size = int(float(value))
    except (TypeError, ValueError, OverflowError):
        return None
    return size if size > 0 and size == float(value) else None


def _image(
    img: dict[str, Any],
    raw: list[dict[str, Any]],
    split: str | None,
    dirs: list[tuple[Path, Path]],
    names: dict[Any, str],
    kp_names: dict[Any, list[str] | None],
    report: ImportReport,
) -> ImportedImage:
    file_name = str(img['file_name'])
    found, reason = _locate(file_name, dirs)
    if found is None:
        report.skip('image file', reason or NOT_FOUND)
    else:
        report.count('image files')
    annotations: list[dict[str, Any]] = []
    for coco in raw:
        cat = coco['category_id']
        try:
            docs = coco_annotation_to_documents(
                coco, category=names[cat], keypoint_names=kp_names.get(cat)
            )
        except Skip as exc:
            report.skip('annotation', str(exc))
            continue
        report.count('annotations')
        for doc in docs:
            report.count({'classification': 'tags'}.get(doc['tool'], 'shapes'))
        annotations += docs
    report.count('images')
    if not annotations:
        report.count('images without annotations')
    attrs = img.get('attributes')
    return ImportedImage(
        file_name=PurePosixPath(file_name.replace('\\', '/')).name or file_name,
        path=found,
        width=_size(img.get('width')),
        height=_size(img.get('height')),
        annotations=annotations,
        classifications=dict(attrs) if isinstance(attrs, dict) else {},
        split=canonical_split(split),
        source_id=img['id'] if isinstance(img['id'], int) else None,
    )

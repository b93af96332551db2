"""Streaming COCO writer::

    annotations/instances_<split>.json          every image of the split, every object but
                                                keypoint annotations
    annotations/person_keypoints_<split>.json   the same images, the keypoint annotations (as
                                                COCO and Datumaro expect them); written when the
                                                split has some
    images/<split>/<file name>

A split file is written only when the split has items (no empty ``instances_test.json``).
Each file is written incrementally and never held in memory: the header and categories go
first, each image entry is appended as its item arrives while its annotations are spooled to an
anonymous temporary file beside the output; :meth:`CocoWriter.finish` closes the ``images``
array and copies the spool in as the ``annotations`` array. One JSON object per line inside the
arrays; keys sorted; no timestamps, so output is byte-stable.

An item is written all or nothing: its image line and annotation lines go out as one write per
file, and when a write fails (a full disk) every file it touched is truncated back to where the
item began, so a failed item leaves no image entry and no annotation behind.

Ids (CONTRACTS #1): an image keeps the COCO id it was imported with (``data_unit.source_id``)
when present and not taken, else the record id, else the next id above every id given so far;
categories keep their ``source_id`` when every class has one. Annotation ids count from 1 in
item order across every file of the export; an id handed to an item that then failed is not
given again.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import orjson
from pydantic import Field

from synapse_sdk.errors import ItemExportError
from synapse_sdk.formats.base import (
    AppendStream,
    CommonOptions,
    FormatItem,
    FormatWriter,
    ItemLog,
    write_error,
)
from synapse_sdk.formats.coco.convert import (
    annotation_to_coco,
    categories_to_coco,
    category_ids,
    image_to_coco,
)

__all__ = ['CocoWriter']

_DUMP = orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY
INFO = {'description': 'Exported by synapse-sdk', 'version': '1.0'}


class _SplitFile:
    """One COCO json being written: the file (header, images) and the annotations spool."""

    def __init__(self, path: Path, spool_dir: Path, header: bytes) -> None:
        self.path = path
        self.out = AppendStream(path)
        try:
            # Anonymous: removed by the OS even if the process dies; closed by finish/abort.
            spool = tempfile.TemporaryFile(dir=spool_dir, prefix='.coco-spool-', buffering=0)  # noqa: SIM115
            self.spool = AppendStream(fh=spool)
            self.out.write(header)
        except OSError:
            self.out.close()
            if hasattr(self, 'spool'):
                self.spool.close()
            path.unlink(missing_ok=True)
            raise
        self.images = 0
        self.annotations = 0

    def marks(self) -> tuple[int, int]:
        return self.out.mark(), self.spool.mark()

    def rollback(self, marks: tuple[int, int]) -> None:
        self.out.rollback(marks[0])
        self.spool.rollback(marks[1])

    def add(self, image: bytes, annotations: list[bytes]) -> None:
        """Write one item (raises ``OSError``; the caller rolls back every file it touched)."""
        self.out.write((b',\n' if self.images else b'\n') + image)
        if annotations:
            sep = b',\n' if self.annotations else b'\n'
            self.spool.write(sep + b',\n'.join(annotations))

    def count(self, annotations: int) -> None:
        self.images += 1
        self.annotations += annotations

    def finish(self) -> None:
        self.out.write(b'\n],\n"annotations":[' if self.images else b'],\n"annotations":[')
        self.spool.fh.seek(0)
        shutil.copyfileobj(self.spool.fh, self.out.fh, 1 << 20)
        self.out.write(b'\n]}\n' if self.annotations else b']}\n')
        self.close()

    def close(self) -> None:
        self.out.close()
        self.spool.close()


class CocoOptions(CommonOptions):
    category_id_start: int = Field(
        1,
        ge=0,
        le=1_000_000,
        description='Id of the first category (classes are numbered in configured order); '
        'unused when every class keeps the id it was imported with',
    )


class CocoWriter(FormatWriter):
    """Options: ``category_id_start`` (int >= 0, default 1)."""

    name = 'coco'
    Options = CocoOptions

    def start(self) -> None:
        start = self.options['category_id_start']
        self._cat_ids = category_ids(self.class_map, start)
        self._files: dict[tuple[str, str], _SplitFile] = {}
        self._image_ids: set[int] = set()
        self._max_image_id = 0
        self._next_ann_id = 1
        self._has_keypoints = any(c.keypoints is not None for c in self.class_map)
        (self.root / 'annotations').mkdir(parents=True, exist_ok=True)
        info = orjson.dumps(INFO, option=_DUMP)
        self._headers = {
            kind: b'{"info":%b,\n"licenses":[],\n"categories":%b,\n"images":['
            % (
                info,
                orjson.dumps(
                    categories_to_coco(self.class_map, start, keypoints_file=kp), option=_DUMP
                ),
            )
            for kind, kp in (('instances', False), ('person_keypoints', True))
        }

    def _file(self, kind: str, split: str) -> _SplitFile:
        f = self._files.get((kind, split))
        if f is None:
            path = self.root / 'annotations' / f'{kind}_{split}.json'
            f = self._files[(kind, split)] = _SplitFile(path, self.root, self._headers[kind])
        return f

    def image_relpath(self, item: FormatItem) -> str:
        return f'images/{item.split}/{item.file_name}'

    def _image_id(self, item: FormatItem) -> int:
        unit = item.source.get('data_unit') if isinstance(item.source, dict) else None
        source_id = unit.get('source_id') if isinstance(unit, dict) else None
        for candidate in (source_id, item.id):
            if type(candidate) is int and candidate >= 0 and candidate not in self._image_ids:
                return candidate
        return self._max_image_id + 1

    def write_item(self, item: FormatItem) -> None:
        width, height = self.require_size(item)
        log = ItemLog(item.id)
        cat_ids = self._cat_ids

        def convert(ann: dict[str, Any], index: int) -> dict[str, Any]:
            names = (self.class_map.keypoints(ann['category']) or {}).get('names')
            return annotation_to_coco(
                ann,
                category_id=cat_ids[index],
                image_size=(width, height),
                keypoint_names=names,
                log=log,
            )

        converted = self.convert_annotations(item, log, convert)
        image_id = self._image_id(item)
        image = image_to_coco(image_id, item.file_name, width, height, item.classifications)
        instances: list[bytes] = []
        keypoints: list[bytes] = []
        first_id = self._next_ann_id
        try:
            image_line = orjson.dumps(image, option=_DUMP)
            for n, coco in enumerate(converted):
                coco['id'] = first_id + n
                coco['image_id'] = image_id
                line = orjson.dumps(coco, option=_DUMP)
                (keypoints if 'keypoints' in coco else instances).append(line)
        except TypeError as exc:
            raise ItemExportError(f'not serialisable as JSON: {exc}', item.id) from exc
        # Ids are spent before writing: one handed to an item that fails is never given again.
        self._next_ann_id += len(converted)
        self._image_ids.add(image_id)
        self._max_image_id = max(self._max_image_id, image_id)
        try:
            targets = [(self._file('instances', item.split), instances)]
            if self._has_keypoints:
                targets.append((self._file('person_keypoints', item.split), keypoints))
        except OSError as exc:
            raise write_error(exc, f'annotations for split {item.split}', item) from exc
        self._write(item, image_line, targets)
        log.apply(self.report)

    def _write(
        self, item: FormatItem, image: bytes, targets: list[tuple[_SplitFile, list[bytes]]]
    ) -> None:
        """Write the item into every file, or into none."""
        marks = [f.marks() for f, _ in targets]
        try:
            for f, lines in targets:
                f.add(image, lines)
        except OSError as exc:
            for (f, _), mark in zip(targets, marks, strict=True):
                try:
                    f.rollback(mark)
                except OSError:
                    f.out.broken = True
            raise write_error(exc, targets[0][0].path.name, item) from exc
        for f, lines in targets:
            f.count(len(lines))

    def finish(self) -> None:
        for (kind, _split), f in list(self._files.items()):
            if kind == 'person_keypoints' and not f.annotations:
                f.close()
                f.path.unlink()  # a split without keypoints has no keypoints file
                continue
            if f.out.broken or f.spool.broken:
                raise OSError(5, f'{f.path.name}: a failed write could not be rolled back')
            f.finish()

    def abort(self) -> None:
        for f in getattr(self, '_files', {}).values():
            f.close()

"""Streaming COCO writer: ``annotations/instances_<split>.json`` and ``images/<split>/``.

Each split file is written incrementally and never held in memory: the header and categories
go first, each image entry is appended to the file as its item arrives while its annotations
are spooled to an anonymous temporary file beside the output; :meth:`CocoWriter.finish`
closes the ``images`` array and copies the spool in as the ``annotations`` array. One JSON
object per line inside the arrays; keys sorted; no timestamps, so output is byte-stable.

Image ids are the record ids (stable across exports; a repeated id fails the item). Annotation
ids count from 1 in item order and are unique across every file of the export.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import IO, Any

import orjson

from synapse_sdk.errors import ItemExportError
from synapse_sdk.formats.base import FormatItem, FormatWriter, ItemLog, option_int
from synapse_sdk.formats.coco.convert import annotation_to_coco, categories_to_coco, image_to_coco

__all__ = ['CocoWriter']

_DUMP = orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY
INFO = {'description': 'Exported by synapse-sdk', 'version': '1.0'}


class _SplitFile:
    def __init__(self, path: Path, spool_dir: Path, header: bytes) -> None:
        self.path = path
        self.fh: IO[bytes] = path.open('wb')
        # Anonymous: removed by the OS even if the process dies; closed by finish/abort.
        self.spool: IO[bytes] = tempfile.TemporaryFile(dir=spool_dir, prefix='.coco-spool-')  # noqa: SIM115
        self.fh.write(header)
        self.images = 0
        self.annotations = 0

    def add(self, image: bytes, annotations: list[bytes]) -> None:
        self.fh.write((b',\n' if self.images else b'\n') + image)
        self.images += 1
        for ann in annotations:
            self.spool.write((b',\n' if self.annotations else b'\n') + ann)
            self.annotations += 1

    def finish(self) -> None:
        self.fh.write(b'\n],\n"annotations":[' if self.images else b'],\n"annotations":[')
        self.spool.seek(0)
        shutil.copyfileobj(self.spool, self.fh)
        self.fh.write(b'\n]}\n' if self.annotations else b']}\n')
        self.close()

    def close(self) -> None:
        for f in (self.fh, self.spool):
            if not f.closed:
                f.close()


class CocoWriter(FormatWriter):
    """Options: ``category_id_start`` (int >= 0, default 1)."""

    name = 'coco'

    @classmethod
    def validate_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        out = super().validate_options(options)
        out['category_id_start'] = option_int(
            out, 'category_id_start', 1, 'an integer from 0 to 1000000', 0, 1_000_000
        )
        return out

    def start(self) -> None:
        self._start_id: int = self.options['category_id_start']
        self._files: dict[str, _SplitFile] = {}
        self._image_ids: set[int] = set()
        self._next_ann_id = 1
        (self.root / 'annotations').mkdir(parents=True, exist_ok=True)
        categories = orjson.dumps(categories_to_coco(self.class_map, self._start_id), option=_DUMP)
        info = orjson.dumps(INFO, option=_DUMP)
        self._header = b'{"info":%b,\n"licenses":[],\n"categories":%b,\n"images":[' % (
            info,
            categories,
        )
        for split in self.split_spec.names:
            self._open(split)

    def _open(self, split: str) -> _SplitFile:
        f = self._files.get(split)
        if f is None:
            (self.root / 'images' / split).mkdir(parents=True, exist_ok=True)
            path = self.root / 'annotations' / f'instances_{split}.json'
            f = self._files[split] = _SplitFile(path, self.root, self._header)
        return f

    def image_relpath(self, item: FormatItem) -> str:
        return f'images/{item.split}/{item.file_name}'

    def write_item(self, item: FormatItem) -> None:
        width, height = self.require_size(item)
        if isinstance(item.id, bool) or not isinstance(item.id, int):
            raise ItemExportError(f'coco image ids must be integers, got {item.id!r}', item.id)
        if item.id in self._image_ids:
            raise ItemExportError(f'image id {item.id} appears twice', item.id, item.file_name)
        log = ItemLog(item.id)

        def convert(ann: dict[str, Any], index: int) -> dict[str, Any]:
            names = (self.class_map.keypoints(ann['category']) or {}).get('names')
            return annotation_to_coco(
                ann,
                category_id=index + self._start_id,
                image_size=(width, height),
                keypoint_names=names,
                log=log,
            )

        converted = self.convert_annotations(item, log, convert)
        image = image_to_coco(item.id, item.file_name, width, height, item.classifications)
        try:
            image_line = orjson.dumps(image, option=_DUMP)
            lines: list[bytes] = []
            for coco in converted:
                coco['id'] = self._next_ann_id + len(lines)
                coco['image_id'] = item.id
                lines.append(orjson.dumps(coco, option=_DUMP))
        except TypeError as exc:
            raise ItemExportError(f'not serialisable as JSON: {exc}', item.id) from exc
        self._open(item.split).add(image_line, lines)
        self._next_ann_id += len(lines)
        self._image_ids.add(item.id)
        log.apply(self.report)

    def finish(self) -> None:
        for f in self._files.values():
            f.finish()

    def abort(self) -> None:
        for f in getattr(self, '_files', {}).values():
            f.close()

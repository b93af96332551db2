"""Merging shard parts into the one export a single process writes, byte for byte.

A shard runs the item pipeline over a contiguous key range and writes a complete export of its
items into its own part directory (the format writer's ``start`` / ``write_item`` / ``finish``,
or the template hooks). The driver then merges the parts, in shard order, into the export root:

- every per-item file (labels, XML, JSON documents, originals) is moved as it is: names were
  planned over the whole selection (``stems``), so no two parts write the same path;
- a file every part writes alike (``labels.txt``, ``project.json``) is kept once; two parts
  writing the same path with different bytes is a :class:`MergeError`;
- files whose content spans items are merged by the format's :class:`PartMerger`: COCO's
  ``annotations/*.json`` (images concatenated, annotation ids renumbered with each part's
  offset), CSV's ``annotations.csv`` (rows concatenated under one header), VOC's
  ``ImageSets/Main/<split>.txt`` (concatenated) and YOLO's ``data.yaml`` (written again by the
  writer over the splits of every part, in the order a single process met them).

``state(exporter)`` runs in the shard after its pipeline and returns what the merge needs that
the files do not say (plain JSON data). A writer without a registered merger is not sharded.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import orjson

from synapse_sdk.errors import ExportError
from synapse_sdk.storage.local import rename_noreplace

__all__ = ['MERGERS', 'MergeError', 'Part', 'PartMerger', 'merger_for', 'move_tree']


class MergeError(ExportError):
    """Shard parts that cannot be merged into what one process would have written."""


@dataclass
class Part:
    """One finished shard: its directory and the merge state its shard returned."""

    index: int
    root: Path
    state: dict[str, Any]


def _same_file(a: Path, b: Path) -> bool:
    if a.stat().st_size != b.stat().st_size:
        return False
    with a.open('rb') as fa, b.open('rb') as fb:
        while True:
            chunk = fa.read(1 << 20)
            if chunk != fb.read(1 << 20):
                return False
            if not chunk:
                return True


def move_tree(src: Path, dst: Path, skip: Callable[[str], bool] = lambda rel: False) -> None:
    """Move every file and directory of ``src`` into ``dst`` (paths relative to each).

    A directory missing in ``dst`` is renamed over whole (unless ``skip`` may hold for
    something in it); a file already in ``dst`` must have the same bytes (it is dropped) or the
    merge fails. ``skip(rel)`` leaves a file (or, for ``rel + '/'``, a directory's content
    that may hold such files) in place.
    """
    dst.mkdir(parents=True, exist_ok=True)
    with os.scandir(src) as entries:
        children = sorted(entries, key=lambda e: e.name)
    for entry in children:
        _move(Path(entry.path), dst / entry.name, entry.name, skip)


def _move(source: Path, target: Path, rel: str, skip: Callable[[str], bool]) -> None:
    if source.is_dir() and not source.is_symlink():
        if not skip(f'{rel}/'):
            try:
                rename_noreplace(source, target)
                return
            except FileExistsError:
                pass
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
        target.mkdir(exist_ok=True)
        with os.scandir(source) as entries:
            children = sorted(entries, key=lambda e: e.name)
        for entry in children:
            _move(Path(entry.path), target / entry.name, f'{rel}/{entry.name}', skip)
        return
    if skip(rel):
        return
    try:
        rename_noreplace(source, target)
    except FileExistsError:
        if not _same_file(source, target):
            raise MergeError(f'two shards wrote {rel} with different content') from None
        source.unlink()


class PartMerger:
    """Merges the parts of one format (the default: per-item files, moved; see the module)."""

    #: Whether ``skip(rel)`` files are merged by :meth:`merge_special`.
    special: ClassVar[tuple[str, ...]] = ()

    def state(self, exporter: Any) -> dict[str, Any]:
        """What the merge needs from a finished shard's exporter (plain JSON data)."""
        return {}

    def is_special(self, rel: str) -> bool:
        """Whether ``rel`` is merged by :meth:`merge_special` (``dir/``: may hold such)."""
        if rel.endswith('/'):
            return any(pattern.startswith(rel) for pattern in self.special)
        return any(_matches(rel, pattern) for pattern in self.special)

    def move_items(self, part: Path, root: Path) -> None:
        """Move a finished part's per-item files into ``root`` (any order: names are unique);
        the files :meth:`merge_special` merges stay."""
        move_tree(part, root, self.is_special)

    def merge(self, root: Path, parts: list[Part], context: MergeContext) -> None:
        """Merge ``parts`` (in shard order) into ``root``."""
        for part in parts:
            self.move_items(part.root, root)
        self.merge_special(root, parts, context)

    def merge_special(self, root: Path, parts: list[Part], context: MergeContext) -> None:
        """Merge the files named by :attr:`special` (still in the part directories)."""


def _matches(rel: str, pattern: str) -> bool:
    """``dir/*.ext`` patterns: one directory level, a suffix; or an exact path."""
    if '*' not in pattern:
        return rel == pattern
    head, _, tail = pattern.partition('*')
    return rel.startswith(head) and rel.endswith(tail) and '/' not in rel[len(head) :]


@dataclass
class MergeContext:
    """What a merge may need besides the parts: a writer factory for files a writer writes
    from state (YOLO's ``data.yaml``)."""

    make_writer: Callable[[Path], Any] | None = None


def _special_files(parts: list[Part], pattern: str) -> list[str]:
    """Relative paths matching ``pattern`` in any part, sorted."""
    head, _, tail = pattern.partition('*')
    names: set[str] = set()
    for part in parts:
        directory = part.root / head
        if directory.is_dir():
            names.update(f'{head}{p.name}' for p in directory.iterdir() if p.name.endswith(tail))
    return sorted(names)


# -- COCO --------------------------------------------------------------------------------------
_IMAGES_OPEN = b'"images":['
_ANNOTATIONS_OPEN = b'"annotations":['
# A part's arrays hold one orjson object (sorted keys) per line. An annotation's own id sits
# right before its image_id: when every line has exactly one "image_id" key, the ids are found
# by a pattern over the whole block (otherwise every line is parsed). An image's own id sits
# between its height and width.
_ANNOTATION_ID = re.compile(rb'"id":(\d+),"image_id":')
_IMAGE_ID = re.compile(rb'"height":-?\d+,"id":(-?\d+),"width":')


def _lines(block: bytes) -> int:
    return block.count(b'\n') + 1 if block else 0


def shift_annotation_ids(block: bytes, offset: int) -> bytes:
    """Annotation lines (``,\\n``-joined) with every object's id moved up by ``offset``; the
    bytes are otherwise unchanged."""
    if not block or not offset:
        return block
    lines = _lines(block)
    if block.count(b'"image_id":') == lines:
        pieces = _ANNOTATION_ID.split(block)  # text, id, text, id, ..., text
        if len(pieces) == 2 * lines + 1:
            shifted = b'"id":%d,"image_id":'
            pieces[1::2] = [shifted % (int(n) + offset) for n in pieces[1::2]]
            return b''.join(pieces)
    out = []
    for line in block.split(b',\n'):
        ann = orjson.loads(line)
        ann['id'] = int(ann['id']) + offset
        out.append(orjson.dumps(ann, option=orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY))
    return b',\n'.join(out)


def image_ids(block: bytes) -> list[Any]:
    """The ids of the image lines of ``block``."""
    ids = _IMAGE_ID.findall(block)
    if len(ids) == _lines(block):
        return [int(i) for i in ids]
    return [orjson.loads(line).get('id') for line in block.split(b',\n')] if block else []


def read_coco(path: Path) -> tuple[bytes, bytes, bytes]:
    """``(header, images, annotations)`` of a COCO file the writer wrote: the header up to
    the images array, and each array's lines joined by ``,\\n`` (no brackets)."""
    data = path.read_bytes()
    start = data.find(_IMAGES_OPEN)
    middle = data.find(b'],\n' + _ANNOTATIONS_OPEN, max(start, 0))
    if start < 0 or middle < 0 or not data.endswith(b']}\n'):
        raise MergeError(f'{path.name}: not the layout the COCO writer writes')
    header = data[: start + len(_IMAGES_OPEN)]
    images = data[start + len(_IMAGES_OPEN) : middle].strip(b'\n')
    annotations = data[middle + 3 + len(_ANNOTATIONS_OPEN) : -3].strip(b'\n')
    return header, images, annotations


class CocoMerger(PartMerger):
    """``annotations/*.json``: one file per kind and split, images and annotations in part
    order; annotation ids are global (counted in item order across every file), so each part's
    are shifted by the ids the parts before it spent."""

    special = ('annotations/*.json',)

    def state(self, exporter: Any) -> dict[str, Any]:
        writer = getattr(exporter, 'writer', None)
        spent = getattr(writer, '_next_ann_id', None)
        return {'annotation_ids': int(spent) - 1 if isinstance(spent, int) else None}

    def merge_special(self, root: Path, parts: list[Part], context: MergeContext) -> None:
        offsets = []
        offset = 0
        for part in parts:
            offsets.append(offset)
            spent = part.state.get('annotation_ids')
            if spent is None:  # a writer that does not say: every id went to a written line
                spent = sum(
                    _lines(read_coco(part.root / rel)[2])
                    for rel in _special_files([part], self.special[0])
                )
            offset += int(spent)
        image_owner: dict[Any, int] = {}
        for rel in _special_files(parts, self.special[0]):
            self._merge_file(root / rel, rel, parts, offsets, image_owner)

    def _merge_file(
        self,
        target: Path,
        rel: str,
        parts: list[Part],
        offsets: list[int],
        image_owner: dict[Any, int],
    ) -> None:
        pieces = [
            (p, off) for p, off in zip(parts, offsets, strict=True) if (p.root / rel).exists()
        ]
        header: bytes | None = None
        target.parent.mkdir(parents=True, exist_ok=True)
        spool = target.with_name(f'.{target.name}.annotations')
        images = annotations = 0
        with target.open('wb') as out, spool.open('wb') as ann_out:
            for part, offset in pieces:
                head, image_block, ann_block = read_coco(part.root / rel)
                if header is None:
                    header = head
                    out.write(head)
                elif head != header:
                    raise MergeError(f'{rel}: shards wrote different headers (categories)')
                for number in image_ids(image_block):
                    owner = image_owner.setdefault(number, part.index)
                    if owner != part.index:
                        raise MergeError(
                            f'image id {number} was given to records of shards {owner} and '
                            f'{part.index} (duplicate source ids); export without sharding'
                        )
                if image_block:
                    out.write((b',\n' if images else b'\n') + image_block)
                    images += 1
                if ann_block:
                    ann_block = shift_annotation_ids(ann_block, offset)
                    ann_out.write((b',\n' if annotations else b'\n') + ann_block)
                    annotations += 1
        with target.open('ab') as out, spool.open('rb') as ann_in:
            out.write(b'\n],\n' if images else b'],\n')
            out.write(_ANNOTATIONS_OPEN)
            shutil.copyfileobj(ann_in, out, 1 << 20)
            out.write(b'\n]}\n' if annotations else b']}\n')
        spool.unlink()
        for part, _ in pieces:
            (part.root / rel).unlink()


# -- CSV ---------------------------------------------------------------------------------------
class CsvMerger(PartMerger):
    """``annotations.csv``: the rows of every part under the header of the first."""

    special = ('annotations.csv',)

    def merge_special(self, root: Path, parts: list[Part], context: MergeContext) -> None:
        rel = self.special[0]
        header: bytes | None = None
        with (root / rel).open('wb') as out:
            for part in parts:
                path = part.root / rel
                if not path.exists():
                    continue
                with path.open('rb') as fh:
                    head = fh.readline()
                    if header is None:
                        header = head
                        out.write(head)
                    elif head != header:
                        raise MergeError(f'{rel}: shards wrote different headers')
                    shutil.copyfileobj(fh, out, 1 << 20)
                path.unlink()


# -- VOC ---------------------------------------------------------------------------------------
class VocMerger(PartMerger):
    """``ImageSets/Main/<split>.txt``: the stems of every part, in part order."""

    special = ('ImageSets/Main/*.txt',)

    def merge_special(self, root: Path, parts: list[Part], context: MergeContext) -> None:
        for rel in _special_files(parts, self.special[0]):
            target = root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open('wb') as out:
                for part in parts:
                    path = part.root / rel
                    if path.exists():
                        with path.open('rb') as fh:
                            shutil.copyfileobj(fh, out, 1 << 20)
                        path.unlink()


# -- YOLO --------------------------------------------------------------------------------------
class YoloMerger(PartMerger):
    """``data.yaml`` lists the splits in the order they were met: the writer writes it again
    over the splits of every part (an ordered union in part order is the single-process
    order)."""

    special = ('data.yaml',)

    def state(self, exporter: Any) -> dict[str, Any]:
        writer = getattr(exporter, 'writer', None)
        return {'splits': list(getattr(writer, '_splits', []) or [])}

    def merge_special(self, root: Path, parts: list[Part], context: MergeContext) -> None:
        if context.make_writer is None:
            raise MergeError('yolo: no writer to write data.yaml with')
        splits: list[str] = []
        for part in parts:
            for split in part.state.get('splits') or []:
                if split not in splits:
                    splits.append(split)
            (part.root / 'data.yaml').unlink(missing_ok=True)
        writer = context.make_writer(root)
        writer.start()
        for split in splits:
            writer._make(split)
        writer.finish()


#: Format name -> merger. A format writer not listed here is exported without sharding.
MERGERS: dict[str, PartMerger] = {
    'coco': CocoMerger(),
    'csv': CsvMerger(),
    'voc': VocMerger(),
    'yolo': YoloMerger(),
    'dm': PartMerger(),
}

#: Template exporters (the spec's hooks): one file per item, extra files written once by the
#: driver (``additional_file_saving``).
TEMPLATE_MERGER = PartMerger()


def merger_for(exporter_cls: type) -> PartMerger | None:
    """The merger of an exporter class, or ``None`` when its parts cannot be merged."""
    fmt = getattr(exporter_cls, 'format_name', None)
    if fmt is None:
        return TEMPLATE_MERGER
    merger = MERGERS.get(str(fmt))
    if merger is None:
        return None
    from synapse_sdk.formats import FORMATS, WRITERS

    # A writer registered over a built-in name is not the one the merger knows.
    if fmt in FORMATS and fmt in WRITERS:
        writer = WRITERS[fmt]
        if f'{writer.__module__}:{writer.__qualname__}' != FORMATS[fmt]:
            return None
    return merger

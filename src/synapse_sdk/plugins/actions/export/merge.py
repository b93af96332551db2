"""Merging shard parts into the one export a single process writes, byte for byte.

A shard runs the item pipeline over a contiguous key range and writes a complete export of its
items into its own part directory (the format writer's ``start`` / ``write_item`` / ``finish``,
or the template hooks). The driver merges the parts into the export root as they finish:

- every per-item file (labels, XML, JSON documents, originals) is moved as it is, as soon as
  its shard ends (:meth:`PartMerger.move_items`): names were planned over the whole selection,
  so no two parts write the same path; a file every part writes alike (``labels.txt``,
  ``project.json``) is kept once, and two parts writing one path with different bytes is a
  :class:`MergeError`;
- files whose content spans items (``special``) go through the format's
  :class:`MergeSession`, fed the parts in shard order as soon as every part before them is
  done: COCO's ``annotations/*.json`` (images concatenated, annotation ids renumbered with
  each part's offset), CSV's ``annotations.csv`` (rows under one header), VOC's
  ``ImageSets/Main/<split>.txt`` (concatenated) and YOLO's ``data.yaml`` (written again by
  the writer over the splits of every part, in the order a single process met them).

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

__all__ = [
    'MERGERS',
    'Listing',
    'MergeContext',
    'MergeError',
    'MergeSession',
    'Part',
    'PartMerger',
    'merger_for',
    'move_tree',
]


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


def move_tree(
    src: Path,
    dst: Path,
    skip: Callable[[str], bool] = lambda rel: False,
    listing: Listing | None = None,
) -> None:
    """Move every file and directory of ``src`` into ``dst`` (paths relative to each).

    A directory missing in ``dst`` is renamed over whole (unless ``skip`` may hold for
    something in it); a file already in ``dst`` must have the same bytes (it is dropped) or the
    merge fails. ``skip(rel)`` leaves a file (or, for ``rel + '/'``, a directory's content
    that may hold such files) in place. ``listing`` records every file and directory of
    ``src`` (moved or left) before it moves: a shard's journal record (see journal.py).
    """
    os.makedirs(dst, exist_ok=True)
    _move_children(os.fspath(src), os.fspath(dst), '', skip, listing)


class Listing:
    """What a part holds, recorded as it is moved: ``file(rel, dir_fd, name, skipped)`` for a
    file (``dir_fd``: its directory; ``skipped``: it stays), ``dir(rel)`` for a directory."""

    def file(self, rel: str, dir_fd: int, name: str, skipped: bool) -> None:
        raise NotImplementedError

    def dir(self, rel: str) -> None:
        raise NotImplementedError


#: Errors of ``link`` where the filesystem has no hard links: such a file is renamed instead.
_NO_LINKS = {errno.EPERM, errno.EXDEV, errno.EMLINK, errno.ENOSYS, errno.EINVAL,
             getattr(errno, 'ENOTSUP', -1), getattr(errno, 'EOPNOTSUPP', -1)}  # fmt: skip


def _move_children(
    src: str,
    dst: str,
    prefix: str,
    skip: Callable[[str], bool] | None,
    listing: Listing | None,
) -> None:
    """Move ``src``'s entries into ``dst``. A part can hold 100,000 files: plain names, the
    directory entries' own types, both directories opened once (``*at`` calls need no path
    walk), and no ``skip`` call inside a directory that cannot hold a skipped file."""
    with os.scandir(src) as entries:
        children = sorted(entries, key=lambda e: e.name)
    src_fd = os.open(src, os.O_RDONLY | getattr(os, 'O_DIRECTORY', 0))
    try:
        dst_fd = os.open(dst, os.O_RDONLY | getattr(os, 'O_DIRECTORY', 0))
        try:
            for entry in children:
                name = entry.name
                rel = f'{prefix}{name}'
                if entry.is_dir(follow_symlinks=False):
                    _move_dir(entry.path, os.path.join(dst, name), rel, skip, listing)
                    continue
                skipped = skip is not None and skip(rel)
                if listing is not None:
                    listing.file(rel, src_fd, name, skipped)
                if skipped:
                    continue
                _move_file(src_fd, dst_fd, name, entry.path, os.path.join(dst, name), rel)
        finally:
            os.close(dst_fd)
    finally:
        os.close(src_fd)


def _move_dir(
    src: str,
    dst: str,
    rel: str,
    skip: Callable[[str], bool] | None,
    listing: Listing | None,
) -> None:
    inner = skip if skip is not None and skip(f'{rel}/') else None
    if inner is None:  # nothing in it stays: the whole directory at once when dst has none
        if listing is not None:
            _list_tree(src, f'{rel}/', listing)  # before: once moved, others may add to it
        try:
            rename_noreplace(src, dst)  # type: ignore[arg-type]
            return
        except FileExistsError:
            pass
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
        listing = None  # listed already
    elif listing is not None:
        listing.dir(rel)
    os.makedirs(dst, exist_ok=True)
    _move_children(src, dst, f'{rel}/', inner, listing)


def _list_tree(src: str, prefix: str, listing: Listing) -> None:
    listing.dir(prefix[:-1])
    with os.scandir(src) as entries:
        children = sorted(entries, key=lambda e: e.name)
    fd = os.open(src, os.O_RDONLY | getattr(os, 'O_DIRECTORY', 0))
    try:
        for entry in children:
            if entry.is_dir(follow_symlinks=False):
                _list_tree(entry.path, f'{prefix}{entry.name}/', listing)
            else:
                listing.file(f'{prefix}{entry.name}', fd, entry.name, False)
    finally:
        os.close(fd)


def _move_file(src_fd: int, dst_fd: int, name: str, src: str, dst: str, rel: str) -> None:
    """Move one file without replacing one in ``dst``: a hard link and an unlink (two calls
    at the directories, cheaper than ``renameat2`` through ctypes), or a rename where the
    filesystem has no hard links."""
    try:
        os.link(name, name, src_dir_fd=src_fd, dst_dir_fd=dst_fd, follow_symlinks=False)
    except FileExistsError:
        if not _same_file(Path(src), Path(dst)):
            raise MergeError(f'two shards wrote {rel} with different content') from None
    except OSError as exc:
        if exc.errno not in _NO_LINKS:
            raise
        try:
            rename_noreplace(Path(src), Path(dst))
            return
        except FileExistsError:
            if not _same_file(Path(src), Path(dst)):
                raise MergeError(f'two shards wrote {rel} with different content') from None
    os.unlink(name, dir_fd=src_fd)


class PartMerger:
    """Merges the parts of one format (the default: per-item files, moved; see the module)."""

    #: Files (``dir/*.ext`` patterns or paths) merged by a :class:`MergeSession`.
    special: ClassVar[tuple[str, ...]] = ()
    #: Whether :meth:`begin` uses the annotation counts (the names listing then counts them).
    counts_annotations: ClassVar[bool] = False

    def begin(self, exporter: Any, annotations_before: int | None) -> None:
        """Set up a shard's writer as its sink opens; ``annotations_before``: how many
        annotations the samples of the earlier shards list (``None``: not known)."""

    def state(self, exporter: Any) -> dict[str, Any]:
        """What the merge needs from a finished shard's exporter (plain JSON data)."""
        return {}

    def is_special(self, rel: str) -> bool:
        """Whether ``rel`` is merged by the session (``dir/``: may hold such files)."""
        if rel.endswith('/'):
            return any(pattern.startswith(rel) for pattern in self.special)
        return any(_matches(rel, pattern) for pattern in self.special)

    def move_items(self, part: Path, root: Path, listing: Listing | None = None) -> None:
        """Move a finished part's per-item files into ``root`` (any order: names are unique);
        the special files stay for the session. ``listing`` records the part first."""
        move_tree(part, root, self.is_special, listing)

    def session(self, root: Path, context: MergeContext) -> MergeSession:
        """A merge of special files into ``root``, fed the parts in shard order."""
        return MergeSession(self, root, context)

    def merge(self, root: Path, parts: list[Part], context: MergeContext) -> None:
        """Merge ``parts`` (in shard order) into ``root`` at once."""
        session = self.session(root, context)
        try:
            for part in parts:
                self.move_items(part.root, root)
                session.add(part)
            session.finish()
        except BaseException:
            session.abort()
            raise


class MergeSession:
    """The special files of an export, merged as parts come in shard order (a driver feeds it
    each part as soon as every part before it is done, so little is left when the last ends).
    A part's own files are left in place (a resumed run still finds them)."""

    def __init__(self, merger: PartMerger, root: Path, context: MergeContext) -> None:
        self.merger = merger
        self.root = root
        self.context = context
        self.added = 0

    def add(self, part: Part) -> None:
        self.added += 1

    def finish(self) -> None:
        """Every part was added: complete the files."""

    def abort(self) -> None:
        """The merge stops: release what is open. Safe to call twice."""


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


def _part_files(part: Part, pattern: str) -> list[str]:
    """Relative paths of a part matching ``pattern``, sorted."""
    head, _, tail = pattern.partition('*')
    if '*' not in pattern:
        return [pattern] if (part.root / pattern).is_file() else []
    directory = part.root / head
    if not directory.is_dir():
        return []
    return sorted(f'{head}{p.name}' for p in directory.iterdir() if p.name.endswith(tail))


class _Appender:
    """An output file of the merge and its annotations spool (COCO), opened on first use."""

    def __init__(self, path: Path, spool: bool = False) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.out = path.open('wb')
        self.spool_path = path.with_name(f'.{path.name}.spool') if spool else None
        self.spool = self.spool_path.open('wb') if self.spool_path else None
        self.header: bytes | None = None
        self.items = 0
        self.spooled = 0
        self.images_end = 0  # where the images array's lines end (COCO)

    def close(self) -> None:
        for fh in (self.out, self.spool):
            if fh is not None and not fh.closed:
                fh.close()
        if self.spool_path is not None:
            self.spool_path.unlink(missing_ok=True)


# -- COCO --------------------------------------------------------------------------------------
_IMAGES_OPEN = b'"images":['
_ANNOTATIONS_OPEN = b'"annotations":['
# A part's arrays hold one orjson object (sorted keys) per line. An annotation's own id sits
# right before its image_id: when every line has exactly one "image_id" key, the ids are found
# by a pattern over the whole block (otherwise every line is parsed). An image's own id sits
# between its height and width.
_ANNOTATION_ID = re.compile(rb'"id":(\d+),"image_id":')
_IMAGE_ID = re.compile(rb'"height":-?\d+,"id":(-?\d+),"width":')


def _lines(data: bytes, start: int = 0, end: int | None = None) -> int:
    end = len(data) if end is None else end
    return data.count(b'\n', start, end) + 1 if end > start else 0


def shift_annotation_ids(
    data: bytes, offset: int, start: int = 0, end: int | None = None
) -> bytes | memoryview:
    """Annotation lines (``,\\n``-joined: ``data[start:end]``) with every object's id moved up
    by ``offset``; the bytes are otherwise unchanged (and not copied when ``offset`` is 0)."""
    end = len(data) if end is None else end
    block = memoryview(data)[start:end]
    if end <= start or not offset:
        return block
    lines = _lines(data, start, end)
    if data.count(b'"image_id":', start, end) == lines:
        pieces = _ANNOTATION_ID.split(block)  # text, id, text, id, ..., text
        if len(pieces) == 2 * lines + 1:
            shifted = b'"id":%d,"image_id":'
            pieces[1::2] = [shifted % (n + offset) for n in map(int, pieces[1::2])]
            return b''.join(pieces)
    out = []
    for line in bytes(block).split(b',\n'):
        ann = orjson.loads(line)
        ann['id'] = int(ann['id']) + offset
        out.append(orjson.dumps(ann, option=orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY))
    return b',\n'.join(out)


def image_ids(data: bytes, start: int = 0, end: int | None = None) -> list[Any]:
    """The ids of the image lines of ``data[start:end]``."""
    end = len(data) if end is None else end
    if end <= start:
        return []
    ids = _IMAGE_ID.findall(data, start, end)
    if len(ids) == _lines(data, start, end):
        return [int(i) for i in ids]
    return [orjson.loads(line).get('id') for line in bytes(data[start:end]).split(b',\n')]


@dataclass
class CocoPart:
    """A COCO file as the writer wrote it: its bytes, the header up to the images array, and
    where each array's lines are in ``data`` (``,\\n``-joined, no brackets)."""

    data: bytes
    header: bytes
    images: tuple[int, int]
    annotations: tuple[int, int]


def read_coco(path: Path) -> CocoPart:
    """A part's COCO file, found in place (a part's arrays run to tens of megabytes: they are
    not copied out of the file's bytes)."""
    data = path.read_bytes()
    start = data.find(_IMAGES_OPEN)
    middle = data.find(b'],\n' + _ANNOTATIONS_OPEN, max(start, 0))
    if start < 0 or middle < 0 or not data.endswith(b']}\n'):
        raise MergeError(f'{path.name}: not the layout the COCO writer writes')
    head = start + len(_IMAGES_OPEN)
    images = _trimmed(data, head, middle)
    annotations = _trimmed(data, middle + 3 + len(_ANNOTATIONS_OPEN), len(data) - 3)
    return CocoPart(data, data[:head], images, annotations)


def _trimmed(data: bytes, start: int, end: int) -> tuple[int, int]:
    """``start:end`` without the newlines at either end."""
    while start < end and data[start] == 0x0A:
        start += 1
    while end > start and data[end - 1] == 0x0A:
        end -= 1
    return start, end


class CocoMerger(PartMerger):
    """``annotations/*.json``: one file per kind and split, images and annotations in part
    order; annotation ids are global (counted in item order across every file), so each part's
    are shifted by the ids the parts before it spent."""

    special = ('annotations/*.json',)
    counts_annotations = True

    def begin(self, exporter: Any, annotations_before: int | None) -> None:
        """The part's annotation ids start after those the earlier shards' samples list: where
        every listed annotation is exported (the common case) they are the ids one process
        gives, and the merge copies them as they are."""
        writer: Any = getattr(exporter, 'writer', None)
        if annotations_before and isinstance(getattr(writer, '_next_ann_id', None), int):
            writer._next_ann_id = writer._first_ann_id = annotations_before + 1

    def state(self, exporter: Any) -> dict[str, Any]:
        writer = getattr(exporter, 'writer', None)
        first = getattr(writer, '_first_ann_id', 1)
        spent = getattr(writer, '_next_ann_id', None)
        if not isinstance(spent, int):
            return {'annotation_ids': None}
        return {'annotation_ids': spent - first, 'annotation_base': first - 1}

    def session(self, root: Path, context: MergeContext) -> MergeSession:
        return _CocoSession(self, root, context)


_COCO_FILE = re.compile(r'annotations/(instances|person_keypoints)_(.+)\.json')


class _CocoSession(MergeSession):
    """``instances_<split>.json`` concatenated part by part; ``person_keypoints_<split>.json``
    (written by a part only when its share of the split has keypoints) holds every image of
    the split, so its images are the instances file's, and it exists when any part has it."""

    def __init__(self, merger: PartMerger, root: Path, context: MergeContext) -> None:
        super().__init__(merger, root, context)
        self.offset = 0
        self.files: dict[str, _Appender] = {}
        self.image_owner: dict[Any, int] = {}  # image id -> the part that has it

    def _appender(self, rel: str, head: bytes) -> _Appender:
        f = self.files.get(rel)
        if f is None:
            f = self.files[rel] = _Appender(self.root / rel, spool=True)
            f.header = head
            f.out.write(head)
        elif head != f.header:
            raise MergeError(f'{rel}: shards wrote different headers (categories)')
        return f

    def add(self, part: Part) -> None:
        super().add(part)
        rels = _part_files(part, self.merger.special[0])
        files = {rel: read_coco(part.root / rel) for rel in rels}
        # The part's ids start after annotation_base (see begin): moved to start after offset.
        shift = self.offset - int(part.state.get('annotation_base') or 0)
        for rel, coco in files.items():
            found = _COCO_FILE.fullmatch(rel)
            keypoints = found is not None and found.group(1) == 'person_keypoints'
            f = self._appender(rel, coco.header)
            data = coco.data
            if not keypoints:
                self._own_images(image_ids(data, *coco.images), part.index)
                start, end = coco.images
                if end > start:
                    f.out.write(b',\n' if f.items else b'\n')
                    f.out.write(memoryview(data)[start:end])
                    f.items += 1
            start, end = coco.annotations
            if end > start:
                assert f.spool is not None
                f.spool.write(b',\n' if f.spooled else b'\n')
                f.spool.write(shift_annotation_ids(data, shift, start, end))
                f.spooled += 1
        spent = part.state.get('annotation_ids')
        if spent is None:  # a writer that does not say: every id went to a written line
            spent = sum(_lines(c.data, *c.annotations) for c in files.values())
        self.offset += int(spent)

    def _own_images(self, ids: list[Any], index: int) -> None:
        """Record the image ids of part ``index``; one given to an earlier part fails."""
        new = dict.fromkeys(ids, index)
        taken = new.keys() & self.image_owner.keys()
        if taken:
            number = min(taken, key=str)
            raise MergeError(
                f'image id {number} was given to records of shards {self.image_owner[number]} '
                f'and {index} (duplicate source ids); export without sharding'
            )
        self.image_owner.update(new)

    def finish(self) -> None:
        keypoints = {rel: f for rel, f in self.files.items() if rel.startswith(
            'annotations/person_keypoints_')}  # fmt: skip
        for rel, f in self.files.items():
            if rel not in keypoints:
                self._close(f)
        for rel, f in keypoints.items():  # the images are the split's instances file's
            found = _COCO_FILE.fullmatch(rel)
            assert found is not None
            instances = self.files.get(f'annotations/instances_{found.group(2)}.json')
            if instances is not None and instances.items:
                start = len(instances.header or b'')
                with instances.path.open('rb') as src:  # its images, copied in chunks
                    src.seek(start)
                    left = instances.images_end - start
                    while left > 0:
                        chunk = src.read(min(left, 1 << 20))
                        if not chunk:
                            break
                        f.out.write(chunk)
                        left -= len(chunk)
                f.items = 1
            self._close(f)

    @staticmethod
    def _close(f: _Appender) -> None:
        assert f.spool is not None and f.spool_path is not None
        f.spool.close()
        f.images_end = f.out.tell()
        f.out.write(b'\n],\n' if f.items else b'],\n')
        f.out.write(_ANNOTATIONS_OPEN)
        with f.spool_path.open('rb') as spool:
            shutil.copyfileobj(spool, f.out, 1 << 20)
        f.out.write(b'\n]}\n' if f.spooled else b']}\n')
        f.close()

    def abort(self) -> None:
        for f in self.files.values():
            f.close()


# -- CSV and VOC: files whose lines are concatenated -------------------------------------------
class ConcatMerger(PartMerger):
    """Files of ``special`` concatenated in part order; with ``header`` their first line is
    written once (it must be the same in every part)."""

    header: ClassVar[bool] = False

    def session(self, root: Path, context: MergeContext) -> MergeSession:
        return _ConcatSession(self, root, context)


class _ConcatSession(MergeSession):
    def __init__(self, merger: PartMerger, root: Path, context: MergeContext) -> None:
        super().__init__(merger, root, context)
        self.files: dict[str, _Appender] = {}

    def add(self, part: Part) -> None:
        super().add(part)
        header = getattr(self.merger, 'header', False)
        for pattern in self.merger.special:
            for rel in _part_files(part, pattern):
                f = self.files.get(rel)
                if f is None:
                    f = self.files[rel] = _Appender(self.root / rel)
                with (part.root / rel).open('rb') as fh:
                    if header:
                        head = fh.readline()
                        if f.header is None:
                            f.header = head
                            f.out.write(head)
                        elif head != f.header:
                            raise MergeError(f'{rel}: shards wrote different headers')
                    shutil.copyfileobj(fh, f.out, 1 << 20)

    def finish(self) -> None:
        self.abort()

    def abort(self) -> None:
        for f in self.files.values():
            f.close()


class CsvMerger(ConcatMerger):
    """``annotations.csv``: the rows of every part under the header of the first."""

    special = ('annotations.csv',)
    header = True


class VocMerger(ConcatMerger):
    """``ImageSets/Main/<split>.txt``: the stems of every part, in part order."""

    special = ('ImageSets/Main/*.txt',)


# -- YOLO --------------------------------------------------------------------------------------
class YoloMerger(PartMerger):
    """``data.yaml`` lists the splits that have items: the writer writes it again from the
    item counts of every part."""

    special = ('data.yaml',)

    def state(self, exporter: Any) -> dict[str, Any]:
        writer = getattr(exporter, 'writer', None)
        return {'items': dict(getattr(writer, '_items', None) or {})}

    def session(self, root: Path, context: MergeContext) -> MergeSession:
        return _YoloSession(self, root, context)


class _YoloSession(MergeSession):
    def __init__(self, merger: PartMerger, root: Path, context: MergeContext) -> None:
        super().__init__(merger, root, context)
        self.items: dict[str, int] = {}

    def add(self, part: Part) -> None:
        super().add(part)
        for split, count in (part.state.get('items') or {}).items():
            self.items[split] = self.items.get(split, 0) + int(count)

    def finish(self) -> None:
        if self.context.make_writer is None:
            raise MergeError('yolo: no writer to write data.yaml with')
        writer = self.context.make_writer(self.root)
        writer._items = dict(self.items)
        writer.finish()


# -- CVAT --------------------------------------------------------------------------------------
_META_END = b'</meta>\n'
_DOCUMENT_END = b'</annotations>\n'
_FRAME = re.compile(rb'^  <image id="(\d+)"', re.MULTILINE)


class CvatMerger(PartMerger):
    """``annotations.xml``: ``<meta>`` lists every split with its size (written again by the
    writer from the parts' sizes), then every part's ``<image>`` elements in part order with
    their frame ids (counted from 0 in export order) shifted by the frames before them."""

    special = ('annotations.xml',)

    def state(self, exporter: Any) -> dict[str, Any]:
        writer = getattr(exporter, 'writer', None)
        sizes = getattr(writer, '_split_sizes', None) or {}
        return {'frames': int(getattr(writer, '_frame', 0)), 'splits': list(sizes.items())}

    def session(self, root: Path, context: MergeContext) -> MergeSession:
        return _CvatSession(self, root, context)


class _CvatSession(MergeSession):
    def __init__(self, merger: PartMerger, root: Path, context: MergeContext) -> None:
        super().__init__(merger, root, context)
        self.frames = 0
        self.sizes: dict[str, int] = {}
        self.spool = _Appender(root / '.annotations.xml.images')

    def add(self, part: Part) -> None:
        super().add(part)
        for split, size in part.state.get('splits') or []:
            self.sizes[split] = self.sizes.get(split, 0) + int(size)
        path = part.root / self.merger.special[0]
        if path.is_file():
            data = path.read_bytes()
            start = data.find(_META_END)
            if start < 0 or not data.endswith(_DOCUMENT_END):
                raise MergeError('annotations.xml: not the layout the CVAT writer writes')
            images = data[start + len(_META_END) : -len(_DOCUMENT_END)]
            offset = self.frames
            if offset:
                images = _FRAME.sub(
                    lambda m: b'  <image id="%d"' % (int(m.group(1)) + offset), images
                )
            self.spool.out.write(images)
        self.frames += int(part.state.get('frames') or 0)

    def finish(self) -> None:
        if self.context.make_writer is None:
            raise MergeError('cvat: no writer to write <meta> with')
        self.spool.out.close()
        writer = self.context.make_writer(self.root)
        try:
            writer._split_sizes = dict(self.sizes)
            header = writer._meta().encode('utf-8')
        finally:
            writer.abort()
        with (self.root / self.merger.special[0]).open('wb') as out:
            out.write(header)
            with self.spool.path.open('rb') as images:
                shutil.copyfileobj(images, out, 1 << 20)
            out.write(_DOCUMENT_END)
        self.spool.path.unlink(missing_ok=True)

    def abort(self) -> None:
        self.spool.close()
        self.spool.path.unlink(missing_ok=True)


#: Format name -> merger. A format writer not listed here is exported without sharding.
MERGERS: dict[str, PartMerger] = {
    'coco': CocoMerger(),
    'csv': CsvMerger(),
    'voc': VocMerger(),
    'yolo': YoloMerger(),
    'dm': PartMerger(),
    'labelme': PartMerger(),
    'cvat': CvatMerger(),
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

"""A full disk fails the items it hits completely, and nothing else.

The disk is simulated at the file-object level (every file a writer opens writes part of what it
is given, then raises ``ENOSPC``, while the disk is "full"; per-item files written with
``os.write`` likewise), so the partial-write paths run for
real: a failed item leaves no file, no row in an index and no spent id behind, later items are
written normally once space is back, and a failure while finishing raises. The real thing (a
small tmpfs) is ``test_full_disk_tmpfs.py``.
"""

from __future__ import annotations

import csv
import errno
import io
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from synapse_sdk.errors import ItemExportError
from synapse_sdk.formats import base as base_module
from synapse_sdk.formats import get_writer
from synapse_sdk.formats.coco import writer as coco_writer
from synapse_sdk.formats.report import ExportReport

from .helpers import class_map, make_items, save_image

FORMATS = [
    ('coco', {}),
    ('yolo', {}),
    ('yolo', {'task': 'segment'}),
    ('voc', {}),
    ('csv', {}),
    ('dm', {}),
    ('dm', {'dm_version': 1}),
]


class Disk:
    """While ``full``, each write stores half of its bytes (at least one), then fails."""

    def __init__(self) -> None:
        self.full = False
        self.failures = 0


class FlakyFile(io.RawIOBase):
    def __init__(self, raw: Any, disk: Disk) -> None:
        self.raw, self.disk = raw, disk

    def write(self, data: Any) -> int:
        view = memoryview(data)
        if self.disk.full and len(view):
            if getattr(self, '_partial', False):
                self._partial = False
                self.disk.failures += 1
                raise OSError(errno.ENOSPC, 'No space left on device')
            self._partial = True
            return int(self.raw.write(view[: max(1, len(view) // 2)]))
        return int(self.raw.write(view))

    def seek(self, *args: Any) -> int:
        return int(self.raw.seek(*args))

    def truncate(self, *args: Any) -> int:
        return int(self.raw.truncate(*args))

    def read(self, *args: Any) -> bytes:
        return bytes(self.raw.read(*args))

    def readinto(self, b: Any) -> int:
        return int(self.raw.readinto(b))

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def close(self) -> None:
        self.raw.close()
        super().close()


@pytest.fixture
def disk(monkeypatch: pytest.MonkeyPatch) -> Disk:
    disk = Disk()
    real_open, real_tempfile = open, tempfile.TemporaryFile

    def flaky_open(path: Any, mode: str = 'r', buffering: int = -1, **kwargs: Any) -> Any:
        if 'w' not in mode:
            return real_open(path, mode, buffering, **kwargs)
        raw = FlakyFile(real_open(path, mode, buffering=0), disk)
        return raw if buffering == 0 else io.BufferedWriter(raw)

    def flaky_tempfile(*args: Any, **kwargs: Any) -> Any:
        return FlakyFile(real_tempfile(*args, **kwargs), disk)

    real_write = base_module._os_write
    partial: set[int] = set()  # descriptors that stored part of a write while the disk was full

    def flaky_os_write(fd: int, data: Any) -> int:  # ``write_file`` writes at the os level
        view = memoryview(data)
        if disk.full and len(view):
            if fd in partial:
                partial.discard(fd)
                disk.failures += 1
                raise OSError(errno.ENOSPC, 'No space left on device')
            partial.add(fd)
            return int(real_write(fd, view[: max(1, len(view) // 2)]))
        return int(real_write(fd, view))

    monkeypatch.setattr(base_module, 'open', flaky_open, raising=False)
    monkeypatch.setattr(base_module, '_os_write', flaky_os_write)
    monkeypatch.setattr(coco_writer.tempfile, 'TemporaryFile', flaky_tempfile)
    return disk


def _export(fmt: str, options: dict[str, Any], root: Path, disk: Disk, full_for: set[int]):  # type: ignore[no-untyped-def]
    """The pipeline's loop; the disk is full while the items in ``full_for`` are written."""
    report = ExportReport()
    writer = get_writer(fmt)(root, class_map(), dict(options), report)
    writer.start()
    failed = []
    for item in make_items(split='train=0.5,val=0.5'):
        rel = writer.image_relpath(item)
        if rel:
            save_image(root / rel, item.width or 8, item.height or 8)
        disk.full = item.id in full_for
        try:
            writer.write_item(item)
        except ItemExportError as exc:
            assert exc.item_id == item.id and 'No space left' in str(exc)
            report.fail_item(item.id, item.file_name, str(exc))
            failed.append(item)
        else:
            report.count_item(item.split)
        finally:
            disk.full = False
    writer.finish()
    return report, failed


@pytest.mark.parametrize(('fmt', 'options'), FORMATS, ids=[f'{f}{o}' for f, o in FORMATS])
def test_a_failed_write_fails_its_item_completely(
    tmp_path: Path, disk: Disk, fmt: str, options: dict[str, Any]
) -> None:
    report, failed = _export(fmt, options, tmp_path / 'out', disk, full_for={1, 3})
    assert disk.failures >= 2
    assert [i.id for i in failed] == [1, 3] and report.items_failed == 2
    assert report.items_exported == 2
    out = tmp_path / 'out'
    assert not [p for p in out.rglob('*') if p.name.startswith('.')], 'temporary files left'
    failed_stems = {i.stem for i in failed}
    written = {p.stem for p in out.rglob('*') if p.suffix in ('.txt', '.xml', '.json')}
    assert not failed_stems & written, 'a per-item file of a failed item was left'
    CHECKS[fmt](out, failed_stems)
    # only the exported items' annotations were counted
    assert report.annotations_exported == {'coco': 2, 'csv': 2, 'dm': 2}.get(
        fmt, report.annotations_exported
    )


def _check_coco(out: Path, failed: set[str]) -> None:
    ids: list[int] = []
    for path in sorted((out / 'annotations').glob('*.json')):
        data = orjson.loads(path.read_bytes())
        assert [i['id'] for i in data['images']] in ([2, 4], [2], [4])
        assert not failed & {Path(i['file_name']).stem for i in data['images']}
        assert {a['image_id'] for a in data['annotations']} <= {2, 4}
        ids += [a['id'] for a in data['annotations']]
    assert len(ids) == len(set(ids))
    # the failed items' ids (1-5, 6-7) were spent and are not handed out again
    assert sorted(ids) == [8, 9]


def _check_yolo(out: Path, failed: set[str]) -> None:
    labels = {p.stem for p in (out / 'labels').rglob('*.txt')}
    assert labels == {'crossing 0007_1', 'CROSSING 0007_2'}
    data = yaml.safe_load((out / 'data.yaml').read_text('utf-8'))
    assert data['names'][0] == 'car'


def _check_voc(out: Path, failed: set[str]) -> None:
    stems = set()
    for lst in (out / 'ImageSets' / 'Main').glob('*.txt'):
        stems |= set(lst.read_text('utf-8').splitlines())
    assert stems == {'crossing 0007_1', 'CROSSING 0007_2'}
    for xml in (out / 'Annotations').glob('*.xml'):
        ET.parse(xml)


def _check_csv(out: Path, failed: set[str]) -> None:
    with (out / 'annotations.csv').open(encoding='utf-8', newline='') as fh:
        rows = list(csv.DictReader(fh))
    assert {r['item_id'] for r in rows} == {'2', '4'}
    assert all(r['class'] or r['item_id'] == '2' for r in rows)
    assert orjson.loads((out / 'project.json').read_bytes())['configuration']


def _check_dm(out: Path, failed: set[str]) -> None:
    docs = {p.stem: orjson.loads(p.read_bytes()) for p in (out / 'json').glob('*.json')}
    assert set(docs) == {'crossing 0007_1', 'CROSSING 0007_2'}


CHECKS = {'coco': _check_coco, 'yolo': _check_yolo, 'voc': _check_voc, 'csv': _check_csv,
          'dm': _check_dm}  # fmt: skip


@pytest.mark.parametrize('fmt', ['coco', 'csv', 'voc'])
def test_a_lost_write_while_finishing_fails_the_export(
    tmp_path: Path, disk: Disk, fmt: str
) -> None:
    """Buffered rows that cannot be written make ``finish`` raise: the export fails."""
    writer = get_writer(fmt)(tmp_path, class_map(), {}, ExportReport())
    writer.start()
    for item in make_items():
        writer.write_item(item)
    disk.full = True
    with pytest.raises(OSError, match='No space left'):
        writer.finish()
    writer.abort()


def test_a_failed_rollback_fails_the_export(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If a partial item cannot even be cut off again, finishing refuses to publish it."""
    writer = get_writer('csv')(tmp_path, class_map(), {}, ExportReport())
    writer.start()
    items = make_items()
    writer.write_item(items[0])

    def broken(*args: Any) -> None:
        raise OSError(errno.EIO, 'I/O error')

    real_write = writer._out.fh.write
    calls = {'n': 0}

    def write(data: Any) -> int:
        calls['n'] += 1
        if calls['n'] == 1:
            return int(real_write(memoryview(data)[:1]))
        raise OSError(errno.ENOSPC, 'No space left on device')

    monkeypatch.setattr(writer._out, 'fh', _Wrap(writer._out.fh, write, broken))
    with pytest.raises(ItemExportError):
        writer.write_item(items[2])
    with pytest.raises(OSError, match='rolled back'):
        writer.finish()
    writer.abort()


class _Wrap:
    def __init__(self, fh: Any, write: Any, truncate: Any) -> None:
        self._fh, self.write, self.truncate = fh, write, truncate

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fh, name)

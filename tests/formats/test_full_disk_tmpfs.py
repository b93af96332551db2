"""A real full disk: a 2 MiB tmpfs that fills up mid-export and frees up again.

Each built-in format exports the demo through the real action onto a storage on the tmpfs. The
disk is nearly full from the start (a filler file), so originals and data files start failing;
after a few items the filler is removed, as when another process frees space. Whatever the
outcome, the export must not lie: either it failed and nothing was published, or what was
published is complete and consistent with the result it reported (every item counted as
exported is in the files, every failed item is in none of them, nothing partial).

Needs ``mount -t tmpfs`` (root); skipped with the reason when the mount is refused.
"""

from __future__ import annotations

import csv
import os
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from synapse_sdk.errors import SynapseError
from synapse_sdk.formats import WRITERS
from synapse_sdk.loggers import MemoryLogger
from synapse_sdk.plugins.context import RuntimeContext
from synapse_sdk.plugins.discovery import load_plugin
from synapse_sdk.server.store import Store

pytestmark = pytest.mark.slow


@pytest.fixture
def tmpfs(mount_tmpfs: Callable[[str, str], Path]) -> Path:
    return mount_tmpfs('tmpfs', '2m')


def _fill(mount: Path, leave: int) -> Path:
    """A filler file that leaves ``leave`` bytes free."""
    stat = os.statvfs(mount)
    filler = mount / 'filler'
    filler.write_bytes(b'\0' * (stat.f_bavail * stat.f_frsize - leave))
    return filler


@pytest.mark.parametrize('fmt', ['coco', 'yolo', 'voc', 'csv', 'dm', 'cvat', 'labelme', 'parquet'])
def test_transient_full_disk_never_publishes_wrong_data(
    fmt: str, tmpfs: Path, synapse_home: Path, local_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Store(synapse_home) as store:
        store.update_storage(1, configuration={'location': str(tmpfs)})
    filler = _fill(tmpfs, leave=4096)
    base = WRITERS[fmt]
    written = {'n': 0}

    class FreesSpaceLater(base):  # type: ignore[valid-type, misc]
        def write_item(self, item: Any) -> None:
            try:
                super().write_item(item)
            finally:
                written['n'] += 1
                if written['n'] == 6:
                    filler.unlink()  # the disk frees up mid-export

    monkeypatch.setitem(WRITERS, fmt, FreesSpaceLater)
    action = load_plugin(fmt).get_action('export')
    extra: dict[str, Any] = {'split': 'train=0.5,val=0.5'}
    if fmt == 'parquet':
        extra['row_group_size'] = 2  # rows reach the disk while it is full, not only at the end
    params = {'name': f'full-{fmt}', 'storage': 1, 'path': 'exports', 'target': 'task',
              'filter': {'project': 1}, 'extra_params': extra}  # fmt: skip
    try:
        result = action.dispatch(params, RuntimeContext(MemoryLogger(), local_client))
    except SynapseError:
        # a failed export publishes nothing
        published = [p for p in (tmpfs / 'exports').glob('*') if not p.name.startswith('.')]
        assert published == []
        return
    finally:
        monkeypatch.setitem(WRITERS, fmt, base)
    assert result['failed_count'] > 0, 'the disk was never full: the test proves nothing'
    out = Path(result['output_path'])
    assert out.is_dir()
    assert not [p for p in out.rglob('*') if p.name.endswith('.part')]
    # failed items (a failed original alone is counted apart: failed_original_count)
    failed_ids = {
        int(e['id'])
        for e in _errors(out)
        if e.get('id') is not None and e.get('kind', 'data_file') == 'data_file'
    }
    exported = result['exported_count']
    ids = _ids_in_output(fmt, out)
    assert len(ids) == exported, (fmt, ids, result)
    assert not ids & failed_ids
    assert result['failed_count'] == len(failed_ids) or not failed_ids


def _errors(out: Path) -> list[dict[str, Any]]:
    path = out / 'error_file_list.json'
    if not path.is_file():
        return []
    data = orjson.loads(path.read_bytes())
    entries = data if isinstance(data, list) else [*data.values()] if isinstance(data, dict) else []
    flat: list[dict[str, Any]] = []
    for entry in entries:
        flat += entry if isinstance(entry, list) else [entry]
    return [e for e in flat if isinstance(e, dict) and 'original' not in str(e.get('reason', ''))]


def _ids_in_output(fmt: str, out: Path) -> set[Any]:
    """The items the published files hold (record ids, or stems where the format has none)."""
    if fmt == 'coco':
        ids: set[Any] = set()
        for path in (out / 'annotations').glob('instances_*.json'):
            data = orjson.loads(path.read_bytes())  # parses: complete JSON
            image_ids = [i['id'] for i in data['images']]
            assert len(image_ids) == len(set(image_ids))
            assert {a['image_id'] for a in data['annotations']} <= set(image_ids)
            ann_ids = [a['id'] for a in data['annotations']]
            assert len(ann_ids) == len(set(ann_ids))
            ids |= set(image_ids)
        return ids
    if fmt == 'csv':
        with (out / 'annotations.csv').open(encoding='utf-8', newline='') as fh:
            rows = list(csv.DictReader(fh))
        assert all(len(r) == len(rows[0]) and None not in r.values() for r in rows)
        return {int(r['item_id']) for r in rows}
    if fmt == 'voc':
        stems = set()
        for lst in (out / 'ImageSets' / 'Main').glob('*.txt'):
            if lst.name != 'trainval.txt':
                stems |= set(lst.read_text('utf-8').splitlines())
        for stem in stems:
            ET.parse(out / 'Annotations' / f'{stem}.xml')  # complete XML
        assert {p.stem for p in (out / 'Annotations').glob('*.xml')} == stems
        return stems
    if fmt == 'yolo':
        labels = {p.stem for p in (out / 'labels').rglob('*.txt')}
        return labels
    if fmt == 'cvat':
        names = [el.get('name') for el in ET.parse(out / 'annotations.xml').iter('image')]
        assert len(names) == len(set(names))
        return set(names)
    if fmt == 'labelme':
        files = [p for p in out.glob('*/*.json')]
        for path in files:
            assert orjson.loads(path.read_bytes())['imagePath']  # complete JSON
        return {p.stem for p in files}
    if fmt == 'parquet':
        import pyarrow.parquet as pq

        image_ids = [i for f in (out / 'data').glob('*.parquet')
                     for i in pq.read_table(f).column('image_id').to_pylist()]  # fmt: skip
        assert len(image_ids) == len(set(image_ids))
        return set(image_ids)
    docs = {p.stem for p in (out / 'json').glob('*.json')}
    for p in (out / 'json').glob('*.json'):
        orjson.loads(p.read_bytes())
    return docs

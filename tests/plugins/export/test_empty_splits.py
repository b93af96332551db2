"""A split with no items is not declared, in any format (issue 8): no ``test:`` in
``data.yaml``, no empty ``instances_test.json`` / ``test.txt`` / ``data/test-*.parquet``, no
``<subset>test</subset>`` task in CVAT's meta, no empty ``test/`` folder.

Every format exports the 12-image demo with ``train=0.9,val=0.1,test=0.001``: the test share
(0.012 of an item) rounds to 0 items, so ``test`` must appear nowhere; train and val (11 and 1
items) are declared as each format declares splits.
"""

from __future__ import annotations

import csv
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from typer.testing import CliRunner

from synapse_sdk.cli.main import app
from synapse_sdk.formats.split import exact_counts

SPLIT = 'train=0.9,val=0.1,test=0.001'
EXPECTED = {'train', 'val'}


def _runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]
    except TypeError:  # click >= 8.2 keeps stderr apart already
        return CliRunner()


def coco(out: Path) -> set[str]:
    files = {p.name for p in (out / 'annotations').iterdir()}
    return {re.sub(r'^(instances|person_keypoints)_(.*)\.json$', r'\2', n) for n in files}


def yolo(out: Path) -> set[str]:
    data = yaml.safe_load((out / 'data.yaml').read_text('utf-8'))
    folders = {p.name for p in (out / 'labels').iterdir()}
    assert folders == {Path(data[k]).name for k in ('train', 'val', 'test') if k in data}
    return {k for k in ('train', 'val', 'test') if k in data}


def voc(out: Path) -> set[str]:
    return {p.stem for p in (out / 'ImageSets' / 'Main').iterdir()} - {'trainval'}


def csv_(out: Path) -> set[str]:
    with (out / 'annotations.csv').open(encoding='utf-8', newline='') as f:
        return {row['split'] for row in csv.DictReader(f)}


def dm(out: Path) -> set[str]:
    return EXPECTED  # dm has no splits to declare: only the generic check applies


def cvat(out: Path) -> set[str]:
    root = ET.parse(out / 'annotations.xml').getroot()
    tasks = {t.findtext('subset'): t.findtext('size') for t in root.iter('task')}
    assert '0' not in tasks.values(), tasks
    images = {i.get('subset') for i in root.iter('image')}
    assert images == set(tasks), (images, tasks)
    return set(tasks)


def labelme(out: Path) -> set[str]:
    return {p.name for p in out.iterdir() if p.is_dir()}


def parquet(out: Path) -> set[str]:
    import pyarrow.parquet as pq

    shards = {p.name.split('-')[0]: pq.read_metadata(p).num_rows for p in (out / 'data').iterdir()}
    assert 0 not in shards.values(), shards
    card = (out / 'README.md').read_text('utf-8').split('---')[1]
    declared = {s['name'] for s in yaml.safe_load(card)['dataset_info']['splits']}
    assert declared == set(shards)
    return declared


FORMATS: dict[str, Callable[[Path], set[str]]] = {
    'coco': coco, 'yolo': yolo, 'voc': voc, 'csv': csv_, 'dm': dm, 'cvat': cvat,
    'labelme': labelme, 'parquet': parquet,
}  # fmt: skip


def test_the_test_share_rounds_to_no_item() -> None:
    assert exact_counts(12, [0.9 / 1.001, 0.1 / 1.001, 0.001 / 1.001]) == [11, 1, 0]


@pytest.mark.parametrize('fmt', sorted(FORMATS))
def test_a_split_without_items_is_not_declared(synapse_home: Path, fmt: str) -> None:
    if fmt == 'dm':  # dm has no splits: it refuses --split (exit 2) instead of ignoring it
        refused = _runner().invoke(app, ['export', 'dm', '--project', '1', '--split', SPLIT])
        assert refused.exit_code == 2 and '--split' in refused.stderr
        return
    args = ['export', fmt, '--target', 'task', '--project', '1', '--storage', '1', '--path',
            'exports', '--name', fmt, '--split', SPLIT, '--no-originals', '-q']  # fmt: skip
    result = _runner().invoke(app, args)
    assert result.exit_code == 0, result.stderr
    out = Path(orjson.loads(result.stdout)['output_path'])
    assert FORMATS[fmt](out) == EXPECTED
    # nothing anywhere is named after the empty split
    named: list[Any] = [p for p in out.rglob('*') if re.search(r'(^|[_/-])test([_.-]|$)', p.name)]
    assert named == []
    for text_file in ('data.yaml', 'README.md', 'annotations.xml'):
        if (out / text_file).is_file():
            assert not re.search(r'\btest\b', (out / text_file).read_text('utf-8')), text_file

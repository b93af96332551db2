"""Defects a QA walk-through met at the CLI, each reproduced as the user ran it (a real
``synapse`` process, real files)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from .helpers import synapse


def _labelme(path: Path, image: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = {'label': 'car', 'points': [[1, 1], [3, 3]], 'shape_type': 'rectangle'}
    doc = {'version': '5.5.0', 'flags': {}, 'shapes': [shape], 'imagePath': image,
           'imageData': None, 'imageHeight': 8, 'imageWidth': 8}  # fmt: skip
    path.write_bytes(orjson.dumps(doc))


def _parquet(path: Path, image: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table({'image': [{'bytes': None, 'path': image}],
                      'objects': [{'bbox': [[1.0, 1.0, 2.0, 2.0]], 'category': [0]}]})  # fmt: skip
    pq.write_table(table, path)


@pytest.mark.parametrize(
    ('fmt', 'write', 'nested', 'named'),
    [
        ('labelme', _labelme, ['exp1/train/a.json', 'exp2/train/b.json'], 'exp1, exp2/train'),
        (
            'parquet',
            _parquet,
            ['exp1/data/train-00000-of-00001.parquet', 'exp2/x.parquet'],
            'exp1, exp2',
        ),
    ],
)
def test_import_of_a_folder_holding_datasets_refuses_naming_them(
    tmp_path, fmt, write, nested, named
):
    """``synapse data import labelme|parquet DIR`` walked the whole tree and merged every
    dataset found below DIR into one project; now DIR is one dataset, read as its format's
    layout says, and a folder holding none is refused, naming the datasets below it."""
    root = tmp_path / 'exports'
    for rel in nested:
        write(root / rel, 'a.png')
    if fmt == 'labelme':
        (root / 'exp1' / 'labels.txt').write_text('car\n')  # marks a dataset of its own
    done = synapse('data', 'import', fmt, str(root), home=tmp_path / 'home')
    assert done.returncode == 2, done.stdout
    assert str(root) in done.stderr and 'expected' in done.stderr
    assert f'nested datasets not read: {named}\n' in done.stderr
    assert not done.stdout
    one = synapse('data', 'import', fmt, str(root / 'exp1'), home=tmp_path / 'home')
    assert one.returncode == 0, one.stderr
    assert orjson.loads(one.stdout)['read']['images'] == 1

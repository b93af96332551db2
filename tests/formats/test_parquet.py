"""Parquet (Hugging Face ``datasets`` object-detection layout): rows and schema read back with
pyarrow, row groups and shards, embedded or path-only images, and write -> read -> write."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from synapse_sdk.errors import ParamsError
from synapse_sdk.formats import get_writer
from synapse_sdk.formats.base import ItemLog, Unsupported
from synapse_sdk.formats.parquet.convert import annotation_to_object, features
from synapse_sdk.formats.parquet.reader import read_dataset

from .contract import WriterContract
from .helpers import class_map, export, fixture, make_items, save_image, tree
from .test_cvat import items_from


class TestParquetContract(WriterContract):
    fmt = 'parquet'

    def test_every_image_kept_and_names_unique(self, tmp_path: Path) -> None:
        """Images are inside the rows, not files: each item is one row with its own bytes."""
        items = make_items()
        report, writer = export(self.fmt, tmp_path, items, self.options)
        assert report.items_exported == len(items) and report.items_failed == 0
        relpaths = [writer.image_relpath(item) for item in items]
        assert len(set(relpaths)) == len(relpaths)
        rows = _rows(tmp_path, 'train')
        assert [r['image']['path'] for r in rows] == [item.file_name for item in items]
        assert all(r['image']['bytes'] for r in rows)
        assert not (tmp_path / 'images').exists()  # the staged originals are gone


def _rows(root: Path, split: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for f in sorted((root / 'data').glob(f'{split}-*.parquet')):
        rows += pq.read_table(f).to_pylist()
    return rows


def test_rows_and_schema_as_datasets_stores_them(tmp_path: Path) -> None:
    report, _ = export('parquet', tmp_path, make_items(split='category'), {'split': 'category'})
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob('*')) == [
        'README.md', 'data', 'data/test-00000-of-00001.parquet',
        'data/train-00000-of-00001.parquet', 'data/validation-00000-of-00001.parquet',
    ]  # fmt: skip
    schema = pq.read_schema(tmp_path / 'data/train-00000-of-00001.parquet')
    assert schema.field('image').type == pa.struct([('bytes', pa.binary()), ('path', pa.string())])
    objects = schema.field('objects').type
    assert objects.field('bbox').type == pa.list_(pa.list_(pa.float64(), 4))
    assert objects.field('category').type == pa.list_(pa.int64())
    meta = json.loads(schema.metadata[b'huggingface'])
    assert meta == {'info': {'features': features(class_map().names)}}
    train = _rows(tmp_path, 'train')
    assert [r['image_id'] for r in train] == [1, 3]
    first = train[0]
    assert first['image']['path'] == 'crossing 0007.jpg'
    assert first['image']['bytes'][:2] == b'\xff\xd8'  # the JPEG original, embedded
    assert (first['width'], first['height']) == (64, 48)
    assert json.loads(first['classifications']) == {'weather': 'sunny'}
    obj = first['objects']
    assert obj['id'] == [1, 2, 3, 4, 5]
    assert obj['category'] == [0, 0, 2, 3, 4]
    assert obj['bbox'][0] == [12.5, 10.0, 20.0, 12.0]
    assert obj['area'][:3] == [240.0, 128.0, 1056.0]
    assert obj['segmentation'][2] == [[0.0, 30.0, 64.0, 33.0, 64.0, 48.0, 0.0, 48.0]]
    assert len(obj['segmentation'][1][0]) == 8  # the rotated box's corners
    sky = fixture()['records'][0]['data']['annotations'][4]['mask']['counts']
    assert obj['rle'] == [None, None, None, None, sky]
    assert json.loads(obj['attributes'][1]) == {'occluded': True}
    tokyo = train[1]['objects']
    assert tokyo['id'] == [6, 7] and tokyo['category'] == [1, 1]  # ids unique in the export
    assert _rows(tmp_path, 'validation')[0]['objects']['id'] == []
    assert report.to_dict()['skipped_reasons'] == {
        "class 'bicycle' not in the project configuration": 1,
        'polyline cannot be expressed in parquet': 1,
    }
    assert report.to_dict()['converted_reasons'] == {
        'keypoint -> box (parquet)': 1,
        'rotated box -> enclosing box (parquet)': 1,
    }


def test_dataset_card_front_matter(tmp_path: Path) -> None:
    export('parquet', tmp_path, make_items(split='category'), {'split': 'category'})
    text = (tmp_path / 'README.md').read_text('utf-8')
    assert text.startswith('---\n')
    front = yaml.safe_load(text.split('---\n')[1])
    info = front['dataset_info']
    splits = {s['name']: s for s in info['splits']}
    assert {k: v['num_examples'] for k, v in splits.items()} == {
        'train': 2, 'validation': 1, 'test': 1
    }  # fmt: skip
    size = (tmp_path / 'data/train-00000-of-00001.parquet').stat().st_size
    assert splits['train']['num_bytes'] == size
    objects = next(f for f in info['features'] if f['name'] == 'objects')
    category = next(f for f in objects['sequence'] if f['name'] == 'category')
    names = category['dtype']['class_label']['names']
    assert [names[str(i)] for i in range(len(names))] == class_map().names
    assert front['configs'][0]['data_files'][0] == {'split': 'train', 'path': 'data/train-*'}


def test_no_originals_keeps_the_path_only(tmp_path: Path) -> None:
    export('parquet', tmp_path, make_items(), images=False)
    rows = _rows(tmp_path, 'train')
    assert [r['image'] for r in rows][:2] == [
        {'bytes': None, 'path': 'crossing 0007.jpg'},
        {'bytes': None, 'path': 'crossing 0007_1.jpg'},
    ]


def test_row_groups_and_shards(tmp_path: Path) -> None:
    records = [
        {'id': i, 'width': 40, 'height': 30, 'files': {'file_name_original': f'f{i}.png'},
         'data': {'annotations': [{'id': 'a', 'category': 'car', 'tool': 'bounding_box',
                                   'bbox': [1, 1, 5, 5]}]}}
        for i in range(1, 24)
    ]  # fmt: skip
    options = {'row_group_size': 4, 'max_shard_mb': 0.004}  # ~4 KB a shard
    export('parquet', tmp_path, make_items(records), options)
    files = sorted((tmp_path / 'data').glob('*.parquet'))
    n = len(files)
    assert n > 1 and [f.name for f in files] == [
        f'train-{i:05d}-of-{n:05d}.parquet' for i in range(n)
    ]
    ids = []
    for f in files:
        meta = pq.ParquetFile(f).metadata
        assert all(meta.row_group(g).num_rows <= 4 for g in range(meta.num_row_groups))
        ids += pq.read_table(f, columns=['image_id']).column('image_id').to_pylist()
    assert ids == list(range(1, 24))  # every row once, in export order
    per_shard = math.ceil(23 / n)
    assert pq.ParquetFile(files[0]).metadata.num_rows == per_shard


@pytest.mark.parametrize(
    ('ann', 'reason'),
    [
        ({'tool': 'polyline', 'points': [[0, 0], [1, 1]]}, 'polyline cannot'),
        ({'tool': 'classification'}, 'classification cannot'),
        ({'tool': 'bounding_box', 'bbox': [0, 0, 0, 1]}, 'zero'),
        ({'tool': 'segmentation', 'mask': {'size': [3, 3], 'counts': [9]}}, 'differs'),
        ({'tool': 'keypoint', 'keypoints': [[0, 0, 0]]}, 'no labelled point'),
    ],
)
def test_unsupported_names_the_reason(ann: dict[str, Any], reason: str) -> None:
    with pytest.raises(Unsupported, match=reason):
        annotation_to_object({'category': 'x', **ann}, category=0, image_size=(4, 4), log=ItemLog())


def test_options_are_checked() -> None:
    writer = get_writer('parquet')
    with pytest.raises(ParamsError, match=r'extra_params\.row_groups.*allowed keys'):
        writer.validate_options({'row_groups': 10})
    with pytest.raises(ParamsError, match=r'extra_params\.row_group_size'):
        writer.validate_options({'row_group_size': 0})
    with pytest.raises(ParamsError, match=r'extra_params\.compression'):
        writer.validate_options({'compression': 'zip'})


# --- reading --------------------------------------------------------------------------------


def test_export_import_export_is_byte_identical(tmp_path: Path) -> None:
    options = {'split': 'category'}
    export('parquet', tmp_path / 'a', make_items(split='category'), options)
    ds = read_dataset(tmp_path / 'a')
    assert [c['name'] for c in ds.configuration['classes']] == class_map().names
    images = list(ds.images)
    assert [i.split for i in images] == ['test', 'train', 'train', 'validation']
    assert ds.report.as_dict() == {
        'read': {'annotations': 9, 'image files': 4, 'images': 4},
        'skipped': {},
    }
    export('parquet', tmp_path / 'b', items_from(ds), options, cmap=class_map(ds.configuration))
    a, b = tree(tmp_path / 'a'), tree(tmp_path / 'b')
    assert a.keys() == b.keys()

    # Equal rows but for the ids (image ids are the new records' ids, and object ids count in
    # the order the import read the splits) and float noise: the rotated box came back as the
    # polygon of its corners, whose shoelace area is 127.99999999999994 for 128.
    def strip(row: dict[str, Any]) -> dict[str, Any]:
        objects = row['objects']
        area = [round(a, 9) for a in objects['area']]
        return {**row, 'image_id': 0, 'objects': {**objects, 'id': None, 'area': area}}

    for split in ('train', 'validation', 'test'):
        rows_a = [strip(r) for r in _rows(tmp_path / 'a', split)]
        rows_b = [strip(r) for r in _rows(tmp_path / 'b', split)]
        assert rows_a and rows_a == rows_b


def test_reads_a_foreign_layout_and_refuses_paths_outside(tmp_path: Path) -> None:
    save_image(tmp_path / 'pics' / 'a.png', 10, 8)
    (tmp_path.parent / 'secret.png').write_bytes(b'x')
    table = pa.table(
        {
            'image': [{'bytes': None, 'path': 'pics/a.png'},
                      {'bytes': None, 'path': '../secret.png'}],
            'objects': [
                {'bbox': [[1.0, 1.0, 4.0, 3.0], [0, 0, 1, 1]], 'categories': [1, 7]},
                {'bbox': [], 'categories': []},
            ],
        }
    )  # fmt: skip
    pq.write_table(table, tmp_path / 'train.parquet')
    ds = read_dataset(tmp_path)
    assert ds.configuration['classes'] == [
        {'name': 'class_0', 'tool': 'bounding_box', 'attributes': []},
        {'name': 'class_1', 'tool': 'bounding_box', 'attributes': []},
        {'name': 'class_2', 'tool': 'bounding_box', 'attributes': []},
        {'name': 'class_3', 'tool': 'bounding_box', 'attributes': []},
        {'name': 'class_4', 'tool': 'bounding_box', 'attributes': []},
        {'name': 'class_5', 'tool': 'bounding_box', 'attributes': []},
        {'name': 'class_6', 'tool': 'bounding_box', 'attributes': []},
        {'name': 'class_7', 'tool': 'bounding_box', 'attributes': []},
    ]
    a, secret = list(ds.images)
    assert a.path == (tmp_path / 'pics/a.png').resolve() and (a.width, a.height) == (10, 8)
    assert a.split == 'train' and [x['bbox'] for x in a.annotations] == [[1, 1, 4, 3], [0, 0, 1, 1]]
    assert secret.path is None
    assert ds.report.as_dict()['skipped'] == {'image file: path outside the images folder': 1}


def test_not_object_detection_is_refused(tmp_path: Path) -> None:
    pq.write_table(pa.table({'text': ['a']}), tmp_path / 'x.parquet')
    with pytest.raises(ParamsError, match='no image/objects columns'):
        read_dataset(tmp_path)


def _detection_table(path: str) -> pa.Table:
    return pa.table(
        {'image': [{'bytes': None, 'path': path}],
         'objects': [{'bbox': [[1.0, 1.0, 2.0, 2.0]], 'category': [0]}]}
    )  # fmt: skip


def test_nested_datasets_are_reported_not_merged(tmp_path: Path) -> None:
    """A folder is read as one dataset (``data/*.parquet``): the parquet files of another
    dataset in a subfolder were merged into it (``rglob``); they are named and not read."""
    (tmp_path / 'data').mkdir()
    pq.write_table(_detection_table('a.png'), tmp_path / 'data/train-00000-of-00001.parquet')
    for sub in ('copy/data', 'other'):
        (tmp_path / sub).mkdir(parents=True)
        pq.write_table(_detection_table('b.png'), tmp_path / sub / 'test-00000-of-00001.parquet')
    ds = read_dataset(tmp_path)
    assert [image.file_name for image in ds.images] == ['a.png']
    assert ds.report.as_dict()['skipped'] == {
        'folder: nested dataset copy, not read (import it on its own)': 1,
        'folder: nested dataset other, not read (import it on its own)': 1,
        'image file: file not found': 1,
    }


def test_a_folder_of_nested_datasets_only_is_refused_naming_them(tmp_path: Path) -> None:
    (tmp_path / 'one/data').mkdir(parents=True)
    pq.write_table(_detection_table('a.png'), tmp_path / 'one/data/train-00000-of-00001.parquet')
    (tmp_path / 'deep/er/data').mkdir(parents=True)  # two levels down: not even listed
    pq.write_table(_detection_table('a.png'), tmp_path / 'deep/er/data/x.parquet')
    with pytest.raises(ParamsError) as info:
        read_dataset(tmp_path)
    ((where, message),) = info.value.errors
    assert where == str(tmp_path)
    assert message == (
        f'no .parquet files (expected {tmp_path}/data/*.parquet, {tmp_path}/*.parquet or '
        f'{tmp_path}/<split>/*.parquet); nested datasets not read: one'
    )


def test_split_folders_of_the_hub_layout_are_the_dataset(tmp_path: Path) -> None:
    for split in ('train', 'validation'):
        (tmp_path / split).mkdir()
        pq.write_table(_detection_table(f'{split}.png'), tmp_path / split / '0000.parquet')
    ds = read_dataset(tmp_path)
    assert [(i.file_name, i.split) for i in ds.images] == [
        ('train.png', 'train'), ('validation.png', 'validation')
    ]  # fmt: skip
    assert 'folder' not in str(ds.report.as_dict())

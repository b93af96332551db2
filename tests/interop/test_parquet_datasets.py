"""Parquet interop with Hugging Face ``datasets`` (offline): ``load_dataset("parquet",
data_dir=...)`` and ``load_dataset(<folder>)`` give the splits, named classes and decoded images
of our export; and a dataset ``datasets`` itself writes imports into a project."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import datasets
import pytest
from PIL import Image as PILImage
from tests.formats.helpers import class_map, export, make_items, plugin_export

from synapse_sdk.formats.parquet.reader import read_dataset


@pytest.fixture(autouse=True)
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No hub: offline mode, and a private cache so nothing is shared between runs."""
    monkeypatch.setenv('HF_DATASETS_OFFLINE', '1')
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    monkeypatch.setenv('HF_HOME', str(tmp_path / 'hf-home'))
    monkeypatch.setattr(datasets.config, 'HF_DATASETS_OFFLINE', True, raising=False)
    monkeypatch.setattr(datasets.config, 'HF_HUB_OFFLINE', True, raising=False)
    datasets.disable_progress_bars()
    yield


def _load(*args: Any, cache: Path, **kwargs: Any) -> Any:
    return datasets.load_dataset(*args, cache_dir=str(cache), **kwargs)


def test_load_dataset_gives_named_classes_splits_and_images(tmp_path: Path) -> None:
    out = tmp_path / 'export'
    export('parquet', out, make_items(split='category'), {'split': 'category'})
    by_dir = _load('parquet', data_dir=str(out / 'data'), cache=tmp_path / 'c1')
    assert sorted(by_dir) == ['test', 'train', 'validation']
    assert {k: v.num_rows for k, v in by_dir.items()} == {'train': 2, 'validation': 1, 'test': 1}
    category = by_dir['train'].features['objects']['category']
    feature = getattr(category, 'feature', category)
    assert isinstance(feature, datasets.ClassLabel) and feature.names == class_map().names
    row = by_dir['train'][0]
    assert isinstance(row['image'], PILImage.Image) and row['image'].size == (64, 48)
    assert [feature.int2str(c) for c in row['objects']['category']] == [
        'car', 'car', 'road', 'person_pose', 'sky'
    ]  # fmt: skip
    assert row['objects']['bbox'][0] == [12.5, 10.0, 20.0, 12.0]

    by_card = _load(str(out), cache=tmp_path / 'c2')  # README front matter: configs, features
    assert by_card['train'].features == by_dir['train'].features
    splits = by_card['train'].info.splits
    assert {name: s.num_examples for name, s in splits.items()} == {
        'train': 2, 'validation': 1, 'test': 1
    }  # fmt: skip


def test_plugin_export_loads_in_datasets(local_client: Any, tmp_path: Path) -> None:
    _, out = plugin_export(local_client, 'parquet', 'pq', 'train=0.7,val=0.3')
    assert not (out / 'images').exists()
    loaded = _load('parquet', data_dir=str(out / 'data'), cache=tmp_path / 'c')
    tasks = list(local_client.get_tasks({'project': 1})[0])
    assert sum(split.num_rows for split in loaded.values()) == len(tasks)
    names = [c['name'] for c in local_client.get_project(1)['configuration']['classes']]
    category = loaded['train'].features['objects']['category']
    assert getattr(category, 'feature', category).names == names
    for row in loaded['train']:
        assert row['image'].size == (row['width'], row['height'])


def test_we_read_what_datasets_writes(tmp_path: Path) -> None:
    image = PILImage.new('RGB', (16, 12), (10, 20, 30))
    feats = datasets.Features(
        {
            'image': datasets.Image(),
            'image_id': datasets.Value('int64'),
            'objects': datasets.Sequence(
                {
                    'bbox': datasets.Sequence(datasets.Value('float32'), length=4),
                    'category': datasets.ClassLabel(names=['cat', 'dog']),
                    'area': datasets.Value('float32'),
                }
            ),
        }
    )
    ds = datasets.Dataset.from_dict(
        {
            'image': [image, image],
            'image_id': [10, 11],
            'objects': [
                {'bbox': [[1, 2, 3, 4]], 'category': [1], 'area': [12.0]},
                {'bbox': [], 'category': [], 'area': []},
            ],
        },
        features=feats,
    )
    os.makedirs(tmp_path / 'data')
    ds.to_parquet(str(tmp_path / 'data' / 'train-00000-of-00001.parquet'))
    imported = read_dataset(tmp_path)
    assert [c['name'] for c in imported.configuration['classes']] == ['cat', 'dog']
    first, second = list(imported.images)
    assert (first.width, first.height) == (16, 12) and first.split == 'train'
    assert first.file_name == '10.png'  # datasets stored PNG bytes without a path
    assert first.annotations == [
        {'id': '1', 'category': 'dog', 'attributes': {}, 'tool': 'bounding_box',
         'bbox': [1.0, 2.0, 3.0, 4.0], 'area': 12.0}
    ]  # fmt: skip
    assert second.annotations == []
    assert imported.report.as_dict() == {
        'read': {'annotations': 1, 'image files': 2, 'images': 2},
        'skipped': {},
    }

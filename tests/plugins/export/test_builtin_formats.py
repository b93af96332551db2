"""The built-in format plugins end to end: backend -> ExportAction -> files on the storage,
checked with the reference readers (pycocotools) and the format's own importer."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from pycocotools.coco import COCO

from synapse_sdk.errors import ParamsError
from synapse_sdk.formats import read_dataset
from synapse_sdk.loggers import MemoryLogger
from synapse_sdk.plugins.context import RuntimeContext
from synapse_sdk.plugins.discovery import load_plugin


def export(client: Any, fmt: str, **params: Any) -> Path:
    base = {
        'name': fmt,
        'storage': 1,
        'path': 'exports',
        'target': 'task',
        'filter': {'project': 1},
    }
    action = load_plugin(fmt).get_action('export')
    result = action.dispatch({**base, **params}, RuntimeContext(MemoryLogger(), client))
    assert result['failed_count'] == 0, result['errors']
    return Path(result['output_path'])


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob('*'))
        if p.is_file()
    }


def test_coco_loads_in_pycocotools_with_stable_classes(local_client):
    out = export(local_client, 'coco', extra_params={'split': 'train=0.7,val=0.3'})
    tasks = list(local_client.get_tasks({'project': 1})[0])
    project = local_client.get_project(1)
    names = [c['name'] for c in project['configuration']['classes']]
    images = 0
    for split in ('train', 'val'):
        coco = COCO(str(out / 'annotations' / f'instances_{split}.json'))
        cats = coco.loadCats(coco.getCatIds())
        assert [(c['id'], c['name']) for c in cats] == list(enumerate(names, start=1))
        images += len(coco.imgs)
        for img in coco.imgs.values():
            assert (out / 'images' / split / img['file_name']).is_file()
    assert images == len(tasks)
    report = orjson.loads((out / 'export_report.json').read_bytes())
    assert report['items']['exported'] == len(tasks)
    assert sum(report['per_split'].values()) == len(tasks)


def test_ground_truth_split_by_category(local_client):
    version = 1
    events = list(local_client.list_ground_truth_events(
        params={'ground_truth_dataset_version': version}, list_all=True))  # fmt: skip
    out = export(
        local_client,
        'yolo',
        target='ground_truth',
        filter={'ground_truth_dataset_version': version},
        extra_params={'split': 'category'},
    )
    data = yaml.safe_load((out / 'data.yaml').read_text())
    assert data['names'] == {0: 'car', 1: 'person', 2: 'road', 3: 'person_pose', 4: 'sky'}
    counts: dict[str, int] = {}
    for event in events:
        counts[event['category']] = counts.get(event['category'], 0) + 1
    for split, n in counts.items():
        assert len(list((out / 'labels' / split).glob('*.txt'))) == n


@pytest.mark.parametrize('fmt', ['coco', 'yolo', 'voc', 'csv', 'dm'])
def test_exports_are_deterministic_and_import_back(local_client, fmt):
    options = {} if fmt == 'dm' else {'split': 'train=0.5,val=0.5'}  # dm has no splits
    first = export(local_client, fmt, name='a', extra_params=options)
    second = export(local_client, fmt, name='b', extra_params=options)
    a, b = tree_digest(first), tree_digest(second)
    assert a.pop('export_report.json') != b.pop('export_report.json')  # the names differ...
    assert a == b
    reports = [orjson.loads((p / 'export_report.json').read_bytes()) for p in (first, second)]
    for report in reports:
        assert report.pop('params')['name'] in ('a', 'b')
    assert reports[0] == reports[1]  # ...and nothing else does
    if fmt == 'csv':
        return
    source = {
        'coco': first / 'annotations' / 'instances_train.json',
        'yolo': first / 'data.yaml',
        'voc': first,
        'dm': first,
    }[fmt]
    dataset = read_dataset(fmt, source)
    assert len(list(dataset.images)) > 0


def test_over_http_originals_land_in_format_layout(http_client):
    out = export(http_client, 'voc')
    tasks = list(http_client.get_tasks({'project': 1})[0])
    assert len(list((out / 'JPEGImages').iterdir())) == len(tasks)
    assert len(list((out / 'Annotations').glob('*.xml'))) == len(tasks)


@pytest.mark.parametrize(
    ('fmt', 'extra', 'field'),
    [
        ('coco', {'category_id_start': -1}, 'extra_params.category_id_start'),
        ('yolo', {'task': 'bogus'}, 'extra_params.task'),
        ('yolo', {'split': 'train=0'}, 'extra_params.split'),
        ('dm', {'dm_version': 3}, 'extra_params.dm_version'),
        ('csv', {'seed': 'x'}, 'extra_params.seed'),
    ],
)
def test_bad_format_options_are_refused_before_anything_is_created(local_client, fmt, extra, field):
    root = Path(local_client.get_storage(1)['configuration']['location'])
    before = sorted(root.rglob('*'))
    with pytest.raises(ParamsError) as info:
        export(local_client, fmt, extra_params=extra)
    assert field in [f for f, _ in info.value.errors]
    assert sorted(root.rglob('*')) == before


def test_image_size_comes_from_the_file_header_when_the_record_lacks_it(local_client, synapse_home):
    from synapse_sdk.server.store import Store

    media = Path(synapse_home) / 'media'
    source = sorted(p for p in media.rglob('*.jpg') if p.is_file())[0]
    from PIL import Image

    with Image.open(source) as img:
        size = img.size
    store = Store(synapse_home)
    with store.transaction() as conn:
        rel = str(source.relative_to(media))
        files = {'image_1': {'path': rel, 'file_name_original': 'sizeless.jpg'}}
        unit = store.add_data_unit(1, 'sizeless.jpg', None, None, files, conn)
        ghost_files = {'image_1': {'path': '404/ghost.jpg', 'file_name_original': 'ghost.jpg'}}
        ghost_unit = store.add_data_unit(1, 'ghost.jpg', None, None, ghost_files, conn)
        box = {'id': 'b', 'category': 'car', 'tool': 'bounding_box', 'bbox': [1, 1, 5, 5],
               'area': 25.0}  # fmt: skip
        for u in (unit, ghost_unit):
            store.insert('tasks', {'project': 1, 'data_unit': u, 'status': 'completed',
                                   'data': {'annotations': [box]}}, conn)  # fmt: skip
    store.close()
    action = load_plugin('coco').get_action('export')
    params = {'name': 'sz', 'storage': 1, 'target': 'task', 'filter': {'project': 1}}
    result = action.dispatch(params, RuntimeContext(MemoryLogger(), local_client))
    out = Path(result['output_path'])
    coco = COCO(str(out / 'annotations' / 'instances_train.json'))
    image = next(i for i in coco.imgs.values() if i['file_name'] == 'sizeless.jpg')
    assert (image['width'], image['height']) == size
    assert result['failed_count'] == 1  # the ghost: no size in the record, no file to read
    assert result['original_file_metrics']['stand_by'] == 0
    assert result['original_file_metrics']['failed'] == 1
    assert result['data_file_metrics'] == {
        'stand_by': 0,
        'success': result['exported_count'],
        'failed': 1,
    }
    assert not (out / 'images' / 'train' / 'ghost.jpg').exists()
    assert all(i['file_name'] != 'ghost.jpg' for i in coco.imgs.values())
    errors = orjson.loads((out / 'error_file_list.json').read_bytes())
    assert [e['file'] for e in errors if e['kind'] == 'data_file'] == ['ghost.jpg']

"""The store: filter parsing, keyset paging, imports, RLE and the demo."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from synapse_sdk.errors import FilterError, NotFoundError
from synapse_sdk.formats.dataset import ImportedDataset, ImportedImage
from synapse_sdk.server import rle
from synapse_sdk.server.demo import DEMO_CONFIGURATION, create_demo
from synapse_sdk.server.filters import MAX_PAGE_SIZE, parse_query
from synapse_sdk.server.importer import import_dataset
from synapse_sdk.server.store import Store


def ids(store: Store, target: str, params: dict[str, Any]) -> list[int]:
    query = store.query(target, params)
    out, after = [], None
    key = query.target.key
    while True:
        page, more = store.page(query, str, after)
        out += [r[key] for r in page]
        if not more:
            return out
        after = page[-1][key]


@pytest.mark.parametrize(
    ('target', 'params', 'error'),
    [
        ('assignment', {'project': 1}, None),
        ('assignment', {'project': 1, 'Project': 1}, 'Unknown'),
        ('assignment', {}, None),
        ('task', {}, 'Missing required'),
        ('assignment', {'project': True}, 'expects an integer'),
        ('assignment', {'project': 1, 'ids': ''}, 'empty'),
        ('assignment', {'project': 1, 'page_size': 0}, 'page_size'),
        ('assignment', {'project': 1, 'page_size': 'x'}, 'page_size'),
        ('assignment', {'project': 1, 'pagination': 'offset'}, 'pagination'),
        ('assignment', {'project': 1, 'pgh_id__gt': 3}, 'does not apply'),
        ('task', {'project': 1, 'has_assignment': 'yes'}, None),
        ('ground_truth_event', {'ground_truth_dataset_versions': '1,2'}, None),
        (
            'ground_truth_event',
            {'ground_truth_dataset_version': 1, 'ground_truth_dataset_versions': 1},
            'given twice',
        ),
        ('ground_truth_event', {'ground_truth_dataset_version': 1, 'ordering': '-pgh_id'}, None),
        ('ground_truth_event', {'ground_truth_dataset_version': 1, 'ordering': 'id'}, 'ordering'),
    ],
)
def test_parse_query(target: str, params: dict[str, Any], error: str | None) -> None:
    if error is None:
        parse_query(target, params)
    else:
        with pytest.raises(FilterError, match=error):
            parse_query(target, params)


def test_page_size_is_capped() -> None:
    assert parse_query('task', {'project': 1, 'page_size': 10**6}).page_size == MAX_PAGE_SIZE


def test_unknown_key_never_widens(synapse_home: Path) -> None:
    with Store(synapse_home) as store, pytest.raises(FilterError) as info:
        store.query('task', {'project': 1, 'statuss': 'completed'})
    assert 'status' in info.value.supported


def test_keyset_paging_is_exact_in_both_directions(synapse_home: Path) -> None:
    with Store(synapse_home) as store:
        forward = ids(store, 'assignment', {'project': 1, 'page_size': 2})
        backward = ids(store, 'assignment', {'project': 1, 'page_size': 3, 'ordering': '-id'})
        assert forward == sorted(forward) and backward == forward[::-1]
        resumed = ids(store, 'assignment', {'project': 1, 'id__gt': forward[4]})
        assert resumed == forward[5:]


def test_paging_uses_the_key_index(synapse_home: Path) -> None:
    """Page N costs what page 1 costs: the plan seeks by primary key, it does not skip rows."""
    with Store(synapse_home) as store:
        plan = store.conn.execute(
            'EXPLAIN QUERY PLAN SELECT id FROM assignments r WHERE r.project = 1 AND r.id > 5000 '
            'ORDER BY r.id LIMIT 100'
        ).fetchall()
    detail = ' '.join(row[3] for row in plan)
    assert 'SEARCH' in detail and 'TEMP B-TREE' not in detail


def test_a_page_deep_in_a_key_range_costs_what_the_first_costs(synapse_home: Path) -> None:
    """A shard lists its range (``id__gte`` / ``id__lte``) page by page: the cursor, not the
    range's start, must bound the index scan, or each page scans the range again from its
    start (quadratic in the shard's size)."""
    with Store(synapse_home) as store:
        with store.transaction() as conn:
            unit = store.add_data_unit(1, 'x.jpg', 8, 8, {}, conn)
            task = {'project': 1, 'data_unit': unit, 'status': 'completed', 'tags': [], 'data': {}}
            first_id = store.insert('tasks', task, conn)
            for _ in range(3999):
                store.insert('tasks', task, conn)
        query = store.query('task', {'project': 1, 'id__gte': first_id, 'id__lte': first_id + 3999,
                                     'page_size': 100})  # fmt: skip
        steps = [0]

        def count() -> int:
            steps[0] += 1
            return 0

        costs, after, seen = [], None, 0
        store.conn.set_progress_handler(count, 100)  # every 100 SQLite VM instructions
        try:
            while True:
                steps[0] = 0
                page, more = store.page(query, str, after)
                costs.append(steps[0])
                seen += len(page)
                if not more:
                    break
                after = page[-1]['id']
        finally:
            store.conn.set_progress_handler(None, 0)
    assert seen == 4000
    assert max(costs) <= 2 * costs[0] + 5, costs


LISTINGS = [
    ('task', {'project': 1}, 'tasks_listing'),
    ('assignment', {'project': 1}, 'assignments_listing'),
    ('ground_truth_event', {'ground_truth_dataset_version': 1}, 'gt_events_listing'),
]


def light_listing(store: Store, target: str, params: dict[str, Any]) -> tuple[list[Any], str]:
    """The rows of a light listing (``params`` with ``fields``) and SQLite's plan of its query."""
    statements: list[str] = []
    store.conn.set_trace_callback(statements.append)
    try:
        rows, _ = store.page(store.query(target, params), str)
    finally:
        store.conn.set_trace_callback(None)
    (sql,) = [s for s in statements if 'ORDER BY' in s]
    return rows, ' '.join(row[3] for row in store.conn.execute(f'EXPLAIN QUERY PLAN {sql}'))


@pytest.mark.parametrize(('target', 'filters', 'index'), LISTINGS)
def test_a_light_listing_of_names_reads_indexes_not_documents(
    synapse_home: Path, target: str, filters: dict[str, Any], index: str
) -> None:
    """A sharded export lists every record's file name and annotation count before its shards
    run: the listing's plan reads the target's listing index (which holds the annotation
    count) and ``files_name``, and its counts and names are the documents' own."""
    fields = 'id,file_name,unit_name,annotations'
    with Store(synapse_home) as store:
        light, detail = light_listing(store, target, {**filters, 'fields': fields})
        records, _ = store.page(store.query(target, {**filters, 'page_size': 1000}), str)
    assert f'USING INDEX {index}' in detail or f'USING COVERING INDEX {index}' in detail, detail
    assert 'COVERING INDEX files_name' in detail and 'TEMP B-TREE' not in detail, detail
    key = store.query(target, filters).target.key
    assert records and [r[key] for r in light] == [r[key] for r in records]
    for row, record in zip(light, records, strict=True):
        listed = record['data'].get('annotations')
        assert row['annotations'] == (len(listed) if isinstance(listed, list) else None)
        primary = next((f for f in record['data_unit']['files'].values() if f['is_primary']), None)
        assert primary is None or row['file_name'] == primary['file_name_original']


@pytest.mark.parametrize(('target', 'filters', 'index'), LISTINGS)
def test_the_plans_listing_reads_only_the_listing_index(
    synapse_home: Path, target: str, filters: dict[str, Any], index: str
) -> None:
    """Every export plans its selection from a light listing of keys, data units, statuses
    and creation times (``handlers.collect``): the target's own rows come from its index."""
    with Store(synapse_home) as store:
        spec = store.query(target, filters).target
        fields = ','.join(
            f for f in (spec.key, 'data_unit', 'status', 'created') if f in spec.light
        )
        light, detail = light_listing(store, target, {**filters, 'fields': fields})
    assert light and f'SEARCH r USING COVERING INDEX {index}' in detail, detail
    assert 'TEMP B-TREE' not in detail, detail


def test_an_older_home_gets_the_listing_indexes(tmp_path: Path) -> None:
    """A home made before the listing indexes keeps its data; the indexes they replace go."""
    with Store(tmp_path) as store:
        create_demo(tmp_path, images=2)
        before = store.page(store.query('task', {'project': 1, 'fields': 'id,annotations'}), str)
        with store.transaction() as conn:
            for name in ('tasks_listing', 'assignments_listing', 'gt_events_listing'):
                conn.execute(f'DROP INDEX {name}')
            conn.execute('CREATE INDEX tasks_project ON tasks (project, id)')
            conn.execute('CREATE INDEX assignments_project ON assignments (project, id)')
            conn.execute('CREATE INDEX gt_events_version ON ground_truth_events (version, pgh_id)')
    with Store(tmp_path) as store:
        indexes = {
            r[0] for r in store.conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
        }
        after = store.page(store.query('task', {'project': 1, 'fields': 'id,annotations'}), str)
    assert {'tasks_listing', 'assignments_listing', 'gt_events_listing', 'files_name'} <= indexes
    assert not indexes & {'tasks_project', 'assignments_project', 'gt_events_version'}
    assert after == before and before[0]


def test_missing_records(synapse_home: Path) -> None:
    with Store(synapse_home) as store:
        for call in (store.get_project, store.get_storage, store.get_ground_truth_version):
            with pytest.raises(NotFoundError):
                call(404)


def test_create_storage_and_update(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        s3 = store.create_storage('bucket', 's3', {'bucket': 'b', 'endpoint_url': 'http://x'})
        assert store.get_storage(s3['id'])['configuration']['bucket'] == 'b'
        store.update_storage(s3['id'], name='renamed')
        assert store.get_storage(s3['id'])['name'] == 'renamed'


def test_import_dataset(tmp_path: Path) -> None:
    src = tmp_path / 'src'
    src.mkdir()
    Image.new('RGB', (40, 30), 'blue').save(src / 'a.png')
    Image.new('RGB', (20, 10), 'red').save(src / 'b.jpg')
    box = {'category': 'car', 'tool': 'bounding_box', 'bbox': [1, 2, 3, 4], 'area': 12.0}
    dataset = ImportedDataset(
        configuration={'classes': [{'name': 'car', 'tool': 'bounding_box', 'attributes': []}]},
        images=iter([
            ImportedImage('a.png', src / 'a.png', None, None, [box], {'weather': 'rain'}, 'val'),
            ImportedImage('b.jpg', src / 'b.jpg', 20, 10, [], split='test'),
            ImportedImage('sub/ü.jpg', None, 5, 5, [dict(box, id='k')]),
        ]),
    )  # fmt: skip
    home = tmp_path / 'home'
    with Store(home) as store:
        out = import_dataset(store, dataset, title='Imported')
        assert out['data_units'] == out['tasks'] == out['assignments'] == 3
        assert store.get_project(out['project'])['title'] == 'Imported'
        query = store.query('task', {'project': out['project']})
        tasks, _ = store.page(query, lambda p: p)
        first = tasks[0]
        assert (first['data_unit']['width'], first['data_unit']['height']) == (40, 30)
        stored = store.media_dir / first['data_unit']['files']['image_1']['url']
        assert stored.read_bytes() == (src / 'a.png').read_bytes()
        digest = hashlib.sha256(stored.read_bytes()).hexdigest()
        assert first['data_unit']['files']['image_1']['checksum'] == f'sha256:{digest}'
        assert first['data']['annotations'][0]['id'] == 'a1'
        assert first['data']['classifications'] == {'weather': 'rain'}
        assert tasks[2]['data_unit']['files']['image_1']['url'] is None
        assert tasks[2]['data']['annotations'][0]['id'] == 'k'
        events, _ = store.page(
            store.query('ground_truth_event', {'ground_truth_dataset_version': out[
                'ground_truth_dataset_version']}), str)  # fmt: skip
        assert [e['category'] for e in events] == ['validation', 'test', 'train']


def test_failed_import_leaves_nothing(tmp_path: Path) -> None:
    src = tmp_path / 'a.png'
    Image.new('RGB', (4, 4)).save(src)

    def images():
        yield ImportedImage('a.png', src, 4, 4)
        raise ValueError('broken file')

    with Store(tmp_path / 'home') as store:
        with pytest.raises(ValueError):
            import_dataset(store, ImportedDataset({'classes': []}, images()))
        assert store.conn.execute('SELECT COUNT(*) FROM projects').fetchone()[0] == 0
        assert not list(store.media_dir.rglob('*.png'))


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 12), st.integers(1, 12), st.data())
def test_rle_matches_pycocotools(h: int, w: int, data: st.DataObject) -> None:
    mask_util = pytest.importorskip('pycocotools.mask')
    bits = data.draw(st.lists(st.booleans(), min_size=h * w, max_size=h * w))
    mask = np.array(bits, dtype=np.uint8).reshape(h, w)
    ours = rle.encode(mask)
    theirs = mask_util.encode(np.asfortranarray(mask))
    assert ours['counts'] == theirs['counts'].decode()
    assert ours['size'] == list(theirs['size'])
    assert np.array_equal(rle.decode(ours), mask)


def test_rle_large_runs_round_trip() -> None:
    mask = np.zeros((300, 400), dtype=bool)
    mask[:120, :] = True
    mask[200:210, 50:350] = True
    assert np.array_equal(rle.decode(rle.encode(mask)), mask)
    assert rle.decode({'size': [2, 2], 'counts': [1, 2, 1]}).tolist() == [[0, 1], [1, 0]]


def snapshot(home: Path) -> tuple[list[Any], dict[str, bytes]]:
    with Store(home) as store:
        tasks = ids(store, 'task', {'project': 1})
        records = store.page(store.query('task', {'project': 1, 'page_size': 1000}), str)[0]
    files = {
        str(p.relative_to(home / 'media')): p.read_bytes() for p in (home / 'media').rglob('*.*')
    }
    return [tasks, records], files


def test_demo_is_deterministic(tmp_path: Path) -> None:
    a, b, c = tmp_path / 'a', tmp_path / 'b', tmp_path / 'c'
    ids_a = create_demo(a, seed=3, images=9)
    ids_b = create_demo(b, seed=3, images=9)
    create_demo(c, seed=4, images=9)
    assert {**ids_a, 'home': ''} == {**ids_b, 'home': ''}
    assert snapshot(a) == snapshot(b)
    assert snapshot(a)[0] != snapshot(c)[0]


def test_demo_covers_the_document(synapse_home: Path, demo_ids: dict[str, Any]) -> None:
    assert demo_ids['project'] == 1 and demo_ids['storage'] == 1
    with Store(synapse_home) as store:
        assert store.get_project(1)['configuration'] == DEMO_CONFIGURATION
        storage = store.get_storage(1)
        assert storage['provider'] == 'file_system'
        assert storage['configuration']['location'] == str(synapse_home / 'storage')
        tasks = store.page(store.query('task', {'project': 1, 'page_size': 1000}), str)[0]
        events = store.page(
            store.query('ground_truth_event', {'ground_truth_dataset_version': 1}), str
        )[0]
    anns = [a for t in tasks for a in t['data']['annotations']]
    assert {a['tool'] for a in anns} == {'bounding_box', 'polygon', 'keypoint', 'segmentation'}
    assert any(a.get('rotation') for a in anns)
    assert any(not t['data']['annotations'] for t in tasks)
    assert all(
        t['data']['classifications'].get('weather') for t in tasks if t['data']['annotations']
    )
    names = [t['data_unit']['name'] for t in tasks]
    assert len(names) != len(set(names))
    assert any(not n.isascii() for n in names)
    assert {e['category'] for e in events} == {'train', 'validation', 'test'}
    for ann in anns:
        if ann['tool'] == 'segmentation':
            mask = rle.decode(ann['mask'])
            assert mask.sum() == ann['area']
    for task in tasks:
        unit = task['data_unit']
        with Image.open(synapse_home / 'media' / unit['files']['image_1']['url']) as im:
            assert im.size == (unit['width'], unit['height'])


def test_demo_twice_reuses_storage(tmp_path: Path) -> None:
    first = create_demo(tmp_path, images=2)
    second = create_demo(tmp_path, images=2)
    assert (first['project'], second['project']) == (1, 2)
    assert first['storage'] == second['storage'] == 1

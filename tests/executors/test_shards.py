"""The pieces of a sharded export: cutting the plan, naming across shards (also when a record
takes no name), merging parts, and which actions shard at all."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import orjson
import pytest

from synapse_sdk.clients import LocalClient
from synapse_sdk.errors import ExportError, ParamsError
from synapse_sdk.loggers import MemoryLogger
from synapse_sdk.plugins.actions.export import BaseExporter, ExportAction
from synapse_sdk.plugins.actions.export.journal import PartListing, file_digest
from synapse_sdk.plugins.actions.export.merge import (
    CocoMerger,
    MergeContext,
    MergeError,
    Part,
    move_tree,
)
from synapse_sdk.plugins.actions.export.shards import (
    Shard,
    StemSequence,
    cut_shards,
    exporter_not_shardable,
    not_shardable,
    shard_size,
)
from synapse_sdk.plugins.builtin.formats import CocoExportAction, CocoExporter
from synapse_sdk.plugins.context import RuntimeContext
from synapse_sdk.plugins.executors import Execution, run_action
from synapse_sdk.server.store import Store

from .helpers import assert_same_export, sharded, single


def test_shards_are_contiguous_key_ranges_covering_every_sample():
    keys = np.array([3, 4, 9, 10, 11, 40, 41], dtype=np.int64)
    shards = cut_shards(keys, 3)
    assert shards == [Shard(0, 0, 3, 3, 9), Shard(1, 3, 6, 10, 40), Shard(2, 6, 7, 41, 41)]
    assert sum(s.expected for s in shards) == len(keys)
    assert shards[1].describe() == 'shard 1 (ids 10..40, 3 items)'


@pytest.mark.parametrize(
    ('count', 'workers', 'size', 'expected'),
    [(100, 2, None, 100), (100_000, 2, None, 12_500), (100_000, 8, None, 3_125),
     (5_000, 2, None, 1_000), (50, 2, 7, 7)],
)  # fmt: skip
def test_shard_size(count, workers, size, expected):
    assert shard_size(count, workers, size) == expected


def test_stem_sequence_passes_over_records_that_never_became_items():
    entries = [(1, 10, 'a', '.jpg', False), (2, 20, 'b', '.jpg', False),
               (3, 20, 'b_1', '.jpg', True), (4, 40, 'c', '.png', False)]  # fmt: skip
    stems = StemSequence(entries)
    assert stems[10] == ('a', '.jpg', False)
    assert stems[20] == ('b', '.jpg', False)  # a repeated item id: taken in order
    assert stems[40] == ('c', '.png', False)  # key 3 never came (unreadable)
    with pytest.raises(KeyError):
        stems[99]
    assert stems.skipped() == [3]


def test_a_record_that_takes_no_name_is_named_as_one_process_names_it(tmp_path):
    """A record whose media kind the plugin does not take (a point cloud) fails alone and,
    in one process, takes no name: the later ``x.jpg`` keeps ``x.jpg``. The shards first name
    it ``x_1.jpg``, hear that the point cloud took no name, and the shard is run again."""
    home = tmp_path / 'home'
    from synapse_sdk.server.demo import create_demo

    create_demo(home, seed=1, images=12)
    with Store(home) as store, store.transaction() as conn:
        project = 1
        for key, name in (('pcd_1', 'x.jpg'), ('image_1', 'x.jpg')):
            files = {key: {'path': None, 'file_name_original': name, 'is_primary': True}}
            unit = store.add_data_unit(project, name, 64, 48, files, conn)
            store.insert('tasks', {'project': project, 'data_unit': unit, 'status': 'completed',
                                   'tags': [], 'data': {'annotations': []}}, conn)  # fmt: skip
    client = LocalClient(home)
    params = {'name': 'renamed', 'storage': 1, 'target': 'task', 'filter': {'project': 1},
              'save_original_file': False}  # fmt: skip
    expected = single(client, 'coco', params)
    logger = MemoryLogger()
    got = sharded(client, 'coco', params, Execution(shard_size=3, resume=True), logger=logger)
    assert_same_export(expected, got)
    images = orjson.loads((got[2] / 'annotations' / 'instances_train.json').read_bytes())
    assert [i['file_name'] for i in images['images']][-1] == 'x.jpg'
    assert got[0]['failed_count'] == 1
    messages = [m['message'] for m in logger.of_type('message')]
    assert any('take no file name' in m and 'run again' in m for m in messages), messages
    client.close()


def test_parts_writing_one_path_with_different_bytes_do_not_merge(tmp_path):
    a, b, root = tmp_path / 'a', tmp_path / 'b', tmp_path / 'root'
    for part, text in ((a, 'one'), (b, 'two')):
        (part / 'z_labels').mkdir(parents=True)
        (part / 'z_labels' / 'same.txt').write_text(text)
        (part / 'shared.txt').write_text('alike')
    move_tree(a, root)
    assert not (a / 'z_labels').exists()  # a directory the root lacked moves over whole
    with pytest.raises(MergeError, match=r'z_labels/same\.txt'):
        move_tree(b, root)
    assert (root / 'shared.txt').read_text() == 'alike'
    assert not (b / 'shared.txt').exists()  # the same bytes: kept once


def test_coco_parts_giving_one_image_id_twice_do_not_merge(tmp_path):
    header = b'{"info":{},\n"licenses":[],\n"categories":[],\n"images":['
    for n in (0, 1):
        ann = tmp_path / f'p{n}' / 'annotations'
        ann.mkdir(parents=True)
        (ann / 'instances_train.json').write_bytes(
            header + b'\n{"id":5}\n],\n"annotations":[\n{"id":1,"image_id":5}\n]}\n'
        )
    parts = [Part(n, tmp_path / f'p{n}', {'annotation_ids': 1}) for n in (0, 1)]
    with pytest.raises(MergeError, match='image id 5'):
        CocoMerger().merge(tmp_path / 'root', parts, MergeContext())


class OwnSource(ExportAction):
    def get_filtered_results(self, filters: dict[str, Any]) -> tuple[Any, int]:
        return [], 0


class Stateful(BaseExporter):
    shardable: ClassVar[bool] = False


def test_which_actions_and_exporters_shard():
    assert not_shardable(CocoExportAction) is None
    assert exporter_not_shardable(CocoExporter) is None
    assert exporter_not_shardable(BaseExporter) is None
    assert 'overrides get_filtered_results' in str(not_shardable(OwnSource))
    assert 'shardable = False' in str(exporter_not_shardable(Stateful))


def test_execution_options_are_checked():
    with pytest.raises(ParamsError, match='--workers'):
        Execution(workers=0)
    with pytest.raises(ParamsError, match='allowed: local, ray, job'):
        Execution(mode='cluster')
    with pytest.raises(ParamsError, match='--ray-address'):
        Execution(ray_address='127.0.0.1:6379')


def test_a_client_workers_cannot_rebuild_is_refused(synapse_home: Path):
    class Custom:
        pass

    with pytest.raises(ParamsError, match='cannot be rebuilt in a worker'):
        run_action(CocoExportAction, {'name': 'x', 'storage': 1, 'target': 'task',
                                      'filter': {'project': 1}},
                   RuntimeContext(MemoryLogger(), Custom()), Execution(workers=2))  # fmt: skip


def test_a_worker_that_cannot_see_the_staging_directory_says_so(tmp_path):
    """A Ray node on another machine without the storage mounted: the shard fails at once,
    naming the directory, instead of writing somewhere no one merges from."""
    from synapse_sdk.plugins.actions.export.selection import SelectionPlan
    from synapse_sdk.plugins.actions.export.shards import PlanSlice, ShardPayload, run_shard
    from synapse_sdk.plugins.executors.tasks import ActionRef, ClientSpec

    plan = SelectionPlan('id', np.array([1, 2], dtype=np.int64), None, (), 2, 2, 'latest')
    shard = Shard(0, 0, 2, 1, 2)
    payload = ShardPayload(
        action=ActionRef.of(CocoExportAction), params={}, client=ClientSpec('local'), env={},
        staging=str(tmp_path / 'not-here'), shard=shard, filters={}, project=None, count=2,
        plan=PlanSlice.of(plan, shard), stems=[],
    )  # fmt: skip
    with pytest.raises(ExportError, match='not visible to this worker'):
        run_shard(payload, lambda batch: None)


def _walk_listing(root: Path, special: str) -> dict[str, Any]:
    """What a part holds, walked before it moves: every file's size and time, and a digest
    of the top-level and special ones."""
    files: dict[str, list[Any]] = {}
    dirs = []
    for path in sorted(root.rglob('*')):
        rel = path.relative_to(root).as_posix()
        if path.is_dir():
            dirs.append(rel)
            continue
        st = path.stat()
        entry: list[Any] = [st.st_size, st.st_mtime_ns]
        if '/' not in rel or rel == special:
            entry.append(file_digest(path))
        files[rel] = entry
    return {'files': files, 'dirs': sorted(dirs)}


def _part(root: Path, n: int) -> None:
    for rel, text in ((f'labels/train/{n}.txt', f'{n}'), (f'labels/val/deep/{n}.txt', 'v'),
                      (f'images/{n}.jpg', 'jpg' * n), ('labels.txt', 'alike'),
                      (f'annotations/instances_{n}.json', '{}'), ('annotations/keep.json', f'{n}'),
                      (f'empty_{n}/', '')):  # fmt: skip
        path = root / rel
        if rel.endswith('/'):
            path.mkdir(parents=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.mark.parametrize('links', [True, False])
def test_a_part_is_listed_as_it_moves(tmp_path, monkeypatch, links):
    """The journal's listing of a part comes from the move itself (one pass): every file, its
    size and time, a digest of the files that stay and of the top-level ones, every directory;
    a directory the export lacks moves whole, the others file by file, special files stay."""
    if not links:  # a filesystem without hard links (none can be mounted here): rename instead

        def no_link(*args: Any, **kwargs: Any) -> None:
            raise PermissionError(1, 'Operation not permitted')

        monkeypatch.setattr('os.link', no_link)
    root = tmp_path / 'root'
    special = CocoMerger()  # annotations/*.json stay for the merge
    for n in (1, 2):
        part = tmp_path / f'p{n}'
        _part(part, n)
        expected = _walk_listing(part, f'annotations/instances_{n}.json')
        expected['files']['annotations/keep.json'].append(
            file_digest(part / 'annotations/keep.json'))  # fmt: skip
        listing = PartListing(part)
        special.move_items(part, root, listing)
        assert listing.files == expected['files']
        assert sorted(listing.dirs) == expected['dirs']
        left = sorted(p.relative_to(part).as_posix() for p in part.rglob('*') if p.is_file())
        assert left == [f'annotations/instances_{n}.json', 'annotations/keep.json']
    moved = sorted(p.relative_to(root).as_posix() for p in root.rglob('*') if p.is_file())
    assert moved == [
        *('images/1.jpg', 'images/2.jpg', 'labels.txt', 'labels/train/1.txt'),
        *('labels/train/2.txt', 'labels/val/deep/1.txt', 'labels/val/deep/2.txt'),
    ]
    assert (root / 'empty_1').is_dir() and (root / 'empty_2').is_dir()
    assert (root / 'images/2.jpg').read_text() == 'jpgjpg'


@pytest.mark.parametrize('skipped', [False, True], ids=['all-exported', 'one-skipped'])
def test_coco_parts_start_their_annotation_ids_where_one_process_would(
    tmp_path, monkeypatch, skipped
):
    """A shard's COCO annotation ids start after the annotations the earlier shards' samples
    list, so the merge copies them as they are; after a record whose annotation the writer
    skips (a class the project lacks), the later parts are renumbered. The same bytes
    either way."""
    from synapse_sdk.plugins.actions.export import merge
    from synapse_sdk.server.demo import create_demo

    home = tmp_path / 'home'
    create_demo(home, seed=3, images=40)
    if skipped:
        with Store(home) as store, store.transaction() as conn:
            task, data = conn.execute(
                'SELECT id, data FROM tasks WHERE project = 1 ORDER BY id LIMIT 1 OFFSET 17'
            ).fetchone()
            doc = orjson.loads(data)
            doc['annotations'].append(
                {'id': 'typo', 'category': 'nope', 'tool': 'bounding_box', 'bbox': [1, 1, 4, 4]}
            )
            conn.execute('UPDATE tasks SET data = ? WHERE id = ?', (orjson.dumps(doc), task))
    shifts: list[int] = []
    shift = merge.shift_annotation_ids
    monkeypatch.setattr(merge, 'shift_annotation_ids', lambda data, offset, *rest: (
        shifts.append(offset) or shift(data, offset, *rest)))  # fmt: skip
    client = LocalClient(home)
    params = {'name': 'ids', 'storage': 1, 'target': 'task', 'filter': {'project': 1},
              'save_original_file': False}  # fmt: skip
    expected = single(client, 'coco', params)
    got = sharded(client, 'coco', params, Execution(workers=2, shard_size=7))
    client.close()
    assert_same_export(expected, got)
    assert len(shifts) >= 5, shifts
    if skipped:
        assert shifts[0] == 0 and shifts[-1] == -1, shifts
    else:
        assert not any(shifts), shifts


def test_a_backend_without_annotation_counts_still_lists_the_names(synapse_home: Path):
    """Another backend may refuse the ``annotations`` light column (an unknown field): the
    names are listed without the counts (COCO parts are then renumbered by the merge)."""
    from synapse_sdk.errors import FilterError
    from synapse_sdk.plugins.actions.export.shards import _light_name_rows

    client = LocalClient(synapse_home)
    asked: list[list[str]] = []

    def older(target: str, filters: dict[str, Any], fields: list[str], **kw: Any) -> Any:
        asked.append(list(fields))
        if 'annotations' in fields:
            raise FilterError('fields: unknown field(s) annotations')
        return LocalClient.iter_fields(client, target, filters, fields, **kw)

    client.iter_fields = older  # type: ignore[method-assign]  # a backend this SDK can't run
    rows = _light_name_rows(client, 'task', {'project': 1}, 'id', counts=True)
    assert rows is not None
    listed = list(rows)
    client.close()
    assert listed and all(count is None for *_, count in listed)
    assert [('annotations' in f) for f in asked] == [True, False]
    with LocalClient(synapse_home) as current:
        counted = _light_name_rows(current, 'task', {'project': 1}, 'id', counts=True)
        assert counted is not None
        current_rows = list(counted)
    assert [row[:3] for row in current_rows] == [row[:3] for row in listed]
    assert any(row[3] for row in current_rows)


def test_a_worker_names_rows_ahead_until_the_driver_has_planned(synapse_home: Path, tmp_path):
    """The names task lists and names chunk after chunk until the driver's sign appears (it
    finishes the chunk it is on), or the selection or its cap ends."""
    from synapse_sdk.formats.names import StemAllocator
    from synapse_sdk.plugins.actions.export.shards import ListedAhead, NamesPayload, list_names
    from synapse_sdk.plugins.executors.tasks import ClientSpec

    with LocalClient(synapse_home) as client:
        spec, _ = ClientSpec.of(client)
        everything = list(client.iter_fields('task', {'project': 1}, ['id']))
    planned = tmp_path / 'planned'

    def ahead(**kw: Any) -> ListedAhead:
        payload = NamesPayload(spec, 'task', {'project': 1}, 'id', str(planned), **kw)
        result = pickle.loads(pickle.dumps(list_names(payload, lambda batch: None)))
        assert result is not None
        return result

    whole = ahead(chunk=5)
    assert whole.complete and [r[0] for r in whole.rows] == [r['id'] for r in everything]
    assert len(whole.entries) == len(everything)
    assert whole.entries[0] == (whole.keys[0], whole.ids[0], *StemAllocator().allocate(
        whole.names[0], fallback=str(whole.ids[0])))  # fmt: skip
    capped = ahead(chunk=5, cap=7)
    assert not capped.complete and len(capped.rows) == 7
    assert capped.entries == whole.entries[:7]
    planned.touch()
    stopped = ahead(chunk=5)
    assert not stopped.complete and stopped.entries == whole.entries[:5]

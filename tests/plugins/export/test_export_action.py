"""ExportAction end to end on the embedded backend: locally and over real HTTP."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import orjson
import pytest

from synapse_sdk.errors import ExportError, ParamsError, StepError
from synapse_sdk.server.store import Store

from .helpers import SpecExporter, action_for, run, storage_root

JsonExportAction = action_for(SpecExporter, action_name='json_export')


def item_ids(out: Path) -> list[int]:
    return sorted(orjson.loads(p.read_bytes())['id'] for p in (out / 'json').glob('*.json'))


def records(client: Any, target: str, filters: dict[str, Any]) -> list[dict[str, Any]]:
    if target == 'task':
        return list(client.get_tasks(filters)[0])
    if target == 'assignment':
        return list(client.get_assignments(filters)[0])
    return list(client.list_ground_truth_events(params=filters, list_all=True))


@pytest.mark.parametrize(
    ('target', 'filters'),
    [
        ('task', {'project': 1}),
        ('task', {'project': 1, 'status': 'completed'}),
        ('assignment', {'project': 1}),
        ('ground_truth', {'ground_truth_dataset_version': 1}),
    ],
)
def test_each_target_exports_every_selected_record_once(local_client, target, filters):
    expected = records(local_client, target, filters)
    # sample_policy all: every record is a sample (the default keeps one per data unit)
    result = run(
        local_client,
        JsonExportAction,
        target=target,
        filter=filters,
        save_original_file=False,
        sample_policy='all',
    )
    out = Path(result['output_path'])
    assert out == storage_root(local_client) / 'exports' / 'out'
    assert result['exported_count'] == len(expected) > 0
    assert item_ids(out) == sorted(r['id'] for r in expected)
    assert orjson.loads((out / 'metadata.json').read_bytes())['total_items'] == len(expected)
    assert orjson.loads((out / 'error_file_list.json').read_bytes()) == []
    report = orjson.loads((out / 'export_report.json').read_bytes())
    assert report['items'] == {'total': len(expected), 'exported': len(expected), 'failed': 0}
    hidden = [p.name for p in out.parent.iterdir() if p.name.startswith('.')]
    assert hidden == []


def test_over_http_originals_match_byte_for_byte(http_client, synapse_home):
    result = run(http_client, JsonExportAction)
    out = Path(result['output_path'])
    tasks = records(http_client, 'task', {'project': 1})
    originals = sorted((out / 'origin_files').iterdir())
    assert len(originals) == len(tasks) == result['exported_count']
    assert result['original_file_metrics'] == {
        'stand_by': 0,
        'success': len(tasks),
        'failed': 0,
    }
    media = {
        hashlib.sha256(p.read_bytes()).hexdigest()
        for p in (Path(synapse_home) / 'media').rglob('*')
        if p.is_file()
    }
    assert {hashlib.sha256(p.read_bytes()).hexdigest() for p in originals} <= media
    # duplicate file names were kept apart, not overwritten
    stems = [p.stem for p in (out / 'json').iterdir()]
    assert len(set(stems)) == len(tasks)


def test_name_collisions_get_numbered(local_client):
    first = run(local_client, JsonExportAction, save_original_file=False)['output_path']
    second = run(local_client, JsonExportAction, save_original_file=False)['output_path']
    assert Path(second).name == 'out(1)' and Path(first).name == 'out'


def test_broken_record_is_reported_and_the_rest_exported(local_client, synapse_home):
    store = Store(synapse_home)
    with store.transaction() as conn:
        unit = store.add_data_unit(1, 'ghost.jpg', 10, 10, {}, conn)  # a unit with no file
        broken = store.insert(
            'tasks', {'project': 1, 'data_unit': unit, 'status': 'completed', 'data': {}}, conn
        )
    store.close()

    class Picky(SpecExporter):
        def convert_data(self, data):
            if not data.get('files'):
                raise ValueError('record has no data unit')
            return super().convert_data(data)

    class PickyAction(JsonExportAction):
        @property
        def entrypoint(self):
            return Picky

    total = len(records(local_client, 'task', {'project': 1}))
    result = run(local_client, PickyAction, save_original_file=False)
    out = Path(result['output_path'])
    errors = orjson.loads((out / 'error_file_list.json').read_bytes())
    assert [(e['id'], e['kind']) for e in errors] == [(broken, 'data_file')]
    assert 'no data unit' in errors[0]['reason']
    assert result['exported_count'] == total - 1 and result['failed_count'] == 1
    assert broken not in item_ids(out)
    assert result['data_file_metrics'] == {'stand_by': 0, 'success': total - 1, 'failed': 1}

    with pytest.raises(StepError) as info:
        run(local_client, PickyAction, name='strict', extra_params={'on_error': 'fail'})
    assert 'no data unit' in str(info.value.__cause__)
    assert not (storage_root(local_client) / 'exports' / 'strict').exists()


def test_crash_mid_save_leaves_nothing_at_the_final_path(local_client):
    class Crashing(SpecExporter):
        def save_as_json(self, result, base_path, error_file_list):
            if self.current and self.current.id == 3:
                raise KeyboardInterrupt  # not an item error: the run dies here
            return super().save_as_json(result, base_path, error_file_list)

    class CrashingAction(JsonExportAction):
        @property
        def entrypoint(self):
            return Crashing

    exports = storage_root(local_client) / 'exports'
    with pytest.raises(KeyboardInterrupt):
        run(local_client, CrashingAction)
    assert not (exports / 'out').exists()
    assert [p.name for p in exports.iterdir()] == [] if exports.exists() else True


def test_every_item_failing_fails_the_export_and_rolls_back(local_client):
    class Hopeless(SpecExporter):
        def convert_data(self, data):
            raise ValueError('nope')

    class HopelessAction(JsonExportAction):
        @property
        def entrypoint(self):
            return Hopeless

    with pytest.raises(StepError) as info:
        run(local_client, HopelessAction)
    assert isinstance(info.value.__cause__, ExportError)
    assert 'Every item failed' in str(info.value.__cause__) and 'nope' in str(info.value.__cause__)
    exports = storage_root(local_client) / 'exports'
    assert not exports.exists() or list(exports.iterdir()) == []


@pytest.mark.parametrize(
    ('params', 'field'),
    [
        ({'name': '../../x'}, 'name'),
        ({'path': '../..'}, 'path'),
        ({'storage': 999}, 'storage'),
        ({'filter': {}}, 'filter.project'),
        ({'target': 'assignment', 'filter': {'status': 'approved'}}, 'filter.project'),
        ({'filter': {'project': 99}}, 'filter.project'),
        ({'target': 'ground_truth', 'filter': {'ground_truth_dataset_version': 77}}, 'filter'),
        ({'filter': {'project': 1, 'colour': 'red'}}, 'filter'),
        (
            {'target': 'ground_truth', 'filter': {'project': 1}},
            'filter.ground_truth_dataset_version',
        ),
    ],
)
def test_bad_params_are_refused_before_any_directory_is_made(local_client, params, field):
    root = storage_root(local_client)
    before = sorted(p.relative_to(root) for p in root.rglob('*')) if root.exists() else []
    with pytest.raises(ParamsError) as info:
        run(local_client, JsonExportAction, **params)
    assert field in [f for f, _ in info.value.errors]
    after = sorted(p.relative_to(root) for p in root.rglob('*')) if root.exists() else []
    assert after == before


def test_failed_download_is_reported_and_the_export_goes_on(local_client, synapse_home):
    store = Store(synapse_home)
    with store.transaction() as conn:
        files = {'image_1': {'path': '999/lost.jpg', 'file_name_original': 'lost.jpg'}}
        unit = store.add_data_unit(1, 'lost.jpg', 10, 10, files, conn)
        lost = store.insert(
            'tasks', {'project': 1, 'data_unit': unit, 'status': 'completed', 'data': {}}, conn
        )
    store.close()
    total = len(records(local_client, 'task', {'project': 1}))
    result = run(local_client, JsonExportAction)
    out = Path(result['output_path'])
    assert result['exported_count'] == total and result['failed_count'] == 0
    assert result['original_file_metrics'] == {'stand_by': 0, 'success': total - 1, 'failed': 1}
    errors = orjson.loads((out / 'error_file_list.json').read_bytes())
    assert [(e['id'], e['kind'], e['file']) for e in errors] == [
        (lost, 'original_file', 'lost.jpg')
    ]
    assert (
        errors[0]['reason'].startswith('download of file:')
        and 'No such file' in errors[0]['reason']
    )
    assert len(list((out / 'origin_files').iterdir())) == total - 1

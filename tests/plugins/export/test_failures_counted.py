"""Failures are counted, never hidden (issue 9), ``strict`` fails the run on any of them
(CONTRACTS #3), and the result says what was skipped, converted or clamped (CONTRACTS #5)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from synapse_sdk.clients import LocalClient
from synapse_sdk.errors import ExportError, ItemExportError, StepError
from synapse_sdk.loggers import MemoryLogger
from synapse_sdk.plugins.actions.export import (
    BaseExporter,
    ExportTargetHandler,
    TargetHandlerFactory,
)
from synapse_sdk.plugins.builtin import formats
from synapse_sdk.plugins.context import RuntimeContext
from synapse_sdk.server.store import Store

from .helpers import action_for, run, storage_root

TemplateAction = action_for(BaseExporter)


def exports(client: Any) -> Path:
    return storage_root(client) / 'exports'


def nothing_published(client: Any) -> bool:
    root = exports(client)
    return not root.exists() or list(root.iterdir()) == []


def tasks(client: Any, **filters: Any) -> list[dict[str, Any]]:
    return list(client.get_tasks({'project': 1, **filters})[0])


def add_task(home: Path, name: str, data: Any, files: Any = None, **unit: Any) -> int:
    with Store(home) as store, store.transaction() as conn:
        size = {'width': unit.get('width', 64), 'height': unit.get('height', 48)}
        unit_id = store.add_data_unit(1, name, size['width'], size['height'], files or {}, conn)
        record = {'project': 1, 'data_unit': unit_id, 'status': 'completed', 'data': data}
        return int(store.insert('tasks', record, conn))


def errors_of(result: dict[str, Any]) -> list[dict[str, Any]]:
    return orjson.loads((Path(result['output_path']) / 'error_file_list.json').read_bytes())


# -- missing and failed originals --------------------------------------------------------------
@pytest.fixture
def originless(synapse_home: Path) -> tuple[int, int]:
    """One task whose data unit has no file, one whose file is gone from the media folder."""
    missing = add_task(synapse_home, 'nofile.jpg', {'annotations': []})
    files = {'image_1': {'path': '999/lost.jpg', 'file_name_original': 'lost.jpg'}}
    lost = add_task(synapse_home, 'lost.jpg', {'annotations': []}, files)
    return missing, lost


@pytest.mark.parametrize('action', [TemplateAction, formats.YoloExportAction])
def test_missing_and_failed_originals_are_failures_in_the_result(local_client, originless, action):
    missing, lost = originless
    n = len(tasks(local_client))
    result = run(local_client, action)
    assert result['failed_original_count'] == 2
    assert result['original_file_metrics'] == {'stand_by': 0, 'success': n - 2, 'failed': 2}
    assert result['failed_count'] == 0 and result['exported_count'] == n  # the data is fine
    listed = [(e['kind'], e['id']) for e in errors_of(result)]
    assert listed == [('original_file', missing), ('original_file', lost)]
    assert len(result['errors']) == 2 and all(
        'Original file of item' in e for e in result['errors']
    )
    assert any('2 original files could not be saved' in w for w in result['warnings'])


@pytest.mark.parametrize('action', [TemplateAction, formats.CocoExportAction])
def test_on_error_fail_fails_the_run_on_a_missing_original(local_client, originless, action):
    with pytest.raises(StepError) as info:
        run(local_client, action, extra_params={'on_error': 'fail'})
    cause = info.value.__cause__
    assert isinstance(cause, ItemExportError) and cause.item_id in originless
    assert 'original file' in str(cause)
    assert nothing_published(local_client)


# -- one bad record fails alone ------------------------------------------------------------------
@pytest.mark.parametrize('action', [TemplateAction, formats.CocoExportAction])
def test_a_record_with_an_object_where_a_list_belongs_fails_alone(
    local_client, synapse_home, action
):
    n = len(tasks(local_client))
    bad = add_task(synapse_home, 'bad.jpg', {'annotations': {'a': 1}})
    result = run(local_client, action, save_original_file=False)
    assert result['exported_count'] == n and result['failed_count'] == 1
    (error,) = errors_of(result)
    assert error['id'] == bad and error['file'] == 'bad.jpg'
    assert 'could not be read' in error['reason'] and 'TypeError' in error['reason']
    assert result['errors'] == [f'Item {bad} (bad.jpg): {error["reason"]}']
    assert result['data_file_metrics'] == {'stand_by': 0, 'success': n, 'failed': 1}


@pytest.mark.parametrize(
    ('data', 'message'),
    [
        ({'annotations': 'abc'}, '"data.annotations" must be a list, got a string'),
        ({'annotations': [], 'classifications': [1]}, '"data.classifications" must be an object'),
    ],
)
def test_format_exports_name_the_bad_field_of_a_record(local_client, synapse_home, data, message):
    bad = add_task(synapse_home, 'bad.jpg', data)
    result = run(local_client, formats.YoloExportAction, save_original_file=False)
    (error,) = errors_of(result)
    assert error['id'] == bad and message in error['reason']
    with pytest.raises(StepError) as info:
        run(local_client, formats.YoloExportAction, name='f', extra_params={'on_error': 'fail'})
    assert f'item {bad} (bad.jpg)' in str(info.value.__cause__)


def test_a_whole_number_float_size_is_a_size(tmp_path):
    """A backend that serialises sizes as floats (``256.0``) still gives sizes."""
    box = {'id': 'b', 'category': 'car', 'tool': 'bounding_box', 'bbox': [4, 4, 8, 8], 'area': 64}
    item = {
        'id': 7,
        'data': {'annotations': [box]},
        'files': {'file_name_original': 'floaty.jpg'},
        'data_unit': {'id': 7, 'name': 'floaty.jpg', 'width': 256.0, 'height': 128.0},
    }
    project = {'configuration': {'classes': [{'name': 'car', 'tool': 'bounding_box'}]}}
    exporter = formats.YoloExporter(
        RuntimeContext(MemoryLogger()), [item], tmp_path / 'out', name='f', count=1,
        save_original_file=False, project=project,
    )  # fmt: skip
    summary = exporter.export()
    assert summary['failed_count'] == 0, summary['errors']
    label = tmp_path / 'out' / 'labels' / 'train' / 'floaty.txt'
    assert label.read_text() == '0 0.031250 0.062500 0.031250 0.062500\n'


# -- records added or removed mid-export ---------------------------------------------------------
class Meddler(BaseExporter):
    """Changes the selection while the export runs (after the first item)."""

    change: Any = None

    def convert_data(self, data: dict[str, Any]) -> dict[str, Any]:
        if self.change is not None:
            change, type(self).change = type(self).change, None
            change()
        return data


class Unplanned(ExportTargetHandler):
    required_filters = ('project',)

    def get_results(self, client: Any, filters: dict[str, Any]) -> tuple[Any, int]:
        return client.get_tasks(filters)


def test_records_added_or_removed_mid_export_are_reported(synapse_home):
    client = LocalClient(synapse_home, page_size=2)  # pages are fetched as the export goes
    try:
        completed = tasks(client, status='completed')
        assert len(completed) >= 6
        drop = [t['id'] for t in completed[-3:]]

        def remove() -> None:
            with Store(synapse_home) as store, store.transaction() as conn:
                marks = ','.join('?' * len(drop))
                conn.execute(f"UPDATE tasks SET status = 'rejected' WHERE id IN ({marks})", drop)

        Meddler.change = remove
        flt = {'project': 1, 'status': 'completed'}
        result = run(client, action_for(Meddler), filter=flt, save_original_file=False)
        assert result['expected_count'] == len(completed)
        assert result['total_count'] == result['exported_count'] == len(completed) - 3
        assert result['data_file_metrics'] == {'stand_by': 0, 'success': len(completed) - 3,
                                               'failed': 0}  # fmt: skip
        assert any('3 records removed from the selection' in w for w in result['warnings'])

        def add() -> None:
            for n in range(2):
                add_task(synapse_home, f'late_{n}.jpg', {'annotations': []})

        # The built-in handlers export the selection planned at the start; a custom source
        # (no plan) streams whatever the backend holds as it goes.
        TargetHandlerFactory.register_handler('unplanned_task', Unplanned)
        Meddler.change = add
        before = len(tasks(client))
        result = run(
            client, action_for(Meddler), name='o2', target='unplanned_task',
            save_original_file=False,
        )  # fmt: skip
        assert result['expected_count'] == before
        assert result['total_count'] == result['exported_count'] == before + 2
        assert result['data_file_metrics']['stand_by'] == 0
        assert any('2 records added to the selection' in w for w in result['warnings'])
        report = orjson.loads((Path(result['output_path']) / 'export_report.json').read_bytes())
        assert report['expected_total'] == before and report['items']['total'] == before + 2
    finally:
        TargetHandlerFactory._handlers.pop('unplanned_task', None)
        client.close()


# -- reports are indented ----------------------------------------------------------------------
def test_reports_are_written_indented(local_client, synapse_home):
    add_task(synapse_home, 'nofile.jpg', {'annotations': []})
    out = Path(run(local_client, TemplateAction)['output_path'])
    for name in ('export_report.json', 'error_file_list.json'):
        text = (out / name).read_text(encoding='utf-8')
        assert text.startswith(('{\n  "', '[\n  {\n    "')), text[:40]
        assert text.endswith('\n')
        orjson.loads(text)


# -- strict and the result's counts --------------------------------------------------------------
def test_the_result_surfaces_skips_conversions_and_clamps(local_client, synapse_home):
    ghost = {'id': 'g', 'category': 'ghost', 'tool': 'bounding_box', 'bbox': [1, 1, 2, 2]}
    add_task(synapse_home, 'ghost.jpg', {'annotations': [ghost, dict(ghost, id='h')]})
    result = run(local_client, formats.YoloExportAction, save_original_file=False)
    report = orjson.loads((Path(result['output_path']) / 'export_report.json').read_bytes())
    assert result['skipped'] == report['skipped_reasons']
    assert result['skipped']["class 'ghost' not in the project configuration"] == 2
    assert result['converted'] == report['converted_reasons'] and result['converted']
    assert result['clamped'] == report['annotations']['clamped']
    assert (
        "2 annotations skipped: class 'ghost' not in the project configuration"
        in (result['warnings'])
    )
    for what, n in result['converted'].items():
        assert f'{n} annotations converted: {what}' in result['warnings']


def test_strict_passes_when_nothing_was_lost(local_client):
    result = run(local_client, formats.DmExportAction, strict=True)  # dm carries everything
    assert result['skipped'] == {} and result['clamped'] == 0 and result['failed_count'] == 0


def test_strict_fails_on_a_skipped_annotation_and_publishes_nothing(local_client, synapse_home):
    ghost = {'id': 'g', 'category': 'ghost', 'tool': 'bounding_box', 'bbox': [1, 1, 2, 2]}
    bad = add_task(synapse_home, 'ghost.jpg', {'annotations': [ghost]})
    action = formats.CocoExportAction
    assert run(local_client, action, name='lax', save_original_file=False)['skipped']
    with pytest.raises(StepError) as info:
        only_ghost = {'project': 1, 'ids': [bad]}
        run(local_client, action, name='strict', strict=True, save_original_file=False,
            filter=only_ghost)  # fmt: skip
    cause = info.value.__cause__
    assert isinstance(cause, ExportError) and cause.__class__ is ExportError
    assert 'strict' in str(cause) and "class 'ghost'" in str(cause)
    assert f'item {bad} (ghost.jpg)' in str(cause)
    assert not (exports(local_client) / 'strict').exists()


def test_strict_fails_on_a_clamped_annotation(local_client):
    action = formats.CocoExportAction  # the demo's only loss in COCO is one clamped box
    assert run(local_client, action, name='lax')['clamped'] > 0  # the demo has one
    with pytest.raises(StepError, match='clamped'):
        run(local_client, action, name='strict', strict=True)
    assert not (exports(local_client) / 'strict').exists()


def test_strict_fails_on_a_failed_item(local_client, synapse_home):
    add_task(synapse_home, 'bad.jpg', {'annotations': {'a': 1}})
    with pytest.raises(StepError, match='could not be read'):
        run(local_client, TemplateAction, strict=True, save_original_file=False)
    assert nothing_published(local_client)


def test_strict_fails_on_a_failed_original(local_client, synapse_home):
    add_task(synapse_home, 'nofile.jpg', {'annotations': []})
    with pytest.raises(StepError, match='original file'):
        run(local_client, TemplateAction, strict=True)
    assert nothing_published(local_client)

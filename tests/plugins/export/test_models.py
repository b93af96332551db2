"""ExportParams, MetricsRecord, ExportStatus, the run adapter and target handlers."""

from __future__ import annotations

import pytest

from synapse_sdk.errors import ParamsError
from synapse_sdk.loggers import MemoryLogger
from synapse_sdk.plugins.actions.export import (
    ExporterRunAdapter,
    ExportParams,
    ExportStatus,
    ExportTargetHandler,
    MetricsRecord,
    TargetHandlerFactory,
)
from synapse_sdk.plugins.actions.export.export_action import ExportAction
from synapse_sdk.plugins.actions.export.handlers import primary_file

BASE = {'name': 'My Export', 'storage': 1, 'target': 'task', 'filter': {'project': 1}}


def test_spec_params_validate():
    params = ExportAction.validate_params(
        {**BASE, 'save_original_file': True, 'path': 'exports/my-export', 'extra_params': {}}
    )
    assert isinstance(params, ExportParams)
    assert params.path == 'exports/my-export' and params.save_original_file is True


@pytest.mark.parametrize(
    ('change', 'field'),
    [
        ({'name': '   '}, 'name'),
        ({'name': '../../x'}, 'name'),
        ({'name': 'a/b'}, 'name'),
        ({'path': '../outside'}, 'path'),
        ({'path': '/etc'}, 'path'),
        ({'target': 'projects'}, 'target'),
        ({'storage': 'one'}, 'storage'),
        ({'extra_params': {'on_error': 'explode'}}, 'extra_params'),
        ({'colour': 'red'}, 'colour'),
    ],
)
def test_bad_params_are_refused_with_the_field(change, field):
    with pytest.raises(ParamsError) as info:
        ExportAction.validate_params({**BASE, **change})
    assert field in [f for f, _ in info.value.errors]


def test_missing_required_params_are_all_named():
    with pytest.raises(ParamsError) as info:
        ExportAction.validate_params({})
    assert {f for f, _ in info.value.errors} == {'name', 'storage', 'target'}


def test_metrics_record_and_status_match_spec():
    record = MetricsRecord(stand_by=100, success=0, failed=0)
    record.stand_by -= 1
    record.success += 1
    assert record.to_dict() == {'stand_by': 99, 'success': 1, 'failed': 0}
    assert (ExportStatus.SUCCESS, ExportStatus.FAILED, ExportStatus.STAND_BY) == (
        'success',
        'failed',
        'stand_by',
    )


def test_run_adapter_batches_file_logs():
    logger = MemoryLogger()
    run = ExporterRunAdapter(logger)
    record = run.MetricsRecord(stand_by=3)
    run.log_metrics(record, category='original_file')
    for i in range(450):
        run.export_log_data_file(i, f'{i}.jpg', ExportStatus.SUCCESS, '')
    run.export_log_original_file(7, '7.jpg', 'failed', 'boom')
    run.flush()
    events = logger.of_type('event')
    assert [len(e['data']['rows']) for e in events] == [200, 200, 51]
    assert events[-1]['data']['rows'][-1] == {
        'kind': 'original_file',
        'item_id': 7,
        'file': '7.jpg',
        'status': 'failed',
        'error': 'boom',
    }
    assert logger.of_type('metrics')[0]['value'] == {'stand_by': 3, 'success': 0, 'failed': 0}


def test_handler_factory_and_custom_targets():
    assert type(TargetHandlerFactory.get_handler('assignment')).__name__ == (
        'AssignmentExportTargetHandler'
    )
    with pytest.raises(ParamsError, match='assignment, ground_truth, task'):
        TargetHandlerFactory.get_handler('nope')

    class Custom(ExportTargetHandler):
        def get_results(self, client, filters):
            return iter([]), 0

    TargetHandlerFactory.register_handler('custom', Custom)
    try:
        assert ExportAction.validate_params({**BASE, 'target': 'custom'}).target == 'custom'
    finally:
        TargetHandlerFactory._handlers.pop('custom')


@pytest.mark.parametrize(
    ('files', 'expected'),
    [
        (
            {
                'image_1': {'url': 'a', 'is_primary': False},
                'image_2': {'url': 'b', 'is_primary': True},
            },
            'b',
        ),
        ({'image_2': {'url': 'b'}, 'image_1': {'url': 'a'}}, 'a'),
        ({}, None),
    ],
)
def test_primary_file(files, expected):
    assert primary_file({'files': files}).get('url') == expected


def test_selection_params_have_defaults_and_descriptions():
    params = ExportAction.validate_params(BASE)
    assert (params.strict, params.allow_empty, params.sample_policy) == (
        False,
        False,
        'latest_approved',
    )
    fields = ExportParams.model_fields
    for name in ('strict', 'allow_empty', 'sample_policy'):
        assert len(fields[name].description or '') > 40, name
    assert 'latest_approved' in (fields['sample_policy'].description or '')
    assert 'all' in (fields['sample_policy'].description or '')
    changed = ExportAction.validate_params(
        {**BASE, 'strict': True, 'allow_empty': True, 'sample_policy': 'all'}
    )
    assert (changed.strict, changed.allow_empty, changed.sample_policy) == (True, True, 'all')


@pytest.mark.parametrize(
    ('change', 'field'),
    [
        ({'sample_policy': 'newest'}, 'sample_policy'),
        ({'allow_empty': 'sometimes'}, 'allow_empty'),
        ({'strict': 'very'}, 'strict'),
    ],
)
def test_bad_selection_params_are_refused(change, field):
    with pytest.raises(ParamsError) as info:
        ExportAction.validate_params({**BASE, **change})
    assert [f for f, _ in info.value.errors] == [field]

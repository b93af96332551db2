"""The spec's template contracts hold when a plugin author overrides them (issue 10).

Each test reproduces a way an override used to break the export; all run the real
``ExportAction`` on the embedded backend and read the files it published.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import types
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import orjson
import pytest

from synapse_sdk.errors import ExportError, ParamsError, PluginError, StepError
from synapse_sdk.loggers import MemoryLogger
from synapse_sdk.plugins.actions.export import (
    BaseExporter,
    ExportAction,
    ExportContext,
    ExportStatus,
    TargetHandlerFactory,
    TaskExportTargetHandler,
)
from synapse_sdk.plugins.context import RuntimeContext
from synapse_sdk.plugins.discovery import load_plugin
from synapse_sdk.plugins.steps import BaseStep, StepRegistry, StepResult
from synapse_sdk.server.store import Store

from .helpers import action_for, run, storage_root

SPEC = Path(__file__).parents[2] / 'data' / 'spec' / 'export-actions.md'


def task_count(client: Any) -> int:
    return len(list(client.get_tasks({'project': 1})[0]))


def read(path: Path) -> Any:
    return orjson.loads(path.read_bytes())


# -- save_original_file's returned status is counted -------------------------------------------
class SyncCopy(BaseExporter):
    """Copies originals synchronously and says so, as the spec's return type promises."""

    def save_original_file(self, result, base_path, error_file_list):
        item = self.current
        source = Path(url2pathname(urlparse(item.files['url']).path))
        shutil.copyfile(source, base_path / f'{item.stem}{item.ext}')
        return ExportStatus.SUCCESS


class NoOriginals(BaseExporter):
    """Cannot fetch any original and reports it."""

    def save_original_file(self, result, base_path, error_file_list):
        error_file_list.append({'id': self.current.id, 'file': 'x', 'reason': 'vault closed'})
        return ExportStatus.FAILED


def test_a_synchronous_save_original_file_is_counted(local_client):
    n = task_count(local_client)
    result = run(local_client, action_for(SyncCopy))
    assert result['original_file_metrics'] == {'stand_by': 0, 'success': n, 'failed': 0}
    assert len(list((Path(result['output_path']) / 'origin_files').iterdir())) == n
    assert result['failed_original_count'] == 0


def test_a_failed_save_original_file_is_counted_and_listed(local_client):
    n = task_count(local_client)
    result = run(local_client, action_for(NoOriginals))
    assert result['original_file_metrics'] == {'stand_by': 0, 'success': 0, 'failed': n}
    assert result['failed_original_count'] == n
    assert result['exported_count'] == n  # the data files are fine
    errors = read(Path(result['output_path']) / 'error_file_list.json')
    assert [e['kind'] for e in errors] == ['original_file'] * n
    assert {e['reason'] for e in errors} == {'vault closed'}
    assert any('vault closed' in line for line in result['errors'])


# -- get_filtered_results ------------------------------------------------------------------------
class FirstThree(ExportAction):
    """Fetches its records its own way (here: the first three tasks), as the spec suggests."""

    def get_filtered_results(self, filters: dict[str, Any]) -> tuple[Any, int]:
        records = list(self.client.get_tasks(filters)[0])[:3]
        return iter(records), len(records)


def test_export_action_honours_a_get_filtered_results_override(local_client):
    assert task_count(local_client) > 3
    result = run(local_client, FirstThree)
    out = Path(result['output_path'])
    assert result['exported_count'] == result['total_count'] == 3
    assert len(list((out / 'json').iterdir())) == 3


# -- a step after finalize rolls the publish back ------------------------------------------------
class Notify(BaseStep[ExportContext]):
    name = 'notify'
    progress_weight = 0.01

    def __init__(self) -> None:
        self.saw: str | None = None

    def execute(self, context: ExportContext) -> StepResult:
        self.saw = context.output_path
        raise RuntimeError('notification service down')


def test_a_failing_step_after_finalize_withdraws_the_published_export(local_client):
    notify = Notify()

    class Notifying(ExportAction):
        def setup_steps(self, registry: StepRegistry[ExportContext]) -> None:
            super().setup_steps(registry)
            registry.register(notify)

    with pytest.raises(StepError, match='notification service down'):
        run(local_client, Notifying)
    exports = storage_root(local_client) / 'exports'
    assert notify.saw == str(exports / 'out')  # it was published before the step ran...
    assert not (exports / 'out').exists()  # ...and withdrawn when the step failed
    assert [p.name for p in exports.iterdir()] == [] if exports.exists() else True


# -- setup_output_directories ----------------------------------------------------------------------
class OwnLayout(BaseExporter):
    """Its own directory keys, used by its own process_file_saving."""

    def setup_output_directories(self, unique_export_path, save_original_file_flag):
        labels = unique_export_path / 'labels'
        labels.mkdir()
        return {'labels': labels}

    def process_file_saving(self, final_data, unique_export_path, *args: Any) -> bool:
        item = self.current
        (self.output_paths['labels'] / f'{item.stem}.txt').write_text(str(item.id))
        return True


class ForgotJsonKey(BaseExporter):
    def setup_output_directories(self, unique_export_path, save_original_file_flag):
        (unique_export_path / 'data').mkdir()
        return {'data': unique_export_path / 'data'}


def test_setup_output_directories_may_return_its_own_keys(local_client):
    n = task_count(local_client)
    result = run(local_client, action_for(OwnLayout), save_original_file=False)
    out = Path(result['output_path'])
    assert result['exported_count'] == n and result['failed_count'] == 0
    assert len(list((out / 'labels').iterdir())) == n
    assert not (out / 'json').exists()


def test_a_missing_output_directory_key_is_one_clear_error_at_the_start(local_client):
    with pytest.raises(StepError) as info:
        run(local_client, action_for(ForgotJsonKey), save_original_file=False)
    cause = info.value.__cause__
    assert isinstance(cause, ExportError)
    assert "'json_output_path'" in str(cause) and 'process_file_saving' in str(cause)
    assert 'Every item failed' not in str(cause)
    exports = storage_root(local_client) / 'exports'
    assert not exports.exists() or list(exports.iterdir()) == []


# -- legacy error-list entries -------------------------------------------------------------------
class LegacyErrors(BaseExporter):
    """Old plugins append ``[file, reason]`` pairs (and sometimes bare strings)."""

    def save_as_json(self, result, base_path, error_file_list):
        item = self.current
        if item.id % 3 == 0:
            error_file_list.append([item.file_name, 'legacy pair'])
            return ExportStatus.FAILED
        if item.id % 3 == 1:
            error_file_list.append('a bare reason')
            return ExportStatus.FAILED
        return super().save_as_json(result, base_path, error_file_list)


def test_legacy_error_list_entries_are_accepted_and_reported(local_client):
    tasks = list(local_client.get_tasks({'project': 1})[0])
    ids = [t['id'] for t in tasks]
    names = {t['id']: t['data_unit']['files']['image_1']['file_name_original'] for t in tasks}
    result = run(local_client, action_for(LegacyErrors), save_original_file=False)
    errors = read(Path(result['output_path']) / 'error_file_list.json')
    failed = [i for i in ids if i % 3 != 2]
    assert [e['id'] for e in errors] == failed
    by_id = {e['id']: e for e in errors}
    assert by_id[3]['reason'] == 'legacy pair' and by_id[3]['file'] == names[3]
    assert by_id[1]['reason'] == 'a bare reason'
    assert all(e['kind'] == 'data_file' for e in errors)
    assert result['failed_count'] == len(failed)
    assert len(errors) == len(failed)  # one entry per item, not one from the hook and another


# -- create_context dumps params in JSON mode ----------------------------------------------------
def spec_block(filename: str) -> str:
    text = SPEC.read_text(encoding='utf-8')
    return text.split(f'```python filename="{filename}"\n')[1].split('```')[0]


def test_default_context_params_are_plain_json_values(local_client, tmp_path):
    module = types.ModuleType('spec_multi_format_json_mode')
    sys.modules[module.__name__] = module  # pydantic resolves the params' annotations there
    code = spec_block('plugins/export/multi_format_exporter.py')
    exec(compile(code, 'multi_format_exporter.py', 'exec'), module.__dict__)
    out = tmp_path / 'multi'
    result = module.MultiFormatExportAction.dispatch(
        {'project_id': 1, 'output_format': 'yolo', 'output_dir': str(out)},
        RuntimeContext(MemoryLogger(), local_client),
    )
    assert result['output_path'] == str(out / 'output.yolo')
    assert (out / 'output.yolo').is_file()


# -- a custom handler's validate_filter ----------------------------------------------------------
class NeedsField(TaskExportTargetHandler):
    """The spec's custom handler: a plain ValueError for a missing filter field."""

    def validate_filter(self, filters: dict, client: Any) -> dict:
        if 'required_field' not in filters:
            raise ValueError('required_field is required')
        return super().validate_filter({'project': filters['project']}, client)


@pytest.fixture
def custom_target():
    TargetHandlerFactory.register_handler('picky_task', NeedsField)
    yield 'picky_task'
    TargetHandlerFactory._handlers.pop('picky_task', None)


def test_a_custom_handlers_filter_error_is_bad_input(local_client, custom_target):
    root = storage_root(local_client)
    before = sorted(root.rglob('*'))
    with pytest.raises(ParamsError) as info:
        run(local_client, action_for(BaseExporter), target=custom_target)
    assert info.value.errors == [('filter', 'required_field is required')]
    assert sorted(root.rglob('*')) == before
    ok = run(
        local_client,
        action_for(BaseExporter),
        target=custom_target,
        filter={'project': 1, 'required_field': 1},
        save_original_file=False,
    )
    assert ok['exported_count'] == task_count(local_client)


HANDLER_PLUGIN = """
from synapse_sdk.plugins.actions.export import BaseExporter, ExportAction
from synapse_sdk.plugins.actions.export import TargetHandlerFactory, TaskExportTargetHandler


class NeedsField(TaskExportTargetHandler):
    def validate_filter(self, filters, client):
        if 'required_field' not in filters:
            raise ValueError('required_field is required')
        return super().validate_filter(filters, client)


TargetHandlerFactory.register_handler('picky_task', NeedsField)


class PickyExport(ExportAction):
    @property
    def entrypoint(self):
        return BaseExporter
"""


def write_plugin(root: Path, module: str, annotation_types: str = '') -> Path:
    (root / 'plugin').mkdir(parents=True)
    (root / 'plugin' / '__init__.py').write_text('')
    (root / 'plugin' / 'export.py').write_text(module)
    (root / 'config.yaml').write_text(
        'name: picky\ncode: picky\nversion: 1.0.0\ncategory: export\nactions:\n  export:\n'
        '    entrypoint: plugin.export.PickyExport\n' + annotation_types
    )
    return root


def test_a_custom_handlers_filter_error_exits_2_on_the_cli(synapse_home, tmp_path):
    plugin = write_plugin(tmp_path / 'picky', textwrap.dedent(HANDLER_PLUGIN))
    params = {'name': 'p', 'storage': 1, 'target': 'picky_task', 'filter': {'project': 1}}
    done = subprocess.run(
        [sys.executable, '-m', 'synapse_sdk.cli.main', 'plugin', 'run', 'export',
         '--plugin', str(plugin), '--params', orjson.dumps(params).decode(), '--quiet'],
        env={**__import__('os').environ, 'SYNAPSE_HOME': str(synapse_home)},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert 'required_field is required' in done.stderr
    assert done.stdout == ''


# -- annotation_types in config.yaml ---------------------------------------------------------------
PLAIN_PLUGIN = """
from synapse_sdk.plugins.actions.export import BaseExporter, ExportAction


class PickyExport(ExportAction):
    @property
    def entrypoint(self):
        return BaseExporter
"""


def test_unknown_annotation_types_are_refused_when_the_config_loads(tmp_path):
    root = write_plugin(tmp_path / 'p', PLAIN_PLUGIN, '    annotation_types:\n      - imgae\n')
    with pytest.raises(PluginError, match='annotation_types') as info:
        load_plugin(root)
    assert 'image' in str(info.value)  # the allowed values are listed


def test_annotation_types_are_honoured(local_client, tmp_path):
    videos = write_plugin(tmp_path / 'v', PLAIN_PLUGIN, '    annotation_types:\n      - video\n')
    action = load_plugin(videos).get_action('export')
    assert action.annotation_types == ('video',)
    with pytest.raises(StepError) as info:  # every demo record is an image
        run(local_client, action, save_original_file=False)
    assert 'annotation_types: video' in str(info.value.__cause__)
    exports = storage_root(local_client) / 'exports'
    assert not exports.exists() or list(exports.iterdir()) == []

    images = write_plugin(
        tmp_path / 'i', PLAIN_PLUGIN, '    annotation_types:\n      - image\n      - video\n'
    )
    result = run(local_client, load_plugin(images).get_action('export'), save_original_file=False)
    assert result['exported_count'] == task_count(local_client)


def test_a_record_of_an_undeclared_kind_fails_alone(local_client, synapse_home, tmp_path):
    with Store(synapse_home) as store, store.transaction() as conn:
        files = {'pcd_1': {'path': None, 'file_name_original': 'scan.pcd', 'is_primary': True}}
        unit = store.add_data_unit(1, 'scan.pcd', 10, 10, files, conn)
        scan = store.insert(
            'tasks', {'project': 1, 'data_unit': unit, 'status': 'completed', 'data': {}}, conn
        )
    plugin = write_plugin(tmp_path / 'i', PLAIN_PLUGIN, '    annotation_types:\n      - image\n')
    result = run(local_client, load_plugin(plugin).get_action('export'), save_original_file=False)
    errors = read(Path(result['output_path']) / 'error_file_list.json')
    assert [(e['id'], e['file']) for e in errors] == [(scan, 'scan.pcd')]
    assert "its media is 'pcd'" in errors[0]['reason']
    assert result['failed_count'] == 1


# -- error_file_list.json order ------------------------------------------------------------------
def test_error_file_list_is_ordered_by_id_as_a_number(local_client, synapse_home):
    with Store(synapse_home) as store, store.transaction() as conn:
        for n in range(12):  # ids past 9 and past 19: '10' < '9' as strings
            unit = store.add_data_unit(1, f'more_{n}.jpg', 10, 10, {}, conn)
            store.insert(
                'tasks', {'project': 1, 'data_unit': unit, 'status': 'completed', 'data': {}}, conn
            )

    class Odd(BaseExporter):
        def convert_data(self, data):
            if data['id'] % 2:
                raise ValueError('odd')
            return data

    result = run(local_client, action_for(Odd), save_original_file=False)
    errors = read(Path(result['output_path']) / 'error_file_list.json')
    ids = [e['id'] for e in errors]
    assert ids == sorted(ids) and max(ids) > 10 and min(ids) < 10

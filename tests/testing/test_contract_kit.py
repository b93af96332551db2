"""``synapse_sdk.testing``: the contract passes for good exporters (the spec's and every built-in
format) and catches broken ones; the helpers do what they say."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ConfigDict
from tests.plugins.export.helpers import SpecExporter, action_for

from synapse_sdk.plugins.actions.export import ExportAction, ExportParams
from synapse_sdk.plugins.discovery import load_plugin
from synapse_sdk.testing import (
    DemoBackend,
    ExportActionContract,
    read_tree_digest,
    run_export,
    seeded_home,
)
from synapse_sdk.testing.helpers import demo_backend

SpecExportAction = action_for(SpecExporter)


# -- the contract passes ------------------------------------------------------------------------
class TestSpecExporter(ExportActionContract):
    action_class = SpecExportAction


class TestSpecExporterWithoutOriginals(ExportActionContract):
    action_class = SpecExportAction
    targets = ('assignment',)
    save_original_file = False
    export_path = ''
    export_name = 'flat'


class FormatContract(ExportActionContract):
    """The built-in formats place originals in their own layout (images/, JPEGImages/, ...)."""

    default_layout = False
    extra_params = {'split': 'train=0.5,val=0.5'}


class TestCocoContract(FormatContract):
    action_class = load_plugin('coco').get_action('export')


class TestYoloContract(FormatContract):
    action_class = load_plugin('yolo').get_action('export')


class TestVocContract(FormatContract):
    action_class = load_plugin('voc').get_action('export')


class TestCsvContract(FormatContract):
    action_class = load_plugin('csv').get_action('export')


class TestDmContract(FormatContract):
    action_class = load_plugin('dm').get_action('export')
    extra_params = {}  # dm has no splits (refused)


# -- the contract catches broken exporters ------------------------------------------------------
def new_backend(factory: pytest.TempPathFactory, home: Path) -> Iterator[DemoBackend]:
    seeded = demo_backend(factory.getbasetemp(), home, images=8, seed=0)
    yield seeded
    seeded.close()


@pytest.fixture
def backend(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Iterator[DemoBackend]:
    yield from new_backend(tmp_path_factory, tmp_path / 'home')


@pytest.fixture
def good_backend(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Iterator[DemoBackend]:
    yield from new_backend(tmp_path_factory, tmp_path / 'good')


class StampingExporter(SpecExporter):
    """Writes the time into every file: two identical runs no longer match."""

    def convert_data(self, data: dict[str, Any]) -> dict[str, Any]:
        return {**super().convert_data(data), 'exported_at': time.perf_counter_ns()}


class DroppingExporter(SpecExporter):
    """Claims every third item was saved without writing anything."""

    def process_file_saving(self, final_data: Any, *args: Any, **kwargs: Any) -> bool:
        index = args[-1] if args else kwargs['current_index']
        if index % 3 == 0:
            data_metrics = args[-2] if args else kwargs['data_file_metrics_record']
            data_metrics.stand_by -= 1
            data_metrics.success += 1
            return True
        return super().process_file_saving(final_data, *args, **kwargs)


class FailingExporter(SpecExporter):
    """Cannot convert items without annotations (the engine skips and reports them)."""

    def convert_data(self, data: dict[str, Any]) -> dict[str, Any]:
        if not data.get('data', {}).get('annotations'):
            raise ValueError('nothing to export')
        return super().convert_data(data)


class LitteringExporter(SpecExporter):
    """Leaves a scratch file beside the export instead of inside it."""

    def additional_file_saving(self, unique_export_path: Path) -> None:
        (unique_export_path.parent / 'scratch.txt').write_text('left behind')
        super().additional_file_saving(unique_export_path)


class OriginlessExporter(SpecExporter):
    """Ignores ``save_original_file`` but keeps the default layout's promise."""

    def save_original_file(self, result: Any, base_path: Path, error_file_list: Any) -> Any:
        # Returns SUCCESS (counted as a saved original) without saving one.
        return super().save_as_json(result, base_path.parent / 'json', error_file_list)


class LaxParams(ExportParams):
    model_config = ConfigDict(extra='allow')


def contract_for(action: type[ExportAction]) -> ExportActionContract:
    return type('Contract', (ExportActionContract,), {'action_class': action})()


@pytest.mark.parametrize(
    ('exporter', 'check', 'args', 'message'),
    [
        (StampingExporter, 'check_deterministic', (), 'files differ'),
        (DroppingExporter, 'check_exports_every_record_once', ('task',), 'file(s) in json/'),
        (DroppingExporter, 'check_exports_every_record_once', ('assignment',), 'file(s) in json/'),
        (FailingExporter, 'check_exports_every_record_once', ('task',), 'failed'),
        (FailingExporter, 'check_reports', (), 'errors'),
        (LitteringExporter, 'check_output_location', (), 'scratch.txt'),
        (OriginlessExporter, 'check_original_files', (), 'original file(s)'),
    ],
)
def test_the_contract_catches_a_broken_exporter(
    backend, good_backend, exporter, check, args, message
):
    contract = contract_for(action_for(exporter))
    with pytest.raises(AssertionError, match=re.escape(message)):
        getattr(contract, check)(backend, *args)
    getattr(contract_for(SpecExportAction), check)(good_backend, *args)  # the good one passes


def test_the_contract_catches_params_that_are_not_refused(backend):
    lax = contract_for(action_for(SpecExporter, params_model=LaxParams))
    with pytest.raises(AssertionError, match='were accepted'):
        lax.check_bad_params_refused(backend, {'colour': 'red'}, 'colour')
    lax.check_bad_params_refused(backend, {'name': '../../x'}, 'name')


def test_a_contract_without_an_action_says_so(backend):
    with pytest.raises(AssertionError, match='must set action_class'):
        ExportActionContract().check_reports(backend)


# -- helpers ------------------------------------------------------------------------------------
def test_seeded_home_returns_the_ids_of_a_fresh_home(tmp_path):
    ids = seeded_home(tmp_path / 'home', images=3)
    assert (ids['project'], ids['storage'], ids['ground_truth_dataset_version']) == (1, 1, 1)
    assert ids['tasks'] == 3
    with pytest.raises(FileExistsError):
        seeded_home(tmp_path / 'home')


def test_copies_of_a_backend_have_their_own_storage(tmp_path):
    first = demo_backend(tmp_path / 'cache', tmp_path / 'a', images=4, seed=1)
    second = demo_backend(tmp_path / 'cache', tmp_path / 'b', images=4, seed=1)
    try:
        assert first.storage_root == tmp_path / 'a' / 'storage'
        assert second.storage_root == tmp_path / 'b' / 'storage'
        assert len(list((tmp_path / 'cache').iterdir())) == 1  # seeded once
        assert first.ids['tasks'] == 4 and second.ids['home'] == str(tmp_path / 'b')
    finally:
        first.close()
        second.close()


def test_run_export_defaults_to_every_task_of_project_1(backend):
    result = run_export(SpecExportAction, backend.client, save_original_file=False)
    out = Path(result['output_path'])
    assert out == backend.storage_root / 'exports' / 'export'
    assert result['exported_count'] == backend.ids['tasks']
    gt = run_export(SpecExportAction, backend.client, target='ground_truth', name='gt')
    assert gt['exported_count'] == backend.ids['ground_truth_events']


def test_read_tree_digest_hashes_every_file_by_posix_path(tmp_path):
    (tmp_path / 'a' / 'b').mkdir(parents=True)
    (tmp_path / 'a' / 'b' / 'x.json').write_bytes(b'{}')
    (tmp_path / 'y.txt').write_bytes(b'y')
    assert read_tree_digest(tmp_path) == {
        'a/b/x.json': hashlib.sha256(b'{}').hexdigest(),
        'y.txt': hashlib.sha256(b'y').hexdigest(),
    }

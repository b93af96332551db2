"""The ``synapse`` command as a user runs it: real processes, real files, exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from .helpers import synapse


def test_help_lists_the_commands(tmp_path):
    done = synapse('--help', home=tmp_path)
    assert done.returncode == 0
    for command in ('plugin', 'export', 'demo', 'server', 'data'):
        assert command in done.stdout
    run_help = synapse('plugin', 'run', '--help', home=tmp_path)
    assert '--params' in run_help.stdout and 'coco, yolo, voc, csv, dm' in run_help.stdout


def test_spec_plugin_runs_from_its_folder(synapse_home, tmp_path):
    plugin = tmp_path / 'my_plugin'
    (plugin / 'plugin').mkdir(parents=True)
    (plugin / 'config.yaml').write_text(
        'name: my_export_plugin\ncode: my_export_plugin\nversion: 1.0.0\ncategory: export\n\n'
        'actions:\n  export:\n    entrypoint: plugin.export.MyExportAction\n'
        '    annotation_types:\n      - image\n      - video\n'
    )
    (plugin / 'plugin' / '__init__.py').write_text('')
    spec = (Path(__file__).parents[1] / 'data' / 'spec' / 'export-actions.md').read_text()
    code = spec.split('```python filename="plugins/export/custom_exporter.py"\n')[1]
    (plugin / 'plugin' / 'export.py').write_text(code.split('```')[0])
    params = {
        'storage': 1,
        'name': 'My Export',
        'save_original_file': True,
        'path': 'exports/my-export',
        'target': 'task',
        'filter': {'project': 1},
        'extra_params': {},
    }
    (plugin / 'params.json').write_bytes(orjson.dumps(params))
    done = synapse(
        'plugin', 'run', '--mode', 'local', 'export', '--params', '@params.json',
        home=synapse_home, cwd=plugin,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = orjson.loads(done.stdout)
    out = Path(result['output_path'])
    assert out.name == 'My Export' and out.parent.name == 'my-export'
    assert result['exported_count'] == len(list((out / 'json').iterdir())) > 0
    assert len(list((out / 'origin_files').iterdir())) == result['exported_count']
    meta = orjson.loads((out / 'metadata.json').read_bytes())
    assert meta == {'export_name': 'My Export', 'total_items': result['exported_count'],
                    'format_version': '1.0'}  # fmt: skip


@pytest.mark.parametrize(
    ('params', 'needle'),
    [
        ('{"name": "../../x", "storage": 1, "target": "task", "filter": {"project": 1}}', 'name'),
        ('{"name": "x", "storage": 1, "target": "nope"}', 'target'),
        ('not json', 'not valid JSON'),
        ('[1, 2]', 'must be a JSON object'),
        ('@missing.json', 'cannot read params file'),
    ],
)
def test_bad_params_exit_2_with_one_clear_paragraph(synapse_home, params, needle):
    done = synapse('plugin', 'run', '--plugin', 'dm', 'export', '--params', params,
                   home=synapse_home)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert needle in done.stderr and done.stdout == ''
    assert 'Traceback' not in done.stderr


def test_unknown_plugin_and_mode_exit_2(synapse_home, tmp_path):
    done = synapse('plugin', 'run', '--plugin', str(tmp_path / 'x'), 'export', home=synapse_home)
    assert done.returncode == 2 and 'config.yaml' in done.stderr
    done = synapse('plugin', 'run', '--plugin', 'dm', '--mode', 'cloud', 'export',
                   home=synapse_home)  # fmt: skip
    assert done.returncode == 2 and "'cloud'" in done.stderr


@pytest.mark.slow
def test_scaffolded_plugin_runs_as_generated(synapse_home, tmp_path):
    done = synapse('plugin', 'create', 'street_export', '--category', 'export',
                   '--dir', str(tmp_path), home=synapse_home)  # fmt: skip
    assert done.returncode == 0, done.stderr
    folder = tmp_path / 'street_export'
    run = synapse('plugin', 'run', 'export', '--quiet', '--params', '@params.example.json',
                  home=synapse_home, cwd=folder)  # fmt: skip
    assert run.returncode == 0, run.stderr
    result = orjson.loads(run.stdout)
    assert result['exported_count'] > 0
    assert (Path(result['output_path']) / 'metadata.json').exists()
    # the generated test passes too
    test = subprocess.run(
        [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', 'tests'],
        cwd=folder, capture_output=True, text=True, timeout=300,
        env={**os.environ, 'SYNAPSE_HOME': str(tmp_path / 'fresh')},
    )  # fmt: skip
    assert test.returncode == 0, test.stdout + test.stderr
    again = synapse('plugin', 'create', 'street_export', '--dir', str(tmp_path), home=synapse_home)
    assert again.returncode == 2 and 'already exists' in again.stderr


def test_export_shortcut_reports_to_a_job(synapse_home):
    done = synapse('export', 'csv', '--project', '1', '--name', 'rows', '--job-id', '12', '-q',
                   home=synapse_home)  # fmt: skip
    assert done.returncode == 0, done.stderr
    from synapse_sdk.clients import LocalClient

    job = LocalClient(synapse_home).get_job(12)
    assert job['status'] == 'succeeded'
    assert job['result']['output_path'] == orjson.loads(done.stdout)['output_path']
    assert job['metrics']['data_file']['failed'] == 0

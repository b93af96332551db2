"""``--workers N``: every built-in format and target, sharded over worker processes, writes
the single-process tree byte for byte (several shards, names repeated across shards, splits)."""

from __future__ import annotations

import itertools
import re

import orjson
import pytest

from synapse_sdk.formats.names import StemAllocator
from synapse_sdk.loggers import MemoryLogger
from synapse_sdk.plugins.executors import Execution
from synapse_sdk.testing import read_tree_digest

from .helpers import (
    FORMATS,
    SHARD_SIZE,
    TARGETS,
    UNSPLIT,
    WHOLE,
    assert_same_export,
    params_for,
    seed_home,
    sharded,
    single,
)


@pytest.mark.parametrize('target', TARGETS)
@pytest.mark.parametrize('fmt', FORMATS)
def test_two_workers_write_the_single_process_tree(client, backend, fmt, target):
    params = params_for(fmt, target, f'{fmt}-{target}')
    expected = single(client, fmt, params)
    logger = MemoryLogger()
    execution = Execution(workers=2, shard_size=SHARD_SIZE)
    got = sharded(client, fmt, params, execution, backend, logger)
    assert_same_export(expected, got)
    # It really ran in shards: several parts, names repeated across them, every split used.
    assert got[0]['total_count'] > 3 * SHARD_SIZE
    report = orjson.loads((got[2] / 'export_report.json').read_bytes())
    assert report['renamed_files'], 'the data has duplicate names across shards'
    assert fmt in UNSPLIT or len(report['per_split']) >= 2
    messages = ' '.join(m['message'] for m in logger.of_type('message'))
    if fmt in WHOLE:
        assert f'Running as one task (the {fmt} writer has no part merger)' in messages
    else:
        assert re.search(r'\b[4-9] shard\(s\) on 2 processes worker\(s\)', messages), messages
    progress = [r for r in logger.of_type('progress') if r['category'] == 'dataset_conversion']
    assert progress[-1]['current'] == progress[-1]['total'] == got[0]['total_count']
    assert all(a['current'] <= b['current'] for a, b in itertools.pairwise(progress))


def test_the_staging_leaves_nothing_of_the_shards_behind(client, backend):
    params = params_for('coco', 'task', 'clean')
    _, digest, out = sharded(client, 'coco', params, Execution(workers=2, shard_size=5), backend)
    assert not any('.synapse' in path for path in digest)
    leftovers = [p.name for p in out.parent.iterdir() if p.name.startswith('.synapse')]
    assert leftovers == []


def test_a_template_plugin_shards_on_the_command_line(tmp_path):
    """``synapse plugin run --workers 2`` with a scaffolded template plugin (a BaseExporter:
    convert_data, additional_file_saving) writes what one process writes."""
    from synapse_sdk.plugins.templates import scaffold

    from .test_failures import cli_env, run_cli

    home = tmp_path / 'home'
    seed_home(home)
    plugin = scaffold('sharded', 'export', tmp_path)
    env = cli_env(home)
    params = params_for('dm', 'assignment', 'tpl')
    out = home / 'storage' / 'exports'
    runs = {}
    for run, extra in (('one', []), ('two', ['--workers', '2'])):
        args = ['plugin', 'run', 'export', '--plugin', str(plugin), '--params',
                orjson.dumps(params).decode(), *extra]  # fmt: skip
        done = run_cli(*args, env=env)
        assert done.returncode == 0, done.stderr
        runs[run] = orjson.loads(done.stdout)
        (out / 'tpl').rename(out / f'tpl-{run}')  # the same name for both runs
    assert {k: v for k, v in runs['one'].items() if k != 'output_path'} == {
        k: v for k, v in runs['two'].items() if k != 'output_path'
    }
    assert read_tree_digest(out / 'tpl-one') == read_tree_digest(out / 'tpl-two')
    assert (out / 'tpl-two' / 'metadata.json').is_file()  # additional_file_saving ran once
    assert len(list((out / 'tpl-two' / 'json').iterdir())) == runs['two']['exported_count']


@pytest.mark.parametrize(
    ('target', 'ahead'), [('task', None), ('task', 12), ('assignment', 20), ('ground_truth', 12)]
)
def test_names_listed_ahead_by_a_worker_name_every_file_as_one_process(
    client, backend, monkeypatch, target, ahead
):
    """While the driver plans, an idle worker lists the first rows' file names and names them;
    the driver lists only the rows after those. Where the plan keeps every row (tasks), the
    worker's names are used as they are; where it drops some (assignments of one image), its
    rows are named again over the samples. Either way, the files are named as one process
    names them."""
    if ahead is not None:  # a worker lists 1,000 rows before it looks whether to stop
        monkeypatch.setattr('synapse_sdk.plugins.actions.export.shards.AHEAD_ROWS', ahead)
    params = params_for('yolo', target, f'ahead-{target}-{ahead}')
    expected = single(client, 'yolo', params)
    asked: list[dict[str, object]] = []
    listing = client.iter_fields

    def iter_fields(target: str, filters: dict[str, object], fields: list[str], **kw: object):
        if 'file_name' in fields:
            asked.append(dict(filters))
            assert 'annotations' not in fields  # counted only for a merge that uses them (COCO)
        return listing(target, filters, fields, **kw)

    monkeypatch.setattr(client, 'iter_fields', iter_fields)
    named = []  # names given in this (the driver's) process; the workers were started before
    allocate = StemAllocator.allocate
    monkeypatch.setattr(StemAllocator, 'allocate', lambda self, name, fallback='item': (
        named.append(name) or allocate(self, name, fallback)))  # fmt: skip
    got = sharded(client, 'yolo', params, Execution(workers=2, shard_size=SHARD_SIZE), backend)
    assert_same_export(expected, got)
    if ahead is None:
        assert asked == [] and named == []  # every name came from the worker
    else:
        assert asked and all(any(k.endswith('__gte') for k in f) for f in asked), asked
    if target == 'assignment':  # the worker's names are of every row: named again
        assert len(named) == got[0]['total_count']


def test_a_local_sharded_run_does_not_import_the_http_client(home):
    """httpx (and the rich it brings) cost 0.14 s before the plan; a run on the embedded
    store never needs them (a fresh interpreter, as `synapse export --workers 2` starts)."""
    import subprocess
    import sys

    code = (
        'import sys\n'
        'from synapse_sdk.clients import LocalClient\n'
        'from synapse_sdk.loggers import NullLogger\n'
        'from synapse_sdk.plugins.context import RuntimeContext\n'
        'from synapse_sdk.plugins.discovery import load_plugin\n'
        'from synapse_sdk.plugins.executors import Execution, run_action\n'
        f'client = LocalClient({str(home)!r})\n'
        "action = load_plugin('yolo').get_action('export')\n"
        "params = {'name': 'no-http', 'storage': 1, 'target': 'task', 'filter': {'project': 1},"
        " 'save_original_file': False}\n"
        'run_action(action, params, RuntimeContext(NullLogger(), client),'
        " Execution(workers=2, shard_size=7), plugin='yolo', action='export')\n"
        "print('httpx' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == 'False'

"""``--mode ray --workers 2``: every built-in format and target as Ray tasks on a real local Ray
(one session for the module, 127.0.0.1, 2 CPUs) writes the single-process tree byte for byte;
a shard failing once (an error, a worker process dying) is run again; one failing for good
publishes nothing."""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import ray
from typer.testing import CliRunner

from synapse_sdk.cli.main import app
from synapse_sdk.clients import BackendClient
from synapse_sdk.errors import StepError
from synapse_sdk.loggers import MemoryLogger
from synapse_sdk.plugins.executors import Execution
from synapse_sdk.plugins.executors.ray_backend import RayBackend, kept_signal_handlers
from synapse_sdk.plugins.executors.run import PRELOAD
from synapse_sdk.plugins.executors.tasks import ClientSpec
from synapse_sdk.server.app import serve_in_thread
from synapse_sdk.testing import read_tree_digest

from .helpers import (
    FORMATS,
    SHARD_SIZE,
    TARGETS,
    UNSPLIT,
    WHOLE,
    assert_same_export,
    params_for,
    retries,
    sharded,
    single,
)
from .test_whole import run as run_plugin
from .test_whole import write_plugin

# One worker runs every test that starts or joins Ray under pytest-xdist (make test): its
# module's Ray session is started once, and the tests that count Ray's processes see no other.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group('ray')]


@pytest.fixture(scope='module')
def ray_session() -> Iterator[None]:
    """One local Ray for the module: 2 CPUs, loopback only (conftest), its own temp dir."""
    temp = tempfile.mkdtemp(prefix='ray-', dir='/tmp')
    with kept_signal_handlers():  # Ray's SIGTERM handler must not outlive the module
        ray.init(address='local', num_cpus=2, include_dashboard=False, log_to_driver=False,
                 _temp_dir=temp)  # fmt: skip
    assert ray.get_runtime_context().gcs_address.startswith('127.0.0.1:')
    yield
    with kept_signal_handlers():
        ray.shutdown()
    shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope='module')
def backend(ray_session: None) -> Iterator[RayBackend]:
    with RayBackend(2, preload=PRELOAD) as backend:
        yield backend


RAY = Execution(mode='ray', workers=2, shard_size=SHARD_SIZE)


@pytest.mark.parametrize('target', TARGETS)
@pytest.mark.parametrize('fmt', FORMATS)
def test_ray_tasks_write_the_single_process_tree(client, backend, fmt, target):
    assert backend.depth == 2  # Ray has as many CPUs as workers: a second task waits per slot
    params = params_for(fmt, target, f'{fmt}-{target}')
    expected = single(client, fmt, params)
    logger = MemoryLogger()
    got = sharded(client, fmt, params, RAY, backend, logger)
    assert_same_export(expected, got)
    report = orjson.loads((got[2] / 'export_report.json').read_bytes())
    assert report['renamed_files']
    assert fmt in UNSPLIT or len(report['per_split']) >= 2
    # The tasks' progress reached the driver as they ran (streamed from each Ray task).
    progress = [r for r in logger.of_type('progress') if r['category'] == 'dataset_conversion']
    assert progress[-1]['current'] == progress[-1]['total'] == got[0]['total_count']
    assert all(a['current'] <= b['current'] for a, b in itertools.pairwise(progress))
    if fmt not in WHOLE:
        assert len({r['current'] for r in progress}) > 3, progress


@pytest.mark.parametrize('how', ['raise', 'exit'])
def test_a_ray_task_failing_once_is_run_again(client, backend, monkeypatch, how):
    params = params_for('csv', 'assignment', f'retry-{how}')
    expected = single(client, 'csv', params)
    monkeypatch.setenv('SYNAPSE_SHARD_FAULT', f'1:1:{how}')
    logger = MemoryLogger()
    got = sharded(client, 'csv', params, RAY, backend, logger)
    assert_same_export(expected, got)
    retried = retries(logger)
    assert len(retried) == 1 and retried[0].startswith('shard 1 (ids ')
    assert ('injected fault' if how == 'raise' else 'Ray task was lost') in retried[0]


def test_a_ray_task_failing_for_good_publishes_nothing(client, backend, monkeypatch):
    params = params_for('coco', 'task', 'doomed')
    monkeypatch.setenv('SYNAPSE_SHARD_FAULT', '0:9:raise')
    failed = r'shard 0 \(ids 1\.\.\d+, 7 items\) failed after 3 attempts: injected fault'
    with pytest.raises(StepError, match=failed):
        sharded(client, 'coco', params, RAY, backend)
    assert not (Path(client.home) / 'storage' / 'exports' / 'doomed').exists()


def test_cli_mode_ray_writes_the_local_tree(home, ray_session, monkeypatch):
    """``synapse export ... --mode ray --workers 2`` in this process (Ray is already up: the run
    uses that session) against the same export without workers."""
    monkeypatch.setenv('SYNAPSE_HOME', str(home))
    monkeypatch.setenv('SYNAPSE_SHARD_SIZE', str(SHARD_SIZE))
    monkeypatch.delenv('SYNAPSE_HOST', raising=False)
    runner = CliRunner()
    args = ['export', 'yolo', '--project', '1', '--split', 'train=0.6,val=0.4', '-q']
    local = runner.invoke(app, [*args, '--name', 'cli-local'])
    assert local.exit_code == 0, local.output
    ray_args = ['--name', 'cli-ray', '--mode', 'ray', '--workers', '2']
    distributed = runner.invoke(app, [*args, *ray_args])
    assert distributed.exit_code == 0, distributed.output
    a, b = orjson.loads(local.stdout), orjson.loads(distributed.stdout)
    assert {k: v for k, v in a.items() if k != 'output_path'} == {
        k: v for k, v in b.items() if k != 'output_path'
    }
    ta, tb = read_tree_digest(a['output_path']), read_tree_digest(b['output_path'])
    report = 'export_report.json'
    assert {k: v for k, v in ta.items() if k != report} == {
        k: v for k, v in tb.items() if k != report
    }


@pytest.fixture
def hello_plugin(tmp_path: Path) -> Path:
    """The plugin of ``test_whole.py``: a simple-mode action and a step workflow of its own."""
    return write_plugin(tmp_path)


@pytest.mark.parametrize('action', ['hello', 'steps'])
def test_an_action_that_cannot_be_sharded_runs_whole_as_a_ray_task(
    synapse_home, ray_session, hello_plugin, action
):
    """``synapse plugin run ... --mode ray``: one Ray task, the local result, its messages
    relayed; a refusal inside it exits 2 with the plugin's words, as locally."""
    here = run_plugin(hello_plugin, action, {'name': 'ada'})
    assert here.exit_code == 0, here.output
    there = run_plugin(hello_plugin, action, {'name': 'ada'}, '--mode', 'ray', '--workers', '2')
    assert there.exit_code == 0, there.output
    a, b = orjson.loads(here.stdout), orjson.loads(there.stdout)
    if action == 'hello':
        assert a.pop('pid') == os.getpid() and b.pop('pid') != os.getpid()  # ran in Ray
        assert 'hello from the plugin, ada' in there.stderr
        assert 'Running as one task' in there.stderr
        refused = run_plugin(hello_plugin, action, {'name': 'ada', 'fail': True}, '--mode', 'ray')
        assert refused.exit_code == 2, refused.output
        assert 'refused by the plugin' in refused.stderr
    assert a == b


def test_ray_tasks_fetch_from_a_backend_with_a_token(home, ray_session):
    """Shards fetching over HTTP from a server with a token, in a Ray session opened by the
    caller: the token reaches the workers through the object store (see ray_backend.py), the
    export is the single-process one, and the token is in no message."""
    token = 'sekret-ray-token'
    with serve_in_thread(home, token=token) as url:
        http = BackendClient(url, access_token=token)
        try:
            params = params_for('yolo', 'task', 'ray-http')
            expected = single(http, 'yolo', params)
            spec, secrets = ClientSpec.of(http)
            assert secrets == {'SYNAPSE_ACCESS_TOKEN': token} and token not in repr(spec)
            logger = MemoryLogger()
            with RayBackend(2, env=secrets, preload=PRELOAD) as backend:
                got = sharded(http, 'yolo', params, RAY, backend, logger)
        finally:
            http.close()
    assert_same_export(expected, got)
    assert token not in repr(logger.records) + repr(got[0])

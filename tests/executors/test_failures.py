"""Shards that fail: retried when the failure may pass (an error, a dead worker, an HTTP 500),
the export then identical; failing for good: nothing published, the shard's key range and cause
named, the finished shards kept for ``--resume``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from synapse_sdk.clients import BackendClient
from synapse_sdk.loggers import MemoryLogger
from synapse_sdk.plugins.executors import Execution
from synapse_sdk.server.app import serve_in_thread
from synapse_sdk.server.faults import Fault, FaultPlan
from synapse_sdk.testing import read_tree_digest

from .helpers import SHARD_SIZE, assert_same_export, params_for, retries, sharded, single

SYNAPSE = str(Path(sys.executable).with_name('synapse'))


@pytest.mark.parametrize('how', ['raise', 'exit'])
def test_a_shard_failing_its_first_attempt_is_run_again(client, backend, monkeypatch, how):
    params = params_for('coco', 'task', f'retry-{how}')
    expected = single(client, 'coco', params)
    monkeypatch.setenv('SYNAPSE_SHARD_FAULT', f'2:1:{how}')  # shard 2, first attempt only
    logger = MemoryLogger()
    got = sharded(client, 'coco', params, Execution(workers=2, shard_size=SHARD_SIZE), backend,
                  logger)  # fmt: skip
    assert_same_export(expected, got)
    retried = retries(logger)
    assert len(retried) == 1 and retried[0].startswith('shard 2 (ids ')
    cause = 'injected fault in shard 2' if how == 'raise' else 'worker process exited with code 17'
    assert cause in retried[0]


def test_an_http_error_on_one_shard_is_retried(home, monkeypatch):
    """Shards fetch their range over HTTP from a server with a token; one shard's page request
    gets a 500 (not retried by the client) and the shard runs again."""
    token = 'sekret-token-value'
    plan = FaultPlan()
    with serve_in_thread(home, token=token, faults=plan) as url:
        http = BackendClient(url, access_token=token)
        try:
            params = params_for('yolo', 'task', 'http-retry')
            expected = single(http, 'yolo', params)
            fault = plan.add(Fault('status', path='/sdk/tasks/', query='id__gte=', status=500,
                                   after=1, times=1))  # fmt: skip
            logger = MemoryLogger()
            got = sharded(http, 'yolo', params, Execution(workers=2, shard_size=SHARD_SIZE),
                          logger=logger)  # fmt: skip
        finally:
            http.close()
    assert fault.seen >= 2 and ('status', '/sdk/tasks/') in plan.fired
    assert_same_export(expected, got)
    text = repr(logger.records) + repr(got[0])
    assert 'HTTP 500' in text and token not in text


def run_cli(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    """The CLI in a subprocess; its stderr with the console's line wrapping undone."""
    done = subprocess.run([SYNAPSE, *args], env=env, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip
    done.stderr = ' '.join(done.stderr.split())
    return done


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(('SYNAPSE_', 'RAY_'))}
    return {**env, 'SYNAPSE_HOME': str(home), 'SYNAPSE_SHARD_SIZE': str(SHARD_SIZE), **extra}


EXPORT = ('export', 'voc', '--project', '1', '--name', 'kept', '--split', 'train=0.7,val=0.3')


def test_a_shard_failing_for_good_publishes_nothing_and_resume_finishes_it(home, client):
    final = home / 'storage' / 'exports' / 'kept'
    failed = run_cli(*EXPORT, '--workers', '2', env=cli_env(home, SYNAPSE_SHARD_FAULT='3:9:raise'))
    assert failed.returncode == 1, failed.stderr
    assert 'shard 3 (ids ' in failed.stderr and 'failed after 3 attempts' in failed.stderr
    assert 'injected fault in shard 3' in failed.stderr
    assert '--resume' in failed.stderr
    assert not final.exists() and failed.stdout == ''
    staging = [p for p in final.parent.iterdir() if p.name.startswith('.synapse-staging')]
    assert len(staging) == 1  # kept for --resume, never published

    resumed = run_cli(*EXPORT, '--workers', '2', '--resume', env=cli_env(home))
    assert resumed.returncode == 0, resumed.stderr
    assert 'Resuming:' in resumed.stderr and 'already done' in resumed.stderr
    assert not any(p.name.startswith('.synapse') for p in final.parent.iterdir())
    reference = run_cli(*EXPORT[:5], 'reference', *EXPORT[6:], env=cli_env(home))
    assert reference.returncode == 0, reference.stderr
    assert_same_tree(final.with_name('reference'), final)


def assert_same_tree(expected: Path, got: Path) -> None:
    """Byte-identical trees, but for the export name in the report's params."""
    a, b = read_tree_digest(expected), read_tree_digest(got)
    report = 'export_report.json'
    assert {k: v for k, v in a.items() if k != report} == {
        k: v for k, v in b.items() if k != report
    }
    ra = (expected / report).read_text().replace(f'"{expected.name}"', '"NAME"')
    rb = (got / report).read_text().replace(f'"{got.name}"', '"NAME"')
    assert ra == rb

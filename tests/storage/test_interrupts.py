"""Stopping ``synapse export`` with a signal or ``kill -9``: real processes, real files.

The export runs against the embedded server on 127.0.0.1 whose media answers are delayed (the
existing fault plan), so it is reliably caught mid-download with its staging directory on disk.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from synapse_sdk.server.app import serve_in_thread
from synapse_sdk.server.faults import Fault, FaultPlan

SYNAPSE = [sys.executable, '-m', 'synapse_sdk.cli.main']
STAGING = '.synapse-staging-'


@pytest.fixture
def slow_media(synapse_home: Path) -> Iterator[tuple[str, FaultPlan]]:
    """The server on ``synapse_home`` with every media download held for 1 s."""
    plan = FaultPlan(Fault('delay', path='/media/', delay=1.0, times=-1))
    with serve_in_thread(synapse_home, faults=plan) as url:
        yield url, plan


def start_export(home: Path, url: str | None, name: str) -> subprocess.Popen[str]:
    env = {**os.environ, 'SYNAPSE_HOME': str(home)}
    env.pop('SYNAPSE_HOST', None)
    if url is not None:
        env['SYNAPSE_HOST'] = url
    return subprocess.Popen(
        [*SYNAPSE, 'export', 'coco', '--project', '1', '--name', name, '--quiet'],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_downloads(plan: FaultPlan, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not plan.fired:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, 'the export never started downloading'
        time.sleep(0.05)


def entries(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob('*'))


@pytest.mark.slow
@pytest.mark.parametrize(
    ('signum', 'after'),
    [
        (signal.SIGINT, 0.0),
        (signal.SIGTERM, 0.0),
        (signal.SIGHUP, 0.0),
        # every item queued, the main thread waiting for the downloads: the rollback must wait
        # for the download threads too, or they write into the removed staging directory
        (signal.SIGTERM, 0.5),
    ],
)
def test_signal_rolls_back_the_export(synapse_home, slow_media, signum, after):
    url, plan = slow_media
    storage = synapse_home / 'storage'
    before = entries(storage)
    proc = start_export(synapse_home, url, 'stopped')
    wait_for_downloads(plan, proc)
    time.sleep(after)
    staging = [p for p in (storage / 'exports').iterdir() if p.name.startswith(STAGING)]
    assert len(staging) == 1  # caught mid-export, staging on disk
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)

    name = signal.Signals(signum).name
    assert proc.returncode == 128 + signum, err
    assert f'interrupted by {name}; nothing was published' in err
    assert 'Traceback' not in err
    assert out == ''
    assert not staging[0].exists()
    assert entries(storage) == before  # no staging, nothing at the final path, no new dirs


@pytest.mark.slow
def test_kill_9_leaves_staging_that_the_next_export_removes(synapse_home, slow_media):
    url, plan = slow_media
    exports = synapse_home / 'storage' / 'exports'
    proc = start_export(synapse_home, url, 'killed')
    wait_for_downloads(plan, proc)
    proc.kill()
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    (left,) = [p for p in exports.iterdir() if p.name.startswith(STAGING)]
    marker = orjson.loads((left / '.synapse-export' / 'owner.json').read_bytes())
    assert marker['owner']['pid'] == proc.pid
    assert marker['export']['name'] == 'killed'
    assert not (exports / 'killed').exists()

    # The next run of the same export (no server delay needed) removes the dead run's staging
    # and takes the plain name, not killed(1).
    plan.clear()
    again = start_export(synapse_home, url, 'killed')
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert orjson.loads(out)['output_path'] == str(exports / 'killed')
    assert sorted(p.name for p in exports.iterdir()) == ['killed']
    assert not (exports / 'killed' / '.synapse-export').exists()

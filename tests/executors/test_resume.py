"""``kill -9`` in the middle of a sharded export, then ``--resume``: the finished shards are kept
(their files checked against the journal), the rest run, and the tree is byte-identical to an
uninterrupted export. No worker outlives its killed driver."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import orjson
import pytest

from .helpers import ray_daemons, seed_home
from .test_failures import SYNAPSE, assert_same_tree, cli_env, run_cli

EXPORT = ('export', 'yolo', '--project', '1', '--name', 'crashed', '--split', 'train=0.7,val=0.3')


def workers_of(driver: int) -> list[int]:
    """Worker processes of ``driver``: its children (forked or spawned)."""
    found = []
    for entry in Path('/proc').iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / 'stat').read_text()
        except OSError:
            continue
        if int(stat.rpartition(')')[2].split()[1]) == driver:
            found.append(int(entry.name))
    return found


def running(pids: list[int]) -> list[int]:
    """Those of ``pids`` still running (not gone, not a zombie waiting to be reaped)."""
    alive = []
    for pid in pids:
        try:
            state = Path(f'/proc/{pid}/stat').read_text().rpartition(')')[2].split()[0]
        except OSError:
            continue
        if state != 'Z':
            alive.append(pid)
    return alive


@pytest.mark.slow
def test_kill_9_mid_export_then_resume_gives_the_same_tree(tmp_path: Path) -> None:
    home = tmp_path / 'home'
    seed_home(home)
    final = home / 'storage' / 'exports' / 'crashed'
    # The last shard (5 of 0..5) never ends: a worker may take a second shard queued behind
    # its running one, and one queued behind a hung shard would never finish either.
    env = cli_env(home, SYNAPSE_SHARD_FAULT='5:1:hang')
    proc = subprocess.Popen([SYNAPSE, *EXPORT, '--workers', '2'], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        journal = None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            found = list(final.parent.glob('.synapse-staging*/.synapse-export/journal'))
            if found and len(list(found[0].glob('shard-*.json'))) >= 5:
                journal = found[0]
                break
            assert proc.poll() is None, 'the export ended before it could be killed'
            time.sleep(0.1)
        assert journal is not None, 'five shards did not finish in time'
        workers = workers_of(proc.pid)
        assert len(workers) == 2
        os.kill(proc.pid, signal.SIGKILL)  # the driver alone: its workers must follow it
        proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while running(workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert running(workers) == []
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of a failed test
    assert not final.exists()

    # A file of a finished shard damaged after the crash is found out: the shard is redone.
    record = orjson.loads((journal / 'shard-0001.json').read_bytes())
    rel = next(f for f in record['files'] if f.startswith('labels/'))
    staging = journal.parent.parent
    damaged = staging / rel if (staging / rel).exists() else journal.parent / 'parts/0001' / rel
    damaged.write_bytes(b'0 0.5 0.5 0.1 0.1\n' * 3)

    resumed = run_cli(*EXPORT, '--workers', '2', '--resume', env=cli_env(home))
    assert resumed.returncode == 0, resumed.stderr
    assert 'Resuming: 4 of 6 shard(s) already done' in resumed.stderr
    reference = run_cli(*EXPORT[:5], 'reference', *EXPORT[6:], env=cli_env(home))
    assert reference.returncode == 0, reference.stderr
    assert_same_tree(final.with_name('reference'), final)
    assert not any(p.name.startswith('.synapse') for p in final.parent.iterdir())


def test_resume_with_nothing_to_resume_exports_from_the_start(tmp_path: Path) -> None:
    home = tmp_path / 'home'
    seed_home(home)
    done = run_cli(*EXPORT, '--resume', env=cli_env(home))
    assert done.returncode == 0, done.stderr
    assert 'Nothing to resume' in done.stderr
    assert (home / 'storage' / 'exports' / 'crashed' / 'export_report.json').is_file()


@pytest.mark.slow
@pytest.mark.xdist_group('ray')  # see test_ray.py
def test_kill_9_mid_ray_export_leaves_no_ray_and_resume_finishes_it(tmp_path: Path) -> None:
    """The same with ``--mode ray`` and the local Ray the run started: killing the driver
    takes its Ray (GCS, raylet, the workers) down with it, nothing is published, and
    ``--resume --mode ray`` keeps the finished shards."""
    home = tmp_path / 'home'
    seed_home(home)
    final = home / 'storage' / 'exports' / 'crashed'
    env = cli_env(home, SYNAPSE_SHARD_FAULT='5:1:hang', RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER='0')
    before = ray_daemons()
    ray = ['--mode', 'ray', '--workers', '2']
    proc = subprocess.Popen([SYNAPSE, *EXPORT, *ray], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        done = 0
        deadline = time.monotonic() + 180  # a local Ray takes seconds to start
        while time.monotonic() < deadline:
            found = list(final.parent.glob('.synapse-staging*/.synapse-export/journal'))
            done = len(list(found[0].glob('shard-*.json'))) if found else 0
            if done >= 5:
                break
            assert proc.poll() is None, 'the export ended before it could be killed'
            time.sleep(0.1)
        assert done >= 5, 'five shards did not finish in time'
        started = ray_daemons() - before
        assert started, 'the run started no Ray of its own'
        os.kill(proc.pid, signal.SIGKILL)  # the driver alone: its Ray must follow it
        proc.wait(timeout=10)
        deadline = time.monotonic() + 30
        while running(sorted(started)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert running(sorted(started)) == [], 'Ray outlived its killed driver'
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of a failed test
    assert not final.exists()

    env = cli_env(home, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER='0')
    resumed = run_cli(*EXPORT, *ray, '--resume', env=env, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert 'Resuming: 5 of 6 shard(s) already done' in resumed.stderr
    reference = run_cli(*EXPORT[:5], 'reference', *EXPORT[6:], env=env)
    assert reference.returncode == 0, reference.stderr
    assert_same_tree(final.with_name('reference'), final)


@pytest.mark.slow
@pytest.mark.xdist_group('ray')
def test_sigterm_mid_ray_export_rolls_back_and_stops_its_ray(tmp_path: Path) -> None:
    """``kill -TERM`` of a ``--mode ray`` run whose last shard hangs: the run stops with 143
    (Ray's wait once turned it into a bare Ctrl-C, 130), the hung Ray task is cancelled, the
    staging directory is gone, nothing is published, and the local Ray it started is shut
    down (SIGINT goes through the same handler)."""
    signum = signal.SIGTERM
    home = tmp_path / 'home'
    seed_home(home)
    final = home / 'storage' / 'exports' / 'crashed'
    env = cli_env(home, SYNAPSE_SHARD_FAULT='5:1:hang', RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER='0')
    before = ray_daemons()
    proc = subprocess.Popen([SYNAPSE, *EXPORT, '--mode', 'ray', '--workers', '2'], env=env,
                            start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        done = 0
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and done < 5:
            found = list(final.parent.glob('.synapse-staging*/.synapse-export/journal'))
            done = len(list(found[0].glob('shard-*.json'))) if found else 0
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        assert done >= 5, 'five shards did not finish in time'
        started = ray_daemons() - before
        assert started
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of a failed test
    assert proc.returncode == 128 + signum, err
    assert 'interrupted by SIGTERM; nothing was published' in ' '.join(err.split())
    assert not final.exists()
    left = list(final.parent.iterdir()) if final.parent.exists() else []
    assert not any(p.name.startswith('.synapse') for p in left), left
    deadline = time.monotonic() + 30  # ray.shutdown has stopped them; their exit is reaped
    while running(sorted(started)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert running(sorted(started)) == [], 'the run left its Ray running'

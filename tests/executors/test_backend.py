"""The worker processes of ``--workers N`` (``ProcessBackend``): how they start (forked from the
driver when that is safe, spawned otherwise), tasks queued behind a running one, and a worker
that dies with a task waiting behind the one it runs."""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from synapse_sdk.errors import ParamsError
from synapse_sdk.plugins.executors.backends import (
    START_ENV,
    Completion,
    ProcessBackend,
    start_method,
)
from synapse_sdk.plugins.executors.tasks import TaskCall

#: Where this module is importable from, for spawned workers (forked ones inherit sys.path).
_ROOT = Path(__file__).resolve().parents[__name__.count('.')]
ENV = {'PYTHONPATH': os.pathsep.join([str(_ROOT), os.environ.get('PYTHONPATH', '')])}


# -- tasks the workers run (fn(payload, emit)) ---------------------------------------------------
def whoami(payload: Any, emit: Any) -> dict[str, Any]:
    return {'pid': os.getpid(), 'argv': list(sys.argv), 'payload': payload}


def die(payload: Any, emit: Any) -> None:
    os._exit(int(payload))


def chatty(payload: Any, emit: Any) -> int:
    """Sends ``payload`` bytes of events in small batches, as a long shard does."""
    sent = 0
    while sent < payload:
        emit({'log': [['message', 'info', 'x' * 65536]]})
        sent += 65536
    return sent


def _task(fn: str, payload: Any) -> TaskCall:
    return TaskCall(f'{__name__}:{fn}', payload)


def run_all(backend: ProcessBackend, tasks: dict[int, TaskCall], timeout: float = 60) -> dict:
    """Submit every task at once and collect every completion (events counted by key)."""
    events: dict[int, int] = {}
    done: dict[int, Completion] = {}
    for key, task in tasks.items():
        backend.submit(key, task)
    deadline = time.monotonic() + timeout
    while len(done) < len(tasks):
        assert time.monotonic() < deadline, f'tasks {sorted(set(tasks) - set(done))} never ended'

        def count(key: Any, batch: Any) -> None:
            events[key] = events.get(key, 0) + 1

        for completion in backend.poll(0.2, count):
            done[completion.key] = completion
    return {'done': done, 'events': events}


# -- how workers start ---------------------------------------------------------------------------
def test_workers_fork_when_the_driver_runs_one_thread_and_spawn_otherwise(monkeypatch):
    from synapse_sdk.plugins.executors import backends

    monkeypatch.delenv(START_ENV, raising=False)
    # What other tests of this process left open is not this test's: no database open here.
    monkeypatch.setattr(backends, 'sqlite_files', lambda: [])
    with monkeypatch.context() as alone:
        alone.setattr(threading, 'active_count', lambda: 1)
        assert start_method() == 'fork'
    monkeypatch.setenv(START_ENV, 'spawn')
    assert start_method() == 'spawn'
    monkeypatch.setenv(START_ENV, 'fork')
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert start_method() == 'spawn'  # a fork could copy a lock the other thread holds
    finally:
        stop.set()
        thread.join()
    monkeypatch.setenv(START_ENV, 'vfork')
    with pytest.raises(ParamsError) as info:
        start_method()
    assert info.value.errors == [(START_ENV, "got 'vfork'; allowed: fork, spawn")]


def _only_under(monkeypatch: pytest.MonkeyPatch, root: Path) -> Any:
    """Make the fork check see only the databases under ``root`` (other tests of this process
    may leave theirs open, or threads running): the decision then depends on this test alone."""
    from synapse_sdk.plugins.executors import backends

    real = backends.sqlite_files

    def ours() -> list[str]:
        return [f for f in real() if f.startswith(str(root))]

    monkeypatch.setattr(backends, 'sqlite_files', ours)
    monkeypatch.setattr(threading, 'active_count', lambda: 1)
    return ours


def test_workers_spawn_while_an_sqlite_database_is_open(tmp_path, monkeypatch):
    """A fork would copy SQLite's record of the locks this process holds into a child that
    holds none; the check reads the open files' headers without reopening them (closing a
    reopened descriptor would drop this process's POSIX locks on the database)."""
    monkeypatch.delenv(START_ENV, raising=False)
    ours = _only_under(monkeypatch, tmp_path)
    db = tmp_path / 'any-name'
    conn = sqlite3.connect(db)
    conn.execute('PRAGMA journal_mode=WAL')
    conn.execute('CREATE TABLE t (x)')
    conn.execute('BEGIN')
    conn.execute('INSERT INTO t VALUES (1)')  # a write lock held while we look
    try:
        assert str(db) in ours()
        assert start_method() == 'spawn'
        other = sqlite3.connect(db, timeout=0)
        with pytest.raises(sqlite3.OperationalError, match='locked'):
            other.execute('INSERT INTO t VALUES (2)')  # the check dropped no lock
        other.close()
    finally:
        conn.rollback()
        conn.close()
    assert ours() == []
    assert start_method() == 'fork'


def test_an_export_on_the_embedded_store_releases_it_and_forks_its_workers(tmp_path, monkeypatch):
    """``--workers 2`` on the embedded store: the driver's database connections (open since
    the params were checked) are closed before the workers start, so they are forked; the
    export is still the single-process one."""
    from synapse_sdk.clients import LocalClient
    from synapse_sdk.plugins.executors import Execution, backends

    from .helpers import SHARD_SIZE, assert_same_export, params_for, seed_home, sharded, single

    monkeypatch.delenv(START_ENV, raising=False)
    ours = _only_under(monkeypatch, tmp_path)
    methods: list[str] = []
    real = backends.start_method
    monkeypatch.setattr(backends, 'start_method', lambda: methods.append(real()) or methods[-1])
    seed_home(tmp_path / 'home')
    client = LocalClient(tmp_path / 'home')
    try:
        params = params_for('coco', 'task', 'forked')
        expected = single(client, 'coco', params)
        assert ours()  # the store is open in this process
        got = sharded(client, 'coco', params, Execution(workers=2, shard_size=SHARD_SIZE))
        assert methods == ['fork', 'fork']
        assert_same_export(expected, got)
        assert client.count_tasks({'project': 1}) > 0  # the store opens again on use
    finally:
        client.close()


@pytest.mark.parametrize('method', ['fork', 'spawn'])
def test_forked_and_spawned_workers_run_the_same_tasks(tmp_path, monkeypatch, method):
    monkeypatch.setenv(START_ENV, method)
    _only_under(monkeypatch, tmp_path)
    with ProcessBackend(2, env=ENV) as backend:
        assert [w.method for w in backend._workers] == [method, method]
        got = run_all(backend, {i: _task('whoami', i) for i in range(6)})
    done = got['done']
    assert all(c.ok for c in done.values()), [c.failure for c in done.values()]
    assert [done[i].result['payload'] for i in range(6)] == list(range(6))
    pids = {c.result['pid'] for c in done.values()}
    assert len(pids) == 2 and os.getpid() not in pids
    spawned = ['-m', 'synapse_sdk.plugins.executors.worker']
    argv = done[0].result['argv']
    if method == 'fork':
        assert argv == sys.argv  # a copy of this process: nothing imported or run again
    else:
        assert argv[0].endswith('worker.py'), argv
        assert spawned[1].rsplit('.', 1)[-1] in argv[0]


# -- tasks queued behind a running one -----------------------------------------------------------
@pytest.mark.parametrize('method', ['fork', 'spawn'])
def test_a_task_queued_behind_one_whose_worker_dies_runs_on_the_next_worker(monkeypatch, method):
    monkeypatch.setenv(START_ENV, method)
    with ProcessBackend(1, env=ENV) as backend:
        assert backend.depth == 2
        got = run_all(backend, {0: _task('die', 7), 1: _task('whoami', 'after')})
    crashed, after = got['done'][0], got['done'][1]
    assert not crashed.ok and crashed.failure is not None and crashed.failure.crash
    assert 'exited with code 7' in crashed.failure.message
    assert after.ok, after.failure  # sent to the dead worker, never started: not a failure
    assert after.result['payload'] == 'after'


@pytest.mark.timeout(60)
def test_a_large_task_queued_behind_a_chatty_one_does_not_block_the_driver(monkeypatch):
    """The driver sends the next task (megabytes of names) while the running task floods it
    with events: neither waits on the other's full socket."""
    monkeypatch.setenv(START_ENV, 'fork')
    with ProcessBackend(1, env=ENV) as backend:
        got = run_all(
            backend,
            {0: _task('chatty', 8 << 20), 1: _task('whoami', 'x' * (8 << 20))},
            timeout=60,
        )
    assert got['done'][0].ok and got['done'][0].result >= 8 << 20
    assert got['done'][1].ok and len(got['done'][1].result['payload']) == 8 << 20
    assert got['events'][0] >= 8 << 20 >> 16

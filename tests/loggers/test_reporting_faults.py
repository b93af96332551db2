"""Reporting never changes an export's outcome: a full log disk, a locked job database.

Real processes and real failures: the CLI writes its ``--log-file`` to ``/dev/full`` and to a
64 KiB tmpfs filled up mid-run, and reports ``--job-id`` to a SQLite store that another
connection holds locked for the whole run.
"""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from tests.cli.helpers import synapse

from synapse_sdk.errors import ParamsError, StepError
from synapse_sdk.loggers import BackendLogger, JsonlLogger, MemoryLogger
from synapse_sdk.plugins.steps import (
    BaseStep,
    BaseStepContext,
    Orchestrator,
    StepRegistry,
    StepResult,
)
from synapse_sdk.server.store import Store

BROKEN_PLUGIN = {
    'config.yaml': 'name: broken\ncode: broken\nversion: 1.0.0\ncategory: export\n\n'
    'actions:\n  export:\n    entrypoint: plugin.export.BrokenExportAction\n',
    'plugin/__init__.py': '',
    'plugin/export.py': (
        'from synapse_sdk.plugins.actions.export import BaseExporter, ExportAction\n\n\n'
        'class BrokenExporter(BaseExporter):\n'
        '    def additional_file_saving(self, unique_export_path):\n'
        "        raise RuntimeError('metadata step exploded')\n\n\n"
        'class BrokenExportAction(ExportAction):\n'
        '    @property\n'
        '    def entrypoint(self):\n'
        '        return BrokenExporter\n'
    ),
}


@pytest.fixture
def tiny_disk(mount_tmpfs: Callable[[str, str], Path]) -> Path:
    """A 64 KiB tmpfs (needs root; skipped otherwise, /dev/full covers the same path)."""
    return mount_tmpfs('tiny', '64k')


@pytest.fixture
def locked_db(synapse_home: Path) -> Iterator[sqlite3.Connection]:
    """Another connection holding the store's write lock (readers still work: WAL)."""
    Store(synapse_home).close()
    conn = sqlite3.connect(synapse_home / 'local.db', isolation_level=None, timeout=1)
    conn.execute('BEGIN IMMEDIATE')
    yield conn
    conn.execute('ROLLBACK')
    conn.close()


def assert_published(done: subprocess.CompletedProcess[str], name: str, home: Path) -> None:
    assert done.returncode == 0, done.stderr
    assert 'Traceback' not in done.stderr
    result = orjson.loads(done.stdout)  # the true outcome, on stdout
    assert result['output_path'] == str(home / 'storage' / 'exports' / name)
    assert (Path(result['output_path']) / 'annotations').is_dir() or any(
        Path(result['output_path']).iterdir()
    )


def test_log_file_on_dev_full(synapse_home: Path) -> None:
    done = synapse('export', 'coco', '--project', '1', '--name', 'full', '-q',
                   '--log-file', '/dev/full', home=synapse_home)  # fmt: skip
    assert_published(done, 'full', synapse_home)
    assert 'Warning: log file /dev/full could not be written' in done.stderr
    assert 'No space left on device' in done.stderr


def test_log_file_on_a_full_tmpfs(synapse_home: Path, tiny_disk: Path) -> None:
    log = tiny_disk / 'run.jsonl'
    log.write_bytes(b'')
    ballast_path = tiny_disk / 'ballast'
    with open(ballast_path, 'wb', buffering=0) as ballast, pytest.raises(OSError, match='space'):
        while True:  # fill the disk to the last byte
            ballast.write(b'\0' * 1024)
    done = synapse('export', 'coco', '--project', '1', '--name', 'tiny', '-q',
                   '--log-file', str(log), home=synapse_home)  # fmt: skip
    assert_published(done, 'tiny', synapse_home)
    assert f'Warning: log file {log} could not be written' in done.stderr
    assert 'No space left on device' in done.stderr and 'the log is incomplete' in done.stderr


def test_log_file_that_cannot_be_opened_is_exit_2_before_anything_runs(
    synapse_home: Path, tmp_path: Path
) -> None:
    done = synapse('export', 'coco', '--project', '1', '--name', 'never', '-q',
                   '--log-file', str(tmp_path), home=synapse_home)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert f'Cannot write the log file: {tmp_path}' in done.stderr
    assert not (synapse_home / 'storage' / 'exports').exists()


def test_job_on_a_locked_database_keeps_the_outcome(
    synapse_home: Path, locked_db: sqlite3.Connection
) -> None:
    done = synapse('export', 'coco', '--project', '1', '--name', 'locked', '-q',
                   '--job-id', '7', home=synapse_home,
                   SYNAPSE_JOB_REPORT_TIMEOUT='2')  # fmt: skip
    assert_published(done, 'locked', synapse_home)
    assert 'Warning: job 7: the backend did not answer within 2 s' in done.stderr


def test_job_on_a_locked_database_does_not_escape_the_rollback(
    synapse_home: Path, tmp_path: Path, locked_db: sqlite3.Connection
) -> None:
    plugin = tmp_path / 'broken'
    for rel, text in BROKEN_PLUGIN.items():
        (plugin / rel).parent.mkdir(parents=True, exist_ok=True)
        (plugin / rel).write_text(text)
    params = {
        'storage': 1,
        'name': 'broken',
        'path': 'exports',
        'target': 'task',
        'filter': {'project': 1},
    }
    done = synapse('plugin', 'run', 'export', '--plugin', str(plugin),
                   '--params', orjson.dumps(params).decode(),
                   '-q', '--job-id', '8', home=synapse_home,
                   SYNAPSE_JOB_REPORT_TIMEOUT='1')  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert 'metadata step exploded' in done.stderr  # the real failure, not the database's
    assert (
        'Traceback' not in done.stderr and 'OperationalError' not in done.stderr.split('Warning')[0]
    )
    assert 'Warning: job 8: the backend did not answer within 1 s' in done.stderr
    storage = synapse_home / 'storage'
    assert not (storage / 'exports').exists() or list((storage / 'exports').iterdir()) == []


# -- the same guarantees, in process ---------------------------------------------------------


class _Step(BaseStep[BaseStepContext]):
    def __init__(self, name: str, journal: list[str], fail: bool = False) -> None:
        self._name, self.journal, self.fail = name, journal, fail

    @property
    def name(self) -> str:
        return self._name

    @property
    def progress_weight(self) -> float:
        return 1.0

    def execute(self, context: BaseStepContext) -> StepResult:
        context.runtime_ctx.logger.log_message(f'running {self.name}')
        context.set_progress(1, 2)
        if self.fail:
            raise ValueError(f'{self.name} failed')
        return StepResult()

    def rollback(self, context: BaseStepContext, result: StepResult) -> None:
        context.runtime_ctx.logger.log_message(f'rolling back {self.name}')
        self.journal.append(f'rollback:{self.name}')


def test_locked_store_inside_steps_and_rollback(
    synapse_home: Path, locked_db: sqlite3.Connection
) -> None:
    from synapse_sdk.clients import LocalClient
    from synapse_sdk.plugins.context import RuntimeContext

    class FailFastStore(Store):
        """The real store, giving up on a lock after 0.1 s instead of 30 s."""

        @property
        def conn(self) -> sqlite3.Connection:
            conn = super().conn
            conn.execute('PRAGMA busy_timeout = 100')
            return conn

    client = LocalClient(store=FailFastStore(synapse_home))
    logger = BackendLogger(client, 9, min_interval=0.0, batch_size=1, timeout=5)
    journal: list[str] = []
    registry: StepRegistry[BaseStepContext] = StepRegistry()
    registry.register(_Step('a', journal))
    registry.register(_Step('b', journal, fail=True))
    ctx = BaseStepContext(runtime_ctx=RuntimeContext(logger=logger, client=client))

    def report(fraction: float) -> None:
        logger.set_progress(fraction, 1.0, 'overall')

    with pytest.raises(StepError, match='b failed'):
        Orchestrator(registry, ctx, report=report).run()
    assert journal == ['rollback:b', 'rollback:a']
    logger.finish()
    logger.set_result('failed', error='b failed')
    assert logger.failures > 0 and 'locked' in (logger.last_error or '')
    assert logger.problems and logger.problems[0].startswith('job 9:')
    client.close()


def test_a_raising_progress_reporter_does_not_fail_the_run() -> None:
    from synapse_sdk.plugins.context import RuntimeContext

    journal: list[str] = []
    registry: StepRegistry[BaseStepContext] = StepRegistry()
    registry.register(_Step('a', journal))
    ctx = BaseStepContext(runtime_ctx=RuntimeContext(logger=MemoryLogger()))

    def report(fraction: float) -> None:
        raise sqlite3.OperationalError('database is locked')

    Orchestrator(registry, ctx, report=report).run()
    assert journal == []


def test_jsonl_logger_never_raises_after_a_failed_write(tmp_path: Path) -> None:
    with open('/dev/full', 'wb', buffering=0) as full:
        logger = JsonlLogger(full)
        for i in range(3):
            logger.log_message(f'line {i}')
            logger.set_progress(i, 3, 'x')
        logger.finish()
    assert logger.failures >= 1 and 'No space left' in (logger.last_error or '')
    assert logger.lost >= 5
    (line,) = logger.problems
    assert 'could not be written' in line and 'the log is incomplete' in line
    with pytest.raises(ParamsError, match='Cannot write the log file'):
        JsonlLogger(tmp_path)  # a directory


def test_backend_logger_waits_a_bounded_time_for_a_hung_backend() -> None:
    import threading
    import time

    release = threading.Event()

    class Hung:
        def update_job(self, *args: object) -> None:
            release.wait(30)

        def create_logs(self, rows: object) -> None:
            release.wait(30)

    logger = BackendLogger(Hung(), 3, min_interval=0.0, timeout=0.5)
    started = time.monotonic()
    for i in range(100):
        logger.set_progress(i, 100, 'x')  # never blocks the run
        logger.log_message(f'm{i}')
    assert time.monotonic() - started < 0.5
    logger.finish()
    logger.set_result('succeeded')
    assert time.monotonic() - started < 3
    assert 'did not answer within 0.5 s' in logger.problems[0]
    release.set()

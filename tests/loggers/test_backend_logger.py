"""BackendLogger: a run reported to a platform job, over the embedded store and real HTTP."""

from __future__ import annotations

import pytest

from synapse_sdk.errors import BackendError
from synapse_sdk.loggers import BackendLogger
from synapse_sdk.loggers.base import BaseLogger
from synapse_sdk.plugins.context import RuntimeContext
from synapse_sdk.plugins.discovery import load_plugin
from synapse_sdk.server.store import Store


@pytest.mark.parametrize('which', ['local', 'http'])
def test_export_reports_progress_metrics_and_batched_logs(
    which, local_client, http_client, synapse_home
):
    client = local_client if which == 'local' else http_client
    logger = BackendLogger(client, 41, min_interval=0.0, batch_size=10, flush_interval=60)
    action = load_plugin('dm').get_action('export')
    params = {'name': 'job', 'storage': 1, 'target': 'task', 'filter': {'project': 1}}
    result = action.dispatch(params, RuntimeContext(logger=logger, client=client, job_id='41'))
    logger.finish()
    logger.set_result('succeeded', result={'output_path': result['output_path']})

    job = local_client.get_job(41)
    items = result['exported_count']
    assert job['status'] == 'succeeded'
    assert job['progress']['dataset_conversion'] == {'current': items, 'total': items}
    assert job['metrics']['data_file'] == {'stand_by': 0, 'success': items, 'failed': 0}
    store = Store(synapse_home)
    rows = [r for r in store.list_job_logs(41) if r.get('type') == 'export_file_log']
    store.close()
    assert sorted((r['kind'], r['item_id']) for r in rows) == sorted(
        [('data_file', i) for i in range(1, items + 1)]
        + [('original_file', i) for i in range(1, items + 1)]
    )
    assert all(r['job'] == 41 and r['status'] == 'success' for r in rows)
    assert logger.failures == 0
    # batched: rows go out 10 per call, not one call per file
    all_rows = len(store_rows(synapse_home, 41))
    assert all_rows // 10 <= logger.calls['create_logs'] <= all_rows // 10 + 3


def store_rows(home, job):
    store = Store(home)
    try:
        return store.list_job_logs(job)
    finally:
        store.close()


def test_reporting_failures_never_break_the_run():
    class Down:
        def update_job(self, *args):
            raise BackendError('503 from backend', status_code=503)

        def create_logs(self, rows):
            raise BackendError('503 from backend', status_code=503)

    logger = BackendLogger(Down(), 1, min_interval=0.0, batch_size=1)
    logger.set_progress(1, 2, 'x')
    logger.log_message('hello')
    logger.finish()
    assert logger.failures == 2 and '503' in (logger.last_error or '')
    assert isinstance(logger, BaseLogger)


def test_no_sender_thread_outlives_a_finished_run():
    import threading
    import time

    class Ok:
        def __init__(self):
            self.patches = []

        def update_job(self, job_id, data):
            self.patches.append(data)

        def create_logs(self, rows):
            pass

    before = set(threading.enumerate())  # threads of other tests may end meanwhile: by identity
    clients = []
    for job in range(20):
        client = Ok()
        clients.append(client)
        logger = BackendLogger(client, job, min_interval=0.0)
        logger.set_progress(1, 1, 'x')
        logger.log_message('done')
        logger.finish()
        logger.set_result('succeeded', result={'job': job})
    deadline = time.monotonic() + 5

    def started_here() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t not in before]

    while started_here() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert started_here() == []
    for job, client in enumerate(clients):
        assert client.patches[-1] == {'status': 'succeeded', 'result': {'job': job}}

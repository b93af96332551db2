"""The one retry policy (synapse_sdk.retry): shared by the client and the downloader, with an
injected sleep and clock so no test waits on the wall clock."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

import pytest

from synapse_sdk import retry as retry_module
from synapse_sdk.clients import BackendClient, backend
from synapse_sdk.retry import RETRY_STATUSES, RetryPolicy, Transient, parse_retry_after
from synapse_sdk.server.app import serve_in_thread
from synapse_sdk.server.faults import Fault, FaultPlan
from synapse_sdk.storage import Downloader, download


def test_one_status_set_everywhere() -> None:
    assert backend.RETRY_STATUSES is RETRY_STATUSES
    assert download.RETRY_STATUS is RETRY_STATUSES
    assert frozenset({429, 502, 503, 504}) == RETRY_STATUSES


@pytest.mark.parametrize(
    ('value', 'expected'),
    [
        ('3', 3.0),
        (' 0.5 ', 0.5),
        ('-4', 0.0),
        ('', None),
        (None, None),
        ('soon', None),
        ('nan', None),
        ('inf', None),
        (format_datetime(datetime(2030, 1, 1, 0, 0, 30, tzinfo=UTC), usegmt=True), 30.0),
        (format_datetime(datetime(2029, 12, 31, tzinfo=UTC), usegmt=True), 0.0),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC).timestamp()
    assert parse_retry_after(value, now=lambda: now) == expected


def test_backoff_doubles_to_the_cap_with_jitter() -> None:
    policy = RetryPolicy(retries=6, backoff=0.5, max_backoff=3.0, jitter=lambda: 1.0)
    assert [policy.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    low = RetryPolicy(backoff=0.5, jitter=lambda: 0.0)
    assert low.delay(1) == 0.25  # jitter keeps at least half the wait
    assert RetryPolicy(max_retry_after=10).delay(1, retry_after=99) == 10


def test_call_retries_only_transient_failures() -> None:
    slept: list[float] = []
    policy = RetryPolicy(retries=3, backoff=1, sleep=slept.append, jitter=lambda: 1.0)
    calls = iter([Transient('503'), Transient('429', retry_after=7), 'done'])

    def flaky() -> str:
        value = next(calls)
        if isinstance(value, Exception):
            raise value
        return value

    seen: list[tuple[str, int, float]] = []
    assert policy.call(flaky, on_retry=lambda e, n, d: seen.append((e.reason, n, d))) == 'done'
    assert slept == [1.0, 7.0]
    assert seen == [('503', 1, 1.0), ('429', 2, 7.0)]

    def broken() -> None:
        raise KeyError('not transient')

    with pytest.raises(KeyError):
        policy.call(broken)
    assert slept == [1.0, 7.0]


def test_retries_run_out_with_the_attempt_count() -> None:
    slept: list[float] = []
    policy = RetryPolicy(retries=2, sleep=slept.append)

    def always() -> None:
        raise Transient('down', status_code=503)

    with pytest.raises(Transient) as info:
        policy.call(always)
    assert info.value.attempts == 3 and len(slept) == 2


def test_client_and_downloader_share_the_injected_policy(
    synapse_home: Path, tmp_path: Path
) -> None:
    """One policy object drives both, over the real server: no wall-clock waits."""
    slept: list[float] = []
    policy = RetryPolicy(
        retries=3, backoff=5.0, max_backoff=30, sleep=slept.append, jitter=lambda: 1.0
    )
    plan = FaultPlan(
        Fault('status', path='/projects/', status=503, times=1),
        Fault('status', path='/media/', status=429, retry_after=2, times=1),
        Fault('status', path='/media/', status=502, after=1, times=1),
    )
    with serve_in_thread(synapse_home, faults=plan) as url:
        client = BackendClient(url, retry=policy)
        assert client.get_project(1)['id'] == 1
        task = next(client.get_tasks({'project': 1})[0])
        media = task['data_unit']['files']['image_1']
        with Downloader(retry=policy, policy=client.source_policy()) as downloader:
            downloader.download(media['url'], tmp_path / 'a.jpg', checksum=media['checksum'])
        client.close()
    assert slept == [5.0, 2.0, 10.0]  # client backoff, server's Retry-After, doubled backoff
    assert (tmp_path / 'a.jpg').stat().st_size == media['size']


def test_no_hand_written_retry_loops_left() -> None:
    """The client and the downloader parse Retry-After through the one module."""
    for module in (backend, download):
        source = Path(module.__file__ or '').read_text()
        assert 'parsedate_to_datetime' not in source
        assert 'random.' not in source
    assert 'tenacity' in Path(retry_module.__file__ or '').read_text()


def test_clients_do_not_import_the_server() -> None:
    code = (
        'import sys, synapse_sdk.clients, synapse_sdk.clients.backend; '
        'bad = sorted(m for m in sys.modules if m.startswith("synapse_sdk.server")); '
        'print(bad); sys.exit(1 if bad else 0)'
    )
    done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_client_seam_is_typed() -> None:
    """Where the engine takes a client, the type is ClientBase, not Any (mypy checks callers)."""
    from typing import get_type_hints

    from synapse_sdk.clients import ClientBase
    from synapse_sdk.loggers.backend import BackendLogger
    from synapse_sdk.plugins.actions.export.context import ExportContext
    from synapse_sdk.plugins.actions.export.handlers import ExportTargetHandler
    from synapse_sdk.plugins.context import RuntimeContext

    ns = {'ClientBase': ClientBase}  # imported for type checking only in those modules

    assert get_type_hints(RuntimeContext, localns=ns)['client'] == ClientBase | None
    assert get_type_hints(ExportContext.client.fget, localns=ns)['return'] is ClientBase  # type: ignore[attr-defined]
    for name in ('validate_filter', 'get_results', 'count', 'project_id'):
        hints = get_type_hints(getattr(ExportTargetHandler, name), localns=ns)
        assert hints['client'] is ClientBase, name
    assert get_type_hints(BackendLogger.__init__, localns=ns)['client'] is ClientBase

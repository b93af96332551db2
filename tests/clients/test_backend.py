"""BackendClient logic through httpx.MockTransport: retries, error mapping, token hygiene."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from synapse_sdk.clients import BackendClient, LocalClient, default_client
from synapse_sdk.errors import AuthError, BackendError, FilterError, NotFoundError

TOKEN = 'sekrit-token-123'


def make(
    handler: Callable[[httpx.Request], httpx.Response], **kw: Any
) -> tuple[BackendClient, list[float]]:
    slept: list[float] = []
    client = BackendClient(
        'http://platform.test/api', access_token=TOKEN, tenant='acme',
        transport=httpx.MockTransport(handler), sleep=slept.append,
        **{'retries': 3, 'backoff': 0.5, 'max_backoff': 4.0, **kw},
    )  # fmt: skip
    return client, slept


def envelope(results: list[dict[str, Any]], count: int | None = None, more: bool = False):
    return {'count': count, 'next': 'http://x/next' if more else None, 'previous': None,
            'results': results}  # fmt: skip


def test_headers_and_paths() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={'id': 3, 'title': 't', 'configuration': {}})

    client, _ = make(handler)
    client.get_project(3)
    request = seen[0]
    assert str(request.url) == 'http://platform.test/api/projects/3/'
    assert request.headers['Synapse-Access-Token'] == f'Token {TOKEN}'
    assert request.headers['Synapse-Tenant'] == 'Token acme'


def test_filters_are_encoded_and_pages_resume_after_the_last_id() -> None:
    queries: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        q = dict(request.url.params)
        queries.append(q)
        start = int(q.get('id__gt', 0))
        ids = [i for i in range(start + 1, start + 3) if i <= 5]
        return httpx.Response(200, json=envelope([{'id': i} for i in ids], 5, ids[-1] < 5))

    client, _ = make(handler, page_size=2)
    results, count = client.get_assignments(
        {'project': 1, 'ids': [1, 2, 3, 4, 5], 'has': True, 'skip': None}
    )
    assert count == 5 and [r['id'] for r in results] == [1, 2, 3, 4, 5]
    assert queries[0] == {'project': '1', 'ids': '1,2,3,4,5', 'has': 'true', 'page_size': '2'}
    assert [q.get('id__gt') for q in queries] == [None, '2', '4']
    assert all(q.get('pagination') == 'cursor' for q in queries[1:])


@pytest.mark.parametrize('status', [429, 502, 503, 504])
def test_retryable_statuses_back_off(status: int) -> None:
    answers = iter([httpx.Response(status), httpx.Response(status), httpx.Response(200, json={})])
    client, slept = make(lambda r: next(answers))
    assert client.get_storage(1) == {}
    assert len(slept) == 2
    assert 0.25 <= slept[0] <= 0.5 and 0.5 <= slept[1] <= 1.0  # doubling, with jitter


def test_backoff_is_capped() -> None:
    client, slept = make(lambda r: httpx.Response(503), retries=6, max_backoff=1.0)
    with pytest.raises(BackendError) as info:
        client.get_storage(1)
    assert info.value.status_code == 503
    assert len(slept) == 6 and max(slept) <= 1.0


@pytest.mark.parametrize(('header', 'wait'), [('2', 2.0), ('0.5', 0.5), ('garbage', None)])
def test_retry_after(header: str, wait: float | None) -> None:
    answers = iter(
        [httpx.Response(429, headers={'Retry-After': header}), httpx.Response(200, json={})]
    )
    client, slept = make(lambda r: next(answers))
    client.get_storage(1)
    if wait is None:
        assert 0.25 <= slept[0] <= 0.5
    else:
        assert slept == [wait]


def test_transport_errors_are_retried() -> None:
    calls = {'n': 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls['n'] += 1
        if calls['n'] == 1:
            raise httpx.ConnectError('refused', request=request)
        if calls['n'] == 2:
            raise httpx.ReadTimeout('slow', request=request)
        return httpx.Response(200, json={'id': 1})

    client, slept = make(handler)
    assert client.get_storage(1) == {'id': 1}
    assert len(slept) == 2


def test_post_is_not_retried_after_it_may_have_been_received() -> None:
    calls = {'n': 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls['n'] += 1
        raise httpx.ReadTimeout('slow', request=request)

    client, _ = make(handler)
    with pytest.raises(BackendError):
        client.create_logs([{'message': 'x'}])
    assert calls['n'] == 1


@pytest.mark.parametrize(
    ('status', 'body', 'error'),
    [
        (
            400,
            {'detail': 'Unknown task filter key(s): x (supported: a, b)', 'supported': ['a', 'b']},
            FilterError,
        ),
        (400, {'detail': 'something else'}, BackendError),
        (401, {'detail': 'Missing or invalid access token'}, AuthError),
        (403, {'detail': 'forbidden'}, AuthError),
        (404, {'detail': 'Project 9 not found'}, NotFoundError),
        (409, {'detail': 'conflict'}, BackendError),
    ],
)
def test_client_errors_fail_at_once(status: int, body: dict[str, Any], error: type) -> None:
    calls = {'n': 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls['n'] += 1
        return httpx.Response(status, json=body)

    client, slept = make(handler)
    with pytest.raises(error) as info:
        client.get_project(9)
    assert calls['n'] == 1 and slept == []
    assert info.value.status_code == status
    if error is FilterError:
        assert info.value.supported == ['a', 'b']
        assert str(info.value) == body['detail']


def test_token_never_in_errors_logs_or_repr(caplog: pytest.LogCaptureFixture) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if 'storages' in request.url.path:
            raise httpx.ConnectError(f'cannot reach {request.url}', request=request)
        return httpx.Response(401, json={'detail': 'Missing or invalid access token'})

    caplog.set_level(logging.DEBUG)
    client, _ = make(handler)
    texts = [repr(client)]
    for call in (client.get_project, client.get_storage):
        with pytest.raises(BackendError) as info:
            call(1)
        texts += [str(info.value), repr(info.value), str(info.value.url)]
    texts += [r.getMessage() for r in caplog.records]
    assert caplog.records  # retries were logged
    assert not [t for t in texts if TOKEN in t]


def test_default_client_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.delenv('SYNAPSE_HOST', raising=False)
    monkeypatch.setenv('SYNAPSE_HOME', str(tmp_path))
    local = default_client()
    assert isinstance(local, LocalClient) and local.home == tmp_path
    local.close()
    monkeypatch.setenv('SYNAPSE_HOST', 'http://platform.test/')
    monkeypatch.setenv('SYNAPSE_ACCESS_TOKEN', TOKEN)
    remote = default_client()
    assert isinstance(remote, BackendClient) and remote.base_url == 'http://platform.test/'
    assert TOKEN not in repr(remote)

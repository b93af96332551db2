"""The REST server over real HTTP on 127.0.0.1: envelope, auth, errors, media."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx
import pytest

from synapse_sdk.clients import BackendClient
from synapse_sdk.errors import AuthError, ParamsError
from synapse_sdk.server.app import check_bind, is_loopback, serve_in_thread

TOKEN = 'server-secret-42'


def test_envelope_and_next_links_walk_everything(live_server: str, local_client: Any) -> None:
    expected = [t['id'] for t in local_client.get_tasks({'project': 1})[0]]
    url: str | None = f'{live_server}sdk/tasks/?project=1&page_size=5'
    seen: list[int] = []
    first = True
    while url:
        body = httpx.get(url).json()
        assert set(body) == ({'count', 'next', 'previous', 'results'} if first else set(body))
        if first:
            assert body['count'] == len(expected)
            first = False
        seen += [r['id'] for r in body['results']]
        url = body['next']
    assert seen == expected


def test_cursor_mode_omits_count(live_server: str) -> None:
    body = httpx.get(f'{live_server}sdk/assignments/?project=1&pagination=cursor').json()
    assert 'count' not in body and body['results']


@pytest.mark.parametrize(
    ('query', 'status', 'needle'),
    [
        ('sdk/tasks/?project=abc', 400, 'expects an integer'),
        ('sdk/tasks/?project=1&page_size=-3', 400, 'page_size'),
        ('sdk/tasks/?project=1&created__gte=soon', 400, 'ISO 8601'),
        ('sdk/tasks/?project=1&colour=red', 400, 'Unknown task filter'),
        ('sdk/tasks/', 400, 'Missing required'),
        ('sdk/nothing/?project=1', 404, 'Unknown list'),
        ('projects/77/', 404, 'not found'),
        ('media/../local.db', 404, ''),
        ('media/%2E%2E/local.db', 404, ''),
        ('media/1/nope.jpg', 404, ''),
    ],
)
def test_bad_requests(live_server: str, query: str, status: int, needle: str) -> None:
    response = httpx.get(live_server + query)
    assert response.status_code == status
    assert needle in response.text


def test_unknown_filter_lists_supported_keys(live_server: str) -> None:
    body = httpx.get(f'{live_server}sdk/assignments/?project=1&stat=x').json()
    assert 'status' in body['supported'] and 'project' in body['supported']


def test_media_urls_are_absolute_and_percent_encoded(live_server: str) -> None:
    body = httpx.get(f'{live_server}sdk/tasks/?project=1&page_size=1000').json()
    for task in body['results']:
        url = task['data_unit']['files']['image_1']['url']
        assert url.startswith(f'{live_server}media/') and ' ' not in url and url.isascii()
        response = httpx.get(url)
        assert response.status_code == 200
        assert len(response.content) == task['data_unit']['files']['image_1']['size']


def test_bad_json_bodies(live_server: str) -> None:
    assert httpx.patch(f'{live_server}jobs/1/', content=b'{nope').status_code == 400
    assert httpx.patch(f'{live_server}jobs/1/', json=[1]).status_code == 400
    assert httpx.post(f'{live_server}logs/', json=[1, 2]).status_code == 400


def test_token_is_required_and_never_logged(
    synapse_home: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    with serve_in_thread(synapse_home, token=TOKEN) as url:
        assert httpx.get(f'{url}projects/1/').status_code == 401
        wrong = {'Synapse-Access-Token': 'Token nope'}
        assert httpx.get(f'{url}projects/1/', headers=wrong).status_code == 401
        assert httpx.get(f'{url}health/').status_code == 200
        with pytest.raises(AuthError) as info:
            BackendClient(url, access_token='nope').get_project(1)
        assert info.value.status_code == 401
        client = BackendClient(url, access_token=TOKEN)
        task = next(iter(client.get_tasks({'project': 1})[0]))
        media = task['data_unit']['files']['image_1']['url']
        assert TOKEN not in media
        assert httpx.get(media).status_code == 200  # signed URL, like a presigned one
        assert httpx.get(media.split('?')[0]).status_code == 401
        assert httpx.get(media[:-2] + '00').status_code == 401
        client.update_job(1, {'status': 'ok'})
        client.close()
    out, err = capfd.readouterr()
    assert TOKEN not in out + err + caplog.text


@pytest.mark.parametrize(
    ('host', 'loopback'),
    [('127.0.0.1', True), ('127.0.0.2', True), ('::1', True), ('[::1]', True),
     ('localhost', True), ('0.0.0.0', False), ('192.168.1.4', False), ('example.com', False)],
)  # fmt: skip
def test_loopback_only_without_token(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
    if loopback:
        check_bind(host, None)
    else:
        with pytest.raises(ParamsError, match='without a token'):
            check_bind(host, None)
        check_bind(host, 'a-token')


def test_serve_in_thread_refuses_public_bind_without_token(synapse_home: Path) -> None:
    with pytest.raises(ParamsError), serve_in_thread(synapse_home, host='0.0.0.0'):
        pass


def test_ipv6_loopback(synapse_home: Path) -> None:
    try:
        with serve_in_thread(synapse_home, host='::1') as url:
            assert url.startswith('http://[::1]:')
            assert httpx.get(f'{url}projects/1/').json()['id'] == 1
    except OSError:
        pytest.skip('no IPv6 loopback here')

"""Server hardening over real HTTP on 127.0.0.1 (and `synapse server start` as a process):
hostile requests get a 4xx with a message, bodies are bounded, signed media URLs expire and
stay out of the access log, the token can come from the environment, storages keep secrets."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from synapse_sdk.clients import BackendClient
from synapse_sdk.errors import ParamsError
from synapse_sdk.server.app import check_bind, serve_in_thread
from synapse_sdk.server.store import Store

TOKEN = 'hardening-token-7'
AUTH = {'Synapse-Access-Token': f'Token {TOKEN}'}
HUGE = '9' * 30


@pytest.fixture
def secured(synapse_home: Path) -> Iterator[str]:
    with serve_in_thread(synapse_home, token=TOKEN) as url:
        yield url


@pytest.mark.parametrize(
    'value', ['Token é'.encode(), b'Token \xff\xfe', 'Token 日本'.encode(), b'Token \x80']
)
def test_non_ascii_token_is_401_not_500(secured: str, value: bytes) -> None:
    response = httpx.get(f'{secured}projects/1/', headers={'Synapse-Access-Token': value})
    assert response.status_code == 401
    assert 'token' in response.json()['detail']


def test_non_ascii_server_token_is_refused_at_start() -> None:
    with pytest.raises(ParamsError, match='printable ASCII'):
        check_bind('127.0.0.1', 'pässword')


@pytest.mark.parametrize('path', ['media/a%00b.jpg', 'media/1/%00', 'media/1/x.jpg%00.png'])
def test_nul_in_a_media_path_is_400(live_server: str, path: str) -> None:
    response = httpx.get(live_server + path)
    assert response.status_code == 400
    assert 'NUL' in response.json()['detail']


@pytest.mark.parametrize(
    'path',
    [
        f'projects/{HUGE}/',
        f'ground_truth_dataset_versions/{HUGE}/',
        f'storages/{HUGE}/',
        f'jobs/{HUGE}/',
        f'sdk/tasks/?project={HUGE}',
        f'sdk/tasks/?project=1&ids=1,{HUGE}',
        f'sdk/assignments/?project=1&id__gt={HUGE}',
        f'sdk/ground_truth_events/?ground_truth_dataset_version={HUGE}',
    ],
)
def test_oversized_integers_are_400(live_server: str, path: str) -> None:
    response = httpx.get(live_server + path)
    assert response.status_code == 400, response.text
    assert 'out of range' in response.json()['detail']


def test_request_body_is_limited(synapse_home: Path) -> None:
    with serve_in_thread(synapse_home, max_body=1000) as url:
        small = httpx.patch(f'{url}jobs/1/', json={'status': 'ok'})
        assert small.status_code == 200
        big = httpx.patch(f'{url}jobs/1/', json={'x': 'y' * 5000})
        assert big.status_code == 413 and '1000 bytes' in big.json()['detail']

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted while received
            yield b'[' + b'{"a": 1},' * 100
            yield b'{"a": 1}' * 100 + b']'

        streamed = httpx.post(f'{url}logs/', content=chunks())
        assert streamed.status_code == 413
        assert httpx.get(f'{url}projects/1/').status_code == 200  # the server is fine


def test_signed_media_urls_expire(synapse_home: Path) -> None:
    now = [time.time()]
    with serve_in_thread(synapse_home, token=TOKEN, media_ttl=60, clock=lambda: now[0]) as url:
        with BackendClient(url, access_token=TOKEN) as client:
            task = next(client.get_tasks({'project': 1})[0])
        media = task['data_unit']['files']['image_1']['url']
        assert re.search(r'\?exp=\d+&sig=[0-9a-f]+$', media)
        assert httpx.get(media).status_code == 200
        forged = re.sub(r'exp=(\d+)', lambda m: f'exp={int(m[1]) + 3600}', media)
        assert httpx.get(forged).status_code == 401  # the expiry is signed too
        now[0] += 61
        assert httpx.get(media).status_code == 401


def test_storages_never_return_secrets(secured: str, synapse_home: Path) -> None:
    with Store(synapse_home) as store:
        storage = store.create_storage(
            'lake',
            'minio',
            {
                'bucket': 'b',
                'endpoint_url': 'http://127.0.0.1:9',
                'access_key': 'AKIAEXAMPLE',
                'secret_key': 'SUPER-SECRET-VALUE',
                'session_token': 'SESSION-SECRET',
                'aws_secret_access_key': 'ALSO-SECRET',
            },
        )
    response = httpx.get(f'{secured}storages/{storage["id"]}/', headers=AUTH)
    assert response.status_code == 200
    text = response.text
    for secret in ('SUPER-SECRET-VALUE', 'SESSION-SECRET', 'ALSO-SECRET'):
        assert secret not in text
    config = response.json()['configuration']
    assert config == {
        'bucket': 'b',
        'endpoint_url': 'http://127.0.0.1:9',
        'access_key': 'AKIAEXAMPLE',
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return int(sock.getsockname()[1])


def test_server_process_token_from_env_and_clean_access_log(synapse_home: Path) -> None:
    """`synapse server start` with SYNAPSE_SERVER_TOKEN: not in `ps`, required, and neither the
    token nor a media signature reaches the access log."""
    port = free_port()
    env = {**os.environ, 'SYNAPSE_SERVER_TOKEN': TOKEN, 'SYNAPSE_HOME': str(synapse_home)}
    proc = subprocess.Popen(
        [sys.executable, '-m', 'synapse_sdk.cli.main', 'server', 'start', '--port', str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f'http://127.0.0.1:{port}/'
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f'{url}health/').status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, 'server did not start'
            time.sleep(0.1)
        cmdline = Path(f'/proc/{proc.pid}/cmdline').read_bytes()
        assert TOKEN.encode() not in cmdline
        assert httpx.get(f'{url}projects/1/').status_code == 401
        with BackendClient(url, access_token=TOKEN) as client:
            task = next(client.get_tasks({'project': 1})[0])
        media = task['data_unit']['files']['image_1']['url']
        signature = media.split('sig=')[1]
        assert httpx.get(media).status_code == 200
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    log = out + err
    assert 'GET /media/' in log  # the access log is on
    assert signature not in log and 'sig=' not in log
    assert TOKEN not in log

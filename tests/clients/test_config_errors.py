"""Configuration mistakes in the user's words: a wrong SYNAPSE_HOST fails in seconds naming the
URL and the variable, a host without http:// is explained, a refused token names
SYNAPSE_ACCESS_TOKEN; the CLI exits 2 for each (real processes, a real server on 127.0.0.1)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from synapse_sdk.clients import BackendClient, default_client
from synapse_sdk.errors import AuthError, BackendError, ConfigError, CredentialsError, ParamsError
from synapse_sdk.server.app import serve_in_thread
from synapse_sdk.server.faults import Fault, FaultPlan

TOKEN = 'config-test-token'
SYNAPSE = [sys.executable, '-m', 'synapse_sdk.cli.main']


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return int(sock.getsockname()[1])


def test_unreachable_host_fails_in_seconds_naming_url_and_variable() -> None:
    url = f'http://127.0.0.1:{closed_port()}/'
    started = time.monotonic()
    with BackendClient(url) as client, pytest.raises(ConfigError) as info:
        client.get_project(1)  # default retries and backoff, as a user gets them
    assert time.monotonic() - started < 3
    text = str(info.value)
    assert url in text and 'SYNAPSE_HOST' in text
    assert info.value.variable == 'SYNAPSE_HOST'
    assert isinstance(info.value, ParamsError)


def test_connect_errors_after_first_contact_are_retried(synapse_home: Path) -> None:
    """Once the host has answered, a connect error is transient (a restart), not config."""
    slept: list[float] = []
    with serve_in_thread(synapse_home) as url:
        client = BackendClient(url, sleep=slept.append)
        assert client.get_project(1)['id'] == 1
    with client, pytest.raises(BackendError) as info:  # the server is gone now
        client.get_project(1)
    assert not isinstance(info.value, ConfigError)
    assert len(slept) == client.retries


@pytest.mark.parametrize(
    ('host', 'needle'),
    [
        ('localhost:8000', 'http://localhost:8000'),
        ('127.0.0.1', 'has no scheme'),
        ('ftp://example.org', 'http:// or https://'),
        ('http://', 'no host'),
    ],
)
def test_malformed_host_is_explained(
    host: str, needle: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv('SYNAPSE_HOST', host)
    started = time.monotonic()
    with pytest.raises(ConfigError) as info:
        default_client()
    assert time.monotonic() - started < 0.5  # explained, not tried
    assert needle in str(info.value) and 'SYNAPSE_HOST' in str(info.value)


def test_refused_token_names_the_variable(synapse_home: Path) -> None:
    with serve_in_thread(synapse_home, token=TOKEN) as url:
        for token in (None, 'wrong-token'):
            with (
                BackendClient(url, access_token=token) as client,
                pytest.raises(CredentialsError) as info,
            ):
                client.get_project(1)
            err = info.value
            assert isinstance(err, AuthError) and isinstance(err, ConfigError)
            assert err.status_code == 401 and 'SYNAPSE_ACCESS_TOKEN' in str(err)
            assert TOKEN not in str(err) and 'wrong-token' not in str(err)
        with BackendClient(url, access_token=TOKEN) as client:
            assert client.get_project(1)['id'] == 1


def test_503_on_first_contact_is_still_retried(synapse_home: Path) -> None:
    plan = FaultPlan(Fault('status', path='/projects/', status=503, times=2))
    slept: list[float] = []
    with (
        serve_in_thread(synapse_home, faults=plan) as url,
        BackendClient(url, sleep=slept.append) as client,
    ):
        assert client.get_project(1)['id'] == 1
    assert len(slept) == 2


def _export(home: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], float]:
    full = {**os.environ, 'SYNAPSE_HOME': str(home), **env}
    for var in ('SYNAPSE_ACCESS_TOKEN', 'SYNAPSE_TENANT'):
        if var not in env:
            full.pop(var, None)
    started = time.monotonic()
    done = subprocess.run(
        [*SYNAPSE, 'export', 'coco', '--project', '1', '--name', 'cfg', '--quiet'],
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done, time.monotonic() - started


def test_cli_exits_2_for_an_unreachable_host(synapse_home: Path) -> None:
    url = f'http://127.0.0.1:{closed_port()}'
    done, elapsed = _export(synapse_home, SYNAPSE_HOST=url)
    assert done.returncode == 2, done.stderr
    assert 'SYNAPSE_HOST' in done.stderr and url in done.stderr
    assert 'Traceback' not in done.stderr
    assert elapsed < 15  # interpreter start included; the client itself gives up in ~1 s


def test_cli_exits_2_for_a_host_without_scheme(synapse_home: Path) -> None:
    done, _ = _export(synapse_home, SYNAPSE_HOST='localhost:8000')
    assert done.returncode == 2, done.stderr
    assert 'http://localhost:8000' in done.stderr and 'SYNAPSE_HOST' in done.stderr


def test_cli_exits_2_for_a_refused_token(synapse_home: Path) -> None:
    with serve_in_thread(synapse_home, token=TOKEN) as url:
        done, _ = _export(synapse_home, SYNAPSE_HOST=url, SYNAPSE_ACCESS_TOKEN='nope')
    assert done.returncode == 2, done.stderr
    assert 'SYNAPSE_ACCESS_TOKEN' in done.stderr and 'Traceback' not in done.stderr

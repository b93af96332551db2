"""Real servers on 127.0.0.1 (a moto S3 server and a scriptable stdlib HTTP server) and a
``file_system`` storage in a temporary folder."""

from __future__ import annotations

import collections
import hashlib
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from synapse_sdk.storage import StorageLocation, open_storage

ACCESS_KEY = 'AKIAEXAMPLEACCESSKEY'
SECRET_KEY = 'sEcReT/abc+def/not-a-real-secret-key-0001'


@pytest.fixture(autouse=True)
def _private_staging_root(tmp_path_factory: pytest.TempPathFactory, monkeypatch) -> None:
    """Object-store exports stage under ``$SYNAPSE_STAGING_DIR``: one per test, not /tmp."""
    monkeypatch.setenv('SYNAPSE_STAGING_DIR', str(tmp_path_factory.mktemp('s3-staging')))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """An empty folder for a ``file_system`` storage."""
    path = tmp_path / 'storage-root'
    path.mkdir()
    return path


@pytest.fixture
def location(root: Path) -> StorageLocation:
    """A ``file_system`` storage (id 1) at ``root``."""
    return open_storage(
        {
            'id': 1,
            'name': 'local',
            'provider': 'file_system',
            'configuration': {'location': str(root)},
        }
    )


@pytest.fixture(scope='session')
def moto_endpoint() -> Iterator[str]:
    """A moto S3 server on a free loopback port; AWS env points nowhere real."""
    moto_server = pytest.importorskip('moto.server')
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {
            'AWS_ACCESS_KEY_ID': 'testing',
            'AWS_SECRET_ACCESS_KEY': 'testing',
            'AWS_SESSION_TOKEN': 'testing',
            'AWS_DEFAULT_REGION': 'us-east-1',
            'AWS_EC2_METADATA_DISABLED': 'true',
            'AWS_CONFIG_FILE': '/dev/null',
            'AWS_SHARED_CREDENTIALS_FILE': '/dev/null',
        }.items():
            mp.setenv(key, value)
        mp.delenv('AWS_PROFILE', raising=False)
        mp.delenv('AWS_ENDPOINT_URL', raising=False)
        server = moto_server.ThreadedMotoServer(ip_address='127.0.0.1', port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        try:
            yield f'http://{host}:{port}'
        finally:
            server.stop()


@pytest.fixture
def s3_record(moto_endpoint: str) -> dict[str, Any]:
    """A minio-style storage record for a fresh bucket on the moto server."""
    import s3fs

    bucket = f'exports-{uuid.uuid4().hex[:12]}'
    fs = s3fs.S3FileSystem(
        key=ACCESS_KEY, secret=SECRET_KEY, endpoint_url=moto_endpoint, skip_instance_cache=True
    )
    fs.mkdir(bucket)
    return {
        'id': 7,
        'name': 'lake',
        'provider': 'minio',
        'configuration': {
            'bucket': bucket,
            'endpoint_url': moto_endpoint,
            'access_key': ACCESS_KEY,
            'secret_key': SECRET_KEY,
            'region': 'us-east-1',
            'prefix': 'team-a',
        },
    }


def payload(name: str, size: int) -> bytes:
    """Deterministic pseudo-random bytes."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f'{name}:{counter}'.encode()).digest()
        counter += 1
    return bytes(out[:size])


@dataclass
class HttpState:
    """What the scripted server serves and what it saw."""

    files: dict[str, bytes] = field(default_factory=dict)
    hits: collections.Counter[str] = field(default_factory=collections.Counter)
    headers: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    peers: set[int] = field(default_factory=set)
    in_flight: int = 0
    max_in_flight: int = 0
    delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'  # keep-alive, so connection reuse is observable
    state: HttpState

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes = b'', headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        state = self.state
        path = self.path.split('?', 1)[0]
        kind, _, key = path.strip('/').partition('/')
        with state.lock:
            state.hits[path] += 1
            hit = state.hits[path]
            state.headers.append((path, dict(self.headers)))
            state.peers.add(self.client_address[1])
            state.in_flight += 1
            state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            self._route(kind, key, hit)
        finally:
            with state.lock:
                state.in_flight -= 1

    def _route(self, kind: str, key: str, hit: int) -> None:
        state = self.state
        body = state.files.get(key, b'')
        if kind == 'files':
            if state.delay:
                time.sleep(state.delay)
            if key not in state.files:
                self._send(404, b'not found')
            else:
                self._send(200, body)
        elif kind == 'flaky503':
            if hit <= 2:
                self._send(503, b'busy')
            else:
                self._send(200, body)
        elif kind == 'always503':
            self._send(503, b'busy')
        elif kind == 'ratelimited':
            retry_after = key.split('-')[0]
            if hit == 1:
                self._send(429, b'slow down', {'Retry-After': retry_after})
            else:
                self._send(200, body)
        elif kind in ('drop', 'alwaysdrop'):
            if hit == 1 or kind == 'alwaysdrop':
                self.send_response(200)
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
            else:
                self._send(200, body)
        elif kind == 'redirect':
            self._send(302, b'', {'Location': f'/files/{key}'})
        elif kind == 'xredirect':  # same server under another origin
            port = self.server.server_port  # type: ignore[attr-defined]
            self._send(307, b'', {'Location': f'http://localhost:{port}/files/{key}'})
        elif kind == 'loop':
            self._send(302, b'', {'Location': f'/loop/{key}'})
        elif kind == 'sleep':
            time.sleep(float(key))
            self._send(200, b'late')
        else:
            self._send(404, b'no route')


@pytest.fixture
def http_server() -> Iterator[tuple[str, HttpState]]:
    """``(base_url, state)`` of a threaded HTTP server on 127.0.0.1."""
    state = HttpState()
    handler = type('Handler', (_Handler,), {'state': state})
    server = ThreadingHTTPServer(('127.0.0.1', 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    port = server.server_address[1]
    try:
        yield f'http://127.0.0.1:{port}', state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()

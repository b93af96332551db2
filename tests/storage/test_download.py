"""Original-file downloads from a real HTTP server on 127.0.0.1, local paths and file:// URLs."""

from __future__ import annotations

import logging
import pickle
import socket
import threading
import time
from concurrent.futures import as_completed
from pathlib import Path

import pytest

from synapse_sdk.errors import StorageError
from synapse_sdk.storage import Downloader, DownloadError
from synapse_sdk.storage.download import SourcePolicy

from .conftest import HttpState, payload

Server = tuple[str, HttpState]


def _fast(**kwargs: object) -> Downloader:
    options: dict = {'backoff': 0.01, 'max_backoff': 0.05, 'timeout': 5.0}
    options.update(kwargs)
    return Downloader(**options)


def _no_partials(directory: Path) -> None:
    assert not [p for p in directory.rglob('*') if p.name.endswith('.part')]


def test_bytes_are_identical(http_server: Server, tmp_path: Path) -> None:
    base, state = http_server
    state.files['big.bin'] = payload('big', 3 * 1024 * 1024 + 17)
    dest = tmp_path / 'nested' / 'dir' / 'big.bin'
    with _fast() as downloader:
        assert downloader.download(f'{base}/files/big.bin', dest) == dest
    assert dest.read_bytes() == state.files['big.bin']
    _no_partials(tmp_path)


def test_503_twice_then_ok(http_server: Server, tmp_path: Path) -> None:
    base, state = http_server
    state.files['f'] = b'finally'
    with _fast() as downloader:
        downloader.download(f'{base}/flaky503/f', tmp_path / 'f')
    assert (tmp_path / 'f').read_bytes() == b'finally'
    assert state.hits['/flaky503/f'] == 3


def test_429_honours_retry_after(http_server: Server, tmp_path: Path) -> None:
    base, state = http_server
    state.files['1-a'] = b'ok'
    started = time.monotonic()
    with _fast() as downloader:
        downloader.download(f'{base}/ratelimited/1-a', tmp_path / 'a')
    elapsed = time.monotonic() - started
    assert state.hits['/ratelimited/1-a'] == 2
    assert 0.9 <= elapsed < 3  # waited the server's 1 s, not the tiny backoff
    assert (tmp_path / 'a').read_bytes() == b'ok'


def test_retry_after_is_capped(http_server: Server, tmp_path: Path) -> None:
    base, state = http_server
    state.files['120-b'] = b'ok'
    started = time.monotonic()
    with _fast(max_retry_after=0.05) as downloader:
        downloader.download(f'{base}/ratelimited/120-b', tmp_path / 'b')
    assert time.monotonic() - started < 1


def test_404_fails_at_once(http_server: Server, tmp_path: Path) -> None:
    base, state = http_server
    dest = tmp_path / 'x.jpg'
    dest.write_bytes(b'previous')
    with _fast() as downloader, pytest.raises(DownloadError) as info:
        downloader.download(f'{base}/files/nope.jpg', dest)
    err = info.value
    assert isinstance(err, StorageError)
    assert state.hits['/files/nope.jpg'] == 1
    assert (err.status_code, err.attempts) == (404, 1)
    assert err.reason == 'HTTP 404 Not Found'
    assert str(err) == f'Could not download {base}/files/nope.jpg: HTTP 404 Not Found'
    assert dest.read_bytes() == b'previous'  # an existing file is never half-replaced
    _no_partials(tmp_path)


def test_dropped_connection_is_retried(http_server: Server, tmp_path: Path) -> None:
    base, state = http_server
    state.files['d'] = payload('d', 256 * 1024)
    with _fast() as downloader:
        downloader.download(f'{base}/drop/d', tmp_path / 'd')
    assert state.hits['/drop/d'] == 2
    assert (tmp_path / 'd').read_bytes() == state.files['d']
    _no_partials(tmp_path)


def test_retries_run_out(http_server: Server, tmp_path: Path) -> None:
    base, state = http_server
    state.files['e'] = payload('e', 10_000)
    with _fast(retries=2) as downloader:
        with pytest.raises(DownloadError) as info:
            downloader.download(f'{base}/always503/x', tmp_path / 'x')
        assert (info.value.status_code, info.value.attempts) == (503, 3)
        assert str(info.value).endswith('HTTP 503 Service Unavailable (after 3 attempts)')
        with pytest.raises(DownloadError, match='RemoteProtocolError') as info:
            downloader.download(f'{base}/alwaysdrop/e', tmp_path / 'e')
    assert state.hits['/always503/x'] == 3
    assert state.hits['/alwaysdrop/e'] == 3
    assert not (tmp_path / 'e').exists()
    _no_partials(tmp_path)


def test_connection_refused_is_retried_then_reported(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    with _fast(retries=2) as downloader, pytest.raises(DownloadError, match='ConnectError') as info:
        downloader.download(f'http://127.0.0.1:{port}/x', tmp_path / 'x')
    assert info.value.attempts == 3


def test_read_timeout_is_retried(http_server: Server, tmp_path: Path) -> None:
    base, _ = http_server
    with (
        _fast(retries=1, timeout=0.2) as downloader,
        pytest.raises(DownloadError, match='ReadTimeout') as info,
    ):
        downloader.download(f'{base}/sleep/1', tmp_path / 'x')
    assert info.value.attempts == 2


def test_redirects_are_followed_and_headers_sent(http_server: Server, tmp_path: Path) -> None:
    base, state = http_server
    state.files['r'] = b'redirected'
    headers = {'Synapse-Access-Token': 'Token tok-secret-123'}
    with _fast(headers=headers) as downloader:
        downloader.download(f'{base}/redirect/r', tmp_path / 'r')
        assert 'tok-secret-123' not in repr(downloader)
    assert (tmp_path / 'r').read_bytes() == b'redirected'
    assert [h.get('Synapse-Access-Token') for _, h in state.headers] == ['Token tok-secret-123'] * 2


def test_headers_never_follow_a_redirect_to_another_origin(
    http_server: Server, tmp_path: Path
) -> None:
    base, state = http_server
    state.files['r'] = b'elsewhere'
    with _fast(headers={'Synapse-Access-Token': 'Token tok'}) as downloader:
        downloader.download(f'{base}/xredirect/r', tmp_path / 'r')
    assert (tmp_path / 'r').read_bytes() == b'elsewhere'
    sent = {path: h.get('Synapse-Access-Token') for path, h in state.headers}
    assert sent == {'/xredirect/r': 'Token tok', '/files/r': None}


def test_header_hosts_limit_where_headers_go(http_server: Server, tmp_path: Path) -> None:
    base, state = http_server
    state.files['h'] = b'x'
    port = base.rsplit(':', 1)[1]
    for hosts, expected in [({'platform.example'}, None), ({f'127.0.0.1:{port}'}, 'Token t')]:
        state.headers.clear()
        with _fast(headers={'Synapse-Access-Token': 'Token t'}, header_hosts=hosts) as downloader:
            downloader.download(f'{base}/files/h', tmp_path / 'h')
        assert state.headers[0][1].get('Synapse-Access-Token') == expected


def test_redirect_loops_are_cut(http_server: Server, tmp_path: Path) -> None:
    base, state = http_server
    with _fast() as downloader, pytest.raises(DownloadError, match='more than 10 redirects'):
        downloader.download(f'{base}/loop/x', tmp_path / 'x')
    assert state.hits['/loop/x'] == 11


def test_download_error_pickles() -> None:
    err = DownloadError(
        'https://u:p@h/x?sig=1', 'HTTP 503 Service Unavailable', status_code=503, attempts=3
    )
    clone = pickle.loads(pickle.dumps(err))
    assert (clone.source, clone.reason, clone.status_code, clone.attempts) == (
        'https://h/x',
        'HTTP 503 Service Unavailable',
        503,
        3,
    )
    assert str(clone) == str(err)


def test_errors_and_logs_carry_no_credentials(
    http_server: Server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    base, _ = http_server
    host = base.removeprefix('http://')
    url = f'http://alice:hunter2@{host}/always503/s.jpg?X-Amz-Signature=deadbeef&token=t0k'
    caplog.set_level(logging.DEBUG)
    with _fast(retries=1) as downloader, pytest.raises(DownloadError) as info:
        downloader.download(url, tmp_path / 's.jpg')
    text = str(info.value) + repr(info.value) + info.value.reason + caplog.text
    for secret in ('hunter2', 'alice', 'deadbeef', 't0k', 'X-Amz-Signature'):
        assert secret not in text
    assert info.value.source == f'{base}/always503/s.jpg'
    assert 'Retrying' in caplog.text


def test_local_sources(tmp_path: Path) -> None:
    src = tmp_path / 'src dir' / 'photo 1.jpg'
    src.parent.mkdir()
    src.write_bytes(payload('local', 100_000))
    with _fast(policy=SourcePolicy(local_roots=(tmp_path / 'src dir',))) as downloader:
        downloader.download(str(src), tmp_path / 'out' / 'plain.jpg')
        downloader.download(src.as_uri(), tmp_path / 'out' / 'uri.jpg')  # file:///...%20...
        downloader.download(f'file://localhost{src}', tmp_path / 'out' / 'host.jpg')
        downloader.download(src, tmp_path / 'out' / 'pathlike.jpg')
        started = time.monotonic()
        with pytest.raises(DownloadError, match='No such file') as info:
            downloader.download(str(src.parent / 'missing.jpg'), tmp_path / 'out' / 'm.jpg')
        assert info.value.attempts == 1 and time.monotonic() - started < 0.5
        with pytest.raises(DownloadError, match='remote host'):
            downloader.download('file://otherhost/x.jpg', tmp_path / 'out' / 'r.jpg')
    for name in ('plain', 'uri', 'host', 'pathlike'):
        assert (tmp_path / 'out' / f'{name}.jpg').read_bytes() == src.read_bytes()


@pytest.mark.parametrize('source', ['ftp://host/x', 's3://bucket/key', 'gs://b/k'])
def test_unsupported_schemes(source: str, tmp_path: Path) -> None:
    with _fast() as downloader, pytest.raises(DownloadError, match='unsupported scheme'):
        downloader.download(source, tmp_path / 'x')


def test_parallel_downloads_share_one_session(http_server: Server, tmp_path: Path) -> None:
    base, state = http_server
    state.delay = 0.01  # lets the workers overlap visibly
    for i in range(50):
        state.files[f'{i}.bin'] = payload(str(i), 20_000 + i)
    state.files.pop('13.bin')  # one fails; the other 49 must not care
    with _fast(max_workers=8) as downloader:
        futures = {
            downloader.submit(f'{base}/files/{i}.bin', tmp_path / 'out' / f'{i}.bin'): i
            for i in range(50)
        }
        failed = []
        for future in as_completed(futures):
            i = futures[future]
            if future.exception() is not None:
                failed.append((i, future.exception()))
            else:
                assert future.result().read_bytes() == state.files[f'{i}.bin']
    assert [i for i, _ in failed] == [13]
    assert isinstance(failed[0][1], DownloadError)
    assert len(list((tmp_path / 'out').iterdir())) == 49
    assert 1 < state.max_in_flight <= 8
    assert len(state.peers) <= 16  # one pool (max 2 x workers), reused across 50 files


def test_submit_applies_backpressure(http_server: Server, tmp_path: Path) -> None:
    base, state = http_server
    state.files['slow'] = b'x'
    state.delay = 0.3
    with _fast(max_workers=1, max_pending=1) as downloader:
        downloader.submit(f'{base}/files/slow', tmp_path / '1')
        started = time.monotonic()
        second = downloader.submit(f'{base}/files/slow', tmp_path / '2')
        assert time.monotonic() - started >= 0.2  # waited for the first to finish
        second.result()


def test_cancel_on_error_interrupts_retry_waits(http_server: Server, tmp_path: Path) -> None:
    base, state = http_server
    state.files['30-c'] = b'never'
    started = time.monotonic()
    with pytest.raises(RuntimeError), _fast() as downloader:
        future = downloader.submit(f'{base}/ratelimited/30-c', tmp_path / 'c')
        while state.hits['/ratelimited/30-c'] == 0:
            time.sleep(0.01)
        raise RuntimeError('export failed')
    assert time.monotonic() - started < 15  # the server asked for a 30 s wait: it was cut short
    with pytest.raises(DownloadError, match='cancelled'):
        future.result()
    with pytest.raises(StorageError, match='closed'):
        downloader.submit(f'{base}/files/x', tmp_path / 'x')


def test_close_waits_for_queued_work(http_server: Server, tmp_path: Path) -> None:
    base, state = http_server
    state.files['w'] = b'done'
    downloader = _fast(max_workers=2)
    futures = [downloader.submit(f'{base}/files/w', tmp_path / f'{i}') for i in range(6)]
    downloader.close()
    downloader.close()  # idempotent
    assert all(f.result().read_bytes() == b'done' for f in futures)


def test_same_dest_from_many_threads_is_never_torn(http_server: Server, tmp_path: Path) -> None:
    base, state = http_server
    state.files['same'] = payload('same', 500_000)
    dest = tmp_path / 'same.bin'
    with _fast(max_workers=8) as downloader:
        futures = [downloader.submit(f'{base}/files/same', dest) for _ in range(16)]
        seen = []

        def watch() -> None:
            while not all(f.done() for f in futures):
                if dest.exists():
                    seen.append(len(dest.read_bytes()))

        watcher = threading.Thread(target=watch)
        watcher.start()
        for f in futures:
            f.result()
        watcher.join()
    assert set(seen) <= {500_000}
    assert dest.read_bytes() == state.files['same']
    _no_partials(tmp_path)


@pytest.mark.parametrize('source', [None, '', 42])
def test_missing_sources_are_download_errors(source: object, tmp_path: Path) -> None:
    with _fast() as downloader:
        future = downloader.submit(source, tmp_path / 'x')  # type: ignore[arg-type]
        with pytest.raises(DownloadError, match='must be a non-empty URL or path'):
            future.result()


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        Downloader(max_workers=0)
    with pytest.raises(ValueError):
        Downloader(retries=-1)

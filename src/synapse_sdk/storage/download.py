"""Parallel, retrying downloads of original files.

One :class:`Downloader` holds a bounded thread pool and one shared ``httpx.Client`` (connection
reuse across all files). A source may be

- an ``http(s)://`` URL (redirects followed),
- a ``file://`` URL or a plain local path,
- a URL of the storage filesystem passed as ``storage_fs`` (``s3://bucket/key``).

Every file is streamed into a hidden temporary file beside ``dest`` and renamed over it once
complete, so ``dest`` is either absent, the old content, or the whole new file. Connect errors,
timeouts, dropped connections and HTTP 429/502/503/504 are retried with capped exponential
backoff (``Retry-After`` honoured); anything else (404, 403, a missing local file) fails at once.
A failure is a :class:`DownloadError` whose text names the source without credentials or query
string (pre-signed URLs carry tokens there)::

    with Downloader(max_workers=8) as downloader:
        futures = {downloader.submit(f['url'], out / f['file_name_original']): f for f in files}
        for future in as_completed(futures):
            try:
                future.result()
            except DownloadError as exc:
                report(futures[future], exc.reason)
"""

from __future__ import annotations

import contextlib
import email.utils
import logging
import os
import random
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Collection
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

import fsspec
import httpx

from synapse_sdk.errors import StorageError
from synapse_sdk.storage.paths import sanitize_url

__all__ = ['RETRY_STATUS', 'DownloadError', 'Downloader']

logger = logging.getLogger(__name__)

#: HTTP statuses worth retrying; every other error status fails at once.
RETRY_STATUS = frozenset({429, 502, 503, 504})
_CHUNK = 1 << 20
_MAX_REDIRECTS = 10
_FATAL_OS_ERRORS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)


class DownloadError(StorageError):
    """A source could not be downloaded.

    ``source`` is the sanitised source (no credentials, no query string), ``reason`` what went
    wrong, ``status_code`` the last HTTP status if there was one, ``attempts`` how many tries
    were made.
    """

    def __init__(
        self, source: str, reason: str, *, status_code: int | None = None, attempts: int = 1
    ) -> None:
        self.source = sanitize_url(source)
        self.reason = reason
        self.status_code = status_code
        self.attempts = attempts
        tries = f' (after {attempts} attempts)' if attempts > 1 else ''
        super().__init__(f'Could not download {self.source}: {reason}{tries}')

    def __reduce__(self) -> Any:
        # survives pickling (process/Ray executors ship exceptions between processes)
        return (_rebuild_error, (self.source, self.reason, self.status_code, self.attempts))


def _rebuild_error(
    source: str, reason: str, status_code: int | None, attempts: int
) -> DownloadError:
    return DownloadError(source, reason, status_code=status_code, attempts=attempts)


class _Retryable(Exception):
    """Internal: a transient failure; ``retry_after`` is the server's hint in seconds."""

    def __init__(
        self, reason: str, retry_after: float | None = None, status_code: int | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.status_code = status_code


class _Fatal(Exception):
    """Internal: a failure retrying cannot fix."""

    def __init__(self, reason: str, status_code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_code = status_code


def _scrub(text: str, source: str) -> str:
    """Remove the raw source's secrets (query string, password) from ``text``."""
    text = text.replace(source, sanitize_url(source))
    try:
        parts = urlsplit(source)
        secrets = [parts.query, parts.password or '']
    except ValueError:
        return text
    for secret in secrets:
        if secret:
            text = text.replace(secret, '***')
    return text


def _parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds from now (delta-seconds or an HTTP date), ``None`` if absent."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _atomic_write(dest: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Run ``write`` on a temp file beside ``dest``, then rename it over ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f'.{dest.name[:80]}.{uuid.uuid4().hex[:12]}.part'
    # os.open with 0o666 (not mkstemp's 0o600) so the file gets the usual umask permissions
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, 'O_BINARY', 0), 0o666)
    try:
        with os.fdopen(fd, 'wb') as fh:
            write(fh)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


class _RedactUrls(logging.Filter):
    """Strip credentials and query strings from the URLs httpx logs at INFO level.

    httpx logs ``HTTP Request: GET <full url>``; pre-signed media URLs carry tokens in the
    query string, so the Downloader installs this filter on the ``httpx`` logger (once).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                sanitize_url(arg) if isinstance(arg, httpx.URL) else arg for arg in record.args
            )
        return True


def _install_redaction() -> None:
    httpx_logger = logging.getLogger('httpx')
    if not any(isinstance(f, _RedactUrls) for f in httpx_logger.filters):
        httpx_logger.addFilter(_RedactUrls())


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f'{type(exc).__name__}: {text}' if text else type(exc).__name__


class Downloader:
    """Downloads sources to local paths, in parallel, with retries. A context manager.

    Args:
        max_workers: size of the thread pool (concurrent downloads).
        retries: extra attempts after the first one for transient failures.
        timeout: seconds for connect, each read and each write (not the whole file).
        backoff: first retry delay in seconds; doubled per attempt, with jitter.
        max_backoff: cap for the computed retry delay.
        headers: sent with HTTP requests (e.g. the platform's auth header for its media), but
            only to the origin of each source URL: a redirect to another host (a pre-signed
            S3 URL) is followed without them.
        header_hosts: when given, ``headers`` go only to these hosts (``host`` or
            ``host:port``), so a platform token never reaches third-party file URLs.
        storage_fs: filesystem used for sources with its protocol (``s3://...``); usually
            ``open_storage(record).fs``.
        max_retry_after: cap for a server's ``Retry-After`` wait.
        max_pending: :meth:`submit` blocks while this many downloads are queued or running,
            so a producer streaming 100k items keeps memory flat (default ``4 * max_workers``).
            Do not call :meth:`submit` from a future's callback.
        transport: an ``httpx`` transport (tests).
    """

    def __init__(
        self,
        max_workers: int = 8,
        retries: int = 4,
        timeout: float = 30.0,
        backoff: float = 0.25,
        max_backoff: float = 8.0,
        headers: dict[str, str] | None = None,
        storage_fs: fsspec.AbstractFileSystem | None = None,
        *,
        header_hosts: Collection[str] | None = None,
        max_retry_after: float = 60.0,
        max_pending: int | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if max_workers < 1:
            raise ValueError('max_workers must be at least 1')
        if retries < 0 or backoff < 0 or max_backoff < 0 or max_retry_after < 0:
            raise ValueError('retries and delays must not be negative')
        self.max_workers = max_workers
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_retry_after = max_retry_after
        self.storage_fs = storage_fs
        protocol = getattr(storage_fs, 'protocol', ()) if storage_fs is not None else ()
        self._fs_protocols = {protocol} if isinstance(protocol, str) else set(protocol)
        self._headers = dict(headers or {})
        self._header_hosts = frozenset(header_hosts) if header_hosts is not None else None
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout),
            headers={'User-Agent': 'synapse-sdk'},
            follow_redirects=False,  # _open_http follows them, scoping the headers
            limits=httpx.Limits(
                max_connections=max_workers * 2, max_keepalive_connections=max_workers
            ),
            transport=transport,
        )
        _install_redaction()
        self._pool = ThreadPoolExecutor(max_workers, thread_name_prefix='synapse-download')
        self._slots = threading.BoundedSemaphore(max_pending or 4 * max_workers)
        self._cancelled = threading.Event()
        self._closed = False
        self._close_lock = threading.Lock()

    def __repr__(self) -> str:
        return f'<Downloader max_workers={self.max_workers} retries={self.retries}>'

    def __enter__(self) -> Downloader:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.close(cancel=exc_type is not None)

    def submit(self, source: str | os.PathLike[str], dest: Path) -> Future[Path]:
        """Queue a download; the future's result is ``dest``, its exception a DownloadError."""
        if self._closed:
            raise StorageError('Downloader is closed')
        self._slots.acquire()
        try:
            future = self._pool.submit(self.download, source, dest)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _f: self._slots.release())
        return future

    def download(self, source: str | os.PathLike[str], dest: Path) -> Path:
        """Download ``source`` to ``dest`` in this thread (same retries as :meth:`submit`)."""
        if not isinstance(source, str | os.PathLike) or not os.fspath(source):
            raise DownloadError(repr(source), 'the source must be a non-empty URL or path')
        if self._client.is_closed:
            raise StorageError('Downloader is closed')
        raw = os.fspath(source)
        dest = Path(dest)
        attempt = 0
        while True:
            attempt += 1
            try:
                self._fetch_once(raw, dest)
                return dest
            except _Fatal as exc:
                raise DownloadError(
                    raw, _scrub(exc.reason, raw), status_code=exc.status_code, attempts=attempt
                ) from exc.__cause__
            except _Retryable as exc:
                reason = _scrub(exc.reason, raw)
                if attempt > self.retries or self._cancelled.is_set():
                    raise DownloadError(
                        raw, reason, status_code=exc.status_code, attempts=attempt
                    ) from exc.__cause__
                delay = self._delay(attempt, exc.retry_after)
                logger.info(
                    'Retrying %s in %.2fs (attempt %d of %d): %s',
                    sanitize_url(raw),
                    delay,
                    attempt + 1,
                    self.retries + 1,
                    reason,
                )
                if self._cancelled.wait(delay):
                    raise DownloadError(
                        raw, f'cancelled while retrying ({reason})', attempts=attempt
                    ) from None

    def close(self, cancel: bool = False) -> None:
        """Wait for queued downloads and free the pool; idempotent.

        With ``cancel`` (what leaving the ``with`` block on an exception does), queued
        downloads are cancelled (their futures raise ``CancelledError``) and running ones stop
        at their next retry wait with a DownloadError.
        """
        with self._close_lock:
            self._closed = True
        if cancel:
            self._cancelled.set()
        # Not skipped when already closed: a close() cut short by Ctrl-C/SIGTERM while it
        # waited must still wait here, or workers write into a staging dir being rolled back.
        self._pool.shutdown(wait=True, cancel_futures=cancel)
        self._client.close()

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        delay = min(self.backoff * 2 ** (attempt - 1), self.max_backoff)
        return delay * random.uniform(0.5, 1.0)  # jitter: parallel retries do not stampede

    def _fetch_once(self, raw: str, dest: Path) -> None:
        try:
            parts = urlsplit(raw)
        except ValueError as exc:
            raise _Fatal(f'invalid URL: {exc}') from exc
        scheme = parts.scheme.lower()
        if scheme in ('http', 'https'):
            self._fetch_http(raw, dest)
        elif scheme == 'file':
            if parts.netloc not in ('', 'localhost'):
                raise _Fatal(f'file:// URL with a remote host {parts.netloc!r} is not supported')
            self._copy_local(url2pathname(parts.path), dest)
        elif len(scheme) <= 1:  # a plain path (or C:\...)
            self._copy_local(raw, dest)
        elif scheme in self._fs_protocols:
            self._fetch_fs(raw, dest)
        else:
            supported = ', '.join(['http', 'https', 'file', *sorted(self._fs_protocols)])
            raise _Fatal(f'unsupported scheme {scheme!r} (supported: {supported}, local paths)')

    def _headers_for(self, url: httpx.URL, origin: tuple[str, str, int | None]) -> Any:
        """The caller's headers, only for the source's own origin (never after a redirect away)."""
        if not self._headers or (url.scheme, url.host, url.port) != origin:
            return None
        if self._header_hosts is not None:
            netloc = f'{url.host}:{url.port}' if url.port else url.host
            if url.host not in self._header_hosts and netloc not in self._header_hosts:
                return None
        return self._headers

    def _open_http(self, raw: str) -> httpx.Response:
        """Send GET, following redirects by hand so headers never leak to another origin."""
        url = httpx.URL(raw)
        origin = (url.scheme, url.host, url.port)
        for _hop in range(_MAX_REDIRECTS + 1):
            request = self._client.build_request('GET', url, headers=self._headers_for(url, origin))
            response = self._client.send(request, stream=True)
            if not response.has_redirect_location:
                return response
            response.close()
            url = response.url.join(response.headers['Location'])
        raise _Fatal(f'more than {_MAX_REDIRECTS} redirects')

    def _fetch_http(self, url: str, dest: Path) -> None:
        try:
            response = self._open_http(url)
            try:
                status = response.status_code
                if status in RETRY_STATUS:
                    raise _Retryable(
                        f'HTTP {status} {response.reason_phrase}',
                        _parse_retry_after(response.headers.get('Retry-After')),
                        status,
                    )
                if status >= 400:
                    raise _Fatal(f'HTTP {status} {response.reason_phrase}', status)

                def write(fh: IO[bytes]) -> None:
                    for chunk in response.iter_bytes(_CHUNK):
                        fh.write(chunk)

                _atomic_write(dest, write)
            finally:
                response.close()
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            raise _Retryable(_describe(exc)) from exc
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise _Fatal(_describe(exc)) from exc
        except OSError as exc:
            raise _Fatal(f'could not write {dest}: {exc.strerror or exc}') from exc

    def _copy_local(self, path: str, dest: Path) -> None:
        try:
            with open(path, 'rb') as src:
                _atomic_write(dest, lambda fh: shutil.copyfileobj(src, fh, _CHUNK))
        except _FATAL_OS_ERRORS as exc:
            raise _Fatal(f'{exc.strerror or type(exc).__name__}: {exc.filename}') from exc
        except OSError as exc:
            raise _Retryable(f'{type(exc).__name__}: {exc.strerror or exc}') from exc

    def _fetch_fs(self, url: str, dest: Path) -> None:
        assert self.storage_fs is not None
        fs = self.storage_fs
        try:
            with fs.open(url, 'rb') as src:
                _atomic_write(dest, lambda fh: shutil.copyfileobj(src, fh, _CHUNK))
        except _FATAL_OS_ERRORS as exc:
            raise _Fatal(_describe(exc)) from exc
        except Exception as exc:  # s3fs/botocore raise many types; retry, then report
            raise _Retryable(_describe(exc)) from exc

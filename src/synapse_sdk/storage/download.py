"""Parallel, retrying, verified downloads of original files.

One :class:`Downloader` holds a bounded thread pool and one shared ``httpx.Client`` (connection
reuse across all files). A source may be

- an ``http(s)://`` URL (redirects followed),
- a ``file://`` URL or a plain local path,
- a URL of the storage filesystem passed as ``storage_fs`` (``s3://bucket/key``),

and must be allowed by the downloader's :class:`SourcePolicy`: originals come from the
backend's media only (its own HTTP origin, or the embedded store's media root, resolved and
checked to stay inside it), never ``file:///etc/passwd`` or ``../../etc/passwd`` from a record.
A refused source is a :class:`DownloadError` for that item (``reason`` starts with
``refused:``); the export goes on with the next item. Local sources must be regular files (a
FIFO or a device in place of an image is refused, not read for ever).

Every file is streamed into a hidden temporary file beside ``dest`` and renamed over it once
complete and verified, so ``dest`` is either absent, the old content, or the whole new file.
When the record gives ``size`` and ``checksum`` (``"sha256:<hex>"``), both are checked. A
transfer cut off mid-body resumes with an HTTP ``Range`` request from the bytes already
received instead of starting again from byte 0 (``If-Range`` guards against a changed file).
Retries follow the one policy of :mod:`synapse_sdk.retry`. A failure is a
:class:`DownloadError` whose text names the source without credentials or query string
(pre-signed URLs carry tokens there)::

    with Downloader(max_workers=8, policy=client.source_policy()) as downloader:
        futures = {downloader.submit(f['url'], out / f['file_name_original'],
                                     size=f.get('size'), checksum=f.get('checksum')): f
                   for f in files}
        for future in as_completed(futures):
            try:
                future.result()
            except DownloadError as exc:
                report(futures[future], exc.reason)
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import stat
import threading
import uuid
from collections.abc import Collection, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlsplit

from synapse_sdk.errors import StorageError
from synapse_sdk.retry import RETRY_STATUSES, RetryPolicy, Transient, parse_retry_after
from synapse_sdk.storage.paths import sanitize_url

if TYPE_CHECKING:
    import fsspec
    import httpx

__all__ = [
    'RETRY_STATUS',
    'DownloadError',
    'Downloader',
    'SourcePolicy',
    'parse_checksum',
    'policy_for',
]

logger = logging.getLogger(__name__)


def _httpx() -> Any:
    """httpx, imported when a URL is first parsed or fetched (an export that copies no
    originals never needs it, and it is a tenth of a second of start-up)."""
    import httpx

    return httpx


#: HTTP statuses worth retrying (the one set of :mod:`synapse_sdk.retry`).
RETRY_STATUS = RETRY_STATUSES
_CHUNK = 1 << 20
_MAX_REDIRECTS = 10
_FATAL_OS_ERRORS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)
_DEFAULT_PORTS = {'http': 80, 'https': 443}
_HEX = re.compile(r'^[0-9a-fA-F]+$')


class DownloadError(StorageError):
    """A source could not be downloaded (or was refused).

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


class _Retryable(Transient):
    """Internal: a transient failure (``restart``: the partial file is no good, start over)."""

    def __init__(
        self,
        reason: str,
        retry_after: float | None = None,
        status_code: int | None = None,
        *,
        restart: bool = False,
    ) -> None:
        super().__init__(reason, retry_after=retry_after, status_code=status_code)
        self.restart = restart


class _Fatal(Exception):
    """Internal: a failure retrying cannot fix."""

    def __init__(self, reason: str, status_code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_code = status_code


class _Cancelled(Exception):
    """Internal: the downloader was cancelled during a retry wait."""


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


# -- where originals may come from -----------------------------------------------------------


def _origin(scheme: str, host: str, port: int | None) -> tuple[str, str, int]:
    scheme = scheme.lower()
    return scheme, host.lower().strip('[]'), port or _DEFAULT_PORTS.get(scheme, 0)


@dataclass(frozen=True)
class SourcePolicy:
    """Which sources a :class:`Downloader` may read.

    ``http_origins``: the ``http(s)://host[:port]`` origins allowed (``None``: any; an empty
    set: none). ``local_roots``: directories whose files may be read (``file://`` URLs and
    plain paths); a path is resolved (symlinks, ``..``) and must stay inside one of them. An
    empty tuple refuses every local file; ``None`` allows any (only for trusted sources).
    ``label`` says in refusal messages where originals may come from.

    The default policy allows HTTP(S) anywhere and no local file at all. Clients give the
    policy of their backend (:meth:`~synapse_sdk.clients.ClientBase.source_policy`).
    """

    http_origins: frozenset[tuple[str, str, int]] | None = None
    local_roots: tuple[Path, ...] | None = ()
    label: str = ''
    _roots: tuple[str, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.local_roots is not None:
            roots = tuple(os.path.realpath(root) for root in self.local_roots)
            object.__setattr__(self, 'local_roots', tuple(Path(r) for r in roots))
            object.__setattr__(self, '_roots', roots)

    @classmethod
    def for_origins(
        cls, urls: Iterable[str], *, local_roots: Iterable[os.PathLike[str] | str] = (),
        label: str | None = None,
    ) -> SourcePolicy:  # fmt: skip
        """Allow the origins of ``urls`` (scheme, host and port) and files under
        ``local_roots``."""
        origins = set()
        for url in urls:
            parts = _httpx().URL(url)
            origins.add(_origin(parts.scheme, parts.host, parts.port))
        return cls(frozenset(origins), tuple(Path(r) for r in local_roots), label or '')

    @classmethod
    def unrestricted(cls) -> SourcePolicy:
        """Any HTTP(S) URL and any local file: only for sources the caller fully trusts."""
        return cls(None, None)

    def describe(self) -> str:
        """Where originals may come from, for messages."""
        if self.label:
            return self.label
        parts = []
        if self.http_origins is None:
            parts.append('HTTP(S) URLs')
        elif self.http_origins:
            parts.append(', '.join(sorted(f'{s}://{h}:{p}' for s, h, p in self.http_origins)))
        if self.local_roots is None:
            parts.append('local files')
        elif self.local_roots:
            parts.append('files under ' + ', '.join(str(r) for r in self.local_roots))
        return ' or '.join(parts) or 'nowhere'

    def check_http(self, url: httpx.URL) -> None:
        """Raise ``_Fatal`` unless ``url``'s origin is allowed."""
        if self.http_origins is None:
            return
        if _origin(url.scheme, url.host, url.port) not in self.http_origins:
            raise _Fatal(
                f"refused: {url.scheme}://{url.host} is not the backend's media host "
                f'(originals come only from {self.describe()})'
            )

    def check_local(self, path: str) -> str:
        """The resolved ``path``, or ``_Fatal`` when it lies outside every allowed root."""
        if '\x00' in path:
            raise _Fatal('refused: the path contains a NUL character')
        resolved = os.path.realpath(path)
        if self.local_roots is None:
            return resolved
        for root in self._roots:
            if resolved == root or resolved.startswith(root.rstrip(os.sep) + os.sep):
                return resolved
        if not self._roots:
            raise _Fatal(
                'refused: local files are not an allowed source here '
                f'(originals come only from {self.describe()})'
            )
        raise _Fatal(f'refused: the file is outside {self.describe()}')


def policy_for(client: Any) -> SourcePolicy:
    """The source policy of ``client`` (its backend's media); the default policy (HTTP(S)
    anywhere, no local files) for ``None`` or a client that does not say."""
    method = getattr(client, 'source_policy', None)
    if callable(method):
        policy = method()
        if isinstance(policy, SourcePolicy):
            return policy
    return SourcePolicy()


# -- verification ------------------------------------------------------------------------------


def parse_checksum(value: Any) -> tuple[str, str] | None:
    """``"sha256:<hex>"`` -> ``("sha256", "<hex>")``; ``None`` when absent, of an unknown
    algorithm or not a full hex digest (such a value cannot be checked, so it is ignored)."""
    if not isinstance(value, str) or ':' not in value:
        return None
    algo, _, digest = value.strip().partition(':')
    algo = algo.lower().replace('-', '')
    if algo not in hashlib.algorithms_guaranteed or algo.startswith('shake'):
        return None
    if not _HEX.match(digest) or len(digest) != hashlib.new(algo).digest_size * 2:
        return None
    return algo, digest.lower()


@dataclass
class _Expect:
    size: int | None
    checksum: tuple[str, str] | None

    def hasher(self) -> Any:
        return hashlib.new(self.checksum[0]) if self.checksum else None

    def verify(self, written: int, hasher: Any) -> str | None:
        """What is wrong with the bytes received, or None."""
        if self.size is not None and written != self.size:
            return f'size mismatch: the record says {self.size} bytes, got {written}'
        if self.checksum is not None and hasher is not None:
            got = hasher.hexdigest()
            if got != self.checksum[1]:
                algo, want = self.checksum
                return f'checksum mismatch: the record says {algo}:{want}, got {algo}:{got}'
        return None


@dataclass
class _Transfer:
    """One download's partial file, kept across attempts so a retry can resume it."""

    dest: Path
    expect: _Expect
    tmp: Path | None = None
    written: int = 0
    hasher: Any = None
    validator: str | None = None  # ETag or Last-Modified of the partial content
    resumes: int = 0

    def open(self, append: bool) -> IO[bytes]:
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        if self.tmp is None:
            self.tmp = self.dest.parent / f'.{self.dest.name[:80]}.{uuid.uuid4().hex[:12]}.part'
            # 0o666 (not mkstemp's 0o600): the file gets the usual umask permissions
            fd = os.open(
                self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, 'O_BINARY', 0), 0o666
            )
            return os.fdopen(fd, 'wb')
        if append:
            return open(self.tmp, 'ab')
        return open(self.tmp, 'wb')

    def restart(self) -> None:
        self.written = 0
        self.hasher = self.expect.hasher()
        self.validator = None

    def write(self, fh: IO[bytes], chunk: bytes) -> None:
        fh.write(chunk)
        self.written += len(chunk)
        if self.hasher is not None:
            self.hasher.update(chunk)

    def finish(self) -> None:
        assert self.tmp is not None
        os.replace(self.tmp, self.dest)
        self.tmp = None

    def discard(self) -> None:
        if self.tmp is not None:
            with contextlib.suppress(OSError):
                self.tmp.unlink()
            self.tmp = None


class _RedactUrls(logging.Filter):
    """Strip credentials and query strings from the URLs httpx logs at INFO level.

    httpx logs ``HTTP Request: GET <full url>``; pre-signed media URLs carry tokens in the
    query string, so the Downloader installs this filter on the ``httpx`` logger (once).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                sanitize_url(arg) if isinstance(arg, _httpx().URL) else arg for arg in record.args
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
        storage_fs: filesystem used for sources with its protocol (``s3://...``); usually
            ``open_storage(record).fs``.
        header_hosts: when given, ``headers`` go only to these hosts (``host`` or
            ``host:port``), so a platform token never reaches third-party file URLs.
        max_retry_after: cap for a server's ``Retry-After`` wait.
        max_pending: :meth:`submit` blocks while this many downloads are queued or running,
            so a producer streaming 100k items keeps memory flat (default ``4 * max_workers``).
            Do not call :meth:`submit` from a future's callback.
        transport: an ``httpx`` transport (tests).
        policy: where sources may come from (:class:`SourcePolicy`; default: HTTP(S)
            anywhere, no local files). Use ``client.source_policy()`` for record URLs.
        retry: the retry policy; replaces ``retries``/``backoff``/``max_backoff``/
            ``max_retry_after`` (tests inject a ``sleep`` here).
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
        policy: SourcePolicy | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        if max_workers < 1:
            raise ValueError('max_workers must be at least 1')
        self.retry = retry or RetryPolicy(
            retries=retries, backoff=backoff, max_backoff=max_backoff,
            max_retry_after=max_retry_after,
        )  # fmt: skip
        self.max_workers = max_workers
        self.policy = policy if policy is not None else SourcePolicy()
        self.storage_fs = storage_fs
        protocol = getattr(storage_fs, 'protocol', ()) if storage_fs is not None else ()
        self._fs_protocols = {protocol} if isinstance(protocol, str) else set(protocol)
        self._headers = dict(headers or {})
        self._header_hosts = frozenset(header_hosts) if header_hosts is not None else None
        httpx = _httpx()
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

    @property
    def retries(self) -> int:
        """Extra attempts after the first one."""
        return self.retry.retries

    def __repr__(self) -> str:
        return f'<Downloader max_workers={self.max_workers} retries={self.retries}>'

    def __enter__(self) -> Downloader:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.close(cancel=exc_type is not None)

    def submit(
        self,
        source: str | os.PathLike[str],
        dest: Path,
        *,
        size: int | None = None,
        checksum: str | None = None,
    ) -> Future[Path]:
        """Queue a download; the future's result is ``dest``, its exception a DownloadError.

        ``size`` (bytes) and ``checksum`` (``"sha256:<hex>"``) are the record's, checked when
        given."""
        if self._closed:
            raise StorageError('Downloader is closed')
        self._slots.acquire()
        try:
            future = self._pool.submit(self.download, source, dest, size=size, checksum=checksum)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _f: self._slots.release())
        return future

    def download(
        self,
        source: str | os.PathLike[str],
        dest: Path,
        *,
        size: int | None = None,
        checksum: str | None = None,
    ) -> Path:
        """Download ``source`` to ``dest`` in this thread (same retries as :meth:`submit`)."""
        if not isinstance(source, str | os.PathLike) or not os.fspath(source):
            raise DownloadError(repr(source), 'the source must be a non-empty URL or path')
        if self._client.is_closed:
            raise StorageError('Downloader is closed')
        raw = os.fspath(source)
        expect = _Expect(
            size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None,
            parse_checksum(checksum),
        )
        transfer = _Transfer(Path(dest), expect)
        transfer.restart()

        def on_retry(exc: Transient, attempt: int, delay: float) -> None:
            logger.info(
                'Retrying %s in %.2fs (attempt %d of %d): %s',
                sanitize_url(raw),
                delay,
                attempt + 1,
                self.retries + 1,
                _scrub(exc.reason, raw),
            )

        try:
            self.retry.call(
                lambda: self._fetch_once(raw, transfer), on_retry=on_retry, sleep=self._wait
            )
            return transfer.dest
        except _Fatal as exc:
            raise DownloadError(
                raw, _scrub(exc.reason, raw), status_code=exc.status_code
            ) from exc.__cause__
        except Transient as exc:
            raise DownloadError(
                raw, _scrub(exc.reason, raw), status_code=exc.status_code, attempts=exc.attempts
            ) from exc.__cause__
        except _Cancelled:
            raise DownloadError(raw, 'cancelled while retrying') from None
        finally:
            transfer.discard()

    def _wait(self, seconds: float) -> None:
        if self._cancelled.wait(seconds):
            raise _Cancelled

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

    def _fetch_once(self, raw: str, transfer: _Transfer) -> None:
        try:
            parts = urlsplit(raw)
        except ValueError as exc:
            raise _Fatal(f'invalid URL: {exc}') from exc
        scheme = parts.scheme.lower()
        if scheme in ('http', 'https'):
            self._fetch_http(raw, transfer)
        elif scheme == 'file':
            if parts.netloc not in ('', 'localhost'):
                raise _Fatal(f'file:// URL with a remote host {parts.netloc!r} is not supported')
            from urllib.request import url2pathname  # http.client and email: only here

            self._copy_local(url2pathname(parts.path), transfer)
        elif len(scheme) <= 1:  # a plain path (or C:\\...)
            self._copy_local(raw, transfer)
        elif scheme in self._fs_protocols:
            self._fetch_fs(raw, transfer)
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

    def _open_http(self, raw: str, extra: dict[str, str]) -> httpx.Response:
        """Send GET, following redirects by hand so headers never leak to another origin."""
        url = _httpx().URL(raw)
        self.policy.check_http(url)
        origin = (url.scheme, url.host, url.port)
        for _hop in range(_MAX_REDIRECTS + 1):
            headers = {**(self._headers_for(url, origin) or {}), **extra}
            request = self._client.build_request('GET', url, headers=headers or None)
            response = self._client.send(request, stream=True)
            if not response.has_redirect_location:
                return response
            response.close()
            url = response.url.join(response.headers['Location'])
        raise _Fatal(f'more than {_MAX_REDIRECTS} redirects')

    def _fetch_http(self, url: str, transfer: _Transfer) -> None:
        httpx = _httpx()
        resume = transfer.written > 0 and transfer.tmp is not None
        extra: dict[str, str] = {}
        if resume:
            extra['Range'] = f'bytes={transfer.written}-'
            if transfer.validator:
                extra['If-Range'] = transfer.validator
        try:
            response = self._open_http(url, extra)
            try:
                status = response.status_code
                if status in RETRY_STATUSES:
                    raise _Retryable(
                        f'HTTP {status} {response.reason_phrase}',
                        parse_retry_after(response.headers.get('Retry-After')),
                        status,
                    )
                if status == 416 and resume:  # our partial file is no longer a prefix
                    transfer.restart()
                    raise _Retryable('HTTP 416: the partial download is stale; starting over')
                if status >= 400:
                    raise _Fatal(f'HTTP {status} {response.reason_phrase}', status)
                append = resume and status == 206 and _range_start(response) == transfer.written
                if not append:
                    if status == 206:  # a range we did not ask for: start over
                        transfer.restart()
                        raise _Retryable('unexpected partial content; starting over')
                    transfer.restart()
                elif append:
                    transfer.resumes += 1
                    logger.info('Resuming %s at byte %d', sanitize_url(url), transfer.written)
                transfer.validator = response.headers.get('ETag') or response.headers.get(
                    'Last-Modified'
                )
                with transfer.open(append) as fh:
                    # no chunk_size: bytes are written as they arrive, so a cut keeps them
                    for chunk in response.iter_bytes():
                        transfer.write(fh, chunk)
            finally:
                response.close()
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            raise _Retryable(_describe(exc)) from exc
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise _Fatal(_describe(exc)) from exc
        except OSError as exc:
            raise _Fatal(f'could not write {transfer.dest}: {exc.strerror or exc}') from exc
        problem = transfer.expect.verify(transfer.written, transfer.hasher)
        if problem is not None:
            transfer.restart()  # the bytes are wrong: the next attempt starts from byte 0
            raise _Retryable(problem, restart=True)
        transfer.finish()

    def _copy_local(self, path: str, transfer: _Transfer) -> None:
        resolved = self.policy.check_local(path)
        flags = os.O_RDONLY | getattr(os, 'O_NONBLOCK', 0) | getattr(os, 'O_BINARY', 0)
        flags |= getattr(os, 'O_NOFOLLOW', 0)  # resolved already: a new symlink is a swap
        try:
            # O_NONBLOCK: opening a FIFO returns at once instead of waiting for a writer
            fd = os.open(resolved, flags)
        except _FATAL_OS_ERRORS as exc:
            raise _Fatal(f'{exc.strerror or type(exc).__name__}: {path}') from exc
        except OSError as exc:
            raise _Fatal(f'cannot open {path}: {exc.strerror or exc}') from exc
        try:
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):
                kind = _file_kind(mode)
                raise _Fatal(f'refused: {path} is a {kind}, not a regular file')
            if hasattr(os, 'set_blocking'):
                os.set_blocking(fd, True)
            src = os.fdopen(fd, 'rb')
            fd = -1
        finally:
            if fd >= 0:
                os.close(fd)
        self._copy_stream(src, transfer, retry=False)

    def _copy_stream(self, src: IO[bytes], transfer: _Transfer, *, retry: bool) -> None:
        transfer.restart()
        try:
            with src, transfer.open(append=False) as fh:
                for chunk in iter(lambda: src.read(_CHUNK), b''):
                    transfer.write(fh, chunk)
        except OSError as exc:
            if isinstance(exc, _FATAL_OS_ERRORS) or not retry:
                raise _Fatal(_describe(exc)) from exc
            raise _Retryable(_describe(exc)) from exc
        problem = transfer.expect.verify(transfer.written, transfer.hasher)
        if problem is not None:
            if retry:
                raise _Retryable(problem, restart=True)
            raise _Fatal(problem)
        transfer.finish()

    def _fetch_fs(self, url: str, transfer: _Transfer) -> None:
        assert self.storage_fs is not None
        try:
            src = self.storage_fs.open(url, 'rb')
        except _FATAL_OS_ERRORS as exc:
            raise _Fatal(_describe(exc)) from exc
        except Exception as exc:  # s3fs/botocore raise many types; retry, then report
            raise _Retryable(_describe(exc)) from exc
        try:
            self._copy_stream(src, transfer, retry=True)
        except (_Fatal, _Retryable):
            raise
        except Exception as exc:
            raise _Retryable(_describe(exc)) from exc


def _range_start(response: httpx.Response) -> int | None:
    """The first byte of a 206 response's ``Content-Range: bytes a-b/n``."""
    match = re.match(r'\s*bytes\s+(\d+)-', response.headers.get('Content-Range', ''))
    return int(match.group(1)) if match else None


def _file_kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, 'FIFO (named pipe)'),
        (stat.S_ISCHR, 'character device'),
        (stat.S_ISBLK, 'block device'),
        (stat.S_ISSOCK, 'socket'),
        (stat.S_ISDIR, 'directory'),
    ):
        if test(mode):
            return name
    return 'special file'

"""BackendClient: the client contract over HTTP (httpx), for a real platform or ``synapse server``.

Retries connect errors, timeouts, dropped connections, 429 (honouring ``Retry-After``) and
502/503/504 with the one policy of :mod:`synapse_sdk.retry`. Pages are keyset-paged and each
page request resumes after the last key already yielded, so a retried page neither loses nor
repeats a record. Other 4xx answers fail at once with the server's message. The access token
is sent in a header only; it never appears in logs, ``repr`` or exception text.

Configuration mistakes fail fast as :class:`~synapse_sdk.errors.ConfigError` (the CLI exits
2): a host without ``http://`` is explained, not tried; a host that cannot be reached on first
contact fails in seconds naming the URL and ``SYNAPSE_HOST`` (once the server has answered,
connect errors are retried as transient); a refused token names ``SYNAPSE_ACCESS_TOKEN``.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import httpx
import orjson

from synapse_sdk.clients.base import ClientBase, Page
from synapse_sdk.errors import (
    BackendError,
    ConfigError,
    CredentialsError,
    FilterError,
    NotFoundError,
)
from synapse_sdk.protocol import (
    TARGETS,
    TENANT_HEADER,
    TOKEN_HEADER,
    cursor_param,
    parse_envelope,
    split_params,
)
from synapse_sdk.retry import RETRY_STATUSES, RetryPolicy, Transient, parse_retry_after

if TYPE_CHECKING:
    from synapse_sdk.storage.download import SourcePolicy

__all__ = ['RETRY_STATUSES', 'BackendClient']

logger = logging.getLogger(__name__)

HOST_VARIABLE = 'SYNAPSE_HOST'
TOKEN_VARIABLE = 'SYNAPSE_ACCESS_TOKEN'
_IDEMPOTENT = frozenset({'GET', 'HEAD', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'})
# Errors raised before a request reached the server: safe to retry for any method.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Before the host has ever answered, a connect error is most likely a wrong SYNAPSE_HOST:
# try this many times (the second a moment later), then say so.
_FIRST_CONTACT_ATTEMPTS = 2


def _encode(value: Any) -> str:
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple | set | frozenset):
        return ','.join(_encode(v) for v in value)
    return str(value)


def _filter_error(body: Mapping[str, Any], status: int) -> FilterError:
    supported = [str(s) for s in body.get('supported') or []]
    detail = str(body.get('detail') or 'Invalid filters')
    suffix = f' (supported: {", ".join(sorted(supported))})'
    if supported and detail.endswith(suffix):
        detail = detail[: -len(suffix)]
    return FilterError(detail, supported=supported, status_code=status)


def check_base_url(base_url: str) -> str:
    """``base_url`` normalised (one trailing ``/``), or ConfigError saying what is wrong."""
    text = str(base_url).strip()
    shown = text if len(text) <= 100 else text[:97] + '...'
    if '://' not in text:
        raise ConfigError(
            f'{HOST_VARIABLE}={shown!r} has no scheme: write http://{shown} (or https://...), '
            'the address of the Synapse backend',
            HOST_VARIABLE,
        )
    try:
        url = httpx.URL(text)
    except (httpx.InvalidURL, ValueError) as exc:
        raise ConfigError(
            f'{HOST_VARIABLE}={shown!r} is not a valid URL: {exc}', HOST_VARIABLE
        ) from None
    if url.scheme not in ('http', 'https'):
        raise ConfigError(
            f'{HOST_VARIABLE}={shown!r}: the scheme must be http:// or https://, '
            f'not {url.scheme}://',
            HOST_VARIABLE,
        )
    if not url.host:
        raise ConfigError(f'{HOST_VARIABLE}={shown!r} has no host name', HOST_VARIABLE)
    if url.userinfo or url.query:
        raise ConfigError(
            f'{HOST_VARIABLE} must not carry credentials or a query string; '
            f'pass the token in {TOKEN_VARIABLE}',
            HOST_VARIABLE,
        )
    return str(url.copy_with(fragment=None)).rstrip('/') + '/'


def _loads(content: bytes) -> Any:
    """Decode JSON fast; fall back to the standard library for what only it accepts
    (``NaN``, ``Infinity``: Python's ``json`` reads them, orjson does not)."""
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return json.loads(content)


class BackendClient(ClientBase):
    """HTTP client of the Synapse backend API (DESIGN section 4).

    ``timeout`` is seconds per request (connecting: at most ``connect_timeout``); ``retries``
    is how many times a failed request is retried; backoff doubles from ``backoff`` seconds
    up to ``max_backoff`` (``retry`` replaces these four, e.g. with an injected sleep).
    ``page_size`` is the page size of list requests (at most 1000). ``media_hosts`` are extra
    ``http(s)://host[:port]`` origins whose files may be downloaded as originals (a CDN of
    the platform); the backend's own origin is always allowed. ``transport`` is the httpx
    test seam.
    """

    def __init__(
        self,
        base_url: str,
        access_token: str | None = None,
        tenant: str | None = None,
        timeout: float = 30.0,
        retries: int = 5,
        *,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        page_size: int = 100,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] | None = None,
        retry: RetryPolicy | None = None,
        connect_timeout: float = 5.0,
        media_hosts: Collection[str] = (),
    ) -> None:
        self.base_url = check_base_url(base_url)
        self.retry = retry or RetryPolicy(
            retries=max(0, retries), backoff=backoff, max_backoff=max_backoff,
            max_retry_after=max(max_backoff, 60.0), sleep=sleep,
        )  # fmt: skip
        self.page_size = page_size
        self.media_hosts = tuple(media_hosts)
        headers = {'Accept': 'application/json'}
        if access_token:
            token = access_token.removeprefix('Token ').strip()
            headers[TOKEN_HEADER] = f'Token {token}'
        if tenant:
            headers[TENANT_HEADER] = f'Token {tenant.removeprefix("Token ").strip()}'
        self._authenticated = bool(access_token)
        self._reached = threading.Event()  # the host has answered at least once
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(timeout, connect_timeout)),
            transport=transport,
        )

    @property
    def retries(self) -> int:
        """Extra attempts after the first one."""
        return self.retry.retries

    def __repr__(self) -> str:
        return f'BackendClient({self.base_url!r}, authenticated={self._authenticated})'

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def source_policy(self) -> SourcePolicy:
        """Originals may come from this backend's origin (its signed media URLs) and the
        ``media_hosts``; never from local files or other hosts."""
        from synapse_sdk.storage.download import SourcePolicy

        return SourcePolicy.for_origins(
            [self.base_url, *self.media_hosts],
            label=f'the backend {self.base_url}'
            + (f' or {", ".join(self.media_hosts)}' if self.media_hosts else ''),
        )

    # -- transport with retries ------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> Any:
        """Send one API request with retries; returns the decoded JSON body.

        Raises CredentialsError (401/403), NotFoundError (404), FilterError (bad filters),
        ConfigError (the host cannot be reached at first contact), BackendError (anything
        else, or still failing after the retries).
        """
        method = method.upper()
        query = {k: _encode(v) for k, v in (params or {}).items() if v is not None}
        attempts = 0

        def once() -> httpx.Response:
            nonlocal attempts
            attempts += 1
            try:
                response = self._http.request(method, path, params=query, json=json)
            except httpx.TransportError as exc:
                reason = f'{type(exc).__name__}: {exc}' if str(exc) else type(exc).__name__
                if not self._reached.is_set() and isinstance(exc, _NOT_SENT):
                    if attempts >= _FIRST_CONTACT_ATTEMPTS:
                        raise self._unreachable(reason) from exc
                    raise Transient(reason) from exc
                if method in _IDEMPOTENT or isinstance(exc, _NOT_SENT):
                    raise Transient(reason) from exc
                raise BackendError(
                    f'{method} {path} failed: {reason} (not retried: the request may have '
                    'reached the server)',
                    url=self.base_url + path,
                ) from exc
            self._reached.set()
            if response.status_code in RETRY_STATUSES:
                raise Transient(
                    f'HTTP {response.status_code}',
                    retry_after=parse_retry_after(response.headers.get('retry-after')),
                    status_code=response.status_code,
                    payload=response,
                )
            return response

        def on_retry(exc: Transient, attempt: int, delay: float) -> None:
            level = logging.WARNING if self._reached.is_set() else logging.DEBUG
            logger.log(level, '%s %s: %s; retrying in %.2fs', method, path, exc.reason, delay)

        try:
            response = self.retry.call(once, on_retry=on_retry)
        except Transient as exc:
            if isinstance(exc.payload, httpx.Response):  # still a 5xx/429: report it
                return self._decode(method, path, exc.payload)
            raise BackendError(
                f'{method} {path} failed after {exc.attempts} attempt(s): {exc.reason}',
                url=self.base_url + path,
            ) from exc.__cause__
        return self._decode(method, path, response)

    def _unreachable(self, reason: str) -> ConfigError:
        return ConfigError(
            f'Cannot reach the Synapse backend at {self.base_url} ({reason}). Check '
            f'{HOST_VARIABLE} (is the server running, and is the address right?), or unset '
            f'it to use the local store in $SYNAPSE_HOME.',
            HOST_VARIABLE,
        )

    def _decode(self, method: str, path: str, response: httpx.Response) -> Any:
        status = response.status_code
        body: Any = None
        if response.content:
            try:
                body = _loads(response.content)
            except (ValueError, UnicodeDecodeError):
                body = None
        if status < 400:
            if body is None and response.content:
                raise BackendError(f'{method} {path}: response is not JSON', status, path)
            return body
        detail = body.get('detail') if isinstance(body, dict) else None
        detail = str(detail or response.text[:500] or response.reason_phrase)
        url = str(response.request.url)
        if status in {401, 403}:
            what = 'refused' if status == 401 else 'not allowed to do this'
            hint = (
                f'set {TOKEN_VARIABLE} to a valid access token'
                if not self._authenticated
                else f'check {TOKEN_VARIABLE} (and SYNAPSE_TENANT)'
            )
            raise CredentialsError(
                f'{method} {path}: HTTP {status} from {self.base_url}: the access token was '
                f'{what} ({detail}); {hint}',
                status,
                url,
            )
        if status == 404:
            raise NotFoundError(detail, status, url)
        if status == 400 and isinstance(body, dict) and 'supported' in body:
            raise _filter_error(body, status)
        raise BackendError(f'{method} {path}: HTTP {status}: {detail}', status, url)

    # -- list targets ----------------------------------------------------------------------------

    def _page(
        self, target: str, params: Mapping[str, Any], after: int | None, with_count: bool
    ) -> Page:
        spec = TARGETS[target]
        filters, control = split_params(params)
        query: dict[str, Any] = {**filters, 'page_size': self.page_size, **control}
        if after is not None:
            descending = str(control.get('ordering', '')).strip().startswith('-')
            query[cursor_param(spec.key, descending)] = after
        if not with_count:
            query['pagination'] = 'cursor'
        body = self.request('GET', spec.path, params=query)
        try:
            page = parse_envelope(body, f'GET {spec.path}')
        except ValueError as exc:
            raise BackendError(str(exc), url=spec.path) from None
        return Page(page.results, page.next is not None, page.count, page.next)

    def _count(self, target: str, params: Mapping[str, Any]) -> int:
        spec = TARGETS[target]
        filters, _ = split_params(params)
        body = self.request('GET', spec.path, params={**filters, 'page_size': 1})
        try:
            count = parse_envelope(body, f'GET {spec.path}').count
        except ValueError as exc:
            raise BackendError(str(exc), url=spec.path) from None
        if count is None:
            raise BackendError(f'GET {spec.path}: the server gave no "count"', url=spec.path)
        return count

    # -- single records --------------------------------------------------------------------------

    def get_project(self, project_id: int) -> dict[str, Any]:
        """``{id, title, configuration}``."""
        return dict(self.request('GET', f'projects/{int(project_id)}/'))

    def _all_pages(self, path: str, params: Mapping[str, Any] | None) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        url: str | None = path
        query = dict(params or {})
        while url:
            body = self.request('GET', url, params=query)
            if not isinstance(body, dict) or not isinstance(body.get('results'), list):
                raise BackendError(f'GET {path}: not a list envelope', url=path)
            out += body['results']
            url, query = body.get('next'), {}
        return out

    def list_projects(self) -> list[dict[str, Any]]:
        """Every project, ``{id, title, configuration, ...}`` (``GET projects/``, all pages)."""
        return self._all_pages('projects/', {'page_size': self.page_size})

    def list_ground_truth_versions(self, project: int | None = None) -> list[dict[str, Any]]:
        """Ground-truth dataset versions, of ``project`` when given (all pages)."""
        return self._all_pages(
            'ground_truth_dataset_versions/', {'project': project, 'page_size': self.page_size}
        )

    def get_ground_truth_version(self, version_id: int) -> dict[str, Any]:
        """A ground-truth dataset version with its dataset and project."""
        return dict(self.request('GET', f'ground_truth_dataset_versions/{int(version_id)}/'))

    def get_storage(self, storage_id: int) -> dict[str, Any]:
        """``{id, name, provider, configuration}``."""
        return dict(self.request('GET', f'storages/{int(storage_id)}/'))

    def get_job(self, job_id: int) -> dict[str, Any]:
        """A job's current document."""
        return dict(self.request('GET', f'jobs/{int(job_id)}/'))

    def update_job(self, job_id: int, data: Mapping[str, Any]) -> dict[str, Any]:
        """PATCH ``jobs/{id}/`` with progress, metrics or result fields."""
        return dict(self.request('PATCH', f'jobs/{int(job_id)}/', json=dict(data)))

    def create_logs(self, data: Mapping[str, Any] | list[Mapping[str, Any]]) -> Any:
        """POST log rows to ``logs/``."""
        payload = dict(data) if isinstance(data, Mapping) else [dict(d) for d in data]
        return self.request('POST', 'logs/', json=payload)

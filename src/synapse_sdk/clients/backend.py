"""BackendClient: the client contract over HTTP (httpx), for a real platform or ``synapse server``.

Retries connect errors, timeouts, dropped connections, 429 (honouring ``Retry-After``) and
502/503/504 with capped exponential backoff. Pages are keyset-paged and each page request
resumes after the last key already yielded, so a retried page neither loses nor repeats a
record. Other 4xx answers fail at once with the server's message. The access token is sent in a
header only; it never appears in logs, ``repr`` or exception text.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import orjson

from synapse_sdk.clients.base import ClientBase, Page
from synapse_sdk.errors import AuthError, BackendError, FilterError, NotFoundError
from synapse_sdk.server.filters import TARGETS, split_params

__all__ = ['RETRY_STATUSES', 'BackendClient']

logger = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 502, 503, 504})
_IDEMPOTENT = frozenset({'GET', 'HEAD', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'})
# Errors raised before a request reached the server: safe to retry for any method.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_PATHS = {
    'assignment': 'sdk/assignments/',
    'task': 'sdk/tasks/',
    'ground_truth_event': 'sdk/ground_truth_events/',
}


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


class BackendClient(ClientBase):
    """HTTP client of the Synapse backend API (DESIGN section 4).

    ``timeout`` is seconds per request; ``retries`` is how many times a failed request is
    retried; backoff doubles from ``backoff`` seconds up to ``max_backoff``. ``page_size`` is
    the page size of list requests (at most 1000). ``transport`` is the httpx test seam.
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
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip('/') + '/'
        self.retries = max(0, retries)
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.page_size = page_size
        self._sleep = sleep
        headers = {'Accept': 'application/json'}
        if access_token:
            token = access_token.removeprefix('Token ').strip()
            headers['Synapse-Access-Token'] = f'Token {token}'
        if tenant:
            headers['Synapse-Tenant'] = f'Token {tenant.removeprefix("Token ").strip()}'
        self._authenticated = bool(access_token)
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )

    def __repr__(self) -> str:
        return f'BackendClient({self.base_url!r}, authenticated={self._authenticated})'

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    # -- transport with retries ------------------------------------------------------------------

    def _delay(self, attempt: int, response: httpx.Response | None = None) -> float:
        if response is not None and 'retry-after' in response.headers:
            value = response.headers['retry-after'].strip()
            try:
                seconds = float(value)
            except ValueError:
                try:
                    seconds = (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds()
                except (TypeError, ValueError):
                    seconds = -1.0
            if seconds >= 0:
                return min(seconds, max(self.max_backoff, 60.0))
        base = min(self.max_backoff, self.backoff * 2**attempt)
        return base * (0.5 + random.random() / 2)  # jitter spreads out a crowd of retries

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> Any:
        """Send one API request with retries; returns the decoded JSON body.

        Raises AuthError (401/403), NotFoundError (404), FilterError (bad filters),
        BackendError (anything else, or still failing after the retries).
        """
        method = method.upper()
        query = {k: _encode(v) for k, v in (params or {}).items() if v is not None}
        attempts = self.retries + 1
        for attempt in range(attempts):
            try:
                response = self._http.request(method, path, params=query, json=json)
            except httpx.TransportError as exc:
                reason = f'{type(exc).__name__}: {exc}' if str(exc) else type(exc).__name__
                retriable = method in _IDEMPOTENT or isinstance(exc, _NOT_SENT)
                if not retriable or attempt + 1 >= attempts:
                    raise BackendError(
                        f'{method} {path} failed after {attempt + 1} attempt(s): {reason}',
                        url=self.base_url + path,
                    ) from exc
                delay = self._delay(attempt)
                logger.warning('%s %s: %s; retrying in %.2fs', method, path, reason, delay)
                self._sleep(delay)
                continue
            if response.status_code in RETRY_STATUSES and attempt + 1 < attempts:
                delay = self._delay(attempt, response)
                logger.warning(
                    '%s %s: HTTP %s; retrying in %.2fs', method, path, response.status_code, delay
                )
                self._sleep(delay)
                continue
            return self._decode(method, path, response)
        raise AssertionError('unreachable')  # pragma: no cover

    def _decode(self, method: str, path: str, response: httpx.Response) -> Any:
        status = response.status_code
        try:
            body = orjson.loads(response.content) if response.content else None
        except orjson.JSONDecodeError:
            body = None
        if status < 400:
            if body is None and response.content:
                raise BackendError(f'{method} {path}: response is not JSON', status, path)
            return body
        detail = body.get('detail') if isinstance(body, dict) else None
        detail = str(detail or response.text[:500] or response.reason_phrase)
        url = str(response.request.url)
        if status in {401, 403}:
            raise AuthError(f'{method} {path}: HTTP {status}: {detail}', status, url)
        if status == 404:
            raise NotFoundError(detail, status, url)
        if status == 400 and isinstance(body, dict) and 'supported' in body:
            raise _filter_error(body, status)
        raise BackendError(f'{method} {path}: HTTP {status}: {detail}', status, url)

    # -- list targets ----------------------------------------------------------------------------

    def _page(
        self, target: str, params: Mapping[str, Any], after: int | None, with_count: bool
    ) -> Page:
        filters, control = split_params(params)
        query: dict[str, Any] = {**filters, 'page_size': self.page_size, **control}
        if after is not None:
            key = TARGETS[target].key
            descending = str(control.get('ordering', '')).startswith('-')
            query[f'{key}__{"lt" if descending else "gt"}'] = after
        if not with_count:
            query['pagination'] = 'cursor'
        body = self.request('GET', _PATHS[target], params=query)
        if not isinstance(body, dict) or not isinstance(body.get('results'), list):
            raise BackendError(f'GET {_PATHS[target]}: not a list envelope', url=_PATHS[target])
        count = body.get('count')
        return Page(body['results'], bool(body.get('next')), count, body.get('next'))

    def _count(self, target: str, params: Mapping[str, Any]) -> int:
        filters, _ = split_params(params)
        body = self.request('GET', _PATHS[target], params={**filters, 'page_size': 1})
        return int(body['count'])

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

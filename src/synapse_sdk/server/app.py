"""The REST server: the store behind the paths, envelope and auth of DESIGN section 4.

``create_app`` builds the Starlette app; ``serve_in_thread`` runs it on a background thread for
tests and benchmarks; ``synapse server start`` runs it in the foreground.

Without a token the server only binds to loopback. With one, every request must carry
``Synapse-Access-Token: Token <token>``; media URLs in records carry an HMAC signature instead,
so a plain download of a record's ``url`` works, like a presigned URL. The token is never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from synapse_sdk.errors import FilterError, NotFoundError, ParamsError, SynapseError
from synapse_sdk.server.faults import FaultMiddleware, FaultPlan
from synapse_sdk.server.store import Store

__all__ = ['check_bind', 'create_app', 'is_loopback', 'serve_in_thread']

TOKEN_HEADER = 'synapse-access-token'
_LIST_PATHS = {
    'assignments': 'assignment',
    'tasks': 'task',
    'ground_truth_events': 'ground_truth_event',
}


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.strip('[]').lower() == 'localhost':
        return True
    try:
        return ipaddress.ip_address(host.strip('[]')).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to expose an unauthenticated server beyond this machine."""
    if not token and not is_loopback(host):
        raise ParamsError(
            f'Refusing to serve on {host!r} without a token: anyone who can reach it could read '
            'every project. Pass --token (or bind to 127.0.0.1).'
        )


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status, headers, media_type='application/json')


def _error(exc: SynapseError) -> Response:
    if isinstance(exc, FilterError):
        return _json({'detail': str(exc), 'supported': exc.supported}, 400)
    if isinstance(exc, NotFoundError):
        return _json({'detail': str(exc)}, 404)
    if isinstance(exc, ParamsError):
        return _json({'detail': str(exc)}, 400)
    return _json({'detail': str(exc)}, getattr(exc, 'status_code', None) or 500)


class _Api:
    """The endpoints, bound to one store and (optionally) one token."""

    def __init__(self, store: Store, token: str | None) -> None:
        self.store = store
        self.token = token
        # The media signing key is derived from the token, never the token itself.
        self._media_key = (
            hashlib.sha256(b'synapse-media:' + token.encode()).digest() if token else b''
        )

    # -- auth ----------------------------------------------------------------------------------

    def _sign(self, path: str) -> str:
        return hmac.new(self._media_key, path.encode(), hashlib.sha256).hexdigest()[:32]

    def authorised(self, request: Request) -> bool:
        """Whether the request carries the token (or, for media, a valid signature)."""
        if not self.token:
            return True
        header = request.headers.get(TOKEN_HEADER, '')
        scheme, _, value = header.partition(' ')
        if scheme.lower() == 'token' and hmac.compare_digest(value.strip(), self.token):
            return True
        if request.url.path.startswith('/media/'):
            sig = request.query_params.get('sig', '')
            path = request.path_params.get('path') or request.url.path[len('/media/') :]
            return hmac.compare_digest(sig, self._sign(path))
        return False

    def media_url(self, request: Request, path: str) -> str:
        """Absolute, percent-encoded URL of a media file, from the request's base URL."""
        url = f'{str(request.base_url).rstrip("/")}/media/{quote(path, safe="/")}'
        return f'{url}?sig={self._sign(path)}' if self.token else url

    # -- endpoints ------------------------------------------------------------------------------

    def list_records(self, request: Request) -> Response:
        target = _LIST_PATHS.get(request.path_params['kind'])
        if target is None:
            raise NotFoundError(f'Unknown list {request.path_params["kind"]!r}', status_code=404)
        params = dict(request.query_params)
        query = self.store.query(target, params)
        records, more = self.store.page(query, lambda p: self.media_url(request, p))
        body: dict[str, Any] = {}
        if query.with_count:
            body['count'] = self.store.count(query)
        nxt = None
        if more and records:
            key = query.target.key
            cursor = f'{key}__{"lt" if query.descending else "gt"}'
            nxt = str(request.url.include_query_params(**{cursor: records[-1][key]}))
        body.update(next=nxt, previous=None, results=records)
        return _json(body)

    def projects(self, request: Request) -> Response:
        results = self.store.list_projects()
        return _json({'count': len(results), 'next': None, 'previous': None, 'results': results})

    def ground_truth_versions(self, request: Request) -> Response:
        value = request.query_params.get('project')
        try:
            project = int(value) if value not in (None, '') else None
        except ValueError:
            raise ParamsError(f'project must be an integer, got {value!r}') from None
        results = self.store.list_ground_truth_versions(project)
        return _json({'count': len(results), 'next': None, 'previous': None, 'results': results})

    def project(self, request: Request) -> Response:
        return _json(self.store.get_project(request.path_params['id']))

    def ground_truth_version(self, request: Request) -> Response:
        return _json(self.store.get_ground_truth_version(request.path_params['id']))

    def storage(self, request: Request) -> Response:
        return _json(self.store.get_storage(request.path_params['id']))

    async def job(self, request: Request) -> Response:
        if request.method == 'GET':
            return _json(self.store.get_job(request.path_params['id']))
        data = await _body(request)
        if not isinstance(data, dict):
            raise ParamsError('PATCH jobs/{id}/ expects a JSON object')
        return _json(self.store.update_job(request.path_params['id'], data))

    async def logs(self, request: Request) -> Response:
        data = await _body(request)
        if not isinstance(data, dict | list) or (
            isinstance(data, list) and not all(isinstance(d, dict) for d in data)
        ):
            raise ParamsError('POST logs/ expects a JSON object or a list of objects')
        return _json({'created': self.store.create_logs(data)}, 201)

    def media(self, request: Request) -> Response:
        root = self.store.media_dir.resolve()
        target = (root / request.path_params['path']).resolve()
        if not target.is_relative_to(root) or not target.is_file():
            raise NotFoundError('Media file not found', status_code=404)
        return FileResponse(target)

    def health(self, request: Request) -> Response:
        return _json({'status': 'ok'})


async def _body(request: Request) -> Any:
    try:
        return orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise ParamsError(f'Request body is not valid JSON: {exc}') from None


def _guard(api: _Api, endpoint: Any) -> Any:
    """Wrap an endpoint with auth and error translation (sync endpoints stay sync)."""
    import inspect

    def deny() -> Response:
        return _json({'detail': 'Missing or invalid access token'}, 401)

    if inspect.iscoroutinefunction(endpoint):

        async def run_async(request: Request) -> Response:
            if not api.authorised(request):
                return deny()
            try:
                return await endpoint(request)
            except SynapseError as exc:
                return _error(exc)

        return run_async

    def run(request: Request) -> Response:
        if not api.authorised(request):
            return deny()
        try:
            return endpoint(request)
        except SynapseError as exc:
            return _error(exc)

    return run


def create_app(
    home: str | os.PathLike[str] | None = None,
    *,
    token: str | None = None,
    store: Store | None = None,
    faults: FaultPlan | None = None,
) -> Any:
    """The ASGI app serving ``home``'s store (or ``store``), wrapped in ``faults`` if given."""
    api = _Api(store or Store(home), token)
    routes = [
        Route('/health/', api.health),
        Route('/sdk/{kind:str}/', _guard(api, api.list_records)),
        Route('/projects/', _guard(api, api.projects)),
        Route('/ground_truth_dataset_versions/', _guard(api, api.ground_truth_versions)),
        Route('/projects/{id:int}/', _guard(api, api.project)),
        Route('/ground_truth_dataset_versions/{id:int}/', _guard(api, api.ground_truth_version)),
        Route('/storages/{id:int}/', _guard(api, api.storage)),
        Route('/jobs/{id:int}/', _guard(api, api.job), methods=['GET', 'PATCH']),
        Route('/logs/', _guard(api, api.logs), methods=['POST']),
        Route('/media/{path:path}', _guard(api, api.media)),
    ]
    app = Starlette(routes=routes)
    app.state.store = api.store

    return FaultMiddleware(app, faults) if faults is not None else app


@contextmanager
def serve_in_thread(
    home: str | os.PathLike[str] | None = None,
    host: str = '127.0.0.1',
    port: int = 0,
    token: str | None = None,
    faults: FaultPlan | None = None,
) -> Iterator[str]:
    """Run the server on a background thread; yields its base URL (``http://host:port/``).

    ``port=0`` picks a free port. The server stops and the store closes when the block exits.
    """
    check_bind(host, token)
    store = Store(home)
    app = create_app(store=store, token=token, faults=faults)
    family = socket.AF_INET6 if ':' in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host.strip('[]'), port))
    bound_port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level='critical', access_log=False, lifespan='off')
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={'sockets': [sock]}, name='synapse-server', daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            store.close()
            raise RuntimeError('The embedded server did not start')
        time.sleep(0.01)
    shown = f'[{host.strip("[]")}]' if family == socket.AF_INET6 else host
    try:
        yield f'http://{shown}:{bound_port}/'
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
        store.close()

"""The REST server: the store behind the paths, envelope and auth of DESIGN section 4.

``create_app`` builds the Starlette app; ``serve_in_thread`` runs it on a background thread for
tests and benchmarks; ``synapse server start`` runs it in the foreground.

Without a token the server only binds to loopback. With one, every request must carry
``Synapse-Access-Token: Token <token>``; media URLs in records carry an expiry and an HMAC
signature instead (``?exp=<unix time>&sig=<hmac>``, valid ``media_ttl`` seconds), so a plain
download of a record's ``url`` works, like a presigned URL. Neither the token nor a media
signature is ever logged (the access log drops media query strings).

Bad requests are 4xx with a JSON ``detail``, never a 500 with a traceback: a token that is not
ASCII, a NUL in a media path, an id or filter value beyond 64-bit integers, a body over
``max_body`` bytes (413). ``GET storages/{id}/`` never returns secrets (``secret_key``,
session tokens, passwords): a client reading an S3 storage over HTTP takes its credentials
from its own environment (``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``, see
:mod:`synapse_sdk.storage.resolve`).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
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
from synapse_sdk.protocol import MEDIA_PREFIX, TOKEN_HEADER, cursor_param, target_for_kind
from synapse_sdk.server.faults import FaultMiddleware, FaultPlan
from synapse_sdk.server.store import Store

__all__ = [
    'DEFAULT_MAX_BODY',
    'DEFAULT_MEDIA_TTL',
    'check_bind',
    'check_token',
    'create_app',
    'is_loopback',
    'redact_storage',
    'serve_in_thread',
]

#: Largest request body accepted (job updates and log batches), in bytes.
DEFAULT_MAX_BODY = 8 * 1024 * 1024
#: How long a signed media URL stays valid, in seconds.
DEFAULT_MEDIA_TTL = 6 * 3600
_MAX_INT = 2**63 - 1  # SQLite's INTEGER
_SECRET_WORDS = ('secret', 'password', 'passwd', 'token', 'credential', 'private')


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.strip('[]').lower() == 'localhost':
        return True
    try:
        return ipaddress.ip_address(host.strip('[]')).is_loopback
    except ValueError:
        return False


def check_token(token: str | None) -> None:
    """A server token must be printable ASCII (HTTP headers carry nothing else reliably)."""
    if token is not None and not (token.isascii() and token.isprintable() and token.strip()):
        raise ParamsError(
            'Invalid token', [('--token', 'use printable ASCII characters only, not blank')]
        )


def check_bind(host: str, token: str | None) -> None:
    """Refuse to expose an unauthenticated server beyond this machine (and a bad token)."""
    check_token(token)
    if not token and not is_loopback(host):
        raise ParamsError(
            f'Refusing to serve on {host!r} without a token: anyone who can reach it could read '
            'every project. Pass --token (or bind to 127.0.0.1).'
        )


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status, headers, media_type='application/json')


def redact_storage(storage: Mapping[str, Any]) -> dict[str, Any]:
    """A storage record without secrets: configuration keys naming a secret, password, token,
    credential or private key are left out (``access_key``, an id, stays)."""
    config = storage.get('configuration')
    out = dict(storage)
    if isinstance(config, Mapping):
        out['configuration'] = {
            k: v for k, v in config.items() if not any(w in str(k).lower() for w in _SECRET_WORDS)
        }
    return out


def _int_param(request: Request, name: str = 'id') -> int:
    value = int(request.path_params[name])
    if value > _MAX_INT:
        raise ParamsError(f'{name} {str(value)[:30]}... is out of range (at most {_MAX_INT})')
    return value


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

    def __init__(
        self,
        store: Store,
        token: str | None,
        *,
        media_ttl: float = DEFAULT_MEDIA_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        check_token(token)
        self.store = store
        self.token = token
        self._token_bytes = token.encode('ascii') if token else b''
        self.media_ttl = media_ttl
        self.clock = clock
        # The media signing key is derived from the token, never the token itself.
        self._media_key = (
            hashlib.sha256(b'synapse-media:' + token.encode()).digest() if token else b''
        )

    # -- auth ----------------------------------------------------------------------------------

    def _sign(self, path: str, expires: int) -> str:
        message = f'{path}\n{expires}'.encode('utf-8', 'surrogateescape')
        return hmac.new(self._media_key, message, hashlib.sha256).hexdigest()[:32]

    def authorised(self, request: Request) -> bool:
        """Whether the request carries the token (or, for media, a valid, unexpired
        signature)."""
        if not self.token:
            return True
        header = request.headers.get(TOKEN_HEADER, '')
        scheme, _, value = header.partition(' ')
        # compare bytes: headers arrive as latin-1 text, and compare_digest refuses non-ASCII str
        given = value.strip().encode('latin-1', 'replace')
        if scheme.lower() == 'token' and hmac.compare_digest(given, self._token_bytes):
            return True
        if request.url.path.startswith(MEDIA_PREFIX):
            sig = request.query_params.get('sig', '').encode('latin-1', 'replace')
            path = request.path_params.get('path') or request.url.path[len(MEDIA_PREFIX) :]
            try:
                expires = int(request.query_params.get('exp', ''))
            except ValueError:
                return False
            if expires < self.clock():
                return False
            return hmac.compare_digest(sig, self._sign(path, expires).encode())
        return False

    def media_url(self, request: Request, path: str) -> str:
        """Absolute, percent-encoded URL of a media file, from the request's base URL; with a
        token, signed and valid for ``media_ttl`` seconds."""
        url = f'{str(request.base_url).rstrip("/")}/media/{quote(path, safe="/")}'
        if not self.token:
            return url
        expires = int(self.clock() + self.media_ttl)
        return f'{url}?exp={expires}&sig={self._sign(path, expires)}'

    # -- endpoints ------------------------------------------------------------------------------

    def list_records(self, request: Request) -> Response:
        spec = target_for_kind(request.path_params['kind'])
        if spec is None:
            raise NotFoundError(f'Unknown list {request.path_params["kind"]!r}', status_code=404)
        params = dict(request.query_params)
        query = self.store.query(spec.name, params)
        records, more = self.store.page(query, lambda p: self.media_url(request, p))
        body: dict[str, Any] = {}
        if query.with_count:
            body['count'] = self.store.count(query)
        nxt = None
        if more and records:
            key = query.target.key
            cursor = cursor_param(key, query.descending)
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
        return _json(self.store.get_project(_int_param(request)))

    def ground_truth_version(self, request: Request) -> Response:
        return _json(self.store.get_ground_truth_version(_int_param(request)))

    def storage(self, request: Request) -> Response:
        return _json(redact_storage(self.store.get_storage(_int_param(request))))

    async def job(self, request: Request) -> Response:
        job_id = _int_param(request)
        if request.method == 'GET':
            return _json(self.store.get_job(job_id))
        data = await _body(request)
        if not isinstance(data, dict):
            raise ParamsError('PATCH jobs/{id}/ expects a JSON object')
        return _json(self.store.update_job(job_id, data))

    async def logs(self, request: Request) -> Response:
        data = await _body(request)
        if not isinstance(data, dict | list) or (
            isinstance(data, list) and not all(isinstance(d, dict) for d in data)
        ):
            raise ParamsError('POST logs/ expects a JSON object or a list of objects')
        return _json({'created': self.store.create_logs(data)}, 201)

    def media(self, request: Request) -> Response:
        path = request.path_params['path']
        if '\x00' in path:
            raise ParamsError('A media path must not contain a NUL character')
        root = self.store.media_dir.resolve()
        target = (root / path).resolve()
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


def _out_of_range(exc: OverflowError) -> Response:
    return _json({'detail': f'A number in the request is out of range (at most {_MAX_INT})'}, 400)


class _BodyLimit:
    """ASGI middleware: answer 413 to a request body over ``limit`` bytes (declared or sent)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope['type'] != 'http':
            await self.app(scope, receive, send)
            return
        detail = f'Request body too large (at most {self.limit} bytes)'
        headers = scope.get('headers') or []
        if not any(name in (b'content-length', b'transfer-encoding') for name, _ in headers):
            await self.app(scope, receive, send)  # no body
            return
        for name, value in headers:
            if name == b'content-length':
                try:
                    declared = int(value)
                except ValueError:
                    await _send_json(send, 400, {'detail': 'Invalid Content-Length'})
                    return
                if declared > self.limit:
                    await _send_json(send, 413, {'detail': detail})
                    return
                await self.app(scope, receive, send)  # the server enforces the length
                return
        # No Content-Length (chunked): read up to the limit here, then replay it to the app.
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message['type'] != 'http.request':
                return  # the client went away
            chunk = message.get('body', b'')
            received += len(chunk)
            if received > self.limit:
                await _send_json(send, 413, {'detail': detail})
                return
            chunks.append(chunk)
            if not message.get('more_body', False):
                break
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {'type': 'http.request', 'body': b''.join(chunks), 'more_body': False}
            return await receive()

        await self.app(scope, replay, send)


async def _send_json(send: Any, status: int, body: Any) -> None:
    data = orjson.dumps(body)
    headers = [(b'content-type', b'application/json'), (b'content-length', str(len(data)).encode())]
    await send({'type': 'http.response.start', 'status': status, 'headers': headers})
    await send({'type': 'http.response.body', 'body': data})


class _RedactMediaQuery(logging.Filter):
    """Drop the query string (expiry and signature) of media paths from uvicorn's access log.

    uvicorn logs ``'%s - "%s %s HTTP/%s" %d'`` with the full path as the third argument.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            path = args[2]
            if path.startswith(MEDIA_PREFIX) and '?' in path:
                record.args = (*args[:2], path.split('?', 1)[0], *args[3:])
        return True


def install_log_redaction() -> None:
    """Install the media-query redaction on uvicorn's access logger (once)."""
    access = logging.getLogger('uvicorn.access')
    if not any(isinstance(f, _RedactMediaQuery) for f in access.filters):
        access.addFilter(_RedactMediaQuery())


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
            except OverflowError as exc:
                return _out_of_range(exc)

        return run_async

    def run(request: Request) -> Response:
        if not api.authorised(request):
            return deny()
        try:
            return endpoint(request)
        except SynapseError as exc:
            return _error(exc)
        except OverflowError as exc:  # an integer beyond SQLite's 64 bits
            return _out_of_range(exc)

    return run


def create_app(
    home: str | os.PathLike[str] | None = None,
    *,
    token: str | None = None,
    store: Store | None = None,
    faults: FaultPlan | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    media_ttl: float = DEFAULT_MEDIA_TTL,
    clock: Callable[[], float] = time.time,
) -> Any:
    """The ASGI app serving ``home``'s store (or ``store``), wrapped in ``faults`` if given.

    ``max_body``: largest request body in bytes (413 above); ``media_ttl``: seconds a signed
    media URL stays valid; ``clock``: the time source of media expiry (tests).
    """
    install_log_redaction()
    api = _Api(store or Store(home), token, media_ttl=media_ttl, clock=clock)
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
    limited = _BodyLimit(app, max_body)
    return FaultMiddleware(limited, faults) if faults is not None else limited


@contextmanager
def serve_in_thread(
    home: str | os.PathLike[str] | None = None,
    host: str = '127.0.0.1',
    port: int = 0,
    token: str | None = None,
    faults: FaultPlan | None = None,
    **options: Any,
) -> Iterator[str]:
    """Run the server on a background thread; yields its base URL (``http://host:port/``).

    ``port=0`` picks a free port. The server stops and the store closes when the block exits.
    ``options`` go to :func:`create_app` (``max_body``, ``media_ttl``, ``clock``).
    """
    check_bind(host, token)
    store = Store(home)
    app = create_app(store=store, token=token, faults=faults, **options)
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

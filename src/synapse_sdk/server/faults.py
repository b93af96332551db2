"""Fault injection for the embedded server: the failures a real network and platform produce.

Tests hand a :class:`FaultPlan` to :func:`~synapse_sdk.server.app.serve_in_thread` (or
:func:`~synapse_sdk.server.app.create_app`) and add :class:`Fault` rules at any time::

    plan = FaultPlan()
    with serve_in_thread(home, faults=plan) as url:
        plan.add(Fault('status', path='/sdk/assignments/', status=503, after=2, times=2))
        ...
    assert plan.fired  # what was injected, in order

Kinds:

- ``status``: answer ``status`` (with ``Retry-After`` when ``retry_after`` is set);
- ``drop``: send the headers and half of the first body chunk, then close the connection;
- ``delay``: sleep ``delay`` seconds, then answer normally;
- ``early_end``: a list page whose ``next`` is ``null`` although more records follow (a
  silently truncated listing);
- ``ignore_cursor``: serve the request as if it had no keyset cursor (``id__gt`` ...), so the
  server sends the first page again and again;
- ``rewrite``: pass the response body through ``rewrite(bytes) -> bytes`` (a ``NaN`` in a page,
  a hostile media URL ...).

Every request is logged in ``plan.requests`` as ``(method, path, range header)``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode

import orjson

from synapse_sdk.protocol import CURSOR_PARAMS

__all__ = ['Fault', 'FaultMiddleware', 'FaultPlan', 'InjectedDrop']

ASGIApp = Any


class InjectedDrop(ConnectionAbortedError):
    """Raised inside the server to cut a response short (the client sees a broken body)."""


@dataclass
class Fault:
    """One rule: requests whose path starts with ``path`` (and whose query string contains
    ``query``), after ``after`` good ones, fail ``times`` times (``times=-1``: for ever)."""

    kind: Literal['status', 'drop', 'delay', 'early_end', 'ignore_cursor', 'rewrite']
    path: str = '/'
    status: int = 503
    retry_after: float | None = None
    delay: float = 0.0
    after: int = 0
    times: int = 1
    rewrite: Callable[[bytes], bytes] | None = field(default=None, compare=False)
    seen: int = field(default=0, compare=False)
    query: str = ''

    def hit(self) -> bool:
        """Count one matching request; True when this one is to fail."""
        self.seen += 1
        n = self.seen - self.after
        return n >= 1 and (self.times < 0 or n <= self.times)


class FaultPlan:
    """The rules in force and a log of every fault injected (``fired``)."""

    def __init__(self, *faults: Fault) -> None:
        self._lock = threading.Lock()
        self.faults: list[Fault] = list(faults)
        self.fired: list[tuple[str, str]] = []  # (kind, path)
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range header)

    def add(self, fault: Fault) -> Fault:
        """Add a rule; returns it so a test can read its ``seen`` counter."""
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        """Remove every rule (the log stays)."""
        with self._lock:
            self.faults.clear()

    def match(self, path: str, query: str = '') -> Fault | None:
        """The first rule that fires for this request, if any."""
        with self._lock:
            chosen = None
            for fault in self.faults:
                if fault.query and fault.query not in query:
                    continue
                if path.startswith(fault.path) and fault.hit() and chosen is None:
                    chosen = fault
            if chosen is not None:
                self.fired.append((chosen.kind, path))
            return chosen


class FaultMiddleware:
    """ASGI middleware applying a :class:`FaultPlan`."""

    def __init__(self, app: ASGIApp, plan: FaultPlan) -> None:
        self.app = app
        self.plan = plan

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope['type'] != 'http':
            await self.app(scope, receive, send)
            return
        rng = dict(scope.get('headers') or []).get(b'range')
        with self.plan._lock:
            self.plan.requests.append(
                (scope['method'], scope['path'], rng.decode('latin-1') if rng else None)
            )
        fault = self.plan.match(scope['path'], scope.get('query_string', b'').decode('latin-1'))
        if fault is None:
            await self.app(scope, receive, send)
        elif fault.kind == 'ignore_cursor':
            query = parse_qsl(scope.get('query_string', b'').decode('latin-1'), True)
            kept = [(k, v) for k, v in query if k not in CURSOR_PARAMS]
            scope = {**scope, 'query_string': urlencode(kept).encode('latin-1')}
            await self.app(scope, receive, send)
        elif fault.kind == 'early_end':
            await self._body(scope, receive, send, _end_early)
        elif fault.kind == 'rewrite':
            assert fault.rewrite is not None, 'a rewrite fault needs rewrite=callable'
            await self._body(scope, receive, send, fault.rewrite)
        elif fault.kind == 'delay':
            await asyncio.sleep(fault.delay)
            await self.app(scope, receive, send)
        elif fault.kind == 'status':
            headers = [(b'content-type', b'application/json')]
            if fault.retry_after is not None:
                headers.append((b'retry-after', str(fault.retry_after).encode()))
            body = orjson.dumps({'detail': f'Injected fault: HTTP {fault.status}'})
            await send({'type': 'http.response.start', 'status': fault.status, 'headers': headers})
            await send({'type': 'http.response.body', 'body': body})
        else:
            await self._drop(scope, receive, send)

    async def _body(
        self, scope: Any, receive: Any, send: Any, change: Callable[[bytes], bytes]
    ) -> None:
        """Run the app, collect its whole response, send ``change(body)`` instead."""
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def collect(message: dict[str, Any]) -> None:
            if message['type'] == 'http.response.start':
                start.update(message)
            elif message['type'] == 'http.response.body':
                chunks.append(message.get('body', b''))

        await self.app(scope, receive, collect)
        body = change(b''.join(chunks))
        kept = [(k, v) for k, v in start.get('headers', []) if k.lower() != b'content-length']
        kept.append((b'content-length', str(len(body)).encode()))
        await send({**start, 'headers': kept})
        await send({'type': 'http.response.body', 'body': body})

    async def _drop(self, scope: Any, receive: Any, send: Any) -> None:
        started: dict[str, Any] = {}

        async def cut(message: dict[str, Any]) -> None:
            if message['type'] == 'http.response.start':
                started.update(message)
                return
            if message['type'] == 'http.response.body':
                body = message.get('body', b'')
                await send(started)
                await send({'type': 'http.response.body', 'body': body[: len(body) // 2],
                            'more_body': True})  # fmt: skip
                raise InjectedDrop('injected dropped connection')

        await self.app(scope, receive, cut)


def _end_early(body: bytes) -> bytes:
    """A list page claiming to be the last one."""
    try:
        page = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body
    if isinstance(page, dict) and 'next' in page:
        page['next'] = None
    return orjson.dumps(page)

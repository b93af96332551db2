"""Fault injection for the embedded server: the failures a real network and platform produce.

Tests hand a :class:`FaultPlan` to :func:`~synapse_sdk.server.app.serve_in_thread` (or
:func:`~synapse_sdk.server.app.create_app`) and add :class:`Fault` rules at any time::

    plan = FaultPlan()
    with serve_in_thread(home, faults=plan) as url:
        plan.add(Fault('status', path='/sdk/assignments/', status=503, after=2, times=2))
        ...
    assert plan.fired  # what was injected, in order

Kinds: ``status`` (answer ``status``, with ``Retry-After`` when ``retry_after`` is set),
``drop`` (send the headers and half the body, then close the connection) and ``delay`` (sleep
``delay`` seconds, then answer normally).
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

__all__ = ['Fault', 'FaultMiddleware', 'FaultPlan', 'InjectedDrop']

ASGIApp = Any


class InjectedDrop(ConnectionAbortedError):
    """Raised inside the server to cut a response short (the client sees a broken body)."""


@dataclass
class Fault:
    """One rule: requests whose path starts with ``path`` (and whose query string contains
    ``query``), after ``after`` good ones, fail ``times`` times (``times=-1``: for ever)."""

    kind: Literal['status', 'drop', 'delay']
    path: str = '/'
    status: int = 503
    retry_after: float | None = None
    delay: float = 0.0
    after: int = 0
    times: int = 1
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
        fault = None
        if scope['type'] == 'http':
            query = scope.get('query_string', b'').decode('latin-1')
            fault = self.plan.match(scope['path'], query)
        if fault is None:
            await self.app(scope, receive, send)
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

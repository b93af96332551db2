"""What a task carries to a worker, and how a worker runs one.

A task is plain picklable data: a :class:`TaskCall` names the function to run (``module:name``,
imported in the worker, never pickled by value) and its payload. The payload references the
action by :class:`ActionRef` (a plugin code or folder, or an importable class) and the backend
by :class:`ClientSpec`: settings only. Secrets (the access token) never travel in a payload;
they reach workers through the environment (a worker process's, or Ray's runtime env).

:func:`call` runs a task in a worker and returns ``('ok', result)`` or ``('error', failure)``:
exceptions are packed here (pickled when they can be, described always), so a backend never
has to ship a foreign exception object across processes.
"""

from __future__ import annotations

import functools
import importlib
import os
import pickle
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from synapse_sdk.errors import (
    AuthError,
    ExportError,
    FilterError,
    NotFoundError,
    ParamsError,
    PluginError,
)

if TYPE_CHECKING:
    from synapse_sdk.plugins.action import BaseAction

__all__ = [
    'SECRET_ENV',
    'ActionRef',
    'ClientSpec',
    'TaskCall',
    'TaskFailure',
    'call',
    'retryable',
]

#: Environment variables a worker needs to reach the backend; never put in payloads or logs.
SECRET_ENV = ('SYNAPSE_ACCESS_TOKEN', 'SYNAPSE_TENANT')


@dataclass(frozen=True)
class ActionRef:
    """How a worker finds the action class: by plugin (code or absolute folder) and action
    name, as ``synapse plugin run`` loaded it, else by module and qualified name."""

    module: str
    qualname: str
    plugin: str | None = None
    action: str | None = None

    @classmethod
    def of(
        cls, action_cls: type, plugin: str | None = None, action: str | None = None
    ) -> ActionRef:
        return cls(action_cls.__module__, action_cls.__qualname__, plugin, action)

    def load(self) -> type[BaseAction[Any]]:
        """The action class (loaded once per worker process: shards of a run share it)."""
        return _load(self)

    def _load(self) -> type[BaseAction[Any]]:
        if self.plugin is not None and self.action is not None:
            from synapse_sdk.plugins.discovery import load_plugin

            return load_plugin(self.plugin).get_action(self.action)
        target: Any = importlib.import_module(self.module)
        for part in self.qualname.split('.'):
            target = getattr(target, part)
        action_cls: type[BaseAction[Any]] = target
        return action_cls


@functools.lru_cache(maxsize=32)
def _load(ref: ActionRef) -> type[BaseAction[Any]]:
    return ref._load()


@dataclass(frozen=True)
class ClientSpec:
    """The settings a worker rebuilds its own client from (its token comes from the env)."""

    kind: str  # 'local' | 'backend'
    home: str | None = None
    base_url: str | None = None
    page_size: int = 100
    timeout: float = 30.0
    retries: int = 5
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, client: Any) -> tuple[ClientSpec, dict[str, str]]:
        """``(spec, secrets)`` of a client; ``secrets`` are environment variables for workers.

        Raises ``TypeError`` for a client a worker cannot rebuild.
        """
        from synapse_sdk.clients import LocalClient

        client = unwrap_client(client)
        if isinstance(client, LocalClient):
            return cls('local', home=str(client.home), page_size=client.page_size), {}
        # Only now: the HTTP client's module brings httpx (0.1 s of imports a local run skips).
        from synapse_sdk.clients import BackendClient

        if isinstance(client, BackendClient):
            http = client._http
            secrets: dict[str, str] = {}
            token = http.headers.get('Synapse-Access-Token')
            if token:
                secrets['SYNAPSE_ACCESS_TOKEN'] = token.removeprefix('Token ').strip()
            tenant = http.headers.get('Synapse-Tenant')
            if tenant:
                secrets['SYNAPSE_TENANT'] = tenant.removeprefix('Token ').strip()
            timeout = http.timeout.read if http.timeout.read is not None else 30.0
            spec = cls(
                'backend',
                base_url=client.base_url,
                page_size=client.page_size,
                timeout=float(timeout),
                retries=client.retries,
            )
            return spec, secrets
        raise TypeError(
            f'{type(client).__name__} cannot be rebuilt in a worker; workers run with the '
            'embedded store (SYNAPSE_HOME) or a backend (SYNAPSE_HOST)'
        )

    def build(self) -> Any:
        if self.kind == 'local':
            from synapse_sdk.clients import LocalClient

            return LocalClient(self.home, page_size=self.page_size)
        from synapse_sdk.clients import BackendClient

        assert self.base_url is not None
        return BackendClient(
            self.base_url,
            access_token=os.environ.get('SYNAPSE_ACCESS_TOKEN') or None,
            tenant=os.environ.get('SYNAPSE_TENANT') or None,
            timeout=self.timeout,
            retries=self.retries,
            page_size=self.page_size,
        )


def unwrap_client(client: Any) -> Any:
    """The client a wrapper (``--output``'s storage answer, a test spy) delegates to."""
    from synapse_sdk.clients import ClientBase

    seen = 0
    while not isinstance(client, ClientBase) and seen < 5:
        inner = next(
            (getattr(client, a) for a in ('client', 'inner', 'wrapped', '_client', '_inner')
             if getattr(client, a, None) is not None),
            None,
        )  # fmt: skip
        if inner is None:
            break
        client, seen = inner, seen + 1
    return client


@dataclass(frozen=True)
class TaskCall:
    """A function (``module:name``, called as ``fn(payload, emit)``) and its payload."""

    function: str
    payload: Any

    def resolve(self) -> Callable[[Any, Callable[[Any], None]], Any]:
        module, _, name = self.function.partition(':')
        fn: Callable[[Any, Callable[[Any], None]], Any] = getattr(
            importlib.import_module(module), name
        )
        return fn


@dataclass
class TaskFailure:
    """Why a task failed, as the driver sees it. ``exception`` is the original when it could
    be carried over; ``crash`` says the worker itself died (or was lost)."""

    message: str
    type_name: str
    traceback: str = ''
    exception: BaseException | None = None
    crash: bool = False

    def error(self) -> BaseException:
        """An exception to raise for this failure in the driver."""
        if self.exception is not None:
            return self.exception
        return ExportError(self.message)

    def __str__(self) -> str:
        return self.message


def pack(exc: BaseException) -> TaskFailure:
    """A :class:`TaskFailure` for ``exc`` raised in a worker."""
    carried: BaseException | None = None
    try:
        blob = pickle.dumps(exc)
        carried = pickle.loads(blob)
    except Exception:
        carried = None
    text = str(exc)
    message = text if text else type(exc).__name__
    return TaskFailure(
        message=message,
        type_name=type(exc).__name__,
        traceback=''.join(traceback.format_exception(exc)),
        exception=carried,
    )


def call(task: TaskCall, emit: Callable[[Any], None]) -> tuple[str, Any]:
    """Run ``task`` here: ``('ok', result)`` or ``('error', TaskFailure)``."""
    try:
        return 'ok', task.resolve()(task.payload, emit)
    except BaseException as exc:  # the worker reports everything; the driver decides
        if isinstance(exc, SystemExit | KeyboardInterrupt) and not isinstance(exc, Exception):
            failure = pack(exc)
            failure.crash = True
            return 'error', failure
        return 'error', pack(exc)


#: Errors that come out the same however often a task runs: never retried.
_FINAL = (ParamsError, PluginError, ExportError, FilterError, AuthError, NotFoundError)


def retryable(failure: TaskFailure) -> bool:
    """Whether running the task again may help (a crash, a network or disk error)."""
    if failure.crash:
        return True
    return not isinstance(failure.exception, _FINAL)

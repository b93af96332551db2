"""Tasks as Ray tasks: a local Ray instance, or a cluster (``--ray-address`` / ``RAY_ADDRESS``).

Ray is an optional extra (``pip install 'synapse-sdk[ray]'``); :func:`require_ray` says how to
get it. Without an address a local instance is started on 127.0.0.1 (loopback only, see
:data:`LOOPBACK_ENV`) with ``workers`` CPUs and no dashboard, and shut down at the end; with
one, the run joins that cluster as a driver. A Ray session already open in this process
(``ray.init`` by the caller) is used as it is.

Each task is a Ray task of one CPU with no Ray-level retries (the scheduler retries, so a
failure is counted once, with its cause). A task is a streaming generator: it yields its event
batches as they come and then its outcome, so progress reaches the driver without an actor of
its own (a queue actor was one more Ray worker process to start on the export's cores, and one
call per batch).

Secrets (the backend token) reach the tasks as one object in Ray's object store, put once by the
driver and passed by reference: each task sets them in its worker's environment before it runs.
Not in a runtime environment's ``env_vars``: Ray's runtime-env agent writes those, values and
all, to the session's log files on every node. Not in the tasks' own arguments either.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from typing import Any

from synapse_sdk.errors import ParamsError
from synapse_sdk.plugins.executors.backends import Backend, Completion, OnEvents
from synapse_sdk.plugins.executors.tasks import TaskCall, TaskFailure, call

__all__ = [
    'INSTALL_HINT',
    'RayBackend',
    'kept_signal_handlers',
    'ray_task',
    'require_ray',
    'shown_address',
    'start_message',
    'use_ray_token',
]

INSTALL_HINT = (
    "--mode ray needs Ray: pip install 'synapse-sdk[ray]' (or pip install 'ray[default]')"
)


#: Ray's switch for a one-machine instance: node address 127.0.0.1, ports bound to loopback
#: only (by default Ray advertises and binds the machine's network address).
LOOPBACK_ENV = 'RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER'


def require_ray(mode: str = 'ray') -> Any:
    """The ``ray`` module, or a :class:`ParamsError` (exit 2) saying how to install it."""
    try:
        import ray
    except ImportError:
        hint = INSTALL_HINT.replace('--mode ray', f'--mode {mode}')
        raise ParamsError('Ray is not installed', [('--mode', hint)]) from None
    return ray


@contextlib.contextmanager
def _auth_notice_quiet() -> Iterator[None]:
    """Ray's notice that token authentication is on (with how to turn it off), logged when
    a local instance starts or a token is sent: noise on the run's screen, not shown."""
    notices = logging.getLogger('ray._private.authentication.authentication_token_setup')
    level = notices.level
    notices.setLevel(logging.ERROR)
    try:
        yield
    finally:
        notices.setLevel(level)


def use_ray_token() -> None:
    """Send Ray's auth token to the cluster named by its address when one is at hand
    (``~/.ray/auth_token``, ``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH``): a head started by
    ``ray start --head`` requires it, and Ray only sends it to an address given explicitly in
    token mode. ``RAY_AUTH_MODE`` set by the user is respected."""
    with contextlib.suppress(Exception):
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )

        maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


def unanswered(address: str, timeout: float = 10.0) -> str | None:
    """Why nothing answers at the Ray ``address`` (``HOST:PORT``, ``ray://HOST:PORT``);
    ``None`` when something listens there, or when the address names no port (``auto``)."""
    target = address.split('://', 1)[-1].rpartition('@')[2].split('/', 1)[0]
    host, sep, port = target.rpartition(':')
    if not sep or not host or not port.isdigit():
        return None
    try:
        with socket.create_connection((host.strip('[]'), int(port)), timeout=timeout):
            return None
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        return (
            f'nothing answers at {host}:{port} ({why}); is the Ray head running? '
            '`ray start --head` prints the address to join'
        )


def start_message(workers: int, address: str | None) -> str | None:
    """What a run says before it waits for Ray (a local instance takes seconds to start);
    ``None`` inside a Ray session the caller opened."""
    ray = sys.modules.get('ray')
    if ray is not None and ray.is_initialized():
        return None
    address = address or os.environ.get('RAY_ADDRESS') or None
    if address in (None, 'local'):
        return (
            f'Starting a local Ray instance with {workers} CPU(s) for this run (it takes a few '
            'seconds; --ray-address joins a running one)'
        )
    return f'Joining the Ray cluster at {shown_address(address)}'


def shown_address(address: str) -> str:
    """``address`` without credentials (``scheme://user:secret@host`` shows ``scheme://host``)."""
    _, at, rest = address.rpartition('@')
    if not at:
        return address
    return address.split('://', 1)[0] + '://' + rest if '://' in address else rest


@contextlib.contextmanager
def kept_signal_handlers() -> Any:
    """``ray.init`` installs a SIGTERM handler that ends the process (and ``ray.shutdown``
    leaves it): the run's own handlers (a rollback on SIGTERM) are put back."""
    saved = {}
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        with contextlib.suppress(ValueError, OSError):
            saved[signum] = signal.getsignal(signum)
    try:
        yield
    finally:
        for signum, handler in saved.items():
            with contextlib.suppress(ValueError, OSError, TypeError):
                signal.signal(signum, handler)


_END = object()


def ray_task(task: TaskCall, secrets: dict[str, str] | None = None) -> Iterator[tuple[Any, ...]]:
    """What runs inside a Ray worker: the task on a thread of its own, while this generator
    yields ``('events', batch)`` for each batch it emits, then ``('done', status, value)``.
    ``secrets`` (Ray resolves the driver's object to its value) go into this worker's
    environment first, where the task's client reads its token."""
    if secrets:
        os.environ.update(secrets)
    inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
    outcome: list[tuple[str, Any]] = []

    def work() -> None:
        try:
            outcome.append(call(task, inbox.put))
        finally:
            inbox.put(_END)

    thread = threading.Thread(target=work, name='synapse-task', daemon=True)
    thread.start()
    while (batch := inbox.get()) is not _END:
        yield ('events', batch)
    thread.join()
    status, value = outcome[0]
    yield ('done', status, value)


def ray_warm_up(preload: tuple[str, ...]) -> int:
    """Import what tasks will use, in a Ray worker, while the driver plans the run."""
    import importlib

    for module in preload:
        with contextlib.suppress(Exception):
            importlib.import_module(module)
    return os.getpid()


def _cluster_cpus(ray: Any) -> float:
    try:
        return float(ray.cluster_resources().get('CPU', 0))
    except Exception:
        return 0.0


class RayBackend(Backend):
    """``workers`` concurrent Ray tasks (see the module docstring)."""

    name = 'ray'

    def __init__(
        self,
        workers: int,
        *,
        address: str | None = None,
        env: dict[str, str] | None = None,
        preload: tuple[str, ...] = (),
    ) -> None:
        address = address or os.environ.get('RAY_ADDRESS') or None
        if address in (None, 'local') and 'ray' not in sys.modules:
            os.environ.setdefault(LOOPBACK_ENV, '0')  # read when ray is imported
        ray = require_ray()
        self._ray = ray
        self.slots = max(1, int(workers))
        self._env = dict(env or {})
        self._owned = False
        if not ray.is_initialized():
            options: dict[str, Any] = {
                'include_dashboard': False,
                'log_to_driver': False,
                'logging_level': logging.WARNING,
                'configure_logging': True,
            }
            local = address in (None, 'local')
            if local:
                options.update(address='local', num_cpus=self.slots)
            else:
                assert address is not None
                shown = shown_address(address)
                silent = unanswered(address)  # Ray itself tries for minutes before it fails
                if silent is not None:
                    raise ParamsError('Could not join the Ray cluster',
                                      [('--ray-address', f'{shown}: {silent}')])  # fmt: skip
                options['address'] = address
                with _auth_notice_quiet():
                    use_ray_token()
            try:
                with kept_signal_handlers(), _auth_notice_quiet():
                    ray.init(**options)
            except Exception as exc:
                if local:
                    raise ParamsError(
                        'Could not start Ray', [('--ray-address', f'a local Ray instance: {exc}')]
                    ) from exc
                assert address is not None
                why = str(exc).replace(address, shown)
                if isinstance(exc, ConnectionError):  # something answered, but not as a head
                    why += (
                        ' (a cluster with token authentication needs its token: '
                        'RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token)'
                    )
                raise ParamsError(
                    'Could not join the Ray cluster', [('--ray-address', f'{shown}: {why}')]
                ) from exc
            self._owned = True
        # Where Ray has no more CPUs than ``workers`` (a local instance of our own has exactly
        # that many), a second task per slot waits in Ray's queue and starts the moment one
        # ends; on a larger cluster it would run at once, so there it is ``workers`` at a time.
        self.depth = 2 if 0 < _cluster_cpus(ray) <= self.slots else 1
        self._remote = ray.remote(num_cpus=1, max_retries=0, num_returns='streaming')(ray_task)
        self._secrets = ray.put(self._env) if self._env else None  # see the module docstring
        self._refs: dict[Any, Any] = {}  # ObjectRefGenerator -> key
        # Start the workers now (a Ray worker imports the SDK when its first task comes):
        # they get ready while the driver plans the run, as worker processes do.
        warm = ray.remote(num_cpus=1, max_retries=0)(ray_warm_up)
        self._warming = [warm.remote(preload) for _ in range(self.slots)] if preload else []

    def submit(self, key: Any, task: TaskCall) -> None:
        self._refs[self._remote.remote(task, self._secrets)] = key

    def idle(self) -> bool:
        return not self._refs

    def poll(self, timeout: float, on_events: OnEvents) -> list[Completion]:
        ray = self._ray
        if not self._refs:
            return []
        refs = list(self._refs)
        ready, rest = ray.wait(refs, num_returns=1, timeout=timeout)
        if ready and rest:
            more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
            ready += more
        done: list[Completion] = []
        for gen in ready:
            self._drain(gen, on_events, done)
        return done

    def _drain(self, gen: Any, on_events: OnEvents, done: list[Completion]) -> None:
        """Read what task ``gen`` yielded so far: its event batches, then maybe its outcome."""
        ray = self._ray
        key = self._refs[gen]
        while True:
            try:
                item = ray.get(next(gen))
            except StopIteration:
                item = None
            except Exception as exc:  # the task never ended: its worker or node was lost
                failure = TaskFailure(f'the Ray task was lost: {type(exc).__name__}: {exc}',
                                      type(exc).__name__, crash=True)  # fmt: skip
                del self._refs[gen]
                done.append(Completion(key, False, failure=failure))
                return
            if item is None or item[0] == 'done':
                del self._refs[gen]
                if item is None:
                    failure = TaskFailure('the Ray task ended without an outcome', 'TaskLost',
                                          crash=True)  # fmt: skip
                    done.append(Completion(key, False, failure=failure))
                elif item[1] == 'ok':
                    done.append(Completion(key, True, result=item[2]))
                else:
                    done.append(Completion(key, False, failure=item[2]))
                return
            on_events(key, item[1])
            more, _ = ray.wait([gen], num_returns=1, timeout=0)
            if not more:
                return

    def cancel(self) -> None:
        for ref in [*self._refs, *self._warming]:
            with contextlib.suppress(Exception):
                self._ray.cancel(ref, force=True)
        self._refs.clear()

    def close(self) -> None:
        if self._refs:
            self.cancel()
        if self._owned:
            self._owned = False
            with contextlib.suppress(Exception), kept_signal_handlers():
                self._ray.shutdown()

"""Tasks as Ray tasks: a local Ray instance, or a cluster (``--ray-address`` / ``RAY_ADDRESS``).

Ray is an optional extra (``pip install 'synapse-sdk[ray]'``); :func:`require_ray` says how to
get it. Without an address a local instance is started on 127.0.0.1 (loopback only, see
:data:`LOOPBACK_ENV`) with ``workers`` CPUs and no dashboard, and shut down at the end; with
one, the run joins that cluster as a driver. A Ray session already open in this process
(``ray.init`` by the caller) is used as it is.

Each task is a Ray task of one CPU with no Ray-level retries (the scheduler retries, so a
failure is counted once, with its cause). Task events reach the driver through a
``ray.util.queue.Queue`` actor. Secrets reach the tasks in their runtime environment's
``env_vars``, never in their arguments.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
from typing import Any

from synapse_sdk.errors import ParamsError
from synapse_sdk.plugins.executors.backends import Backend, Completion, OnEvents
from synapse_sdk.plugins.executors.tasks import TaskCall, TaskFailure, call

__all__ = ['INSTALL_HINT', 'RayBackend', 'kept_signal_handlers', 'ray_task', 'require_ray']

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


def ray_task(task: TaskCall, key: Any, queue: Any) -> tuple[str, Any]:
    """What runs inside a Ray worker: the task, its events sent to the driver's queue."""

    def emit(batch: Any) -> None:
        queue.put((key, batch))

    return call(task, emit)


class RayBackend(Backend):
    """``workers`` concurrent Ray tasks (see the module docstring)."""

    name = 'ray'

    def __init__(
        self, workers: int, *, address: str | None = None, env: dict[str, str] | None = None
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
            if self._env:
                options['runtime_env'] = {'env_vars': self._env}
            if address in (None, 'local'):
                options.update(address='local', num_cpus=self.slots)
            else:
                options['address'] = address
            try:
                with kept_signal_handlers():
                    ray.init(**options)
            except Exception as exc:
                where = 'a local Ray instance' if address in (None, 'local') else address
                raise ParamsError(
                    'Could not start Ray', [('--ray-address', f'{where}: {exc}')]
                ) from exc
            self._owned = True
        from ray.util.queue import Queue

        self._queue = Queue(actor_options={'num_cpus': 0})
        remote = ray.remote(num_cpus=1, max_retries=0)(ray_task)
        # Secrets go with each task when the session was opened by someone else.
        if self._env and not self._owned:
            remote = remote.options(runtime_env={'env_vars': self._env})
        self._remote = remote
        self._refs: dict[Any, Any] = {}  # ObjectRef -> key

    def submit(self, key: Any, task: TaskCall) -> None:
        ref = self._remote.remote(task, key, self._queue)
        self._refs[ref] = key

    def _events(self, on_events: OnEvents) -> None:
        with contextlib.suppress(Exception):
            size = self._queue.qsize()
            if size:
                for key, batch in self._queue.get_nowait_batch(size):
                    on_events(key, batch)

    def poll(self, timeout: float, on_events: OnEvents) -> list[Completion]:
        ray = self._ray
        self._events(on_events)
        if not self._refs:
            return []
        refs = list(self._refs)
        ready, rest = ray.wait(refs, num_returns=1, timeout=timeout)
        if ready and rest:
            more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
            ready += more
        self._events(on_events)  # a task's last events come before its outcome is read
        done = []
        for ref in ready:
            key = self._refs.pop(ref)
            try:
                status, value = ray.get(ref)
            except Exception as exc:  # the task never returned: its worker or node was lost
                failure = TaskFailure(f'the Ray task was lost: {type(exc).__name__}: {exc}',
                                      type(exc).__name__, crash=True)  # fmt: skip
                done.append(Completion(key, False, failure=failure))
                continue
            if status == 'ok':
                done.append(Completion(key, True, result=value))
            else:
                done.append(Completion(key, False, failure=value))
        return done

    def cancel(self) -> None:
        for ref in list(self._refs):
            with contextlib.suppress(Exception):
                self._ray.cancel(ref, force=True)
        self._refs.clear()

    def close(self) -> None:
        if self._refs:
            self.cancel()
        with contextlib.suppress(Exception):
            self._ray.kill(self._queue.actor)
        if self._owned:
            self._owned = False
            with contextlib.suppress(Exception), kept_signal_handlers():
                self._ray.shutdown()

"""Where tasks run: in this process, in worker processes on this machine, or as Ray tasks.

Every backend offers the same four calls to the :mod:`scheduler <.scheduler>`: ``submit`` a
task under a key, ``poll`` for completions (waiting up to a timeout), delivering each task's
event batches to ``on_events`` as they arrive, and ``close``. ``slots`` is how many tasks run
at once (``--workers``).

- :class:`InlineBackend` runs tasks one after the other in the calling thread.
- :class:`ProcessBackend` keeps ``workers`` worker processes, each running one task at a time
  and talking to the driver over its own socket pair (events, then the outcome). A process that dies
  mid-task (killed, out of memory, ``os._exit``) fails only that task, and a fresh process takes
  its place. Workers end themselves when the driver process is gone.
- :class:`~synapse_sdk.plugins.executors.ray_backend.RayBackend` (separate module: Ray is an
  optional extra).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from synapse_sdk.plugins.executors.tasks import TaskCall, TaskFailure, call

__all__ = ['Backend', 'Completion', 'InlineBackend', 'ProcessBackend']

OnEvents = Callable[[Any, Any], None]


@dataclass
class Completion:
    """A task ended: ``result`` when ``ok``, else ``failure``."""

    key: Any
    ok: bool
    result: Any = None
    failure: TaskFailure | None = None


class Backend:
    """The interface the scheduler drives (see the module docstring)."""

    slots: int = 1
    name: str = 'backend'

    def submit(self, key: Any, task: TaskCall) -> None:
        raise NotImplementedError

    def poll(self, timeout: float, on_events: OnEvents) -> list[Completion]:
        raise NotImplementedError

    def cancel(self) -> None:
        """Stop every running task (the run failed or was interrupted)."""

    def close(self) -> None:
        """Release workers. Safe to call twice."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class InlineBackend(Backend):
    """Runs each task in the calling thread when polled (``--workers 1``, and tests)."""

    name = 'inline'

    def __init__(self) -> None:
        self.slots = 1
        self._queue: deque[tuple[Any, TaskCall]] = deque()

    def submit(self, key: Any, task: TaskCall) -> None:
        self._queue.append((key, task))

    def poll(self, timeout: float, on_events: OnEvents) -> list[Completion]:
        if not self._queue:
            return []
        key, task = self._queue.popleft()
        status, value = call(task, lambda batch: on_events(key, batch))
        if status == 'ok':
            return [Completion(key, True, result=value)]
        return [Completion(key, False, failure=value)]


# -- worker processes -------------------------------------------------------------------------
def _watch_driver(driver: int) -> None:
    """End this worker when the driver process is gone (``kill -9`` leaves no orphans)."""
    while True:
        time.sleep(0.5)
        try:
            os.kill(driver, 0)
        except ProcessLookupError:
            os._exit(3)
        except PermissionError:
            pass


def _die_with_parent() -> None:
    if sys.platform.startswith('linux'):
        with contextlib.suppress(Exception):
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def worker_main(conn: Connection, driver: int, preload: tuple[str, ...] = ()) -> None:
    """The loop of a worker process: receive a task, run it, send events and the outcome."""
    _die_with_parent()
    threading.Thread(target=_watch_driver, args=(driver,), daemon=True).start()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver decides what Ctrl-C means
    import importlib

    for module in preload:
        with contextlib.suppress(Exception):
            importlib.import_module(module)
    lock = threading.Lock()
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        key, task = message

        def emit(batch: Any, key: Any = key) -> None:
            with lock:
                conn.send(('events', key, batch))

        status, value = call(task, emit)
        with lock:
            try:
                conn.send((status, key, value))
            except Exception as exc:  # an unpicklable result
                failure = TaskFailure(f'the task result could not be sent: {exc}', 'PicklingError')
                conn.send(('error', key, failure))


def _worker_stdout() -> Any:
    """Where a worker's stdout goes: the driver's stderr (stdout is the run's JSON result)."""
    for stream in (sys.__stderr__, sys.stderr):
        try:
            if stream is not None:
                return stream.fileno()
        except (AttributeError, OSError, ValueError):
            continue
    return subprocess.DEVNULL


class _Worker:
    """One worker process (a fresh interpreter running ``python -m ...executors.worker``),
    connected to the driver by a socket pair: nothing of the driver's ``__main__`` is run
    again, so scripts, notebooks and test runners need no ``if __name__ == '__main__'``."""

    def __init__(self, driver: int, preload: tuple[str, ...], env: dict[str, str]):
        parent, child = socket.socketpair()
        environ = {**os.environ, **env, 'SYNAPSE_WORKER_PRELOAD': ','.join(preload)}
        out = _worker_stdout()
        try:
            self.process = subprocess.Popen(
                [sys.executable, '-m', 'synapse_sdk.plugins.executors.worker',
                 str(child.fileno()), str(driver)],
                pass_fds=(child.fileno(),),
                env=environ,
                stdin=subprocess.DEVNULL,
                stdout=out,
                close_fds=True,
            )  # fmt: skip
        finally:
            child.close()
        self.conn: Connection = Connection(parent.detach())
        self.key: Any = None

    @property
    def busy(self) -> bool:
        return self.key is not None

    def alive(self) -> bool:
        return self.process.poll() is None

    def exitcode(self, wait: float = 1.0) -> int | None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            return self.process.wait(timeout=wait)
        return self.process.poll()

    def stop(self, kill: bool = False) -> None:
        if kill and self.alive():
            self.process.kill()
        else:
            with contextlib.suppress(Exception):
                self.conn.send(None)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=5)
        with contextlib.suppress(Exception):
            self.conn.close()


class ProcessBackend(Backend):
    """``workers`` worker processes on this machine (see the module docstring).

    ``env`` is added to the workers' environment (the backend token). ``preload`` modules are
    imported by each worker as it starts, while the driver plans the run.
    """

    name = 'processes'

    def __init__(
        self,
        workers: int,
        *,
        env: dict[str, str] | None = None,
        preload: tuple[str, ...] = (),
    ) -> None:
        self.slots = max(1, int(workers))
        self._env = dict(env or {})
        self._preload = preload
        self._driver = os.getpid()
        self._queue: deque[tuple[Any, TaskCall]] = deque()
        self._closed = False
        self._workers: list[_Worker] = []
        try:
            for _ in range(self.slots):
                self._workers.append(self._spawn())
        except BaseException:
            self.close()
            raise

    def _spawn(self) -> _Worker:
        return _Worker(self._driver, self._preload, self._env)

    def submit(self, key: Any, task: TaskCall) -> None:
        self._queue.append((key, task))
        self._dispatch()

    def _dispatch(self) -> None:
        for worker in self._workers:
            if not self._queue:
                return
            if not worker.busy:
                key, task = self._queue.popleft()
                worker.key = key
                with contextlib.suppress(OSError, EOFError):
                    worker.conn.send((key, task))  # a dead worker: poll() fails its task

    def poll(self, timeout: float, on_events: OnEvents) -> list[Completion]:
        busy = [w for w in self._workers if w.busy]
        if not busy:
            return []
        ready = wait([w.conn for w in busy], timeout=timeout)
        done: list[Completion] = []
        for worker in busy:
            if worker.conn not in ready and worker.alive():
                continue
            if self._drain(worker, on_events, done):
                continue
            if worker.conn in ready or not worker.alive():  # the pipe closed: the worker died
                if worker.busy:
                    code = worker.exitcode()
                    done.append(Completion(worker.key, False, failure=_crash(code)))
                    worker.key = None
                self._replace(worker)
        self._dispatch()
        return done

    def _drain(self, worker: _Worker, on_events: OnEvents, done: list[Completion]) -> bool:
        """Read what the worker sent; True once its task's outcome came (False: it died)."""
        try:
            while worker.conn.poll():
                kind, key, value = worker.conn.recv()
                if kind == 'events':
                    on_events(key, value)
                    continue
                worker.key = None
                ok = kind == 'ok'
                done.append(Completion(key, ok, value if ok else None, None if ok else value))
                return True
        except (EOFError, OSError):
            return False
        return worker.alive() or not worker.busy

    def _replace(self, worker: _Worker) -> None:
        index = self._workers.index(worker)
        with contextlib.suppress(Exception):
            worker.stop(kill=True)
        if not self._closed:
            self._workers[index] = self._spawn()

    def cancel(self) -> None:
        self._queue.clear()
        for worker in list(self._workers):
            if worker.busy:
                worker.key = None
                self._replace(worker)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.clear()
        for worker in self._workers:
            with contextlib.suppress(Exception):
                worker.stop(kill=worker.busy)


def _crash(exitcode: int | None) -> TaskFailure:
    if exitcode is not None and exitcode < 0:
        try:
            how = f'killed by {signal.Signals(-exitcode).name}'
        except ValueError:
            how = f'killed by signal {-exitcode}'
    else:
        how = f'exited with code {exitcode}'
    return TaskFailure(f'the worker process {how}', 'WorkerCrashed', crash=True)

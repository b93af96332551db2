"""Where tasks run: in this process, in worker processes on this machine, or as Ray tasks.

Every backend offers the same four calls to the :mod:`scheduler <.scheduler>`: ``submit`` a
task under a key, ``poll`` for completions (waiting up to a timeout), delivering each task's
event batches to ``on_events`` as they arrive, and ``close``. ``slots`` is how many tasks run
at once (``--workers``).

- :class:`InlineBackend` runs tasks one after the other in the calling thread.
- :class:`ProcessBackend` keeps ``workers`` worker processes, each running one task at a time
  and talking to the driver over its own socket pair (events, then the outcome). A process that dies
  mid-task (killed, out of memory, ``os._exit``) fails only that task, and a fresh process takes
  its place. Workers end themselves when the driver process is gone. How a worker starts: see
  :func:`start_method`.
- :class:`~synapse_sdk.plugins.executors.ray_backend.RayBackend` (separate module: Ray is an
  optional extra).
"""

from __future__ import annotations

import contextlib
import gc
import os
import queue
import signal
import socket
import stat
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

__all__ = [
    'START_ENV',
    'Backend',
    'Completion',
    'InlineBackend',
    'ProcessBackend',
    'sqlite_files',
    'start_method',
]

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
    #: Tasks handed to the backend per slot at a time: more than one lets a worker start its
    #: next task the moment one ends, while the driver still merges what it sent.
    depth: int = 1
    #: A task submitted starts at once on a process already running (no start-up to wait for):
    #: worth handing it work the driver would otherwise do while it plans.
    eager: bool = False
    name: str = 'backend'

    def submit(self, key: Any, task: TaskCall) -> None:
        raise NotImplementedError

    def poll(self, timeout: float, on_events: OnEvents) -> list[Completion]:
        raise NotImplementedError

    def idle(self) -> bool:
        """Whether no task is submitted and unfinished (nothing for ``poll`` to deliver)."""
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

    def idle(self) -> bool:
        return not self._queue

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


def _receive(conn: Connection, inbox: queue.SimpleQueue[Any]) -> None:
    """Take what the driver sends as it comes (a task queued behind the running one): the
    driver never waits on a full socket while this worker waits on the driver for its events."""
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            message = None
        inbox.put(message)
        if message is None:
            return


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
    inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
    threading.Thread(target=_receive, args=(conn, inbox), daemon=True).start()
    while True:
        message = inbox.get()
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


#: ``SYNAPSE_WORKER_START=spawn`` (or ``fork``): how worker processes start (see
#: :func:`start_method`).
START_ENV = 'SYNAPSE_WORKER_START'


def start_method() -> str:
    """How the next worker process starts: ``fork`` or ``spawn``.

    ``fork`` (Linux, when this process runs a single thread and has no SQLite database open):
    the worker is a copy of the driver, which has already imported the SDK and the action, so
    it is ready at once (a fresh interpreter spends a third of a second of CPU importing them
    again, on the cores the export needs). With other threads running, a fork could copy a lock
    one of them holds; with a database open, SQLite's record of the locks this process holds
    would be copied into a child that holds none. So then the worker is spawned, as on other
    systems: a fresh interpreter running ``python -m synapse_sdk.plugins.executors.worker``.
    Either way nothing of the driver's ``__main__`` runs again, so scripts, notebooks and test
    runners need no ``if __name__ == '__main__'``. ``SYNAPSE_WORKER_START`` chooses (``fork``
    still spawns when forking is not safe).
    """
    wanted = os.environ.get(START_ENV, '').strip().lower() or 'fork'
    if wanted not in ('fork', 'spawn'):
        from synapse_sdk.errors import ParamsError

        raise ParamsError(
            'Invalid environment', [(START_ENV, f'got {wanted!r}; allowed: fork, spawn')]
        )
    if (
        wanted == 'fork'
        and hasattr(os, 'fork')
        and sys.platform.startswith('linux')
        and threading.active_count() == 1
        and not sqlite_files()
    ):
        return 'fork'
    return 'spawn'


_SQLITE_HEADER = b'SQLite format 3\x00'


def sqlite_files() -> list[str]:
    """The SQLite databases (and WAL, shared-memory or journal files) this process has open.

    Reads the first bytes through the open descriptors themselves (``pread``): opening the
    file again and closing it would drop the POSIX locks SQLite holds on it. Where open files
    cannot be listed (no ``/proc``), answers ``['?']``: assume there may be one.
    """
    try:
        fds = os.listdir('/proc/self/fd')
    except OSError:
        return ['?']
    found = []
    for name in fds:
        try:
            fd = int(name)
            target = os.readlink(f'/proc/self/fd/{name}')
            if target.endswith(('-wal', '-shm', '-journal')) or (
                stat.S_ISREG(os.fstat(fd).st_mode) and os.pread(fd, 16, 0) == _SQLITE_HEADER
            ):
                found.append(target)
        except (OSError, ValueError):
            continue  # closed meanwhile (the listing's own descriptor), or not readable
    return found


class _Forked:
    """A forked worker process, with the ``Popen`` calls :class:`_Worker` uses."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def _reap(self, flags: int) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, flags)
            except ChildProcessError:
                self.returncode = -1 if self.returncode is None else self.returncode
                return self.returncode
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def poll(self) -> int | None:
        return self._reap(os.WNOHANG)

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f'worker {self.pid}', timeout or 0)
            time.sleep(0.01)
        assert self.returncode is not None
        return self.returncode

    def kill(self) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)


def _forked_worker(
    conn: socket.socket,
    close: list[Connection],
    driver: int,
    preload: tuple[str, ...],
    env: dict[str, str],
) -> None:
    """The child side of a fork: becomes a worker, and never returns (``os._exit``)."""
    code = 0
    try:
        gc.freeze()  # the driver's objects are not this process's to finalize (its database
        # connections above all: closing one here would checkpoint the driver's database)
        for other in close:  # the driver's ends of the other workers' sockets
            with contextlib.suppress(OSError):
                os.close(other.fileno())
        for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
            with contextlib.suppress(ValueError, OSError):
                signal.signal(signum, signal.SIG_DFL)  # not the driver's rollback handlers
        out = _worker_stdout()
        if isinstance(out, int) and out != 1:
            os.dup2(out, 1)  # stdout is the run's JSON result: a task's prints go to stderr
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        os.environ.update(env)
        worker_main(Connection(conn.detach()), driver, preload)
    except BaseException:  # a worker reports through its socket, not here
        code = 1
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


class _Worker:
    """One worker process, connected to the driver by a socket pair (see :func:`start_method`
    for how it starts)."""

    def __init__(
        self,
        driver: int,
        preload: tuple[str, ...],
        env: dict[str, str],
        others: list[Connection] | None = None,
    ):
        parent, child = socket.socketpair()
        self.method = start_method()
        try:
            if self.method == 'fork':
                self.process: Any = self._fork(parent, child, driver, preload, env, others or [])
            else:
                self.process = self._spawn(child, driver, preload, env)
        finally:
            child.close()
        self.conn: Connection = Connection(parent.detach())
        self.sent: deque[tuple[Any, TaskCall]] = deque()  # in order: the first one runs

    @staticmethod
    def _spawn(
        child: socket.socket, driver: int, preload: tuple[str, ...], env: dict[str, str]
    ) -> subprocess.Popen[bytes]:
        environ = {**os.environ, **env, 'SYNAPSE_WORKER_PRELOAD': ','.join(preload)}
        return subprocess.Popen(
            [sys.executable, '-m', 'synapse_sdk.plugins.executors.worker',
             str(child.fileno()), str(driver)],
            pass_fds=(child.fileno(),),
            env=environ,
            stdin=subprocess.DEVNULL,
            stdout=_worker_stdout(),
            close_fds=True,
        )  # fmt: skip

    @staticmethod
    def _fork(
        parent: socket.socket,
        child: socket.socket,
        driver: int,
        preload: tuple[str, ...],
        env: dict[str, str],
        others: list[Connection],
    ) -> _Forked:
        for stream in (sys.stdout, sys.stderr):  # nothing buffered is written twice
            with contextlib.suppress(Exception):
                stream.flush()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child; measured through the worker's tasks
            parent.close()
            _forked_worker(child, others, driver, preload, env)
        return _Forked(pid)

    @property
    def busy(self) -> bool:
        return bool(self.sent)

    def alive(self) -> bool:
        return self.process.poll() is None

    def exitcode(self, wait: float = 1.0) -> int | None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            return int(self.process.wait(timeout=wait))
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

    Each worker is sent up to :attr:`depth` tasks: it runs them one after the other, so it
    starts the next the moment one ends instead of waiting for the driver (which merges the
    finished part meanwhile). When a worker dies, the task it was running fails and the ones
    waiting behind it go back to the queue, unharmed.
    """

    name = 'processes'
    depth = 2
    eager = True

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
        others = [w.conn for w in self._workers]
        return _Worker(self._driver, self._preload, self._env, others)

    def submit(self, key: Any, task: TaskCall) -> None:
        self._queue.append((key, task))
        self._dispatch()

    def _dispatch(self) -> None:
        for load in range(self.depth):  # idle workers first, then one task behind another
            for worker in self._workers:
                if not self._queue:
                    return
                if len(worker.sent) == load:
                    key, task = self._queue.popleft()
                    worker.sent.append((key, task))
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
                    done.append(Completion(worker.sent.popleft()[0], False, failure=_crash(code)))
                    self._requeue(worker)
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
                if worker.sent and worker.sent[0][0] == key:
                    worker.sent.popleft()
                ok = kind == 'ok'
                done.append(Completion(key, ok, value if ok else None, None if ok else value))
                return True
        except (EOFError, OSError):
            return False
        return worker.alive() or not worker.busy

    def idle(self) -> bool:
        return not self._queue and not any(w.busy for w in self._workers)

    def _replace(self, worker: _Worker) -> None:
        index = self._workers.index(worker)
        with contextlib.suppress(Exception):
            worker.stop(kill=True)
        if not self._closed:
            self._workers[index] = self._spawn()

    def _requeue(self, worker: _Worker) -> None:
        """The tasks sent to a dead worker that it never started go back to the queue."""
        self._queue.extendleft(reversed(worker.sent))
        worker.sent.clear()

    def cancel(self) -> None:
        self._queue.clear()
        for worker in list(self._workers):
            if worker.busy:
                worker.sent.clear()
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

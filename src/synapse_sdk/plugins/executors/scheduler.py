"""Running a set of ordered tasks on a backend: retries, the first failure, cancellation.

:func:`run_tasks` submits up to ``backend.slots * backend.depth`` tasks at a time in key
order, retries a failed task while its failure is :func:`~.tasks.retryable` and it has
attempts left, and returns every result by key. A task that fails for good stops the run the
way one process would have stopped: tasks after it are not started (running ones are
cancelled), tasks before it still finish (one of them may fail first, in key order), and
:class:`TaskFailed` names the earliest failed task with its cause and attempts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from synapse_sdk.errors import ExportError
from synapse_sdk.plugins.executors.backends import Backend
from synapse_sdk.plugins.executors.tasks import TaskCall, TaskFailure, retryable

__all__ = ['DEFAULT_ATTEMPTS', 'TaskFailed', 'run_tasks']

#: How many times a task runs before its failure fails the run.
DEFAULT_ATTEMPTS = 3
#: Seconds between two polls of the backend while tasks run (events are read meanwhile).
POLL_INTERVAL = 0.2


class TaskFailed(ExportError):
    """A task failed for good. ``key`` is the task, ``failure`` its last failure (``cause``:
    the original exception when it could be carried over), ``attempts`` how often it ran."""

    def __init__(self, message: str, key: Any, failure: TaskFailure, attempts: int) -> None:
        super().__init__(message)
        self.key = key
        self.failure = failure
        self.attempts = attempts


@dataclass
class _State:
    task: TaskCall | None
    attempts: int = 0


def run_tasks(
    backend: Backend,
    tasks: dict[Any, TaskCall | None],
    *,
    on_events: Callable[[Any, Any], None],
    attempts: int = DEFAULT_ATTEMPTS,
    describe: Callable[[Any], str] = str,
    before_attempt: Callable[[Any, int], TaskCall | None] | None = None,
    on_done: Callable[[Any, Any], None] | None = None,
    on_retry: Callable[[Any, TaskFailure, int], None] | None = None,
) -> dict[Any, Any]:
    """Run ``tasks`` (keys sortable) and return ``{key: result}``; raise :class:`TaskFailed`.

    ``before_attempt(key, attempt)`` may return a new :class:`TaskCall` for an attempt (a
    fresh part directory, the attempt number; a task given as ``None`` is built by it when it
    starts); ``on_done(key, result)`` runs in the driver as
    each task succeeds; ``on_retry(key, failure, attempt)`` before a task runs again.
    ``describe(key)`` names a task in messages (``shard 3 (ids 120..180)``).
    """
    order = sorted(tasks)
    states = {key: _State(tasks[key]) for key in order}
    pending = list(order)  # not submitted yet, in order
    running: set[Any] = set()
    results: dict[Any, Any] = {}
    failed: dict[Any, TaskFailure] = {}

    def start(key: Any) -> None:
        state = states[key]
        state.attempts += 1
        if before_attempt is not None:
            task = before_attempt(key, state.attempts)
            if task is not None:
                state.task = task
        if state.task is None:
            raise ValueError(f'task {key!r} was given as None and before_attempt built none')
        running.add(key)
        backend.submit(key, state.task)

    try:
        while pending or running:
            first_failed = min(failed) if failed else None
            while pending and len(running) < backend.slots * max(1, backend.depth):
                key = pending[0]
                if first_failed is not None and key > first_failed:
                    pending.clear()  # after a failed task: one process would never get here
                    break
                pending.pop(0)
                start(key)
            if not running:
                break
            for done in backend.poll(POLL_INTERVAL, on_events):
                key = done.key
                if key not in running:
                    continue
                running.discard(key)
                if done.ok:
                    results[key] = done.result
                    if on_done is not None:
                        on_done(key, done.result)
                    continue
                failure = done.failure or TaskFailure('unknown failure', 'Error', crash=True)
                state = states[key]
                if retryable(failure) and state.attempts < attempts:
                    if on_retry is not None:
                        on_retry(key, failure, state.attempts)
                    pending.insert(0, key)
                    pending.sort()
                    continue
                failed[key] = failure
            if failed and running:
                first = min(failed)
                late = [key for key in running if key > first]
                if late and len(late) == len(running):
                    backend.cancel()
                    running.clear()
    except BaseException:
        backend.cancel()
        raise
    if failed:
        key = min(failed)
        failure = failed[key]
        runs = states[key].attempts
        tries = f'after {runs} attempts' if runs > 1 else 'on its only attempt'
        error = TaskFailed(f'{describe(key)} failed {tries}: {failure.message}', key, failure, runs)
        raise error from failure.exception
    return results

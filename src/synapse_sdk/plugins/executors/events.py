"""One progress display for a run spread over worker processes or Ray tasks.

A task runs with a :class:`ForwardingLogger`: it batches what the task reports (progress and
metrics: only the latest value per category; messages and events: all of them, in order) and
hands each batch to ``emit`` at most every :data:`FLUSH_INTERVAL` seconds and when the task
ends. The driver feeds the batches to a :class:`RunReporter`, which reports to the run's real
logger: whole-run progress and metrics summed over the tasks (a retried task starts again from
zero), messages and events as they came.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from synapse_sdk.loggers.base import BaseLogger

__all__ = ['FLUSH_INTERVAL', 'Batch', 'ForwardingLogger', 'RunReporter', 'wants_events']

#: Seconds between two batches a task sends (progress is never older than this).
FLUSH_INTERVAL = 0.25
#: A batch is sent early once this many messages and events are waiting.
MAX_PENDING = 500

#: ``{'progress': {category: [current, total]}, 'metrics': {category: value},
#: 'log': [[kind, ...], ...]}``: what a task reported since its last batch.
Batch = dict[str, Any]


class ForwardingLogger(BaseLogger):
    """The logger of a task: everything goes to ``emit(batch)`` (thread-safe: downloads report
    from their own threads). ``events=False`` drops structured events at the source, when the
    driver's logger would drop them anyway (per-file rows of a large export)."""

    def __init__(self, emit: Callable[[Batch], None], events: bool = True) -> None:
        super().__init__(min_interval=0.0)
        self._emit_batch = emit
        self._events = events
        self._lock = threading.RLock()
        self._progress: dict[str | None, list[float | None]] = {}
        self._metrics: dict[str, dict[str, Any]] = {}
        self._log: list[list[Any]] = []
        self._last = time.monotonic()

    def set_progress(self, current: float, total: float | None, category: str | None = None):
        with self._lock:
            self.progress[category] = (current, total)
            self._progress[category] = [current, total]
            self._maybe_flush()

    def set_metrics(self, value: dict[str, Any], category: str) -> None:
        with self._lock:
            self._metrics[category] = dict(value)
            self._maybe_flush()

    def log_message(self, message: str, level: str = 'info') -> None:
        with self._lock:
            self._log.append(['message', str(level), str(message)])
            self._maybe_flush()

    def log_event(self, event: str, data: dict[str, Any]) -> None:
        if not self._events:
            return
        with self._lock:
            self._log.append(['event', event, data])
            self._maybe_flush()

    def _maybe_flush(self) -> None:
        if len(self._log) >= MAX_PENDING or time.monotonic() - self._last >= FLUSH_INTERVAL:
            self.flush()

    def flush(self) -> None:
        """Send what is waiting (also when nothing is: the driver hears the task is alive)."""
        with self._lock:
            batch: Batch = {}
            if self._progress:
                batch['progress'] = self._progress
                self._progress = {}
            if self._metrics:
                batch['metrics'] = self._metrics
                self._metrics = {}
            if self._log:
                batch['log'] = self._log
                self._log = []
            self._last = time.monotonic()
            if batch:
                self._emit_batch(batch)

    def flush_progress(self) -> None:
        self.flush()

    def finish(self) -> None:
        self.flush()


def wants_events(logger: BaseLogger) -> bool:
    """Whether ``logger`` does anything with structured events (per-file rows)."""
    members = getattr(logger, 'loggers', None)
    if isinstance(members, list | tuple):
        return any(wants_events(m) for m in members)
    cls = type(logger)
    if cls.log_event is BaseLogger.log_event and cls._emit_event is BaseLogger._emit_event:
        return False
    return bool(getattr(logger, 'verbose', True))


class RunReporter:
    """Turns the batches of many tasks into one run's reports on ``logger``.

    Categories in ``summed`` (the item progress of shards) are reported as the sum of every
    task's latest ``current`` over ``totals[category]``; metrics in ``summed_metrics`` as the
    key-by-key sum of every task's latest record, plus ``waiting`` (what tasks not started yet
    will report) under ``stand_by``. Everything else passes through as it came.
    """

    def __init__(
        self,
        logger: BaseLogger,
        *,
        summed: Iterable[str] = (),
        totals: dict[str, float] | None = None,
        summed_metrics: Iterable[str] = (),
    ) -> None:
        self.logger = logger
        self.summed = frozenset(summed)
        self.totals = dict(totals or {})
        self.summed_metrics = frozenset(summed_metrics)
        self._progress: dict[str, dict[Any, float]] = {c: {} for c in self.summed}
        self._metrics: dict[str, dict[Any, dict[str, Any]]] = {c: {} for c in self.summed_metrics}
        self.waiting: dict[Any, int] = {}  # task -> items it will report, until it starts

    def feed(self, task: Any, batch: Batch) -> None:
        """Report one batch of ``task``."""
        log = self.logger
        for kind, *rest in batch.get('log') or ():
            if kind == 'message':
                log.log_message(rest[1], rest[0])
            else:
                log.log_event(rest[0], rest[1])
        for category, (current, total) in (batch.get('progress') or {}).items():
            if category in self.summed:
                self._progress[category][task] = float(current or 0)
                self.waiting.pop(task, None)
                self._report_progress(category)
            else:
                log.set_progress(current, total, category)
        for category, value in (batch.get('metrics') or {}).items():
            if category in self.summed_metrics:
                self._metrics[category][task] = dict(value)
                self.waiting.pop(task, None)
                self._report_metrics(category)
            else:
                log.set_metrics(value, category)

    def done(self, category: str) -> float:
        """The summed progress of ``category`` so far."""
        return sum(self._progress.get(category, {}).values())

    def restart(self, task: Any, waiting: int = 0) -> None:
        """``task`` runs again from the start: forget what it reported."""
        for values in self._progress.values():
            values.pop(task, None)
        for records in self._metrics.values():
            records.pop(task, None)
        if waiting:
            self.waiting[task] = waiting
        for category in self.summed:
            self._report_progress(category)

    def _report_progress(self, category: str) -> None:
        done = sum(self._progress[category].values())
        total = self.totals.get(category)
        self.logger.set_progress(done, max(total, done) if total is not None else None, category)

    def _report_metrics(self, category: str) -> None:
        total: dict[str, Any] = {}
        for record in self._metrics[category].values():
            for key, value in record.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    total[key] = total.get(key, 0) + value
        if 'stand_by' in total:
            total['stand_by'] += sum(self.waiting.values())
        self.logger.set_metrics(total, category)

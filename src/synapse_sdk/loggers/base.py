"""The logger interface every runtime context carries.

The library never prints. Actions, steps and exporters report progress, metrics, messages and
structured events to ``ctx.logger``; the logger decides where they go (a terminal, a JSONL file,
the platform's job log, nowhere).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

_log = logging.getLogger(__name__)


class BaseLogger:
    """Receives progress, metrics, messages and events. Subclasses implement the ``_emit_*``.

    ``set_progress`` is throttled: an update reaches ``_emit_progress`` when the category
    changes, when it completes (``current >= total``), when it goes backwards (a restart), or
    when ``min_interval`` seconds have passed since that category's last emitted update. A
    million calls cost well under a second; the last state is always emitted by ``finish()``.

    Reporting never changes a run's outcome: the public methods never raise. A failing
    ``_emit_*`` (a full disk, a closed pipe, a locked database) is counted in ``failures``, its
    error kept in ``last_error``, and :attr:`problems` says so in one line for the user.
    """

    #: What this logger writes to, for :attr:`problems` (e.g. ``log file /tmp/run.jsonl``).
    target = 'log'

    def __init__(self, min_interval: float = 0.1) -> None:
        self.min_interval = min_interval
        self._last_emit: dict[str | None, float] = {}
        self._pending: dict[str | None, tuple[float, float | None]] = {}
        self._last_current: dict[str | None, float] = {}
        self.progress: dict[str | None, tuple[float, float | None]] = {}
        self._last_metrics: dict[tuple[str, str], float] = {}
        self._pending_metrics: dict[tuple[str, str], dict[str, Any]] = {}
        self.failures = 0
        self.last_error: str | None = None

    # -- failures ----------------------------------------------------------------------------
    def _safe(self, emit: Callable[..., None], *args: Any) -> None:
        """Call an ``_emit_*`` hook; a failure is recorded, never raised."""
        try:
            emit(*args)
        except Exception as exc:
            self._failed(exc)

    def _failed(self, exc: BaseException) -> None:
        if not self.failures:
            _log.debug('%s: reporting failed: %s', self.target, exc, exc_info=True)
        self.failures += 1
        self.last_error = f'{type(exc).__name__}: {exc}'

    @property
    def problems(self) -> list[str]:
        """One line per reporting problem (empty when everything was reported)."""
        if not self.failures:
            return []
        return [
            f'{self.target}: {self.failures} record(s) could not be written '
            f'(last error: {self.last_error})'
        ]

    # -- public API ------------------------------------------------------------------------
    def set_progress(self, current: float, total: float | None, category: str | None = None):
        """Report ``current`` of ``total`` done in ``category`` (``total`` None: unknown)."""
        now = time.monotonic()
        self.progress[category] = (current, total)
        last = self._last_emit.get(category)
        done = total is not None and current >= total
        backwards = current < self._last_current.get(category, current)
        self._last_current[category] = current
        if last is None or done or backwards or now - last >= self.min_interval:
            self._last_emit[category] = now
            self._pending.pop(category, None)
            self._safe(self._emit_progress, category, current, total)
        else:
            self._pending[category] = (current, total)

    def set_metrics(self, value: dict[str, Any], category: str) -> None:
        """Report a metrics record (e.g. ``{'stand_by': 3, 'success': 5, 'failed': 0}``).

        Throttled per category like progress; the latest record is emitted by ``finish()``.
        """
        now = time.monotonic()
        key = ('metrics', category)
        last = self._last_metrics.get(key)
        if last is None or now - last >= self.min_interval:
            self._last_metrics[key] = now
            self._pending_metrics.pop(key, None)
            self._safe(self._emit_metrics, category, dict(value))
        else:
            self._pending_metrics[key] = dict(value)

    def log_message(self, message: str, level: str = 'info') -> None:
        """A human-readable line."""
        self._safe(self._emit_message, str(level), message)

    def log_event(self, event: str, data: dict[str, Any]) -> None:
        """A structured event for machines (e.g. one exported file's status)."""
        self._safe(self._emit_event, event, data)

    def flush_progress(self) -> None:
        """Emit throttled progress and metrics still pending."""
        for category, (current, total) in list(self._pending.items()):
            self._safe(self._emit_progress, category, current, total)
        self._pending.clear()
        for (_, category), value in list(self._pending_metrics.items()):
            self._safe(self._emit_metrics, category, value)
        self._pending_metrics.clear()

    def finish(self) -> None:
        """Flush and release resources. Safe to call twice."""
        self.flush_progress()

    def __enter__(self) -> BaseLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish()

    # -- hooks ---------------------------------------------------------------------------
    def _emit_progress(self, category: str | None, current: float, total: float | None) -> None:
        pass

    def _emit_metrics(self, category: str, value: dict[str, Any]) -> None:
        pass

    def _emit_message(self, level: str, message: str) -> None:
        pass

    def _emit_event(self, event: str, data: dict[str, Any]) -> None:
        pass


class NullLogger(BaseLogger):
    """Discards everything (the default when a context is built without a logger)."""

    def set_progress(self, current: float, total: float | None, category: str | None = None):
        self.progress[category] = (current, total)


class MemoryLogger(BaseLogger):
    """Keeps every emitted record in ``records``; for tests and embedding."""

    def __init__(self, min_interval: float = 0.0) -> None:
        super().__init__(min_interval)
        self.records: list[dict[str, Any]] = []

    def _emit_progress(self, category: str | None, current: float, total: float | None) -> None:
        self.records.append(
            {'type': 'progress', 'category': category, 'current': current, 'total': total}
        )

    def _emit_metrics(self, category: str, value: dict[str, Any]) -> None:
        self.records.append({'type': 'metrics', 'category': category, 'value': value})

    def _emit_message(self, level: str, message: str) -> None:
        self.records.append({'type': 'message', 'level': level, 'message': message})

    def _emit_event(self, event: str, data: dict[str, Any]) -> None:
        self.records.append({'type': 'event', 'event': event, 'data': data})

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r['type'] == kind]

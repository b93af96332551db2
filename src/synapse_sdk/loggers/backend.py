"""Reports a run to the platform's job: progress and metrics on the job, log rows in batches."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from synapse_sdk.errors import SynapseError
from synapse_sdk.loggers.base import BaseLogger

if TYPE_CHECKING:
    from synapse_sdk.clients.base import ClientBase


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec='milliseconds').replace('+00:00', 'Z')


class BackendLogger(BaseLogger):
    """Sends a run's progress, metrics and logs to job ``job_id`` through ``client``.

    - progress and metrics: ``PATCH jobs/{id}/`` with the latest value of every category,
      throttled to one call per ``min_interval`` seconds per category;
    - messages and events (per-file export rows included): ``POST logs/``, ``batch_size`` rows
      per call, flushed at least every ``flush_interval`` seconds and by ``finish()``.

    Reporting never breaks the run it reports on: a failing call is counted in ``failures``
    (and its last error kept in ``last_error``), and the rows of a failed batch are dropped.
    """

    def __init__(
        self,
        client: ClientBase,
        job_id: int | str,
        min_interval: float = 1.0,
        batch_size: int = 200,
        flush_interval: float = 2.0,
    ) -> None:
        super().__init__(min_interval)
        self.client = client
        self.job_id = int(job_id)
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.failures = 0
        self.last_error: str | None = None
        self.calls: Counter[str] = Counter()  # method -> successful calls
        self._lock = threading.Lock()
        self._rows: list[dict[str, Any]] = []
        self._last_flush = time.monotonic()
        self._progress: dict[str, dict[str, Any]] = {}
        self._metrics: dict[str, dict[str, Any]] = {}

    def _call(self, method: str, *args: Any) -> None:
        try:
            getattr(self.client, method)(*args)
            self.calls[method] += 1
        except (SynapseError, OSError) as exc:
            self.failures += 1
            self.last_error = f'{type(exc).__name__}: {exc}'

    def _emit_progress(self, category: str | None, current: float, total: float | None) -> None:
        with self._lock:
            self._progress[category or 'default'] = {'current': current, 'total': total}
            progress = dict(self._progress)
        self._call('update_job', self.job_id, {'progress': progress})

    def _emit_metrics(self, category: str, value: dict[str, Any]) -> None:
        with self._lock:
            self._metrics[category] = value
            metrics = dict(self._metrics)
        self._call('update_job', self.job_id, {'metrics': metrics})

    def _emit_message(self, level: str, message: str) -> None:
        self._add([{'type': 'message', 'level': level, 'message': message}])

    def _emit_event(self, event: str, data: dict[str, Any]) -> None:
        rows = data.get('rows') if event == 'export_file_log' else None
        if isinstance(rows, list):
            self._add([{'type': event, **row} for row in rows])
        else:
            self._add([{'type': event, **data}])

    def _add(self, rows: list[dict[str, Any]]) -> None:
        created = _now()
        stamped = [{'job': self.job_id, 'created': created, **row} for row in rows]
        with self._lock:
            self._rows.extend(stamped)
            due = (
                len(self._rows) >= self.batch_size
                or time.monotonic() - self._last_flush >= self.flush_interval
            )
        if due:
            self.flush_logs()

    def flush_logs(self) -> None:
        """Send buffered log rows now, ``batch_size`` per call."""
        with self._lock:
            rows, self._rows = self._rows, []
            self._last_flush = time.monotonic()
        for start in range(0, len(rows), self.batch_size):
            self._call('create_logs', rows[start : start + self.batch_size])

    def set_result(self, status: str, result: Any = None, error: str | None = None) -> None:
        """Record how the run ended on the job (``status``: succeeded | failed)."""
        data: dict[str, Any] = {'status': status}
        if result is not None:
            data['result'] = result
        if error is not None:
            data['error'] = error
        self._call('update_job', self.job_id, data)

    def finish(self) -> None:
        super().finish()
        self.flush_logs()

"""Reports a run to the platform's job: progress and metrics on the job, log rows in batches."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from synapse_sdk.loggers.base import BaseLogger

if TYPE_CHECKING:
    from synapse_sdk.clients.base import ClientBase

#: How long ``finish()`` and ``set_result()`` wait for the backend, unless told otherwise.
DEFAULT_TIMEOUT = 30.0
#: Log rows kept while the backend is unreachable; older ones are dropped beyond this.
MAX_BUFFERED_ROWS = 50_000


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec='milliseconds').replace('+00:00', 'Z')


def _default_timeout() -> float:
    try:
        return max(0.0, float(os.environ.get('SYNAPSE_JOB_REPORT_TIMEOUT', DEFAULT_TIMEOUT)))
    except ValueError:
        return DEFAULT_TIMEOUT


class BackendLogger(BaseLogger):
    """Sends a run's progress, metrics and logs to job ``job_id`` through ``client``.

    - progress and metrics: ``PATCH jobs/{id}/`` with the latest value of every category,
      throttled to one call per ``min_interval`` seconds per category;
    - messages and events (per-file export rows included): ``POST logs/``, ``batch_size`` rows
      per call, flushed at least every ``flush_interval`` seconds and by ``finish()``.

    The calls run on a background thread, so a slow or locked backend never slows the run
    down. Reporting never breaks the run it reports on: a failing call (any exception: an
    HTTP error, ``sqlite3.OperationalError: database is locked`` ...) is counted in
    ``failures`` with its error in ``last_error``; while the backend keeps failing, calls back
    off (up to 30 s apart) and progress is coalesced to its latest value. ``finish()`` and
    ``set_result()`` wait at most ``timeout`` seconds (``$SYNAPSE_JOB_REPORT_TIMEOUT``, default
    30) for what is still queued (after one such wait ran out with a call still hanging, later
    waits take at most a second); :attr:`problems` then says what was not sent.
    """

    def __init__(
        self,
        client: ClientBase,
        job_id: int | str,
        min_interval: float = 1.0,
        batch_size: int = 200,
        flush_interval: float = 2.0,
        timeout: float | None = None,
    ) -> None:
        super().__init__(min_interval)
        self.client = client
        self.job_id = int(job_id)
        self.target = f'job {self.job_id}'
        self.batch_size = max(1, batch_size)
        self.flush_interval = flush_interval
        self.timeout = _default_timeout() if timeout is None else timeout
        self.calls: Counter[str] = Counter()  # method -> successful calls
        self.dropped_rows = 0
        self.unsent: dict[str, int] = {}  # what the last wait gave up on
        self._cond = threading.Condition()
        self._rows: list[dict[str, Any]] = []
        self._patch: dict[str, Any] = {}
        self._progress: dict[str, dict[str, Any]] = {}
        self._metrics: dict[str, dict[str, Any]] = {}
        self._last_flush = time.monotonic()
        self._flush_now = False
        self._busy = False
        self._backoff_until = 0.0
        self._streak = 0
        self._hung = False
        self._idle_exit = False
        self._thread: threading.Thread | None = None

    # -- the sender thread -------------------------------------------------------------------

    def _ensure_sender(self) -> None:
        with self._cond:
            self._idle_exit = False
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(
                target=self._sender, name=f'synapse-job-{self.job_id}', daemon=True
            )
            self._thread.start()

    def _due(self, now: float) -> bool:
        if not (self._patch or self._rows):
            return False
        if self._flush_now:
            return True
        if now < self._backoff_until:
            return False
        return bool(self._patch) or (
            len(self._rows) >= self.batch_size or now - self._last_flush >= self.flush_interval
        )

    def _sender(self) -> None:
        while True:
            with self._cond:
                while not self._due(time.monotonic()):
                    if self._idle_exit and not (self._patch or self._rows):
                        self._thread = None  # finished: the next report starts a new sender
                        return
                    self._cond.wait(timeout=0.2)
                patch, self._patch = self._patch, {}
                if self._flush_now or time.monotonic() - self._last_flush >= self.flush_interval:
                    rows, self._rows = self._rows, []
                    self._last_flush = time.monotonic()
                else:  # full batches only; the rest waits for more rows or the interval
                    cut = len(self._rows) // self.batch_size * self.batch_size
                    rows, self._rows = self._rows[:cut], self._rows[cut:]
                self._busy = True
            try:
                if patch:
                    self._call('update_job', self.job_id, patch)
                for start in range(0, len(rows), self.batch_size):
                    self._call('create_logs', rows[start : start + self.batch_size])
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _call(self, method: str, *args: Any) -> bool:
        try:
            getattr(self.client, method)(*args)
        except Exception as exc:  # reporting must never break the run
            self._failed(exc)
            self._streak += 1
            self._backoff_until = time.monotonic() + min(30.0, 0.5 * 2 ** min(self._streak, 6))
            return False
        self.calls[method] += 1
        self._streak = 0
        self._backoff_until = 0.0
        return True

    def _queue(
        self, patch: dict[str, Any] | None = None, rows: list[dict[str, Any]] | None = None
    ) -> None:
        with self._cond:
            if patch:
                self._patch.update(patch)
            if rows:
                self._rows.extend(rows)
                excess = len(self._rows) - MAX_BUFFERED_ROWS
                if excess > 0:
                    del self._rows[:excess]
                    self.dropped_rows += excess
            self._cond.notify_all()
        self._ensure_sender()

    def _wait(self, timeout: float | None = None) -> bool:
        """Send everything queued now; wait up to ``timeout`` s. ``False`` if some is left."""
        limit = self.timeout if timeout is None else timeout
        if self._hung:  # it did not answer last time: do not make the user wait twice
            limit = min(limit, 1.0)
        deadline = time.monotonic() + limit
        self._ensure_sender()
        with self._cond:
            self._flush_now = True
            self._cond.notify_all()
            while self._patch or self._rows or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(timeout=min(remaining, 0.2))
            self._flush_now = False
            done = not (self._patch or self._rows or self._busy)
            self._hung = self._busy and not done
            self.unsent = {}
            if not done:
                self.unsent = {
                    'job update': 1 if (self._patch or self._busy) else 0,
                    'log rows': len(self._rows),
                }
            return done

    # -- BaseLogger hooks ---------------------------------------------------------------------

    def _emit_progress(self, category: str | None, current: float, total: float | None) -> None:
        with self._cond:
            self._progress[category or 'default'] = {'current': current, 'total': total}
            progress = dict(self._progress)
        self._queue({'progress': progress})

    def _emit_metrics(self, category: str, value: dict[str, Any]) -> None:
        with self._cond:
            self._metrics[category] = value
            metrics = dict(self._metrics)
        self._queue({'metrics': metrics})

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
        self._queue(rows=[{'job': self.job_id, 'created': created, **row} for row in rows])

    # -- public ------------------------------------------------------------------------------

    def flush_logs(self) -> None:
        """Send buffered log rows now (waits up to ``timeout``)."""
        self._wait()

    def set_result(self, status: str, result: Any = None, error: str | None = None) -> None:
        """Record how the run ended on the job (``status``: succeeded | failed); waits up to
        ``timeout`` for it (and everything queued before it) to be sent. Never raises."""
        data: dict[str, Any] = {'status': status}
        if result is not None:
            data['result'] = result
        if error is not None:
            data['error'] = error
        try:
            self._queue(data)
            self._wait()
        except Exception as exc:  # pragma: no cover - defensive: never break the caller
            self._failed(exc)
        self._release_sender()

    def finish(self) -> None:
        super().finish()
        try:
            self._wait()
        except Exception as exc:  # pragma: no cover - defensive
            self._failed(exc)
        self._release_sender()

    def _release_sender(self) -> None:
        """Let the sender thread end once it has nothing left (no idle thread per run)."""
        with self._cond:
            self._idle_exit = True
            self._cond.notify_all()

    @property
    def problems(self) -> list[str]:
        lines = []
        if self.unsent and any(self.unsent.values()):
            what = ', '.join(f'{n} {kind}' for kind, n in self.unsent.items() if n)
            lines.append(
                f'{self.target}: the backend did not answer within {self.timeout:g} s; '
                f'not sent: {what}'
                + (f' (last error: {self.last_error})' if self.last_error else '')
            )
        elif self.failures:
            lines.append(
                f'{self.target}: {self.failures} report(s) could not be sent '
                f'(last error: {self.last_error})'
            )
        if self.dropped_rows:
            lines.append(f'{self.target}: {self.dropped_rows} log row(s) dropped while it was down')
        return lines

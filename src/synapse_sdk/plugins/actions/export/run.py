"""``ExporterRunAdapter``: the ``self.run`` object of template exporters."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from synapse_sdk.loggers.base import BaseLogger
from synapse_sdk.plugins.actions.export.models import ExportStatus
from synapse_sdk.plugins.actions.export.models import MetricsRecord as _MetricsRecord

#: Per-file log rows are sent to the logger in batches of this many.
LOG_BATCH = 200


class ExporterRunAdapter:
    """Logging, progress and metrics for exporters, over the runtime logger.

    Per-file status rows (``export_log_original_file`` / ``export_log_data_file``) are batched:
    the logger receives one ``export_file_log`` event per ``LOG_BATCH`` rows, not one per file.
    Call :meth:`flush` (the engine does) when the export ends.
    """

    MetricsRecord = _MetricsRecord

    def __init__(self, logger: BaseLogger) -> None:
        self.logger = logger
        self._rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        #: Called with ``(kind, item_id)`` for every row (the engine notes rows hooks wrote).
        self.on_row: Callable[[str, Any], None] | None = None
        # A logger that drops events (NullLogger) needs no rows built for it.
        cls = type(logger)
        self._discard = (
            cls.log_event is BaseLogger.log_event and cls._emit_event is BaseLogger._emit_event
        )

    def log_message(self, message: str, level: str = 'info') -> None:
        self.logger.log_message(message, level)

    def set_progress(self, current: float, total: float | None, category: str | None = None):
        self.logger.set_progress(current, total, category)

    def log_metrics(self, record: _MetricsRecord | dict[str, Any], category: str) -> None:
        value = record.to_dict() if isinstance(record, _MetricsRecord) else dict(record)
        self.logger.set_metrics(value, category)

    def export_log_original_file(
        self, item_id: Any, file_info: Any, status: ExportStatus | str, error: str = ''
    ) -> None:
        self._row('original_file', item_id, file_info, status, error)

    def export_log_data_file(
        self, item_id: Any, file_info: Any, status: ExportStatus | str, error: str = ''
    ) -> None:
        self._row('data_file', item_id, file_info, status, error)

    def _row(self, kind: str, item_id: Any, file_info: Any, status: Any, error: str) -> None:
        if self.on_row is not None:
            self.on_row(kind, item_id)
        self.log_row(kind, item_id, file_info, status, error)

    def log_row(self, kind: str, item_id: Any, file_info: Any, status: Any, error: str) -> None:
        """Queue one per-file status row (the engine's own rows come straight here)."""
        if self._discard:
            return
        value = status.value if type(status) is ExportStatus else ExportStatus(status).value
        row = {'kind': kind, 'item_id': item_id, 'file': file_info, 'status': value,
               'error': error or ''}  # fmt: skip
        batch: list[dict[str, Any]] | None = None
        with self._lock:
            self._rows.append(row)
            if len(self._rows) >= LOG_BATCH:
                batch, self._rows = self._rows, []
        if batch:
            self.logger.log_event('export_file_log', {'rows': batch})

    def flush(self) -> None:
        with self._lock:
            batch, self._rows = self._rows, []
        if batch:
            self.logger.log_event('export_file_log', {'rows': batch})

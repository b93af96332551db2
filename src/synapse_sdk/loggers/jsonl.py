"""One JSON object per event, one per line, for machines."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import IO, Any

import orjson

from synapse_sdk.loggers.base import BaseLogger


class JsonlLogger(BaseLogger):
    """Appends ``{"ts", "type", ...}`` lines to ``path`` (or an open binary stream)."""

    def __init__(self, path: str | Path | IO[bytes], min_interval: float = 0.1) -> None:
        super().__init__(min_interval)
        self._lock = threading.Lock()
        if isinstance(path, str | Path):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._fh: IO[bytes] = open(path, 'ab')  # noqa: SIM115 - closed in finish()
            self._owns = True
        else:
            self._fh, self._owns = path, False

    def _write(self, record: dict[str, Any]) -> None:
        line = orjson.dumps({'ts': round(time.time(), 3), **record}, default=str) + b'\n'
        with self._lock:
            if not self._fh.closed:
                self._fh.write(line)

    def _emit_progress(self, category: str | None, current: float, total: float | None) -> None:
        self._write({'type': 'progress', 'category': category, 'current': current, 'total': total})

    def _emit_metrics(self, category: str, value: dict[str, Any]) -> None:
        self._write({'type': 'metrics', 'category': category, 'value': value})

    def _emit_message(self, level: str, message: str) -> None:
        self._write({'type': 'message', 'level': level, 'message': message})

    def _emit_event(self, event: str, data: dict[str, Any]) -> None:
        self._write({'type': 'event', 'event': event, 'data': data})

    def finish(self) -> None:
        super().finish()
        with self._lock:
            if self._fh.closed:
                return
            self._fh.flush()
            if self._owns:
                self._fh.close()

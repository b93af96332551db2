"""One JSON object per event, one per line, for machines."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import IO, Any

import orjson

from synapse_sdk.errors import ParamsError
from synapse_sdk.loggers.base import BaseLogger


class JsonlLogger(BaseLogger):
    """Appends ``{"ts", "type", ...}`` lines to ``path`` (or an open binary stream).

    A path that cannot be opened is a :class:`~synapse_sdk.errors.ParamsError` at once, before
    anything runs. A write that fails later (a full disk) never reaches the run: the logger
    stops writing, counts what it could not write, and :attr:`problems` says the log is
    incomplete.
    """

    def __init__(self, path: str | Path | IO[bytes], min_interval: float = 0.1) -> None:
        super().__init__(min_interval)
        self._lock = threading.Lock()
        self.broken = False
        self.lost = 0
        if isinstance(path, str | Path):
            self.target = f'log file {path}'
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                self._fh: IO[bytes] = open(path, 'ab')  # noqa: SIM115 - closed in finish()
            except OSError as exc:
                raise ParamsError(
                    'Cannot write the log file', [(str(path), exc.strerror or str(exc))]
                ) from exc
            self._owns = True
        else:
            self.target = f'log stream {getattr(path, "name", path)!r}'
            self._fh, self._owns = path, False

    def _write(self, record: dict[str, Any]) -> None:
        line = orjson.dumps({'ts': round(time.time(), 3), **record}, default=str) + b'\n'
        with self._lock:
            if self.broken:
                self.lost += 1
                return
            if self._fh.closed:
                return
            try:
                self._fh.write(line)
            except Exception:
                # What a failed buffered write kept is unknown: stop rather than interleave.
                self.broken = True
                self.lost += 1
                raise

    @property
    def problems(self) -> list[str]:
        if not self.failures:
            return []
        return [
            f'{self.target} could not be written ({self.last_error}); the log is incomplete'
            + (f', {self.lost} record(s) lost' if self.lost else '')
        ]

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
            try:
                self._fh.flush()
            except Exception as exc:
                self.broken = True
                self._failed(exc)
            finally:
                if self._owns:
                    try:
                        self._fh.close()
                    except Exception as exc:  # close flushes again; the fd is closed anyway
                        if not self.broken:
                            self._failed(exc)

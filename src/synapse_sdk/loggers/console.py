"""Human output on stderr: a rich progress bar per category, plain lines when not a TTY."""

from __future__ import annotations

import sys
import threading
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from synapse_sdk.loggers.base import BaseLogger

_LEVEL_STYLE = {'debug': 'dim', 'info': '', 'warning': 'yellow', 'error': 'bold red'}


class ConsoleLogger(BaseLogger):
    """Progress bars and messages for a person at a terminal.

    ``verbose`` also shows structured events (one line each); by default they are only
    counted, since an export can emit one per file.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        min_interval: float = 0.1,
        verbose: bool = False,
        force_terminal: bool | None = None,
    ) -> None:
        super().__init__(min_interval)
        self.target = 'console output'
        self.console = Console(file=stream or sys.stderr, force_terminal=force_terminal)
        self.verbose = verbose
        self._lock = threading.Lock()
        self._bars: Progress | None = None
        self._tasks: dict[str | None, Any] = {}
        if self.console.is_terminal:
            self._bars = Progress(
                TextColumn('{task.description}'),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=self.console,
                transient=False,
            )

    def _emit_progress(self, category: str | None, current: float, total: float | None) -> None:
        label = category or 'progress'
        with self._lock:
            if self._bars is None:
                shown = f'{current:g}/{total:g}' if total is not None else f'{current:g}'
                self.console.print(f'[{label}] {shown}', highlight=False, markup=False)
                return
            if category not in self._tasks:
                self._bars.start()
                self._tasks[category] = self._bars.add_task(label, total=total)
            self._bars.update(self._tasks[category], completed=current, total=total)

    def _emit_metrics(self, category: str, value: dict[str, Any]) -> None:
        parts = ', '.join(f'{k}={v}' for k, v in value.items())
        self._print(f'[{category}] {parts}', 'dim')

    def _emit_message(self, level: str, message: str) -> None:
        self._print(message, _LEVEL_STYLE.get(level, ''))

    def _emit_event(self, event: str, data: dict[str, Any]) -> None:
        if self.verbose:
            self._print(f'{event}: {data}', 'dim')

    def _print(self, text: str, style: str) -> None:
        with self._lock:
            self.console.print(text, style=style or None, highlight=False, markup=False)

    def finish(self) -> None:
        super().finish()
        with self._lock:
            if self._bars is not None:
                self._safe(self._bars.stop)

"""Human output on stderr: one rich progress bar per phase in a terminal, rare plain lines
when piped.

In a terminal each phase (converting items, copying original files, the export as a whole,
any category a plugin reports) gets its own bar with its count, rate and ETA, labelled in words
rather than internal category names. Piped into a file or CI log, the same state is written as
one status line at most every ``plain_interval`` seconds (``$SYNAPSE_PROGRESS_INTERVAL``,
default 5) plus one final line, so a long export writes a handful of lines, not hundreds.

Metrics records (``{'stand_by', 'success', 'failed'}``) are folded into the bars: the
``original_file`` record becomes the "Copying original files" bar and ``data_file`` failures
are shown on the items bar. Messages go through as they come.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.text import Text

from synapse_sdk.loggers.base import BaseLogger

__all__ = ['ConsoleLogger', 'phase_label']

_LEVEL_STYLE = {'debug': 'dim', 'info': '', 'warning': 'yellow', 'error': 'bold red'}

#: Human labels of the SDK's progress and metrics categories.
LABELS: dict[str | None, str] = {
    None: 'Progress',
    'export': 'Export',
    'dataset_conversion': 'Converting items',
    'original_file': 'Copying original files',
    'data_file': 'Writing data files',
}
#: What one unit of a phase is, for its rate ("12.5 items/s").
UNITS: dict[str | None, str] = {
    'dataset_conversion': 'items',
    'original_file': 'files',
    'data_file': 'files',
}
#: Categories reported as a percentage of the whole run, not a count.
PERCENT_CATEGORIES = frozenset({'export'})
#: Metrics categories folded into another phase's bar instead of getting their own.
FOLDED_METRICS = {'data_file': 'dataset_conversion'}

DEFAULT_PLAIN_INTERVAL = 5.0


def phase_label(category: str | None) -> str:
    """The words a person sees for a progress category (``dataset_conversion`` ->
    ``Converting items``; unknown ``my_phase`` -> ``My phase``)."""
    if category in LABELS:
        return LABELS[category]
    text = str(category).replace('_', ' ').replace('-', ' ').strip()
    return text[:1].upper() + text[1:] if text else 'Progress'


def _duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds < 0:
        return '-:--'
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f'{hours}:{minutes:02d}:{secs:02d}' if hours else f'{minutes}:{secs:02d}'


def _number(value: float) -> str:
    return f'{value:,.0f}' if float(value).is_integer() else f'{value:,.1f}'


@dataclass
class _Phase:
    """What is known about one phase: its numbers and how fast they move."""

    category: str | None
    current: float = 0.0
    total: float | None = None
    failed: int = 0
    percent: bool = False
    started: float = field(default_factory=time.monotonic)
    first_value: float | None = None
    updated: float = field(default_factory=time.monotonic)
    task_id: Any = None

    def update(self, current: float, total: float | None) -> None:
        now = time.monotonic()
        if self.first_value is None or current < self.current:
            self.first_value, self.started = current, now
        self.current, self.total, self.updated = current, total, now
        if self.category in PERCENT_CATEGORIES or not float(current).is_integer():
            self.percent = True

    @property
    def done(self) -> bool:
        return self.total is not None and self.current >= self.total

    @property
    def rate(self) -> float | None:
        elapsed = self.updated - self.started
        moved = self.current - (self.first_value or 0.0)
        if elapsed <= 0.01 or moved <= 0:
            return None
        return moved / elapsed

    @property
    def eta(self) -> float | None:
        rate = self.rate
        if self.total is None or rate is None:
            return None
        return max(0.0, (self.total - self.current) / rate)

    @property
    def label(self) -> str:
        label = phase_label(self.category)
        return f'{label} ({self.failed:,} failed)' if self.failed else label

    def plain(self) -> str:
        """One phase as text: ``Converting items 120/500 (24%), 35.2 items/s, ETA 0:11``."""
        if self.percent:
            text = f'{self.label} {self.current:.0f}%'
        elif self.total:
            share = 100 * self.current / self.total
            text = f'{self.label} {_number(self.current)}/{_number(self.total)} ({share:.0f}%)'
        else:
            text = f'{self.label} {_number(self.current)}'
        rate = self.rate
        if rate is not None and not self.percent:
            unit = UNITS.get(self.category)
            text += f', {rate:,.1f} {unit}/s' if unit else f', {rate:,.1f}/s'
        if self.done:
            return f'{text}, done'
        if self.eta is not None:
            text += f', ETA {_duration(self.eta)}'
        return text


class _CountColumn(ProgressColumn):
    """``120/500`` for counted phases, ``42%`` for phases measured in percent."""

    def render(self, task: Task) -> Text:
        if task.fields.get('percent'):
            return Text(f'{task.percentage:>3.0f}%', style='progress.percentage')
        total = '?' if task.total is None else _number(task.total)
        return Text(f'{_number(task.completed)}/{total}', style='progress.download')


class _RateEtaColumn(ProgressColumn):
    """``35.2 items/s  ETA 0:11``: the phase's average rate since it started, and what is left
    at that rate (the rate only for counted phases)."""

    def render(self, task: Task) -> Text:
        parts = []
        rate = task.fields.get('rate')
        if rate and not task.fields.get('percent'):
            unit = task.fields.get('unit')
            parts.append(f'{rate:,.1f} {unit}/s' if unit else f'{rate:,.1f}/s')
        if not task.finished:
            parts.append(f'ETA {_duration(task.fields.get("eta"))}')
        return Text('  '.join(parts), style='progress.data.speed')


class ConsoleLogger(BaseLogger):
    """Progress bars (terminal) or a few plain status lines (pipe), plus messages.

    ``verbose`` also shows structured events (one line each); by default they are only
    counted, since an export can emit one per file. ``plain_interval`` is the least number of
    seconds between two status lines when the stream is not a terminal.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        min_interval: float = 0.1,
        verbose: bool = False,
        force_terminal: bool | None = None,
        plain_interval: float | None = None,
    ) -> None:
        super().__init__(min_interval)
        self.target = 'console output'
        self.console = Console(file=stream or sys.stderr, force_terminal=force_terminal)
        self.verbose = verbose
        if plain_interval is None:
            try:
                plain_interval = float(os.environ.get('SYNAPSE_PROGRESS_INTERVAL', ''))
            except ValueError:
                plain_interval = DEFAULT_PLAIN_INTERVAL
        self.plain_interval = max(0.0, plain_interval)
        self._lock = threading.RLock()
        self._phases: dict[str | None, _Phase] = {}
        self._start = time.monotonic()
        self._last_line = self._start
        self._last_text = ''
        self._bars: Progress | None = None
        self._started = False
        if self.console.is_terminal:
            self._bars = Progress(
                TextColumn('{task.description}'),
                BarColumn(),
                _CountColumn(),
                TimeElapsedColumn(),
                _RateEtaColumn(),
                console=self.console,
                transient=False,
            )

    # -- state -----------------------------------------------------------------------------
    def _phase(self, category: str | None) -> _Phase:
        phase = self._phases.get(category)
        if phase is None:
            phase = self._phases[category] = _Phase(category)
        return phase

    def _show(self, phase: _Phase) -> None:
        """Bring ``phase``'s bar up to date (terminal) or maybe write a status line (pipe)."""
        if self._bars is None:
            self._maybe_line()
            return
        if phase.task_id is None:
            if not self._started:
                self._bars.start()
                self._started = True
            phase.task_id = self._bars.add_task(
                phase.label,
                total=phase.total,
                unit=UNITS.get(phase.category, ''),
                percent=phase.percent,
                rate=None,
                eta=None,
            )
        self._bars.update(
            phase.task_id,
            completed=phase.current,
            total=phase.total,
            description=phase.label,
            percent=phase.percent,
            rate=phase.rate,
            eta=phase.eta,
        )

    def _status(self) -> str:
        return '; '.join(p.plain() for p in self._phases.values())

    def _maybe_line(self, final: bool = False) -> None:
        now = time.monotonic()
        if not self._phases:
            return
        if not final and now - self._last_line < self.plain_interval:
            return
        text = self._status()
        if final and text == self._last_text:
            return
        self._last_line, self._last_text = now, text
        self.console.print(
            f'[{_duration(now - self._start)}] {text}',
            highlight=False,
            markup=False,
            soft_wrap=True,
        )

    # -- hooks -----------------------------------------------------------------------------
    def _emit_progress(self, category: str | None, current: float, total: float | None) -> None:
        with self._lock:
            phase = self._phase(category)
            phase.update(current, total)
            self._show(phase)

    def _emit_metrics(self, category: str, value: dict[str, Any]) -> None:
        if not {'stand_by', 'success', 'failed'} <= set(value):
            if self.verbose:
                parts = ', '.join(f'{k}={v}' for k, v in value.items())
                self._print(f'{phase_label(category)}: {parts}', 'dim')
            return
        try:
            done = int(value['success']) + int(value['failed'])
            total = done + int(value['stand_by'])
            failed = int(value['failed'])
        except (TypeError, ValueError):
            return
        with self._lock:
            folded = FOLDED_METRICS.get(category)
            if folded is not None:
                phase = self._phases.get(folded)
                if phase is not None and phase.failed != failed:
                    phase.failed = failed
                    self._show(phase)
                return
            if total <= 0:
                return
            phase = self._phase(category)
            phase.failed = failed
            phase.update(done, total)
            self._show(phase)

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
                if self._started:
                    self._safe(self._bars.stop)
                    self._started = False
            else:
                self._safe(self._maybe_line, True)

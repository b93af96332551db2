"""Runs registered steps in order, with weighted progress and reverse rollback on failure."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, Generic

from synapse_sdk.errors import RollbackError, StepError
from synapse_sdk.plugins.steps.base import BaseStep, C, StepResult
from synapse_sdk.plugins.steps.registry import StepRegistry

__all__ = ['Interrupted', 'Orchestrator', 'ProgressReporter', 'SignalGuard']

logger = logging.getLogger(__name__)

ProgressReporter = Callable[[float], None]

#: Signals that stop a run the way Ctrl-C does: roll back, then exit non-zero.
STOP_SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name) for name in ('SIGINT', 'SIGTERM', 'SIGHUP') if hasattr(signal, name)
)


class Interrupted(KeyboardInterrupt):
    """A run was stopped by a signal; ``signum`` says which (``exit_code`` is 128 + it).

    A ``KeyboardInterrupt``, so code that handles Ctrl-C handles SIGTERM and SIGHUP the same
    way, and ``except Exception`` in a step or plugin cannot swallow it.
    """

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        try:
            self.signal_name = signal.Signals(signum).name
        except ValueError:
            self.signal_name = f'signal {signum}'
        super().__init__(f'interrupted by {self.signal_name}')

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    def __str__(self) -> str:
        return f'interrupted by {self.signal_name}'


class SignalGuard:
    """While active, SIGINT, SIGTERM and SIGHUP raise :class:`Interrupted` when *armed* and are
    held back (``pending``) when not, e.g. while a rollback runs.

    Only signals still at their default disposition are taken over (an application's own
    handlers, and ``nohup``'s ignored SIGHUP, are left alone), and only in the main thread; the
    previous handlers are restored on exit.
    """

    def __init__(self) -> None:
        self.armed = False
        self.pending: list[int] = []
        self.raised: int | None = None  # the signal an Interrupted was last raised for
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> SignalGuard:
        if threading.current_thread() is not threading.main_thread():
            return self
        for signum in STOP_SIGNALS:
            current = signal.getsignal(signum)
            if current not in (signal.SIG_DFL, signal.default_int_handler):
                continue
            try:
                signal.signal(signum, self._handle)
            except (ValueError, OSError):  # pragma: no cover - embedded interpreters
                continue
            self._previous[signum] = current
        return self

    def __exit__(self, *exc: object) -> None:
        self.armed = False
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.armed:
            self.armed = False  # a second signal must not cut the rollback short
            self.raised = signum
            raise Interrupted(signum)
        self.pending.append(signum)

    def arm(self) -> None:
        """Raise on the next signal; at once if one arrived while disarmed."""
        self.raised = None
        if self.pending:
            signum = self.pending.pop(0)
            self.raised = signum
            raise Interrupted(signum)
        self.armed = True

    def restore(self, exc: BaseException) -> BaseException:
        """``exc``, or the :class:`Interrupted` it replaced: a C extension that runs signal
        handlers while it blocks (Ray's ``wait``) raises a bare ``KeyboardInterrupt`` of its
        own in place of the one the handler raised, which would turn SIGTERM into Ctrl-C."""
        if (
            isinstance(exc, KeyboardInterrupt)
            and not isinstance(exc, Interrupted)
            and self.raised is not None
        ):
            return Interrupted(self.raised).with_traceback(exc.__traceback__)
        return exc

    def disarm(self) -> None:
        self.armed = False


class Orchestrator(Generic[C]):
    """Executes a registry's steps against one context.

    - ``current_step`` names the running step; each result is appended to ``step_results``.
    - An exception in ``execute()`` becomes a failed result (``KeyboardInterrupt`` and other
      ``BaseException`` also roll back, then propagate unchanged). On failure every executed step,
      the failing one included, is rolled back in reverse order. A rollback that raises is
      recorded in ``context.errors`` and never hides the original failure, which is raised as
      :class:`StepError` naming the step, with the original exception as its cause.
    - Signals: in the main thread SIGTERM and SIGHUP stop a run like Ctrl-C (SIGINT) does: the
      running step is interrupted, everything is rolled back, and :class:`Interrupted` (a
      ``KeyboardInterrupt`` carrying ``signum``) propagates. Signals arriving during the
      rollback wait until it is done, so a second Ctrl-C cannot leave a half-removed staging
      directory behind. One arriving after the last step succeeded (the export is published)
      is recorded in ``late_signal`` and the run returns normally.
    - Progress: ``report(fraction)`` receives overall completion in [0, 1], never decreasing.
      A step's share is its weight over the sum of weights (all zero: equal shares); a step may
      report progress inside its share with ``context.set_progress(current, total)``; a skipped
      step counts as done. A reporter that raises is logged and ignored: reporting never
      changes a run's outcome.
    """

    def __init__(
        self,
        registry: StepRegistry[C],
        context: C,
        report: ProgressReporter | None = None,
    ) -> None:
        self.steps = registry.get_steps()
        self.context = context
        self._report = report
        self._done = 0.0
        self._report_failed = False
        self.late_signal: int | None = None

    def _shares(self) -> list[float]:
        weights = [float(step.progress_weight) for step in self.steps]
        total = sum(weights)
        if total <= 0:
            return [1.0 / len(weights)] * len(weights) if weights else []
        return [w / total for w in weights]

    def _progress(self, fraction: float) -> None:
        fraction = min(max(fraction, 0.0), 1.0)
        if fraction > self._done or (fraction == 1.0 and self._done < 1.0):
            self._done = fraction
            if self._report is not None:
                try:
                    self._report(fraction)
                except Exception:
                    if not self._report_failed:
                        logger.warning('Progress reporting failed; ignored', exc_info=True)
                    self._report_failed = True

    def run(self) -> list[StepResult]:
        """Run every step; return the results. Raises :class:`StepError` on failure and
        :class:`Interrupted` (or the ``KeyboardInterrupt``) when stopped, after rolling back."""
        with SignalGuard() as guard:
            results = self._run(guard)
            if guard.pending:
                self.late_signal = guard.pending[0]
                logger.warning(
                    'Received %s after the last step completed; the run is complete',
                    Interrupted(guard.pending[0]).signal_name,
                )
            return results

    def _run(self, guard: SignalGuard) -> list[StepResult]:
        ctx = self.context
        executed: list[tuple[BaseStep[C], StepResult]] = []
        base = 0.0
        for step, share in zip(self.steps, self._shares(), strict=True):
            ctx.current_step = step.name
            ctx._progress_callback = self._inside(base, share)
            failure: BaseException | None = None
            started = False
            try:
                guard.arm()  # raises at once for a signal that came between steps
                started = True
                if step.can_skip(ctx):
                    result = StepResult(success=True, skipped=True)
                else:
                    result = step.execute(ctx)
                    if not isinstance(result, StepResult):
                        raise TypeError(
                            f'execute() must return a StepResult, got {type(result).__name__}'
                        )
                guard.disarm()
            except BaseException as exc:  # KeyboardInterrupt too: roll back, then re-raise it
                guard.disarm()
                failure = guard.restore(exc)
                result = StepResult(success=False, error=f'{type(failure).__name__}: {failure}')
            finally:
                ctx._progress_callback = None
            ctx.step_results.append(result)
            if started:  # a step stopped before it began has nothing to roll back
                executed.append((step, result))
            if not result.success:
                self._rollback(executed)
                ctx.current_step = None
                if guard.pending:
                    logger.info('Signals received during the rollback: %s', guard.pending)
                    guard.pending.clear()
                if failure is not None and not isinstance(failure, Exception):
                    raise failure
                message = result.error or 'step reported failure'
                raise StepError(step.name, message) from failure
            base += share
            self._progress(base)
        ctx.current_step = None
        self._progress(1.0)
        return list(ctx.step_results)

    def _inside(self, base: float, share: float) -> Callable[[float, float], None]:
        def report(current: float, total: float) -> None:
            if total and total > 0:
                self._progress(base + share * min(max(current / total, 0.0), 1.0))

        return report

    def _rollback(self, executed: list[tuple[BaseStep[C], StepResult]]) -> None:
        for step, result in reversed(executed):
            if result.skipped:
                continue
            try:
                step.rollback(self.context, result)
            except Exception as exc:
                err = RollbackError(step.name, f'rollback raised {type(exc).__name__}: {exc}')
                self.context.errors.append(str(err))

"""Runs registered steps in order, with weighted progress and reverse rollback on failure."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic

from synapse_sdk.errors import RollbackError, StepError
from synapse_sdk.plugins.steps.base import BaseStep, C, StepResult
from synapse_sdk.plugins.steps.registry import StepRegistry

ProgressReporter = Callable[[float], None]


class Orchestrator(Generic[C]):
    """Executes a registry's steps against one context.

    - ``current_step`` names the running step; each result is appended to ``step_results``.
    - An exception in ``execute()`` becomes a failed result (``KeyboardInterrupt`` and other
      ``BaseException`` also roll back, then propagate unchanged). On failure every executed step,
      the failing one included, is rolled back in reverse order. A rollback that raises is
      recorded in ``context.errors`` and never hides the original failure, which is raised as
      :class:`StepError` naming the step, with the original exception as its cause.
    - Progress: ``report(fraction)`` receives overall completion in [0, 1], never decreasing.
      A step's share is its weight over the sum of weights (all zero: equal shares); a step may
      report progress inside its share with ``context.set_progress(current, total)``; a skipped
      step counts as done.
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
                self._report(fraction)

    def run(self) -> list[StepResult]:
        """Run every step; return the results. Raises :class:`StepError` on failure."""
        ctx = self.context
        executed: list[tuple[BaseStep[C], StepResult]] = []
        base = 0.0
        for step, share in zip(self.steps, self._shares(), strict=True):
            ctx.current_step = step.name
            ctx._progress_callback = self._inside(base, share)
            failure: BaseException | None = None
            try:
                if step.can_skip(ctx):
                    result = StepResult(success=True, skipped=True)
                else:
                    result = step.execute(ctx)
                    if not isinstance(result, StepResult):
                        raise TypeError(
                            f'execute() must return a StepResult, got {type(result).__name__}'
                        )
            except BaseException as exc:  # KeyboardInterrupt too: roll back, then re-raise it
                failure = exc
                result = StepResult(success=False, error=f'{type(exc).__name__}: {exc}')
            finally:
                ctx._progress_callback = None
            ctx.step_results.append(result)
            executed.append((step, result))
            if not result.success:
                self._rollback(executed)
                ctx.current_step = None
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

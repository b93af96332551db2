"""Workflow steps: the unit of step-mode execution."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from synapse_sdk.plugins.context import RuntimeContext


@dataclass
class StepResult:
    """The outcome of one step. ``rollback_data`` is handed back to ``rollback()``."""

    success: bool = True
    data: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    rollback_data: dict[str, Any] = field(default_factory=dict)
    skipped: bool = False
    timestamp: datetime = field(default_factory=datetime.now)


@dataclass
class BaseStepContext:
    """State shared by the steps of one run.

    ``step_results`` holds one result per step run so far, in order; ``errors`` accumulates
    messages (rollback failures, per-item problems); ``current_step`` names the running step.
    """

    runtime_ctx: RuntimeContext
    step_results: list[StepResult] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    current_step: str | None = None

    def __post_init__(self) -> None:
        self._progress_callback: Callable[[float, float], None] | None = None

    def set_progress(self, current: float, total: float) -> None:
        """Report progress inside the running step's share of the whole run."""
        callback = getattr(self, '_progress_callback', None)
        if callback is not None:
            callback(current, total)

    def log_message(self, message: str, level: str = 'info') -> None:
        self.runtime_ctx.logger.log_message(message, level)


C = TypeVar('C', bound=BaseStepContext)


class BaseStep(ABC, Generic[C]):
    """One phase of a workflow.

    Subclasses give a unique ``name``, a ``progress_weight`` (its share of overall progress is
    its weight over the sum of all weights) and ``execute()``. ``can_skip()`` lets a step
    declare itself unnecessary; ``rollback()`` undoes its effects when a later step (or this
    one) fails, and receives the step's own result.
    """

    @property
    @abstractmethod
    def name(self) -> str:
        """Unique name within a registry."""

    @property
    @abstractmethod
    def progress_weight(self) -> float:
        """Relative share of overall progress (any non-negative number)."""

    @abstractmethod
    def execute(self, context: C) -> StepResult:
        """Do the step's work; return a result (``success=False`` fails the run)."""

    def can_skip(self, context: C) -> bool:
        """Return True to skip this step; a skipped step counts as done for progress."""
        return False

    def rollback(self, context: C, result: StepResult) -> None:
        """Undo this step's effects. Called in reverse order after a failure."""

    def __repr__(self) -> str:
        return f'<{type(self).__name__} {self.name!r}>'

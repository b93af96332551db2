"""An ordered set of uniquely named steps."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic

from synapse_sdk.errors import PluginError
from synapse_sdk.plugins.steps.base import BaseStep, C


class StepRegistry(Generic[C]):
    """Steps in run order. Names are unique; a duplicate or unknown name is an error."""

    def __init__(self) -> None:
        self._steps: list[BaseStep[C]] = []

    def register(self, step: BaseStep[C]) -> None:
        """Append ``step`` at the end."""
        self._insert(len(self._steps), step)

    def unregister(self, name: str) -> None:
        del self._steps[self._position(name)]

    def insert_before(self, name: str, step: BaseStep[C]) -> None:
        self._insert(self._position(name), step)

    def insert_after(self, name: str, step: BaseStep[C]) -> None:
        self._insert(self._position(name) + 1, step)

    def get_steps(self) -> list[BaseStep[C]]:
        """The steps in run order (a copy)."""
        return list(self._steps)

    def _insert(self, index: int, step: BaseStep[C]) -> None:
        if not isinstance(step, BaseStep):
            raise PluginError(f'Only BaseStep instances can be registered, got {step!r}')
        if step.name in self:
            raise PluginError(f'A step named {step.name!r} is already registered')
        weight = step.progress_weight
        if not isinstance(weight, int | float) or weight < 0:
            raise PluginError(
                f'Step {step.name!r} has progress_weight {weight!r}; it must be a number >= 0'
            )
        self._steps.insert(index, step)

    def _position(self, name: str) -> int:
        for i, step in enumerate(self._steps):
            if step.name == name:
                return i
        known = ', '.join(s.name for s in self._steps) or 'none'
        raise PluginError(f'No step named {name!r} is registered (registered: {known})')

    def __contains__(self, name: object) -> bool:
        return any(step.name == name for step in self._steps)

    def __iter__(self) -> Iterator[BaseStep[C]]:
        return iter(list(self._steps))

    def __len__(self) -> int:
        return len(self._steps)

"""Where progress, metrics and messages go: console, JSONL file, memory or nowhere.

The console logger (rich) is imported when first used, so a run that logs elsewhere skips it.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from synapse_sdk.loggers.backend import BackendLogger
from synapse_sdk.loggers.base import BaseLogger, MemoryLogger, NullLogger
from synapse_sdk.loggers.jsonl import JsonlLogger

if TYPE_CHECKING:
    from synapse_sdk.loggers.console import ConsoleLogger

__all__ = [
    'BackendLogger',
    'BaseLogger',
    'ConsoleLogger',
    'JsonlLogger',
    'MemoryLogger',
    'NullLogger',
]


def __getattr__(name: str) -> Any:
    if name != 'ConsoleLogger':
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    value = import_module(f'{__name__}.console').ConsoleLogger
    globals()[name] = value
    return value

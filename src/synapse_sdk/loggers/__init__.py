"""Where progress, metrics and messages go: console, JSONL file, memory or nowhere.

The console logger (rich) is imported when first used, so a run that logs elsewhere skips it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from synapse_sdk._lazy import lazy_exports
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


__getattr__ = lazy_exports(__name__, {'ConsoleLogger': 'console'})

"""Where progress, metrics and messages go: console, JSONL file, memory or nowhere."""

from synapse_sdk.loggers.backend import BackendLogger
from synapse_sdk.loggers.base import BaseLogger, MemoryLogger, NullLogger
from synapse_sdk.loggers.console import ConsoleLogger
from synapse_sdk.loggers.jsonl import JsonlLogger

__all__ = [
    'BackendLogger',
    'BaseLogger',
    'ConsoleLogger',
    'JsonlLogger',
    'MemoryLogger',
    'NullLogger',
]

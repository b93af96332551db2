"""The runtime context handed to every action: logger, backend client, environment, job."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from synapse_sdk.loggers.base import BaseLogger, NullLogger


@dataclass
class RuntimeContext:
    """What an action may use from the world around it.

    ``client`` is a ``BackendClient`` or ``LocalClient`` (or None when the action needs no
    backend); ``env`` holds environment settings (never printed: it may carry secrets);
    ``job_id`` is the platform job this run reports to, if any.
    """

    logger: BaseLogger = field(default_factory=NullLogger)
    client: Any = None
    env: dict[str, Any] = field(default_factory=dict, repr=False)
    job_id: str | None = None

"""The runtime context handed to every action: logger, backend client, environment, job."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from synapse_sdk.loggers.base import BaseLogger, NullLogger

if TYPE_CHECKING:
    from synapse_sdk.clients.base import ClientBase


@dataclass
class RuntimeContext:
    """What an action may use from the world around it.

    ``client`` is a ``BackendClient`` or ``LocalClient`` (or None when the action needs no
    backend); ``env`` holds environment settings (never printed: it may carry secrets);
    ``job_id`` is the platform job this run reports to, if any.
    """

    logger: BaseLogger = field(default_factory=NullLogger)
    client: ClientBase | None = None
    env: dict[str, Any] = field(default_factory=dict, repr=False)
    job_id: str | None = None

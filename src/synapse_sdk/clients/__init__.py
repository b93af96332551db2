"""Backend clients: the same methods over HTTP (``BackendClient``) or onto the embedded store
(``LocalClient``). ``default_client()`` picks one from the environment."""

from __future__ import annotations

import os
from importlib import import_module
from typing import TYPE_CHECKING, Any

from synapse_sdk.clients.base import ClientBase, LazyResults

if TYPE_CHECKING:
    from synapse_sdk.clients.backend import BackendClient
    from synapse_sdk.clients.local import LocalClient

__all__ = ['BackendClient', 'ClientBase', 'LazyResults', 'LocalClient', 'default_client']

# Imported when first used: the HTTP client brings httpx, which a local run never needs.
_MODULES = {'BackendClient': 'backend', 'LocalClient': 'local'}


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    value = getattr(import_module(f'{__name__}.{module}'), name)
    globals()[name] = value
    return value


def default_client() -> BackendClient | LocalClient:
    """A ``BackendClient`` on ``$SYNAPSE_HOST`` (token ``$SYNAPSE_ACCESS_TOKEN``, tenant
    ``$SYNAPSE_TENANT``, extra media origins ``$SYNAPSE_MEDIA_HOSTS``, comma-separated) when it
    is set, else a ``LocalClient`` on ``$SYNAPSE_HOME``.

    A malformed ``SYNAPSE_HOST`` raises :class:`~synapse_sdk.errors.ConfigError` naming it.
    """
    host = os.environ.get('SYNAPSE_HOST', '').strip()
    if host:
        from synapse_sdk.clients.backend import BackendClient

        media = os.environ.get('SYNAPSE_MEDIA_HOSTS', '')
        return BackendClient(
            host,
            access_token=os.environ.get('SYNAPSE_ACCESS_TOKEN') or None,
            tenant=os.environ.get('SYNAPSE_TENANT') or None,
            media_hosts=[h.strip() for h in media.split(',') if h.strip()],
        )
    from synapse_sdk.clients.local import LocalClient

    return LocalClient()

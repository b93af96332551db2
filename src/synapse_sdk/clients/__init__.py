"""Backend clients: the same methods over HTTP (``BackendClient``) or onto the embedded store
(``LocalClient``). ``default_client()`` picks one from the environment."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from synapse_sdk._lazy import lazy_exports
from synapse_sdk.clients.base import ClientBase, LazyResults

if TYPE_CHECKING:
    from synapse_sdk.clients.backend import BackendClient
    from synapse_sdk.clients.local import LocalClient

__all__ = ['BackendClient', 'ClientBase', 'LazyResults', 'LocalClient', 'default_client']

# Imported when first used: the HTTP client brings httpx, which a local run never needs.
_MODULES = {'BackendClient': 'backend', 'LocalClient': 'local'}


__getattr__ = lazy_exports(__name__, _MODULES)


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

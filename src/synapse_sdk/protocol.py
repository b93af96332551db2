"""The wire protocol of the Synapse backend API (DESIGN section 4), in one neutral module.

Both sides use it: the clients (:mod:`synapse_sdk.clients`) and the embedded server
(:mod:`synapse_sdk.server.app`). Neither imports the other.

- Auth headers: ``Synapse-Access-Token: Token <token>``, ``Synapse-Tenant: Token <tenant>``.
- List targets, their paths and keyset keys (:data:`TARGETS`).
- Paging: ``page_size`` (at most :data:`MAX_PAGE_SIZE`), ``ordering`` (``key`` or ``-key``),
  ``pagination=cursor`` (no ``count``) and the cursor ``<key>__gt`` / ``<key>__lt``.
- The list envelope ``{"count", "next", "previous", "results"}`` (:class:`Envelope`).
- Signed media URLs of the embedded server: ``/media/<path>?exp=<unix time>&sig=<hmac>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    'CONTROL_PARAMS',
    'CURSOR_PARAMS',
    'MAX_PAGE_SIZE',
    'MEDIA_PREFIX',
    'MEDIA_SIGNATURE_PARAMS',
    'TARGETS',
    'TENANT_HEADER',
    'TOKEN_HEADER',
    'Envelope',
    'ListTarget',
    'cursor_param',
    'parse_envelope',
    'split_params',
    'target_for_kind',
]

TOKEN_HEADER = 'Synapse-Access-Token'
TENANT_HEADER = 'Synapse-Tenant'
MAX_PAGE_SIZE = 1000
MEDIA_PREFIX = '/media/'
#: Query parameters of a signed media URL: expiry (unix seconds) and signature.
MEDIA_SIGNATURE_PARAMS = ('exp', 'sig')


@dataclass(frozen=True)
class ListTarget:
    """A list endpoint: its target name, path (relative to the API root) and keyset key."""

    name: str
    path: str
    key: str

    @property
    def kind(self) -> str:
        """The last path segment (``assignments``), what the server routes on."""
        return self.path.rstrip('/').rsplit('/', 1)[-1]


TARGETS: dict[str, ListTarget] = {
    t.name: t
    for t in (
        ListTarget('assignment', 'sdk/assignments/', 'id'),
        ListTarget('task', 'sdk/tasks/', 'id'),
        ListTarget('ground_truth_event', 'sdk/ground_truth_events/', 'pgh_id'),
    )
}

#: The keyset cursor parameters of every target (``id__gt`` ...).
CURSOR_PARAMS = frozenset(f'{key}__{op}' for key in ('id', 'pgh_id') for op in ('gt', 'lt'))

#: Query parameters that steer paging and rendering rather than select records.
CONTROL_PARAMS = frozenset(
    {'page_size', 'ordering', 'pagination', 'expand', 'fields', 'format', *CURSOR_PARAMS}
)


def target_for_kind(kind: str) -> ListTarget | None:
    """The target served under ``sdk/<kind>/``, if any."""
    for target in TARGETS.values():
        if target.kind == kind:
            return target
    return None


def cursor_param(key: str, descending: bool) -> str:
    """The query parameter that resumes a keyset listing after ``key``'s last value."""
    return f'{key}__{"lt" if descending else "gt"}'


def split_params(params: Mapping[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split params into ``(filters, control)``; ``None`` values are dropped."""
    filters: dict[str, Any] = {}
    control: dict[str, Any] = {}
    for key, value in (params or {}).items():
        if value is None:
            continue
        (control if key in CONTROL_PARAMS else filters)[key] = value
    return filters, control


@dataclass(frozen=True)
class Envelope:
    """One decoded list page."""

    results: list[dict[str, Any]]
    next: str | None
    count: int | None


def parse_envelope(body: Any, where: str) -> Envelope:
    """Check a list page's shape; raises ``ValueError`` naming ``where`` and what is wrong."""
    if not isinstance(body, dict):
        raise ValueError(f'{where}: not a list envelope (got {type(body).__name__})')
    results = body.get('results')
    if not isinstance(results, list):
        raise ValueError(f'{where}: not a list envelope ("results" is not a list)')
    nxt = body.get('next')
    if nxt is not None and not isinstance(nxt, str):
        raise ValueError(f'{where}: "next" must be a URL or null, got {type(nxt).__name__}')
    count = body.get('count')
    if count is not None and (isinstance(count, bool) or not isinstance(count, int)):
        raise ValueError(f'{where}: "count" must be an integer, got {count!r}')
    if count is not None and count < 0:
        raise ValueError(f'{where}: "count" must not be negative, got {count}')
    return Envelope(results, nxt or None, count)

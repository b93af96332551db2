"""LocalClient: the client contract straight onto the embedded store, no server, no account."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from synapse_sdk.clients.base import ClientBase, Page
from synapse_sdk.protocol import TARGETS, cursor_param

if TYPE_CHECKING:
    from synapse_sdk.server.store import Store
    from synapse_sdk.storage.download import SourcePolicy

__all__ = ['LocalClient']


class LocalClient(ClientBase):
    """Reads and writes ``$SYNAPSE_HOME/local.db`` directly (``home`` overrides the location).

    Returns the same records as :class:`~synapse_sdk.clients.backend.BackendClient` on the same
    store, except that media ``url`` values are ``file://`` URLs of the files under
    ``$SYNAPSE_HOME/media``.
    """

    def __init__(
        self,
        home: str | os.PathLike[str] | None = None,
        *,
        page_size: int = 500,
        store: Store | None = None,
    ) -> None:
        if store is None:
            from synapse_sdk.server.store import Store  # the embedded store, only when used

            store = Store(home)
            self._own_store = True
        else:
            self._own_store = False
        self.store = store
        self.home = self.store.home
        self.page_size = page_size
        self._media = self.store.media_dir.resolve()

    def __repr__(self) -> str:
        return f'LocalClient(home={str(self.home)!r})'

    def _url(self, path: str) -> str:
        return (self._media / path).as_uri()

    def source_policy(self) -> SourcePolicy:
        """Originals may come only from files inside the store's media directory (resolved:
        a stored ``../../etc/passwd`` or a symlink out of it is refused per item)."""
        from synapse_sdk.storage.download import SourcePolicy

        return SourcePolicy(
            http_origins=frozenset(),
            local_roots=(self._media,),
            label=f'the media directory {self._media}',
        )

    def _query_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return {'page_size': self.page_size, **params}

    def _page(
        self, target: str, params: Mapping[str, Any], after: int | None, with_count: bool
    ) -> Page:
        query = self.store.query(target, self._query_params(params))
        records, more = self.store.page(query, self._url, after)
        count = self.store.count(query) if with_count else None
        nxt = None
        if more and records:
            key = query.target.key
            cursor = cursor_param(key, query.descending)
            flat = {k: ','.join(map(str, v)) if isinstance(v, list | tuple) else v
                    for k, v in params.items() if v is not None}  # fmt: skip
            nxt = f'{TARGETS[target].path}?{urlencode({**flat, cursor: records[-1][key]})}'
        return Page(records, more, count, nxt)

    def _count(self, target: str, params: Mapping[str, Any]) -> int:
        return self.store.count(self.store.query(target, self._query_params(params)))

    # -- single records --------------------------------------------------------------------------

    def get_project(self, project_id: int) -> dict[str, Any]:
        """``{id, title, configuration}``."""
        return self.store.get_project(project_id)

    def list_projects(self) -> list[dict[str, Any]]:
        """Every project, ``{id, title, configuration, ...}``, by id."""
        return self.store.list_projects()

    def list_ground_truth_versions(self, project: int | None = None) -> list[dict[str, Any]]:
        """Ground-truth dataset versions, of ``project`` when given, by id."""
        return self.store.list_ground_truth_versions(project)

    def get_ground_truth_version(self, version_id: int) -> dict[str, Any]:
        """A ground-truth dataset version with its dataset and project."""
        return self.store.get_ground_truth_version(version_id)

    def get_storage(self, storage_id: int) -> dict[str, Any]:
        """``{id, name, provider, configuration}``."""
        return self.store.get_storage(storage_id)

    def create_storage(
        self, name: str, provider: str, configuration: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Register a storage (``file_system``, ``s3``, ``minio`` ...) and return it."""
        return self.store.create_storage(name, provider, configuration)

    def create_job(self, data: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Create a job to report a local run against; returns it with its ``id``."""
        return self.store.create_job(data)

    def get_job(self, job_id: int) -> dict[str, Any]:
        """A job's current document."""
        return self.store.get_job(job_id)

    def update_job(self, job_id: int, data: Mapping[str, Any]) -> dict[str, Any]:
        """Merge fields into a job (creating it if it is new)."""
        return self.store.update_job(job_id, data)

    def create_logs(self, data: Mapping[str, Any] | list[Mapping[str, Any]]) -> Any:
        """Append log rows; returns ``{"created": n}`` like the server."""
        return {'created': self.store.create_logs(data)}

    def close(self) -> None:
        """Close the store (only if this client opened it)."""
        if self._own_store:
            self.store.close()

    def release_connections(self) -> None:
        """Close the database connections of a store this client opened; they open again on
        the next call. Worker processes are forked from this process only when no SQLite
        database is open in it (see ``executors.backends.start_method``)."""
        if self._own_store:
            self.store.close()

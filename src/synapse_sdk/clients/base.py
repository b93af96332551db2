"""What both clients share: the public methods, lazy pagination and the lazy result sequence.

A client implements two primitives, :meth:`ClientBase._page` (one keyset page of a list target)
and :meth:`ClientBase._count`; everything a plugin calls is built on them here, once, so
``LocalClient`` and ``BackendClient`` cannot drift apart.

Pagination never trusts a page blindly: keys must move strictly past the cursor (a server that
ignores the cursor and sends the same page again is stopped at once, never looped on), and a
listing that ends before the total it announced is asked again and then re-counted; if records
are still missing it fails with :class:`~synapse_sdk.errors.BackendError` instead of ending
early with success.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from synapse_sdk.errors import BackendError
from synapse_sdk.protocol import TARGETS, cursor_param

if TYPE_CHECKING:
    from synapse_sdk.storage.download import SourcePolicy

__all__ = ['ClientBase', 'LazyResults', 'Page']

logger = logging.getLogger(__name__)


@dataclass
class Page:
    """One page of a list target."""

    records: list[dict[str, Any]]
    more: bool
    count: int | None = None
    next: str | None = None


class LazyResults:
    """A lazily fetched result set: ``len()`` is the total, iterating fetches page by page.

    Each iteration starts again from the first record. The total is fetched when the sequence
    is created (one cheap request, which also validates the filters) and then kept.
    """

    def __init__(self, client: ClientBase, target: str, params: Mapping[str, Any] | None) -> None:
        self._client = client
        self._target = target
        self._params = dict(params or {})
        self._count = client._count(target, self._params)

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self._client._iterate(self._target, self._params, expected=self._count)

    def __repr__(self) -> str:
        return f'<LazyResults {self._target} count={self._count}>'


class ClientBase(ABC):
    """The client contract plugins code against (``self.client`` in an action).

    Filters are validated by the store (directly, or through the server): unknown keys and
    missing required keys raise :class:`~synapse_sdk.errors.FilterError` with ``.supported``.
    Iterators fetch pages lazily and never hold the whole result.
    """

    page_size: int = 100

    # -- primitives ------------------------------------------------------------------------------

    @abstractmethod
    def _page(
        self, target: str, params: Mapping[str, Any], after: int | None, with_count: bool
    ) -> Page:
        """Fetch one page of ``target`` after the keyset cursor ``after``."""

    @abstractmethod
    def _count(self, target: str, params: Mapping[str, Any]) -> int:
        """How many records of ``target`` match ``params``."""

    # -- pagination ------------------------------------------------------------------------------

    def _iterate(
        self,
        target: str,
        params: Mapping[str, Any],
        first: Page | None = None,
        expected: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Yield every record, page by page; each page resumes after the last key yielded, so a
        retried or re-fetched page can neither skip nor repeat a record.

        ``expected`` is the total the caller was told: a listing that ends short of it is
        checked (see the module docstring) rather than ended with success.
        """
        spec = TARGETS[target]
        descending = str(params.get('ordering', '')).strip().startswith('-')
        cursor = cursor_param(spec.key, descending)
        page = first if first is not None else self._page(target, params, None, False)
        last: int | None = None
        yielded = 0
        probed_after: object = object()  # the cursor of the last re-ask (at most one per cursor)
        key = spec.key
        while True:
            for record in page.records:
                value = record.get(key) if type(record) is dict else None
                if type(value) is not int:  # not a plain int (bool included): _key says why
                    value = _key(record, key, spec.path)
                if last is not None and (value >= last if descending else value <= last):
                    raise BackendError(
                        f'GET {spec.path}: the server ignored the cursor {cursor}={last} and '
                        f'sent {spec.key} {value} again (or out of order) after {yielded} '
                        'record(s); stopping instead of fetching the same page for ever',
                        url=spec.path,
                    )
                last = value
                yielded += 1
                yield record
            if page.more and page.records:
                page = self._page(target, params, last, False)
                continue
            if expected is None or yielded >= expected or probed_after == last:
                return
            # The list ended short of the announced total (``next: null`` early?): ask again
            # after the last key once; a page with records resumes the listing.
            probed_after = last
            page = self._page(target, params, last, False)
            if page.records:
                logger.warning(
                    'GET %s ended after %d of %d records; asking again recovered more',
                    spec.path,
                    yielded,
                    expected,
                )
                continue
            now = self._count(target, params)
            if now <= yielded:  # records were removed while we listed: nothing is missing
                logger.warning(
                    'GET %s: %d records announced, %d now match; exported what exists',
                    spec.path,
                    expected,
                    now,
                )
                return
            raise BackendError(
                f'GET {spec.path}: the server ended the list after {yielded} of {expected} '
                f'records (its last page had no next link, asking again after {spec.key} '
                f'{last} returned nothing, and {now} records still match); refusing to '
                'finish with a silently truncated result',
                url=spec.path,
            )

    def _get(self, target: str, params: Mapping[str, Any] | None) -> tuple[Iterator[Any], int]:
        params = dict(params or {})
        first = self._page(target, params, None, True)
        count = first.count if first.count is not None else self._count(target, params)
        return self._iterate(target, params, first, expected=count), int(count)

    def _list(
        self, target: str, params: Mapping[str, Any] | None, list_all: bool
    ) -> LazyResults | dict[str, Any]:
        if list_all:
            return LazyResults(self, target, params)
        page = self._page(target, dict(params or {}), None, True)
        return {'count': page.count, 'next': page.next, 'previous': None, 'results': page.records}

    def iter_fields(
        self,
        target: str,
        filters: Mapping[str, Any] | None,
        fields: list[str] | tuple[str, ...],
        page_size: int = 10_000,  # filters.MAX_LIGHT_PAGE_SIZE: light rows, not documents
    ) -> Iterator[dict[str, Any]]:
        """A light pass over a whole selection: only ``fields`` of each matching record of
        ``target`` (``assignment``, ``task``, ``ground_truth_event``), plus its paging key, in
        key order and large pages. ``data_unit`` is then the data unit's id, not the unit.

        Export planning reads every id of a selection this way before the export streams the
        full records. A backend that ignores ``fields`` answers with whole records; callers
        only read the fields they asked for.
        """
        params = {**dict(filters or {}), 'fields': ','.join(fields), 'page_size': page_size}
        return self._iterate(target, params)

    # -- assignments -----------------------------------------------------------------------------

    def get_assignments(self, filters: Mapping[str, Any] | None) -> tuple[Iterator[Any], int]:
        """``(iterator, total)`` of the assignments matching ``filters`` (``project`` required)."""
        return self._get('assignment', filters)

    def get_assignments_stream(self, filters: Mapping[str, Any] | None) -> Iterator[Any]:
        """A lazy generator of matching assignments; nothing is fetched (and no filter error is
        raised) until it is iterated."""
        return self._iterate('assignment', dict(filters or {}))

    def count_assignments(self, filters: Mapping[str, Any] | None) -> int:
        """How many assignments match ``filters``."""
        return self._count('assignment', dict(filters or {}))

    def list_assignments(
        self, params: Mapping[str, Any] | None = None, list_all: bool = False
    ) -> LazyResults | dict[str, Any]:
        """``list_all=True``: a :class:`LazyResults`; otherwise the first page's envelope."""
        return self._list('assignment', params, list_all)

    # -- tasks -----------------------------------------------------------------------------------

    def get_tasks(self, filters: Mapping[str, Any] | None) -> tuple[Iterator[Any], int]:
        """``(iterator, total)`` of the tasks matching ``filters`` (``project`` required)."""
        return self._get('task', filters)

    def get_tasks_stream(self, filters: Mapping[str, Any] | None) -> Iterator[Any]:
        """A lazy generator of matching tasks."""
        return self._iterate('task', dict(filters or {}))

    def count_tasks(self, filters: Mapping[str, Any] | None) -> int:
        """How many tasks match ``filters``."""
        return self._count('task', dict(filters or {}))

    def list_tasks(
        self, params: Mapping[str, Any] | None = None, list_all: bool = False
    ) -> LazyResults | dict[str, Any]:
        """``list_all=True``: a :class:`LazyResults`; otherwise the first page's envelope."""
        return self._list('task', params, list_all)

    # -- ground truth ----------------------------------------------------------------------------

    def list_ground_truth_events(
        self, params: Mapping[str, Any] | None = None, list_all: bool = False
    ) -> LazyResults | dict[str, Any]:
        """Events of a ground-truth dataset version (``ground_truth_dataset_version`` or
        ``ground_truth_dataset_versions`` required). ``list_all=True`` gives a
        :class:`LazyResults` whose ``len()`` is the total; events page by ``pgh_id``."""
        return self._list('ground_truth_event', params, list_all)

    def get_ground_truth_events(
        self, filters: Mapping[str, Any] | None
    ) -> tuple[Iterator[Any], int]:
        """``(iterator, total)`` of ground-truth events, like :meth:`get_assignments`."""
        return self._get('ground_truth_event', filters)

    def count_ground_truth_events(self, filters: Mapping[str, Any] | None) -> int:
        """How many ground-truth events match ``filters``."""
        return self._count('ground_truth_event', dict(filters or {}))

    # -- single records and job reporting ------------------------------------------------------

    @abstractmethod
    def get_project(self, project_id: int) -> dict[str, Any]:
        """``{id, title, configuration}``; NotFoundError if there is none."""

    @abstractmethod
    def get_ground_truth_version(self, version_id: int) -> dict[str, Any]:
        """A ground-truth dataset version with its dataset and project."""

    @abstractmethod
    def get_storage(self, storage_id: int) -> dict[str, Any]:
        """``{id, name, provider, configuration}``."""

    @abstractmethod
    def get_job(self, job_id: int) -> dict[str, Any]:
        """A job's current document."""

    @abstractmethod
    def update_job(self, job_id: int, data: Mapping[str, Any]) -> dict[str, Any]:
        """Merge progress, metrics or result fields into a job (PATCH)."""

    @abstractmethod
    def create_logs(self, data: Mapping[str, Any] | list[Mapping[str, Any]]) -> Any:
        """Append log rows of a job run."""

    def source_policy(self) -> SourcePolicy:
        """Where original files of this client's records may be read from (the backend's
        media and nothing else); the downloader refuses every other source per item.

        The default (for clients that do not say) allows HTTP(S) URLs and no local file."""
        from synapse_sdk.storage.download import SourcePolicy

        return SourcePolicy()

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release connections."""

    def __enter__(self) -> ClientBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _key(record: Any, key: str, path: str) -> int:
    value = record.get(key) if isinstance(record, dict) else None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BackendError(
            f'GET {path}: a record without an integer {key!r} '
            f'(got {type(record).__name__ if not isinstance(record, dict) else repr(value)})',
            url=path,
        )
    return value

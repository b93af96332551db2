"""Target handlers: where the records of an export come from, and how they become items.

An export item is ``{"id", "data", "files"}`` (``files``: the primary file entry of the data
unit). Items also carry ``data_unit`` (id, name, width, height), for ground-truth events
``category`` (the event's train/validation/test split), and, when the export asked for a ratio
split, ``split``: the split planned for the item's data unit (formats use it as is).

Before anything is created, :meth:`ExportTargetHandler.plan` checks the selection: filter values
are known, ``split: category`` has categories to use, the selection is not empty (unless
``allow_empty``). The built-in handlers then read the selection's ids in one light pass and plan
its samples and splits (:mod:`.selection`): one sample per data unit (``sample_policy``), splits
keyed by data unit. Their :meth:`get_results` yields only the samples, and its count is theirs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Generator, Iterable
from typing import TYPE_CHECKING, Any, ClassVar

import orjson

from synapse_sdk.errors import FilterError, NotFoundError, ParamsError
from synapse_sdk.formats.split import SplitSpec, parse_split, parse_split_mode
from synapse_sdk.plugins.actions.export.selection import (
    SAMPLE_POLICIES,
    SelectionPlan,
    SelectionRows,
    build_plan,
    dominant_class,
)
from synapse_sdk.server.filters import TARGETS, check_filter_values

if TYPE_CHECKING:
    from synapse_sdk.clients.base import ClientBase

ExportItem = dict[str, Any]


def primary_file(data_unit: dict[str, Any]) -> dict[str, Any]:
    """The data unit's primary file entry (the first one when none is marked primary)."""
    files = data_unit.get('files') or {}
    if type(files) is dict and len(files) == 1:  # the common case: one file, primary or not
        (entry,) = files.values()
        if type(entry) is dict:
            return dict(entry)
    entries = [files[key] for key in sorted(files)] if isinstance(files, dict) else list(files)
    for entry in entries:
        if entry.get('is_primary'):
            return dict(entry)
    return dict(entries[0]) if entries else {}


def normalize_data(data: Any) -> dict[str, Any]:
    """The annotation document of a record; DM v1 documents are converted at this boundary."""
    if not isinstance(data, dict):
        return {'annotations': [], 'classifications': {}}
    # DM v1 (see formats.dm.convert.is_dm_v1): per-media annotations or an annotationsData key
    if type(data.get('annotations')) is list and 'annotationsData' not in data:
        return data  # the document itself (v2), as nearly every record is
    from synapse_sdk.formats.dm.convert import from_dm_v1, is_dm_v1

    if is_dm_v1(data):
        return from_dm_v1(data)
    return data


class ExportTargetHandler(ABC):
    """Fetches one kind of record and turns records into export items.

    Custom handlers override :meth:`get_results` (and optionally :meth:`validate_filter` and
    :meth:`get_export_item`); the built-in ones derive from :class:`ListTargetHandler`.
    """

    #: Filter keys that must be present.
    required_filters: ClassVar[tuple[str, ...]] = ()
    #: The backend list target the records come from (``assignment``, ``task``,
    #: ``ground_truth_event``); ``None`` for a custom source the SDK cannot plan.
    list_target: ClassVar[str | None] = None
    #: Whether records carry a ground-truth ``category`` (``split: category``); ``None``: unknown.
    has_categories: ClassVar[bool | None] = None
    #: What one record is called in messages.
    noun: ClassVar[str] = 'record'
    #: The record field the backend pages by (``id``; ``pgh_id`` for ground-truth events).
    key: ClassVar[str] = 'id'
    #: Whether records have review statuses that ``sample_policy=latest_approved`` ranks.
    reviewed: ClassVar[bool] = False
    #: The plan of the current export (set by :meth:`plan`).
    selection: SelectionPlan | None = None

    def validate_filter(self, filters: dict[str, Any], client: ClientBase) -> dict[str, Any]:
        """Check ``filters``; return them (possibly normalised) or raise ``ParamsError``.

        Values outside a field's known set (``status=approvd``) are refused here, before the
        backend is asked, naming the value and the allowed ones.
        """
        if not isinstance(filters, dict):
            raise ParamsError('filter must be a JSON object', [('filter', 'not an object')])
        missing = [key for key in self.required_filters if filters.get(key) in (None, '')]
        if missing:
            raise ParamsError(
                'Invalid filter', [(f'filter.{key}', 'required for this target') for key in missing]
            )
        if self.list_target is not None:
            problems = check_filter_values(self.list_target, filters)
            if problems:
                raise ParamsError(
                    'Invalid filter', [(f'filter.{key}', message) for key, message in problems]
                )
        try:
            self.count(client, filters)  # the backend checks keys against its allow-list
        except (FilterError, NotFoundError) as exc:
            raise ParamsError('Invalid filter', [('filter', str(exc))]) from exc
        return filters

    @abstractmethod
    def get_results(self, client: ClientBase, filters: dict[str, Any]) -> tuple[Any, int]:
        """``(lazy iterator of records, total count)``."""

    def count(self, client: ClientBase, filters: dict[str, Any]) -> int:
        return self.get_results(client, filters)[1]

    def project_id(self, client: ClientBase, filters: dict[str, Any]) -> int | None:
        """The project whose configuration (class map) the records follow."""
        value = filters.get('project')
        return int(value) if value is not None else None

    def plan(
        self,
        client: ClientBase,
        filters: dict[str, Any],
        params: dict[str, Any],
        project: dict[str, Any] | None = None,
    ) -> SelectionPlan | None:
        """Check and plan the selection before anything is created; raise ``ParamsError``.

        ``params`` are the export's params (``extra_params.split`` / ``split_mode`` / ``seed``,
        ``sample_policy``, ``allow_empty``). Refuses ``split: category`` when the records have
        no ground-truth category, and an empty selection unless ``allow_empty``. Built-in
        handlers return (and keep in :attr:`selection`) the plan of samples and splits; a custom
        source returns ``None``.
        """
        extra = params.get('extra_params') or {}
        spec = _split_spec(extra)
        mode = parse_split_mode(extra.get('split_mode'))
        seed = extra.get('seed', 0)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ParamsError('Invalid extra_params', [('extra_params.seed', 'must be an integer')])
        if spec is not None and spec.by_category:
            if self.has_categories is False:
                raise ParamsError(
                    'Invalid split',
                    [('extra_params.split', f'"category" splits by the ground-truth category of '
                      f'each item, and {self.noun}s have none; use target ground_truth, or '
                      'ratios like "train=0.8,val=0.2"')],
                )  # fmt: skip
            if extra.get('split_mode') is not None:
                raise ParamsError(
                    'Invalid split',
                    [('extra_params.split_mode', 'applies to split ratios, not to "category"')],
                )
        policy = params.get('sample_policy') or 'latest_approved'
        if policy not in SAMPLE_POLICIES:
            raise ParamsError(
                'Invalid params',
                [('sample_policy', f'got {policy!r}; allowed: {", ".join(SAMPLE_POLICIES)}')],
            )
        if self.list_target is None:
            if not params.get('allow_empty') and self.count(client, filters) == 0:
                raise self._empty(filters)
            return None
        ratios = spec if spec is not None and not spec.by_category else None
        rows = self.collect(
            client, filters, project, classes=ratios is not None and mode == 'stratified'
        )
        plan = build_plan(
            rows,
            key=self.key,
            policy=policy,
            spec=ratios,
            seed=seed,
            mode=mode,
            reviewed=self.reviewed,
            noun=self.noun,
        )
        if plan.count == 0 and not params.get('allow_empty'):
            raise self._empty(filters)
        self.selection = plan
        return plan

    def collect(
        self,
        client: ClientBase,
        filters: dict[str, Any],
        project: dict[str, Any] | None = None,
        classes: bool = False,
    ) -> SelectionRows:
        """The selection's rows for planning: a light pass of ids (``client.iter_fields``), or,
        when ``classes`` (stratified splits), a pass over the full records for their classes."""
        if self.list_target is None:
            raise TypeError(f'{type(self).__name__} has no list target to plan')
        rows = SelectionRows()
        light = getattr(client, 'iter_fields', None)
        if not classes and light is not None:
            fields = [f for f in (self.key, 'data_unit', 'status', 'created')
                      if f in TARGETS[self.list_target].light]  # fmt: skip
            add, key = rows.add, self.key
            for row in light(self.list_target, filters, fields):
                add(row[key], row.get('data_unit'), row.get('status'), row.get('created'))
            return rows
        configured = ((project or {}).get('configuration') or {}).get('classes') or []
        order = {str(c.get('name')): i for i, c in enumerate(configured) if isinstance(c, dict)}
        records, _ = self.fetch(client, filters)
        for record in records:
            cls = None
            if classes:
                annotations = normalize_data(record.get('data')).get('annotations') or []
                cls = dominant_class(annotations, order)
            rows.add(record[self.key], record.get('data_unit'), record.get('status'),
                     record.get('created'), cls)  # fmt: skip
        return rows

    def fetch(self, client: ClientBase, filters: dict[str, Any]) -> tuple[Any, int]:
        """Every record the filter matches, unplanned: ``(lazy iterator, total)``."""
        return self.get_results(client, filters)

    def _empty(self, filters: dict[str, Any]) -> ParamsError:
        shown = orjson.dumps(filters, default=str, option=orjson.OPT_SORT_KEYS).decode()
        return ParamsError(
            'Empty selection',
            [('filter', f'no {self.noun} matches {shown}, so the export would be empty; check '
              'the filter, or pass allow_empty: true to publish an empty dataset')],
        )  # fmt: skip

    def get_export_item(self, results: Iterable[dict[str, Any]]) -> Generator[ExportItem]:
        """Yield ``{"id", "data", "files", "data_unit"}`` for each record, lazily; ``split``
        too when the export planned one."""
        plan = self.selection
        split_of = plan.split_of if plan is not None and plan.splits is not None else None
        key = plan.key if plan is not None else 'id'
        to_export_item = self.to_export_item
        for record in results:
            item = to_export_item(record)
            if split_of is not None:
                split = split_of(record.get(key))
                if split is not None:
                    item['split'] = split
            yield item

    def to_export_item(self, record: dict[str, Any]) -> ExportItem:
        data_unit = record.get('data_unit') or {}
        data = normalize_data(record.get('data'))
        if isinstance(data_unit, dict):
            get = data_unit.get
            unit = {'id': get('id'), 'name': get('name'), 'width': get('width'),
                    'height': get('height')}  # fmt: skip
            if 'source_id' in data_unit:  # the source's own image id, kept by an import
                unit['source_id'] = data_unit['source_id']  # (CONTRACTS #1)
            files = primary_file(data_unit)
        else:
            unit, files = {}, {}
        return {
            'id': record.get('id'),
            'data': data,
            'files': files,
            'data_unit': unit,
        }


def _split_spec(extra: dict[str, Any]) -> SplitSpec | None:
    value = extra.get('split')
    return None if value is None or value == '' or value == {} else parse_split(value)


class ListTargetHandler(ExportTargetHandler):
    """A handler over one backend list target; :meth:`fetch` reads it, unplanned.

    Once :meth:`plan` ran, :meth:`get_results` yields only the planned samples (one per data
    unit under the default ``sample_policy``) and counts them.
    """

    @abstractmethod
    def fetch(self, client: ClientBase, filters: dict[str, Any]) -> tuple[Any, int]:
        """Every record the filter matches: ``(lazy iterator, total)``."""

    def get_results(self, client: ClientBase, filters: dict[str, Any]) -> tuple[Any, int]:
        records, total = self.fetch(client, filters)
        if self.selection is None:
            return records, total
        return self.selection.select(records), self.selection.count

    def count(self, client: ClientBase, filters: dict[str, Any]) -> int:
        return self.fetch(client, filters)[1]


class AssignmentExportTargetHandler(ListTargetHandler):
    required_filters = ('project',)
    list_target = 'assignment'
    has_categories = False
    noun = 'assignment'
    reviewed = True

    def fetch(self, client: ClientBase, filters: dict[str, Any]) -> tuple[Any, int]:
        return client.get_assignments(filters)

    def count(self, client: ClientBase, filters: dict[str, Any]) -> int:
        return int(client.count_assignments(filters))


class TaskExportTargetHandler(ListTargetHandler):
    required_filters = ('project',)
    list_target = 'task'
    has_categories = False
    noun = 'task'

    def fetch(self, client: ClientBase, filters: dict[str, Any]) -> tuple[Any, int]:
        return client.get_tasks(filters)

    def count(self, client: ClientBase, filters: dict[str, Any]) -> int:
        return int(client.count_tasks(filters))


class GroundTruthExportTargetHandler(ListTargetHandler):
    required_filters = ('ground_truth_dataset_version',)
    list_target = 'ground_truth_event'
    has_categories = True
    noun = 'ground-truth event'
    key = 'pgh_id'  # an event's id repeats across versions; pgh_id is unique

    def fetch(self, client: ClientBase, filters: dict[str, Any]) -> tuple[Any, int]:
        events = client.list_ground_truth_events(params=filters, list_all=True)
        return events, len(events)

    def count(self, client: ClientBase, filters: dict[str, Any]) -> int:
        return int(client.count_ground_truth_events(filters))

    def project_id(self, client: ClientBase, filters: dict[str, Any]) -> int | None:
        version = client.get_ground_truth_version(filters['ground_truth_dataset_version'])
        project = version.get('project')
        if isinstance(project, dict):
            project = project.get('id')
        return int(project) if project is not None else None

    def to_export_item(self, record: dict[str, Any]) -> ExportItem:
        item = super().to_export_item(record)
        item['category'] = record.get('category')
        return item


class TargetHandlerFactory:
    """Maps target names to handler classes; plugins may register their own."""

    _handlers: ClassVar[dict[str, type[ExportTargetHandler]]] = {
        'assignment': AssignmentExportTargetHandler,
        'ground_truth': GroundTruthExportTargetHandler,
        'task': TaskExportTargetHandler,
    }

    @classmethod
    def get_handler(cls, name: str) -> ExportTargetHandler:
        try:
            return cls._handlers[name]()
        except KeyError:
            known = ', '.join(sorted(cls._handlers))
            raise ParamsError(
                f'Unknown export target {name!r}', [('target', f'must be one of: {known}')]
            ) from None

    @classmethod
    def register_handler(cls, name: str, handler: type[ExportTargetHandler]) -> None:
        if not (isinstance(handler, type) and issubclass(handler, ExportTargetHandler)):
            raise TypeError(f'{handler!r} is not an ExportTargetHandler subclass')
        cls._handlers[name] = handler

    @classmethod
    def targets(cls) -> list[str]:
        return sorted(cls._handlers)

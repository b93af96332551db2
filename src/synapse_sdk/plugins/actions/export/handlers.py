"""Target handlers: where the records of an export come from, and how they become items.

An export item is ``{"id", "data", "files"}`` (``files``: the primary file entry of the data
unit). Items also carry ``data_unit`` (id, name, width, height) and, for ground-truth events,
``category`` (the event's train/validation/test split), which formats use.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Generator, Iterable
from typing import Any, ClassVar

from synapse_sdk.errors import FilterError, NotFoundError, ParamsError

ExportItem = dict[str, Any]


def primary_file(data_unit: dict[str, Any]) -> dict[str, Any]:
    """The data unit's primary file entry (the first one when none is marked primary)."""
    files = data_unit.get('files') or {}
    entries = [files[key] for key in sorted(files)] if isinstance(files, dict) else list(files)
    for entry in entries:
        if entry.get('is_primary'):
            return dict(entry)
    return dict(entries[0]) if entries else {}


def normalize_data(data: Any) -> dict[str, Any]:
    """The annotation document of a record; DM v1 documents are converted at this boundary."""
    if not isinstance(data, dict):
        return {'annotations': [], 'classifications': {}}
    from synapse_sdk.formats.dm.convert import from_dm_v1, is_dm_v1

    if is_dm_v1(data):
        return from_dm_v1(data)
    return data


class ExportTargetHandler(ABC):
    """Fetches one kind of record and turns records into export items."""

    #: Filter keys that must be present.
    required_filters: ClassVar[tuple[str, ...]] = ()

    def validate_filter(self, filters: dict[str, Any], client: Any) -> dict[str, Any]:
        """Check ``filters``; return them (possibly normalised) or raise ``ParamsError``."""
        if not isinstance(filters, dict):
            raise ParamsError('filter must be a JSON object', [('filter', 'not an object')])
        missing = [key for key in self.required_filters if filters.get(key) in (None, '')]
        if missing:
            raise ParamsError(
                'Invalid filter', [(f'filter.{key}', 'required for this target') for key in missing]
            )
        try:
            self.count(client, filters)  # the backend checks keys against its allow-list
        except (FilterError, NotFoundError) as exc:
            raise ParamsError('Invalid filter', [('filter', str(exc))]) from exc
        return filters

    @abstractmethod
    def get_results(self, client: Any, filters: dict[str, Any]) -> tuple[Any, int]:
        """``(lazy iterator of records, total count)``."""

    def count(self, client: Any, filters: dict[str, Any]) -> int:
        return self.get_results(client, filters)[1]

    def project_id(self, client: Any, filters: dict[str, Any]) -> int | None:
        """The project whose configuration (class map) the records follow."""
        value = filters.get('project')
        return int(value) if value is not None else None

    def get_export_item(self, results: Iterable[dict[str, Any]]) -> Generator[ExportItem]:
        """Yield ``{"id", "data", "files", "data_unit"}`` for each record, lazily."""
        for record in results:
            yield self.to_export_item(record)

    def to_export_item(self, record: dict[str, Any]) -> ExportItem:
        data_unit = record.get('data_unit') or {}
        return {
            'id': record.get('id'),
            'data': normalize_data(record.get('data')),
            'files': primary_file(data_unit) if isinstance(data_unit, dict) else {},
            'data_unit': {key: data_unit.get(key) for key in ('id', 'name', 'width', 'height')}
            # the source's own image id, kept by an import (CONTRACTS #1)
            | ({'source_id': data_unit['source_id']} if 'source_id' in data_unit else {})
            if isinstance(data_unit, dict)
            else {},
        }


class AssignmentExportTargetHandler(ExportTargetHandler):
    required_filters = ('project',)

    def get_results(self, client: Any, filters: dict[str, Any]) -> tuple[Any, int]:
        return client.get_assignments(filters)

    def count(self, client: Any, filters: dict[str, Any]) -> int:
        return int(client.count_assignments(filters))


class TaskExportTargetHandler(ExportTargetHandler):
    required_filters = ('project',)

    def get_results(self, client: Any, filters: dict[str, Any]) -> tuple[Any, int]:
        return client.get_tasks(filters)


class GroundTruthExportTargetHandler(ExportTargetHandler):
    required_filters = ('ground_truth_dataset_version',)

    def get_results(self, client: Any, filters: dict[str, Any]) -> tuple[Any, int]:
        events = client.list_ground_truth_events(params=filters, list_all=True)
        return events, len(events)

    def project_id(self, client: Any, filters: dict[str, Any]) -> int | None:
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

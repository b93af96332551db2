"""``TemplateSink``: the sink that writes items through ``BaseExporter``'s template hooks.

The spec's hooks, each meaning what its name says: ``setup_output_directories`` creates the
directories (once), ``save_original_file`` and ``save_as_json`` save one item's files and
return their :class:`ExportStatus`. A plugin that overrides the legacy 8-argument
``process_file_saving`` gets it called instead, with its return value (and any counting it
does on the metrics records it is handed) taken as the item's outcome.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from synapse_sdk.errors import ExportError
from synapse_sdk.plugins.actions.export.item import ItemContext
from synapse_sdk.plugins.actions.export.models import ExportStatus, MetricsRecord

if TYPE_CHECKING:
    from synapse_sdk.plugins.actions.export.exporter import BaseExporter

__all__ = ['TemplateSink', 'as_status', 'overrides']

JSON_KEY = 'json_output_path'
ORIGIN_KEY = 'origin_files_output_path'


def overrides(obj: Any, name: str, base: type) -> bool:
    """Whether ``obj``'s class replaces ``base``'s method ``name``."""
    return getattr(type(obj), name, None) is not getattr(base, name, None)


def as_status(value: Any, hook: str) -> ExportStatus:
    """A hook's return value as a status: ``None`` (it raised nothing) and ``True`` are success,
    ``False`` is failure; anything else must be an :class:`ExportStatus` value."""
    if value is None or value is True:
        return ExportStatus.SUCCESS
    if value is False:
        return ExportStatus.FAILED
    try:
        return ExportStatus(value)
    except ValueError:
        allowed = ', '.join(s.value for s in ExportStatus)
        raise ExportError(
            f'{hook} returned {value!r}; return an ExportStatus ({allowed})'
        ) from None


class TemplateSink:
    """Writes each item with the exporter's template hooks (see the module docstring)."""

    def __init__(self, exporter: BaseExporter) -> None:
        self.exporter = exporter
        self.root = Path('.')
        self.save_original = exporter.save_original
        self.paths: dict[str, Path] = {}

    def open(self, root: Path) -> None:
        from synapse_sdk.plugins.actions.export.exporter import BaseExporter

        ex = self.exporter
        self.root = root
        paths = ex.setup_output_directories(root, self.save_original)
        if paths is None:
            paths = {}
        if not isinstance(paths, dict):
            raise ExportError(
                f'{type(ex).__name__}.setup_output_directories must return a dict of paths, '
                f'got {type(paths).__name__}'
            )
        self.legacy = overrides(ex, 'process_file_saving', BaseExporter)
        if not self.legacy:
            needed = [JSON_KEY] + ([ORIGIN_KEY] if self.save_original else [])
            missing = [key for key in needed if key not in paths]
            if missing:
                raise ExportError(
                    f'{type(ex).__name__}.setup_output_directories returned '
                    f'{sorted(paths) or "no paths"}; the default process_file_saving needs '
                    f'{", ".join(repr(k) for k in missing)}. Return them, or override '
                    'process_file_saving to use your own keys'
                )
        self.paths = {key: Path(value) for key, value in paths.items()}
        ex.output_paths = self.paths

    def write(self, item: ItemContext) -> ExportStatus:
        ex = self.exporter
        if self.legacy:
            return self._legacy(item)
        if self.save_original:
            ex.save_original_file(item.data, self.paths[ORIGIN_KEY], ex.errors_original_file_list)
        status = ex.save_as_json(item.data, self.paths[JSON_KEY], ex.errors_json_file_list)
        return as_status(status, 'save_as_json')

    def _legacy(self, item: ItemContext) -> ExportStatus:
        """Call an overridden ``process_file_saving``; read what it did as the outcome."""
        ex = self.exporter
        originals, data = MetricsRecord(stand_by=1), MetricsRecord(stand_by=1)
        saved = ex.process_file_saving(
            item.data,
            self.root,
            self.save_original,
            ex.errors_json_file_list,
            ex.errors_original_file_list,
            originals,
            data,
            item.index,
        )
        ok = bool(saved) if saved is not None else not data.failed
        if self.save_original and ok and item.original_status is None:
            # It saved the original its own way: its counting says how, else it raised nothing.
            failed = originals.failed > 0 and originals.success == 0
            item.original_status = ExportStatus.FAILED if failed else ExportStatus.SUCCESS
        return ExportStatus.SUCCESS if ok else ExportStatus.FAILED

    def close(self) -> None:
        self.exporter.wait_for_downloads()

    def abort(self) -> None:
        self.exporter.wait_for_downloads(cancel=True)

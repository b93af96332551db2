"""What the export action tests share: the spec's exporter, an action made from any exporter,
one export run on a client and the storage it publishes to."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from synapse_sdk.plugins.actions.export import BaseExporter, ExportAction
from synapse_sdk.testing import run_export


class SpecExporter(BaseExporter):
    """The spec's ``MyExporter``: a converted document per item, plus a metadata file."""

    def convert_data(self, data: dict[str, Any]) -> dict[str, Any]:
        return {
            'id': data.get('id'),
            'filename': data.get('files', {}).get('file_name_original'),
            'annotations': data.get('data', {}).get('annotations', []),
        }

    def additional_file_saving(self, unique_export_path: Path) -> None:
        metadata = {'export_name': self.params.get('name'), 'total_items': self.params.get('count')}
        (unique_export_path / 'metadata.json').write_bytes(orjson.dumps(metadata))


def action_for(exporter: type[BaseExporter], **attrs: Any) -> type[ExportAction]:
    """An ``export`` action whose entrypoint is ``exporter``; ``attrs`` set class attributes
    (``params_model``, ``action_name``, ...)."""

    def entrypoint(self: ExportAction) -> type[BaseExporter]:
        return exporter

    body = {'action_name': 'export', 'entrypoint': property(entrypoint), **attrs}
    return type(f'{exporter.__name__}Action', (ExportAction,), body)


def run(client: Any, action: type[ExportAction], **params: Any) -> dict[str, Any]:
    """``action`` exporting project 1's tasks to storage 1 as ``exports/out`` (``params``
    override any of it)."""
    return run_export(action, client, **{'name': 'out', **params})


def storage_root(client: Any) -> Path:
    """Where storage 1 (a ``file_system`` storage) keeps its files."""
    return Path(client.get_storage(1)['configuration']['location'])

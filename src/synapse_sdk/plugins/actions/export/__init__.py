"""Export actions: the documented public API of ``synapse_sdk.plugins.actions.export``."""

from synapse_sdk.plugins.actions.export.action import BaseExportAction, ExportProgressCategories
from synapse_sdk.plugins.actions.export.context import ExportContext
from synapse_sdk.plugins.actions.export.export_action import ExportAction
from synapse_sdk.plugins.actions.export.exporter import BaseExporter
from synapse_sdk.plugins.actions.export.handlers import (
    AssignmentExportTargetHandler,
    ExportTargetHandler,
    GroundTruthExportTargetHandler,
    TargetHandlerFactory,
    TaskExportTargetHandler,
)
from synapse_sdk.plugins.actions.export.models import ExportParams, ExportStatus, MetricsRecord
from synapse_sdk.plugins.actions.export.run import ExporterRunAdapter

__all__ = [
    'AssignmentExportTargetHandler',
    'BaseExportAction',
    'BaseExporter',
    'ExportAction',
    'ExportContext',
    'ExportParams',
    'ExportProgressCategories',
    'ExportStatus',
    'ExportTargetHandler',
    'ExporterRunAdapter',
    'GroundTruthExportTargetHandler',
    'MetricsRecord',
    'TargetHandlerFactory',
    'TaskExportTargetHandler',
]

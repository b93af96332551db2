"""Export actions: the documented public API of ``synapse_sdk.plugins.actions.export``."""

from synapse_sdk.plugins.actions.export.action import BaseExportAction, ExportProgressCategories
from synapse_sdk.plugins.actions.export.context import ExportContext

__all__ = ['BaseExportAction', 'ExportContext', 'ExportProgressCategories']

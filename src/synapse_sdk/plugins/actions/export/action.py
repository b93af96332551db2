"""``BaseExportAction``: the base of every export action (simple or step mode)."""

from __future__ import annotations

from typing import Any, ClassVar

from synapse_sdk.plugins.action import BaseAction, P
from synapse_sdk.plugins.actions.export.context import ExportContext
from synapse_sdk.plugins.enums import PluginCategory
from synapse_sdk.plugins.steps import Orchestrator, StepRegistry


class ExportProgressCategories:
    """Progress categories of export actions."""

    DATASET_CONVERSION = 'dataset_conversion'


class BaseExportAction(BaseAction[P]):
    """An export action.

    Simple mode: override :meth:`execute`. Step mode: override :meth:`setup_steps`; when it
    registers any step, the steps run (through an :class:`Orchestrator`) instead of
    ``execute()``, with progress from their weights and reverse rollback on failure.
    """

    category: ClassVar[PluginCategory] = PluginCategory.EXPORT
    progress: ClassVar[Any] = ExportProgressCategories
    #: Category of the overall step-mode progress (a percentage).
    step_progress_category: ClassVar[str] = ExportProgressCategories.DATASET_CONVERSION

    def get_filtered_results(self, filters: dict[str, Any]) -> tuple[Any, int]:
        """Fetch the data to export: ``(results_iterator, total_count)``. Override this."""
        raise NotImplementedError(
            f'{type(self).__name__} must override get_filtered_results(filters), '
            'e.g. return self.client.get_assignments(filters)'
        )

    def setup_steps(self, registry: StepRegistry[ExportContext]) -> None:
        """Register workflow steps. Registering none keeps simple mode."""

    def create_context(self) -> ExportContext:
        """Build the context the steps share. Override to add state.

        Params are dumped in JSON mode: enum members become their plain values, as they would
        arrive from the CLI or the platform.
        """
        params_dict = self.params.model_dump(mode='json')
        return ExportContext(runtime_ctx=self.ctx, params=params_dict)

    def run(self) -> Any:
        registry: StepRegistry[ExportContext] = StepRegistry()
        self.setup_steps(registry)
        if not len(registry):
            return self.execute()
        self._step_names = [step.name for step in registry.get_steps()]
        context = self.create_context()
        category = self.step_progress_category

        def report(fraction: float) -> None:
            self.set_progress(round(fraction * 100, 2), 100, category)

        Orchestrator(registry, context, report=report).run()
        self.ctx.logger.flush_progress()
        return self.build_result(context)

    def build_result(self, context: ExportContext) -> dict[str, Any]:
        """The step-mode result: a JSON-friendly summary of the context."""
        names = getattr(self, '_step_names', [])
        return {
            'success': True,
            'output_path': context.output_path,
            'total_count': context.total_count,
            'exported_count': context.exported_count,
            'errors': list(context.errors),
            'steps': [
                {'name': name, 'success': r.success, 'skipped': r.skipped}
                for name, r in zip(names, context.step_results, strict=False)
            ],
        }

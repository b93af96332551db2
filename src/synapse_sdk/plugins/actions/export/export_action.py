"""``ExportAction``: runs a template exporter (``entrypoint``) as a step workflow.

initialize -> fetch_results -> prepare -> convert_and_save -> finalize

``initialize`` checks everything before anything is created (storage exists, the filter passes
the target handler, names are safe) and makes a staging directory beside the final one.
``fetch_results`` calls the action's ``get_filtered_results`` (override it to fetch from
elsewhere). ``finalize`` publishes the staging directory atomically to
``<storage root>/<path>/<name>`` (``name(1)`` ... when taken). Any failure rolls back: the
staging directory is removed and nothing is left at the final path, also when a step a plugin
registered after ``finalize`` fails (the publish is withdrawn).
"""

from __future__ import annotations

import os
import shutil
import uuid
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

from synapse_sdk.clients.base import ClientBase
from synapse_sdk.errors import ExportError, NotFoundError, ParamsError, StepError
from synapse_sdk.plugins.actions.export.action import BaseExportAction
from synapse_sdk.plugins.actions.export.context import ExportContext
from synapse_sdk.plugins.actions.export.exporter import BaseExporter
from synapse_sdk.plugins.actions.export.handlers import ExportTargetHandler, TargetHandlerFactory
from synapse_sdk.plugins.actions.export.models import ExportParams
from synapse_sdk.plugins.actions.export.pipeline import ItemSource, refuse_media
from synapse_sdk.plugins.steps import BaseStep, StepRegistry, StepResult
from synapse_sdk.storage import StorageLocation, open_storage
from synapse_sdk.storage.paths import STAGING_PREFIX

#: Error lines the result lists at most (every one is in ``error_file_list.json``).
MAX_RESULT_ERRORS = 20


class ExportState:
    """What the steps of one ``ExportAction`` run hand each other (kept on the context)."""

    def __init__(self) -> None:
        self.location: StorageLocation | None = None
        self.staging: Path | None = None
        self.handler: ExportTargetHandler | None = None
        self.filters: dict[str, Any] = {}
        self.project: dict[str, Any] | None = None
        self.exporter: BaseExporter | None = None
        self.summary: dict[str, Any] = {}


def _state(context: ExportContext) -> ExportState:
    state = getattr(context, 'export_state', None)
    if state is None:
        state = ExportState()
        context.export_state = state  # type: ignore[attr-defined]
    return state


class _ActionStep(BaseStep[ExportContext]):
    def __init__(self, action: ExportAction) -> None:
        self.action = action


class InitializeStep(_ActionStep):
    """Check storage, target, filter, project and exporter options; create the staging dir.

    Everything that can be wrong with the params is found here, before anything is created.
    """

    name = 'initialize'
    progress_weight = 0.05

    def execute(self, context: ExportContext) -> StepResult:
        state = _state(context)
        params = context.params
        client = context.client
        try:
            storage = client.get_storage(params['storage'])
        except NotFoundError as exc:
            raise ParamsError(
                'Invalid params', [('storage', f'no storage with id {params["storage"]}')]
            ) from exc
        state.location = open_storage(storage)
        state.handler = self.action.target_handler
        state.filters = self._filters(state.handler, params.get('filter'), client)
        state.project = self._project(client, state.handler, state.filters)
        self.action.entrypoint.check_params(params, state.project)
        self.before_plan(state)
        # Samples and splits of the whole selection; refuses an empty one (selection.py).
        state.handler.plan(client, state.filters, params, state.project)
        self.after_plan(state)
        state.staging = self.create_staging(state, params)
        return StepResult(rollback_data={'staging': str(state.staging)})

    def before_plan(self, state: ExportState) -> None:
        """Called with the checked filters, before the selection is planned (a sharded run
        starts work on its workers here)."""

    def after_plan(self, state: ExportState) -> None:
        """Called once the selection is planned (a sharded run tells its workers so)."""

    def create_staging(self, state: ExportState, params: dict[str, Any]) -> Path:
        """The staging directory the export is written into (a resumed run adopts the one
        its interrupted run left, see ``shards.py``)."""
        assert state.location is not None
        return state.location.staging_dir(params.get('path') or '', params['name'])

    @staticmethod
    def _filters(handler: ExportTargetHandler, value: Any, client: Any) -> dict[str, Any]:
        """The handler's ``validate_filter``; any value error it raises is bad input."""
        try:
            return handler.validate_filter(dict(value or {}), client)
        except ParamsError:
            raise
        except (ValueError, TypeError, LookupError) as exc:
            raise ParamsError(
                'Invalid filter', [('filter', str(exc) or type(exc).__name__)]
            ) from exc

    @staticmethod
    def _project(
        client: ClientBase, handler: ExportTargetHandler, filters: dict[str, Any]
    ) -> dict[str, Any] | None:
        try:
            project_id = handler.project_id(client, filters)
        except NotFoundError as exc:
            raise ParamsError('Invalid filter', [('filter', str(exc))]) from exc
        if project_id is None:
            return None
        try:
            return dict(client.get_project(project_id))
        except NotFoundError as exc:
            raise ParamsError(
                'Invalid filter', [('filter.project', f'no project with id {project_id}')]
            ) from exc

    def rollback(self, context: ExportContext, result: StepResult) -> None:
        state = _state(context)
        if state.location is not None and state.staging is not None:
            state.location.discard(state.staging)


class FetchResultsStep(_ActionStep):
    """The records to export, from the action's ``get_filtered_results``."""

    name = 'fetch_results'
    progress_weight = 0.05

    def execute(self, context: ExportContext) -> StepResult:
        state = _state(context)
        context.results, total = self.action.get_filtered_results(state.filters)
        context.total_count = int(total or 0)
        context.log_message(f'{context.total_count} {context.params["target"]} record(s) to export')
        return StepResult(data={'total_count': context.total_count})


class PrepareStep(_ActionStep):
    """Build the exporter named by the action's ``entrypoint`` over the records' items."""

    name = 'prepare'
    progress_weight = 0.0

    def execute(self, context: ExportContext) -> StepResult:
        state = _state(context)
        assert state.handler is not None and state.staging is not None
        items = ItemSource(
            context.results or [],
            state.handler.get_export_item,
            refuse_media(self.action.annotation_types),
        )
        params = dict(context.params)
        params.update(count=context.total_count, project=state.project, filter=state.filters)
        entrypoint = self.action.entrypoint
        state.exporter = entrypoint(context.runtime_ctx, items, state.staging, **params)
        if state.handler.selection is not None:
            state.exporter.report.extra['selection'] = state.handler.selection.summary()
        return StepResult()


class ConvertAndSaveStep(BaseStep[ExportContext]):
    """The item loop: convert and save each item, download originals in parallel."""

    name = 'convert_and_save'
    progress_weight = 0.85

    def execute(self, context: ExportContext) -> StepResult:
        state = _state(context)
        assert state.exporter is not None
        state.summary = state.exporter.export(on_progress=context.set_progress)
        context.exported_count = state.summary['exported_count']
        for error in state.summary['errors'][:MAX_RESULT_ERRORS]:
            what = 'Item' if error['kind'] == 'data_file' else 'Original file of item'
            context.errors.append(f'{what} {error["id"]} ({error["file"]}): {error["reason"]}')
        return StepResult(data={k: v for k, v in state.summary.items() if k != 'errors'})


class FinalizeStep(BaseStep[ExportContext]):
    """Publish the staging directory atomically; withdrawn again if a later step fails."""

    name = 'finalize'
    progress_weight = 0.05

    def execute(self, context: ExportContext) -> StepResult:
        state = _state(context)
        assert state.location is not None and state.staging is not None
        params = context.params
        context.output_path = state.location.publish(
            state.staging, params.get('path') or '', params['name']
        )
        state.staging = None  # published: nothing left to discard
        return StepResult(
            data={'output_path': context.output_path},
            rollback_data={'published': context.output_path},
        )

    def rollback(self, context: ExportContext, result: StepResult) -> None:
        published = result.rollback_data.get('published')
        location = _state(context).location
        if published and location is not None:
            withdraw(location, str(published))
            context.output_path = None


def withdraw(location: StorageLocation, url: str) -> None:
    """Remove a published export. Locally it is renamed out of sight first (atomic), so the
    final path never shows a half-deleted export."""
    if location.is_local:
        final = Path(url)
        hidden = final.with_name(f'{STAGING_PREFIX}{uuid.uuid4().hex}')
        os.rename(final, hidden)
        shutil.rmtree(hidden)
        return
    location.fs.rm(url.split('://', 1)[-1], recursive=True)


class ExportAction(BaseExportAction[ExportParams]):
    """Export with a template exporter; subclasses name it in ``entrypoint``."""

    action_name: ClassVar[str] = 'export'
    params_model = ExportParams
    # Items report under dataset_conversion; the workflow as a whole under its own category.
    step_progress_category: ClassVar[str] = 'export'

    def run(self) -> Any:
        try:
            return super().run()
        except StepError as exc:
            if isinstance(exc.__cause__, ParamsError):  # bad input found while initializing
                raise exc.__cause__ from None
            raise

    @property
    def entrypoint(self) -> type[BaseExporter]:
        """The exporter class to run. Override this."""
        return BaseExporter

    @cached_property
    def target_handler(self) -> ExportTargetHandler:
        """The handler of ``params.target`` (fetches records, turns them into items)."""
        return TargetHandlerFactory.get_handler(self._param('target'))

    def get_filtered_results(self, filters: dict[str, Any]) -> tuple[Any, int]:
        """``(records, total count)`` for the validated ``filters``: the target handler's
        ``get_results``. Override to fetch the records from elsewhere."""
        return self.target_handler.get_results(self.client, filters)

    def setup_steps(self, registry: StepRegistry[ExportContext]) -> None:
        entrypoint = self.entrypoint
        if not (isinstance(entrypoint, type) and issubclass(entrypoint, BaseExporter)):
            raise ExportError(f'{type(self).__name__}.entrypoint must be a BaseExporter subclass')
        registry.register(InitializeStep(self))
        registry.register(FetchResultsStep(self))
        registry.register(PrepareStep(self))
        registry.register(ConvertAndSaveStep())
        registry.register(FinalizeStep())

    def build_result(self, context: ExportContext) -> dict[str, Any]:
        result = super().build_result(context)
        summary = _state(context).summary
        result['total_count'] = summary.get('total_count', context.total_count)
        result['expected_count'] = summary.get('expected_count', context.total_count)
        result['failed_count'] = summary.get('failed_count', 0)
        result['failed_original_count'] = summary.get('failed_original_count', 0)
        result['original_file_metrics'] = summary.get('original_file_metrics')
        result['data_file_metrics'] = summary.get('data_file_metrics')
        for key in ('skipped', 'converted'):
            result[key] = dict(summary.get(key) or {})
        result['clamped'] = summary.get('clamped', 0)
        result['warnings'] = list(summary.get('warnings') or [])
        result['errors'] = result['errors'][:MAX_RESULT_ERRORS]
        handler = _state(context).handler
        plan = handler.selection if handler is not None else None
        if plan is not None:  # what was selected, and how (selection.py)
            result['selection'] = plan.summary()
            result['warnings'] = [*plan.warnings, *result['warnings']]
        return result

    def _param(self, name: str) -> Any:
        params = self.params
        return params.get(name) if isinstance(params, dict) else getattr(params, name)

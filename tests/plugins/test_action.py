"""BaseAction / BaseExportAction: params validation, simple and step mode, progress."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field

from synapse_sdk.errors import ParamsError, StepError
from synapse_sdk.loggers import MemoryLogger
from synapse_sdk.plugins.action import BaseAction
from synapse_sdk.plugins.actions.export import BaseExportAction, ExportContext
from synapse_sdk.plugins.context import RuntimeContext
from synapse_sdk.plugins.enums import PluginCategory
from synapse_sdk.plugins.steps import BaseStep, StepRegistry, StepResult

RECORDS = [{'id': i, 'data': {'annotations': []}} for i in range(1, 8)]


class Params(BaseModel):
    project_id: int = Field(..., description='Project to export')
    output_format: str = 'coco'
    limit: int = Field(10, ge=1)


class ListExport(BaseExportAction[Params]):
    """Simple mode over an in-memory source, as the spec suggests for non-backend data."""

    action_name = 'list_export'

    def get_filtered_results(self, filters: dict) -> tuple[Any, int]:
        rows = [r for r in RECORDS if r['id'] <= self.params.limit]
        return iter(rows), len(rows)

    def execute(self) -> dict[str, Any]:
        results, total = self.get_filtered_results({'project': self.params.project_id})
        self.set_progress(0, total, self.progress.DATASET_CONVERSION)
        ids = []
        for i, item in enumerate(results, 1):
            ids.append(item['id'])
            self.set_progress(i, total, self.progress.DATASET_CONVERSION)
        return {'ids': ids}


def ctx(logger: MemoryLogger | None = None, client: Any = None) -> RuntimeContext:
    return RuntimeContext(logger=logger or MemoryLogger(), client=client)


def test_params_model_is_inferred_and_category_is_export():
    assert ListExport.params_model is Params
    assert ListExport.category is PluginCategory.EXPORT
    assert ListExport.progress.DATASET_CONVERSION == 'dataset_conversion'


def test_simple_mode_runs_execute_and_reports_progress():
    logger = MemoryLogger()
    result = ListExport.dispatch({'project_id': 1, 'limit': 3}, ctx(logger))
    assert result == {'ids': [1, 2, 3]}
    progress = [(r['current'], r['total']) for r in logger.of_type('progress')]
    assert progress == [(0, 3), (1, 3), (2, 3), (3, 3)]
    assert {r['category'] for r in logger.of_type('progress')} == {'dataset_conversion'}


def test_bad_params_name_every_field_before_anything_runs():
    ran = []

    class Spy(ListExport):
        def execute(self):
            ran.append(True)
            return {}

    with pytest.raises(ParamsError) as info:
        Spy.dispatch({'project_id': 'abc', 'limit': 0, 'colour': 'red'}, ctx())
    fields = [f for f, _ in info.value.errors]
    assert fields == ['project_id', 'limit']  # the model's default config ignores 'colour'
    assert 'project_id' in str(info.value)
    assert ran == []


def test_unknown_params_follow_the_models_own_config():
    """A plugin's model ignores extra keys as pydantic does, unless it forbids them."""
    assert ListExport.dispatch({'project_id': 1, 'limit': 2, 'colour': 'red'}, ctx()) == {
        'ids': [1, 2]
    }

    class Strict(Params):
        model_config = ConfigDict(extra='forbid')

    class StrictExport(ListExport):
        params_model = Strict

    with pytest.raises(ParamsError) as info:
        StrictExport.dispatch({'project_id': 1, 'colour': 'red'}, ctx())
    assert [f for f, _ in info.value.errors] == ['colour']


def test_a_subclass_keeps_its_parents_explicit_params_model():
    class Other(BaseModel):
        project_id: int

    class Parent(ListExport):
        params_model = Other

    class Child(Parent):
        pass

    assert Child.params_model is Other


def test_missing_required_field_is_named():
    with pytest.raises(ParamsError, match='project_id: Field required'):
        ListExport.dispatch({}, ctx())


def test_extra_allowed_when_model_says_so():
    class Loose(BaseModel):
        model_config = ConfigDict(extra='allow')
        project_id: int

    class LooseAction(BaseAction[Loose]):
        def execute(self):
            return self.params.model_dump()

    assert LooseAction.dispatch({'project_id': 1, 'x': 2}, ctx()) == {'project_id': 1, 'x': 2}


def test_client_property_raises_runtime_error_without_client():
    action = ListExport(Params(project_id=1), ctx())
    with pytest.raises(RuntimeError, match='No client'):
        _ = action.client


def test_default_get_filtered_results_explains_what_to_override():
    class NoSource(BaseExportAction[Params]):
        def execute(self):
            return self.get_filtered_results({})

    with pytest.raises(NotImplementedError, match='get_filtered_results'):
        NoSource.dispatch({'project_id': 1}, ctx())


class Fetch(BaseStep[ExportContext]):
    name = 'fetch'
    progress_weight = 1.0

    def execute(self, context: ExportContext) -> StepResult:
        context.results = [r for r in RECORDS if r['id'] <= context.params['limit']]
        context.total_count = len(context.results)
        return StepResult()


class Convert(BaseStep[ExportContext]):
    name = 'convert'
    progress_weight = 3.0

    def execute(self, context: ExportContext) -> StepResult:
        for i, _item in enumerate(context.results or [], 1):
            context.exported_count = i
            context.set_progress(i, context.total_count)
        return StepResult(data={'n': context.exported_count})


class Save(BaseStep[ExportContext]):
    name = 'save'
    progress_weight = 1.0

    def __init__(self, fail: bool = False, journal: list[str] | None = None):
        self.fail = fail
        self.journal = journal if journal is not None else []

    def execute(self, context: ExportContext) -> StepResult:
        if self.fail:
            raise OSError('disk full')
        context.output_path = '/tmp/out.json'
        return StepResult()

    def rollback(self, context: ExportContext, result: StepResult) -> None:
        self.journal.append('save')


def test_step_mode_takes_precedence_and_reports_weighted_progress():
    class Stepped(ListExport):
        def setup_steps(self, registry: StepRegistry[ExportContext]) -> None:
            registry.register(Fetch())
            registry.register(Convert())
            registry.register(Save())

    logger = MemoryLogger()
    result = Stepped.dispatch({'project_id': 1, 'limit': 4}, ctx(logger))
    assert result['success'] is True
    assert result['output_path'] == '/tmp/out.json'
    assert (result['total_count'], result['exported_count']) == (4, 4)
    assert [s['name'] for s in result['steps']] == ['fetch', 'convert', 'save']
    values = [r['current'] for r in logger.of_type('progress')]
    assert values == [20.0, 35.0, 50.0, 65.0, 80.0, 100.0]


def test_step_mode_failure_rolls_back_and_raises_step_error():
    journal: list[str] = []

    class Failing(ListExport):
        def setup_steps(self, registry):
            registry.register(Fetch())
            registry.register(Save(fail=True, journal=journal))

    with pytest.raises(StepError) as info:
        Failing.dispatch({'project_id': 1}, ctx())
    assert info.value.step == 'save' and 'disk full' in str(info.value)
    assert journal == ['save']


def test_create_context_carries_params_and_runtime():
    runtime = ctx()
    action = ListExport(Params(project_id=5), runtime)
    context = action.create_context()
    assert context.params == {'project_id': 5, 'output_format': 'coco', 'limit': 10}
    assert context.runtime_ctx is runtime
    with pytest.raises(RuntimeError, match='No client'):
        _ = context.client

"""Every spec code block that defines an action or step runs unchanged against the SDK.

The blocks are read from ``tests/data/spec/export-actions.md`` (a copy of the user's spec; the
test also checks it still matches ``../shared/spec`` when that is present) and executed as
written, then the actions are dispatched with the embedded backend's client in the context.
"""

from __future__ import annotations

import json
import re
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from synapse_sdk.loggers import MemoryLogger
from synapse_sdk.plugins.context import RuntimeContext

SPEC = Path(__file__).parent / 'data' / 'spec' / 'export-actions.md'
SHARED = Path(__file__).resolve().parents[2] / 'shared' / 'spec' / 'export-actions.md'
BLOCK = re.compile(r'```python filename="([^"]+)"\n(.*?)```', re.S)


def blocks() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, code in BLOCK.findall(SPEC.read_text(encoding='utf-8')):
        out.setdefault(name, []).append(code)
    return out


def run_block(filename: str, namespace: dict[str, Any] | None = None) -> dict[str, Any]:
    """Execute a block as the module its filename names (registered, like an import)."""
    (code,) = blocks()[filename]
    name = 'spec_' + re.sub(r'\W', '_', filename)
    module = types.ModuleType(name)
    module.__dict__.update(namespace or {})
    module.__dict__['__name__'] = name
    sys.modules[name] = module
    exec(compile(code, filename, 'exec'), module.__dict__)
    return module.__dict__


def test_vendored_spec_is_current():
    if not SHARED.exists():
        pytest.skip('shared/spec is not beside this checkout')
    assert SPEC.read_text(encoding='utf-8') == SHARED.read_text(encoding='utf-8')


def test_documented_modules_define_what_the_spec_shows():
    ns = run_block('synapse_sdk/plugins/steps/base.py')
    from synapse_sdk.plugins.steps import StepResult

    assert [f for f in ns['StepResult'].__dataclass_fields__] == list(
        StepResult.__dataclass_fields__
    )
    from synapse_sdk.plugins.actions.export import ExportContext

    fields = list(ExportContext.__dataclass_fields__)
    assert fields == [
        'runtime_ctx', 'step_results', 'errors', 'current_step',
        'params', 'results', 'total_count', 'exported_count', 'output_path',
    ]  # fmt: skip
    run_block('synapse_sdk/plugins/actions/export/context.py')  # imports resolve


def ctx(client: Any) -> RuntimeContext:
    return RuntimeContext(logger=MemoryLogger(), client=client)


def test_simple_mode_example(local_client):
    ns = run_block('plugins/export/simple_exporter.py')
    expected = local_client.count_assignments({'project': 1})
    result = ns['SimpleExportAction'].dispatch({'project_id': 1}, ctx(local_client))
    assert result['format'] == 'coco'
    assert result['exported_count'] == expected > 0
    assert {r['id'] for r in result['data']} == {
        a['id'] for a in local_client.get_assignments_stream({'project': 1})
    }


def test_step_mode_example_runs_unchanged(local_client):
    ns = run_block('plugins/export/simple_exporter.py')
    ns = run_block('plugins/export/step_exporter.py', ns)
    # FetchDataStep reads params["filters"], which ExportParams lacks: it lists every
    # assignment, which the client allows (exports themselves always require a project).
    result = ns['StepBasedExportAction'].dispatch({'project_id': 1}, ctx(local_client))
    assert [s['name'] for s in result['steps']] == ['fetch_data', 'convert_format', 'save_output']
    assert result['exported_count'] == result['total_count'] == local_client.count_assignments({})
    assert result['output_path'] == '/tmp/export_output.json'


def test_step_mode_example_with_filters(local_client):
    ns = run_block('plugins/export/simple_exporter.py')
    ns = run_block('plugins/export/step_exporter.py', ns)
    from pydantic import BaseModel

    class WithFilters(BaseModel):
        project_id: int
        filters: dict[str, Any] = {}

    action_cls = type('StepAction', (ns['StepBasedExportAction'],), {'params_model': WithFilters})
    result = action_cls.dispatch({'project_id': 1, 'filters': {'project': 1}}, ctx(local_client))
    assert result['exported_count'] == local_client.count_assignments({'project': 1})


def test_coco_example(local_client):
    ns = run_block('plugins/export/coco_exporter.py')
    result = ns['CocoExportAction'].dispatch({'project_id': 1}, ctx(local_client))
    total = local_client.count_assignments({'project': 1})
    assert result['exported_count'] == total
    coco = result['data']
    assert len(coco['images']) == total
    assert result['annotation_count'] == len(coco['annotations']) > 0


def test_multi_format_example_writes_output(local_client, tmp_path):
    ns = run_block('plugins/export/multi_format_exporter.py')
    out = tmp_path / 'export'
    result = ns['MultiFormatExportAction'].dispatch(
        {'project_id': 1, 'output_format': 'coco', 'output_dir': str(out)}, ctx(local_client)
    )
    assert result['output_path'] == str(out / 'annotations.json')
    assert json.loads((out / 'annotations.json').read_text())['format'] == 'coco'
    assert result['total_count'] == local_client.count_assignments({'project': 1})


def test_custom_exporter_and_handler_examples_define_classes():
    ns = run_block('plugins/export/custom_exporter.py')
    assert ns['MyExportAction'].action_name == 'my_export'
    from synapse_sdk.plugins.actions.export import ExportTargetHandler

    example = next(c for c in blocks()['example.py'] if 'CustomTargetHandler' in c)
    handler_ns: dict[str, Any] = {'Any': Any, 'Generator': object}
    exec(compile(example, 'example.py', 'exec'), handler_ns)
    assert issubclass(handler_ns['CustomTargetHandler'], ExportTargetHandler)


def test_handler_factory_example():
    example = blocks()['synapse_sdk/plugins/actions/export/handlers.py'][0]
    ns: dict[str, Any] = {}
    exec(compile(example, 'handlers.py', 'exec'), ns)
    assert type(ns['handler']).__name__ == 'TaskExportTargetHandler'


def test_metrics_and_status_examples(capsys):
    for code in blocks()['example.py']:
        if code.lstrip().startswith('from synapse_sdk.plugins.actions.export import MetricsRecord'):
            # ``self.run`` lines need an exporter: give the block one.
            from synapse_sdk.plugins.actions.export import ExporterRunAdapter

            run = ExporterRunAdapter(MemoryLogger())
            exec(compile(code, 'example.py', 'exec'), {'self': type('S', (), {'run': run})()})
            assert "{'stand_by': 99, 'success': 1, 'failed': 0}" in capsys.readouterr().out
        if 'ExportStatus.SUCCESS   #' in code:
            exec(compile(code, 'example.py', 'exec'), {})

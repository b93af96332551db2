"""Actions that cannot be sharded (simple mode, their own step workflow) run as one task on a
worker: the same result, the same errors and exit codes, their progress and messages relayed."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from synapse_sdk.cli.main import app

PLUGIN = """
import os

from pydantic import BaseModel

from synapse_sdk.errors import ParamsError
from synapse_sdk.plugins.action import BaseAction
from synapse_sdk.plugins.actions.export import BaseExportAction, ExportContext
from synapse_sdk.plugins.steps import BaseStep, StepResult


class HelloParams(BaseModel):
    name: str
    fail: bool = False


class HelloAction(BaseAction[HelloParams]):
    action_name = 'hello'

    def execute(self):
        self.set_progress(1, 2, 'hello')
        self.log_message(f'hello from the plugin, {self.params.name}')
        if self.params.fail:
            raise ParamsError('Invalid params', [('name', 'refused by the plugin')])
        self.set_progress(2, 2, 'hello')
        return {'hello': self.params.name, 'tasks': self.client.count_tasks({'project': 1}),
                'pid': os.getpid()}


class Count(BaseStep[ExportContext]):
    name = 'count'
    progress_weight = 1.0

    def execute(self, context):
        context.total_count = context.client.count_tasks({'project': 1})
        context.exported_count = context.total_count
        return StepResult()


class StepsAction(BaseExportAction[HelloParams]):
    action_name = 'steps'

    def setup_steps(self, registry):
        registry.register(Count())
"""

CONFIG = """
name: Hello
code: hello
version: 0.1.0
category: export
actions:
  hello:
    entrypoint: hello_plugin.HelloAction
  steps:
    entrypoint: hello_plugin.StepsAction
"""


def write_plugin(parent: Path) -> Path:
    """The plugin above, as a folder ``hello`` in ``parent``."""
    root = parent / 'hello'
    root.mkdir()
    (root / 'config.yaml').write_text(textwrap.dedent(CONFIG))
    (root / 'hello_plugin.py').write_text(PLUGIN)
    return root


@pytest.fixture
def plugin(tmp_path: Path) -> Path:
    return write_plugin(tmp_path)


def run(plugin: Path, action: str, params: dict, *extra: str):
    args = ['plugin', 'run', action, '--plugin', str(plugin), '--params', orjson.dumps(params)]
    return CliRunner().invoke(app, [*[a if isinstance(a, str) else a.decode() for a in args],
                                    *extra])  # fmt: skip


@pytest.mark.parametrize('action', ['hello', 'steps'])
def test_an_action_that_cannot_be_sharded_runs_whole_on_a_worker(synapse_home, plugin, action):
    here = run(plugin, action, {'name': 'ada'})
    assert here.exit_code == 0, here.output
    there = run(plugin, action, {'name': 'ada'}, '--workers', '2')
    assert there.exit_code == 0, there.output
    a, b = orjson.loads(here.stdout), orjson.loads(there.stdout)
    if action == 'hello':
        assert a.pop('pid') == os.getpid() and b.pop('pid') != os.getpid()  # ran in a worker
        assert 'hello from the plugin, ada' in there.stderr  # relayed from the worker
    assert a == b


def test_its_errors_come_back_as_they_would_locally(synapse_home, plugin):
    here = run(plugin, 'hello', {'name': 'ada', 'fail': True})
    there = run(plugin, 'hello', {'name': 'ada', 'fail': True}, '--workers', '2')
    assert here.exit_code == there.exit_code == 2
    assert 'refused by the plugin' in here.stderr and 'refused by the plugin' in there.stderr


def test_resume_refuses_an_action_that_is_not_sharded(synapse_home, plugin):
    out = run(plugin, 'hello', {'name': 'ada'}, '--resume')
    assert out.exit_code == 2
    assert '--resume' in out.stderr and 'only sharded exports resume' in out.stderr

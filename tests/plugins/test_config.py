"""config.yaml validation, plugin discovery and entrypoint import errors."""

from __future__ import annotations

import textwrap

import pytest

from synapse_sdk.errors import PluginError
from synapse_sdk.plugins.discovery import builtin_codes, load_plugin
from synapse_sdk.plugins.enums import PluginCategory

GOOD = """
name: my_export_plugin
code: my_export_plugin
version: 1.0.0
category: export

actions:
  export:
    entrypoint: plugin.export.MyExportAction
    annotation_types:
      - image
      - video
"""

ACTION = """
from synapse_sdk.plugins.actions.export import BaseExporter, ExportAction

class MyExporter(BaseExporter):
    pass

class MyExportAction(ExportAction):
    action_name = "my_export"

    @property
    def entrypoint(self):
        return MyExporter
"""


def write_plugin(root, config=GOOD, module=ACTION):
    (root / 'plugin').mkdir(parents=True)
    (root / 'config.yaml').write_text(textwrap.dedent(config))
    (root / 'plugin' / '__init__.py').write_text('')
    (root / 'plugin' / 'export.py').write_text(module)
    return root


def test_spec_config_loads_and_entrypoint_imports(tmp_path):
    plugin = load_plugin(write_plugin(tmp_path / 'p'))
    assert plugin.config.category is PluginCategory.EXPORT
    assert plugin.config.actions['export'].annotation_types == ['image', 'video']
    cls = plugin.get_action('export')
    assert cls.__name__ == 'MyExportAction' and cls.action_name == 'my_export'


def test_two_plugins_with_the_same_package_name_do_not_mix(tmp_path):
    first = load_plugin(write_plugin(tmp_path / 'a')).get_action('export')
    other = ACTION.replace('my_export"', 'other_export"')
    second = load_plugin(write_plugin(tmp_path / 'b', module=other)).get_action('export')
    assert (first.action_name, second.action_name) == ('my_export', 'other_export')


@pytest.mark.parametrize(
    ('config', 'message'),
    [
        (GOOD.replace('category: export', 'category: exporting'), 'category'),
        (GOOD.replace('code: my_export_plugin', 'code: "my plugin"'), 'code'),
        (GOOD.replace('plugin.export.MyExportAction', 'MyExportAction'), 'module.Class'),
        ('name: x\ncode: x\nversion: 1\ncategory: export\nactions: {}\n', 'actions'),
        ('- just\n- a list\n', 'must be a mapping'),
        ('name: [unclosed\n', 'not valid YAML'),
    ],
)
def test_bad_configs_name_the_problem(tmp_path, config, message):
    root = write_plugin(tmp_path / 'p', config=config)
    with pytest.raises(PluginError, match=message) as info:
        load_plugin(root)
    assert 'config.yaml' in str(info.value)


@pytest.mark.parametrize(
    ('module', 'action', 'message'),
    [
        (ACTION, 'import', "has no action 'import'"),
        ('import does_not_exist\n', 'export', 'does not import'),
        ('MyExportAction = 3\n', 'export', 'not a BaseAction subclass'),
    ],
)
def test_entrypoint_errors_name_plugin_and_problem(tmp_path, module, action, message):
    plugin = load_plugin(write_plugin(tmp_path / 'p', module=module))
    with pytest.raises(PluginError, match=message) as info:
        plugin.get_action(action)
    assert 'my_export_plugin' in str(info.value)


def test_builtin_codes_resolve_without_a_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert builtin_codes() == ['coco', 'csv', 'cvat', 'dm', 'labelme', 'parquet', 'voc', 'yolo']
    plugin = load_plugin('yolo')
    assert plugin.installed and plugin.get_action('export').__name__ == 'YoloExportAction'


def test_missing_plugin_lists_builtins(tmp_path):
    with pytest.raises(PluginError, match='coco, csv, cvat, dm, labelme, parquet, voc, yolo'):
        load_plugin(tmp_path / 'nothing')


def test_installed_plugins_register_through_entry_points(tmp_path, monkeypatch):
    """A pip-installed plugin (a dist-info with entry points) is found by its code."""
    package = tmp_path / 'site' / 'acme_export'
    package.mkdir(parents=True)
    (package / '__init__.py').write_text('')
    (package / 'config.yaml').write_text(
        textwrap.dedent(GOOD)
        .replace('my_export_plugin', 'acme')
        .replace('plugin.export.MyExportAction', 'acme_export.action.MyExportAction')
    )
    (package / 'action.py').write_text(ACTION)
    dist = tmp_path / 'site' / 'acme_export-1.0.dist-info'
    dist.mkdir()
    (dist / 'METADATA').write_text('Metadata-Version: 2.1\nName: acme-export\nVersion: 1.0\n')
    (dist / 'entry_points.txt').write_text('[synapse_sdk.plugins]\nacme = acme_export\n')
    monkeypatch.syspath_prepend(str(tmp_path / 'site'))
    monkeypatch.chdir(tmp_path)
    assert 'acme' in builtin_codes() and 'coco' in builtin_codes()
    plugin = load_plugin('acme')
    assert plugin.installed and plugin.root == package
    assert plugin.get_action('export').action_name == 'my_export'

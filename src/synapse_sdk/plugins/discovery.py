"""Finding plugins and their actions.

A plugin is a folder holding ``config.yaml``. It is found by path, or by code through the
``synapse_sdk.plugins`` entry-point group, where the built-in formats register too: the value
names a package whose folder holds the config. Codes are listed, and configs read, without
importing any plugin code; an action's entrypoint is imported only when it is run.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

from synapse_sdk.errors import PluginError
from synapse_sdk.plugins.action import BaseAction
from synapse_sdk.plugins.config import PluginConfig, load_config

BUILTIN_ROOT = Path(__file__).parent / 'builtin'


ENTRY_POINT_GROUP = 'synapse_sdk.plugins'


def registered_plugins() -> dict[str, Path]:
    """Plugin code -> folder, from entry points (and the built-ins' own folders)."""
    found = {p.parent.name: p.parent for p in BUILTIN_ROOT.glob('*/config.yaml')}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            spec = importlib.util.find_spec(entry.value)
        except (ImportError, ValueError):
            continue
        if spec is not None and spec.origin:
            found[entry.name] = Path(spec.origin).parent
    return found


def builtin_codes() -> list[str]:
    """Codes of every registered plugin (``coco``, ``yolo`` ...), without importing them."""
    return sorted(registered_plugins())


@dataclass
class Plugin:
    """A loaded plugin: where it lives, its config, and its actions by name."""

    root: Path
    config: PluginConfig
    installed: bool = False  # importable as it is (an entry point), no sys.path change

    def action_names(self) -> list[str]:
        return sorted(self.config.actions)

    def get_action(self, name: str) -> type[BaseAction]:
        """Import the action's entrypoint class. Errors name the plugin and the problem."""
        action = self.config.actions.get(name)
        if action is None:
            known = ', '.join(self.action_names())
            raise PluginError(
                f'Plugin {self.config.code!r} has no action {name!r} (actions: {known})'
            )
        module_name, _, class_name = action.entrypoint.rpartition('.')
        if not self.installed:
            self._prepare_import(module_name)
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise PluginError(
                f'Plugin {self.config.code!r}: entrypoint {action.entrypoint!r} does not import '
                f'({type(exc).__name__}: {exc})'
            ) from exc
        cls = getattr(module, class_name, None)
        if not (isinstance(cls, type) and issubclass(cls, BaseAction)):
            raise PluginError(
                f'Plugin {self.config.code!r}: {action.entrypoint!r} is not a BaseAction subclass'
            )
        return cls.configured(action.annotation_types)

    def _prepare_import(self, module_name: str) -> None:
        """Put the plugin folder first on sys.path and forget same-named modules of others."""
        root = str(self.root)
        if root in sys.path:
            sys.path.remove(root)
        sys.path.insert(0, root)
        top = module_name.split('.')[0]
        for name in [m for m in sys.modules if m == top or m.startswith(top + '.')]:
            file = getattr(sys.modules[name], '__file__', None) or ''
            if not file.startswith(root):
                del sys.modules[name]
        importlib.invalidate_caches()


def load_plugin(ref: str | Path | None = None) -> Plugin:
    """Load a plugin from a folder (default: the current directory) or a built-in code."""
    path = Path(ref) if ref is not None else Path.cwd()
    if (path / 'config.yaml').is_file():
        root = path.resolve()
        return Plugin(root=root, config=load_config(root / 'config.yaml'))
    registered = registered_plugins() if isinstance(ref, str) else {}
    if isinstance(ref, str) and ref in registered:
        root = registered[ref]
        return Plugin(root=root, config=load_config(root / 'config.yaml'), installed=True)
    where = f'{path}' if path.exists() else f'{path} (does not exist)'
    raise PluginError(
        f'No plugin at {where}: expected a folder with config.yaml or a built-in code '
        f'({", ".join(builtin_codes())})'
    )

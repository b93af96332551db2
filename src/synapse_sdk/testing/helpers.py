"""Helpers of the test kit: a seeded demo backend, one export run, a digest of a file tree.

None of these need pytest; the contract in :mod:`synapse_sdk.testing.contract` builds on them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synapse_sdk.clients import LocalClient
from synapse_sdk.loggers import MemoryLogger
from synapse_sdk.loggers.base import BaseLogger
from synapse_sdk.plugins.action import BaseAction
from synapse_sdk.plugins.context import RuntimeContext
from synapse_sdk.server.demo import create_demo
from synapse_sdk.server.store import Store

__all__ = [
    'DemoBackend',
    'default_filter',
    'read_tree_digest',
    'run_export',
    'seeded_home',
]


def seeded_home(path: str | os.PathLike[str], images: int = 8, seed: int = 0) -> dict[str, Any]:
    """Seed the demo project into a new ``$SYNAPSE_HOME`` at ``path``; return its ids.

    On a fresh home the project and the storage get id 1 and the first ground-truth version
    id 1 (``ids['project']``, ``ids['storage']``, ``ids['ground_truth_dataset_version']``).
    The storage is a ``file_system`` storage at ``<path>/storage``. The same ``images`` and
    ``seed`` give the same records and image bytes.
    """
    home = Path(path)
    if home.exists() and any(home.iterdir()):
        raise FileExistsError(f'{home} is not empty; seeded_home needs a fresh directory')
    return create_demo(home, seed=seed, images=images)


def default_filter(target: str, ids: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The filter that selects the whole demo project for ``target``.

    ``ids`` are what :func:`seeded_home` returned; without them, the ids of a fresh home.
    """
    ids = ids or {}
    if target == 'ground_truth':
        return {'ground_truth_dataset_version': ids.get('ground_truth_dataset_version', 1)}
    return {'project': ids.get('project', 1)}


def run_export(
    action_class: type[BaseAction],
    client: Any,
    *,
    logger: BaseLogger | None = None,
    **params: Any,
) -> dict[str, Any]:
    """Dispatch ``action_class`` with ``params`` on ``client``; return the action's result.

    Missing params default to an export of every task of project 1 to storage 1 at
    ``exports/export`` (``filter`` defaults from ``target``, see :func:`default_filter`).
    Pass a ``MemoryLogger`` as ``logger`` to inspect what the run logged.
    """
    params = {'name': 'export', 'storage': 1, 'path': 'exports', 'target': 'task', **params}
    params.setdefault('filter', default_filter(str(params['target'])))
    context = RuntimeContext(logger=logger if logger is not None else MemoryLogger(), client=client)
    result = action_class.dispatch(params, context)
    if not isinstance(result, dict):
        raise TypeError(f'{action_class.__name__} returned {type(result).__name__}, not a dict')
    return result


def read_tree_digest(path: str | os.PathLike[str]) -> dict[str, str]:
    """``{relative posix path: sha256 hex}`` of every file under ``path`` (sorted by path)."""
    root = Path(path)
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob('*'))
        if p.is_file()
    }


@dataclass
class DemoBackend:
    """A private seeded ``$SYNAPSE_HOME`` and a ``LocalClient`` on it (what the fixtures hand out).

    ``ids`` are the seeded ids (see :func:`seeded_home`); close the client with :meth:`close`.
    """

    home: Path
    ids: dict[str, Any]
    client: LocalClient = field(repr=False)

    @classmethod
    def create(cls, home: str | os.PathLike[str], images: int = 8, seed: int = 0) -> DemoBackend:
        """Seed a new home at ``home`` and open a client on it."""
        ids = seeded_home(home, images=images, seed=seed)
        return cls(Path(home), ids, LocalClient(home))

    @classmethod
    def copy_of(cls, template: DemoBackend, home: str | os.PathLike[str]) -> DemoBackend:
        """A copy of ``template``'s home at ``home`` whose storage points inside the copy."""
        dest = Path(home)
        shutil.copytree(template.home, dest)
        with Store(dest) as store:
            for storage in store.list_storages():
                if storage['provider'] == 'file_system':
                    location = Path(storage['configuration'].get('location', ''))
                    if location.is_relative_to(template.home):
                        moved = dest / location.relative_to(template.home)
                        store.update_storage(storage['id'], configuration={'location': str(moved)})
        return cls(dest, {**template.ids, 'home': str(dest)}, LocalClient(dest))

    @property
    def storage_root(self) -> Path:
        """The local directory of the seeded ``file_system`` storage."""
        storage = self.client.get_storage(self.ids['storage'])
        return Path(storage['configuration']['location'])

    def filter_for(self, target: str) -> dict[str, Any]:
        """The filter selecting the whole demo project for ``target``."""
        return default_filter(target, self.ids)

    def close(self) -> None:
        self.client.close()


_templates: dict[tuple[str, int, int], DemoBackend] = {}
_templates_lock = threading.Lock()


def demo_backend(
    cache_dir: str | os.PathLike[str], home: str | os.PathLike[str], images: int, seed: int
) -> DemoBackend:
    """A seeded backend at ``home``, copied from a template seeded once under ``cache_dir``.

    Templates are kept per process and per ``(cache_dir, images, seed)``: seed once, copy per
    test, so every test gets a private, writable home for the price of a directory copy.
    """
    key = (str(cache_dir), images, seed)
    with _templates_lock:
        template = _templates.get(key)
        if template is None:
            where = Path(cache_dir) / f'synapse-demo-{images}-{seed}-{uuid.uuid4().hex[:8]}'
            template = DemoBackend.create(where, images=images, seed=seed)
            template.close()
            _templates[key] = template
        return DemoBackend.copy_of(template, home)

"""Shared fixtures: a seeded ``$SYNAPSE_HOME``, both clients, and the server on 127.0.0.1.

The demo is generated once per session into a template directory and copied per test, so each
test gets a private, writable home for the price of a directory copy.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from synapse_sdk.clients import BackendClient, LocalClient
from synapse_sdk.server.app import serve_in_thread
from synapse_sdk.server.demo import create_demo
from synapse_sdk.server.faults import FaultPlan
from synapse_sdk.server.store import Store

DEMO_IMAGES = 12
DEMO_SEED = 0


@pytest.fixture(scope='session')
def _demo_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    home = tmp_path_factory.mktemp('synapse-template') / 'home'
    ids = create_demo(home, seed=DEMO_SEED, images=DEMO_IMAGES)
    return home, ids


@pytest.fixture
def demo_ids(_demo_template: tuple[Path, dict[str, Any]], synapse_home: Path) -> dict[str, Any]:
    """The ids ``create_demo`` returned for the seeded home (project 1, storage 1, ...)."""
    return {**_demo_template[1], 'home': str(synapse_home)}


@pytest.fixture
def synapse_home(
    _demo_template: tuple[Path, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A private ``$SYNAPSE_HOME`` seeded with the demo (12 images, seed 0).

    ``SYNAPSE_HOME`` points at it and ``SYNAPSE_HOST`` is unset, so ``default_client()`` is a
    ``LocalClient`` on it. Storage 1 is a ``file_system`` storage at ``<home>/storage``.
    """
    template, _ = _demo_template
    home = tmp_path / 'synapse-home'
    shutil.copytree(template, home)
    with Store(home) as store:
        for storage in store.list_storages():
            if storage['provider'] == 'file_system':
                store.update_storage(
                    storage['id'], configuration={'location': str(home / 'storage')}
                )
    monkeypatch.setenv('SYNAPSE_HOME', str(home))
    for var in ('SYNAPSE_HOST', 'SYNAPSE_ACCESS_TOKEN', 'SYNAPSE_TENANT'):
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture
def local_client(synapse_home: Path) -> Iterator[LocalClient]:
    """A ``LocalClient`` on ``synapse_home``."""
    client = LocalClient(synapse_home)
    yield client
    client.close()


@pytest.fixture
def live_server(synapse_home: Path) -> Iterator[str]:
    """The REST server on 127.0.0.1 (free port, background thread) serving ``synapse_home``;
    yields its base URL, e.g. ``http://127.0.0.1:54321/``."""
    with serve_in_thread(synapse_home) as url:
        yield url


@pytest.fixture
def http_client(live_server: str) -> Iterator[BackendClient]:
    """A ``BackendClient`` on ``live_server`` (short backoff so retry tests stay fast)."""
    client = BackendClient(live_server, retries=3, backoff=0.01, max_backoff=0.1)
    yield client
    client.close()


@pytest.fixture
def fault_plan() -> FaultPlan:
    """An empty fault plan for ``faulty_server``; a test adds the faults it wants."""
    return FaultPlan()


@pytest.fixture
def faulty_server(synapse_home: Path, fault_plan: FaultPlan) -> Iterator[str]:
    """The REST server on 127.0.0.1 serving ``synapse_home`` with ``fault_plan`` applied;
    yields its base URL."""
    with serve_in_thread(synapse_home, faults=fault_plan) as url:
        yield url


@pytest.fixture
def mount_tmpfs(tmp_path: Path) -> Iterator[Callable[[str, str], Path]]:
    """``mount_tmpfs(name, size)`` mounts a real tmpfs of ``size`` (``64k``, ``2m``) at
    ``tmp_path / name``, unmounted after the test; needs root, else the test is skipped with the
    reason."""
    mounts: list[Path] = []

    def mount(name: str, size: str) -> Path:
        path = tmp_path / name
        path.mkdir()
        done = subprocess.run(
            ['mount', '-t', 'tmpfs', '-o', f'size={size}', 'tmpfs', str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            pytest.skip(f'cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}')
        mounts.append(path)
        return path

    try:
        yield mount
    finally:
        for path in reversed(mounts):
            subprocess.run(['umount', '-l', str(path)], check=False)

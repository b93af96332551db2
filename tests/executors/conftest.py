"""What the executor test modules share: one seeded home, its client and two worker processes
per module (each module writes its own exports into its home).

Ray sessions in these tests stay on this machine's loopback address (127.0.0.1): Ray reads
the switch when it is imported, so it is set before any test module imports it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from synapse_sdk.clients import LocalClient
from synapse_sdk.plugins.executors.backends import ProcessBackend
from synapse_sdk.plugins.executors.run import PRELOAD

from .helpers import seed_home

os.environ.setdefault('RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER', '0')


@pytest.fixture(scope='module')
def home(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home seeded with several shards' worth of data (see :mod:`.helpers`), one per module."""
    home = tmp_path_factory.mktemp(request.module.__name__.rpartition('.')[2]) / 'home'
    seed_home(home)
    return home


@pytest.fixture(scope='module')
def client(home: Path) -> Iterator[LocalClient]:
    client = LocalClient(home)
    yield client
    client.close()


@pytest.fixture(scope='module')
def backend() -> Iterator[ProcessBackend]:
    """Two worker processes shared by the module's runs (each run would start its own)."""
    with ProcessBackend(2, preload=PRELOAD) as backend:
        yield backend

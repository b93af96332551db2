"""What the export's speed work must not change: what is imported, the collector's state after
an export, and that the fast lookups answer exactly as the plain ones."""

from __future__ import annotations

import gc
import subprocess
import sys
from datetime import UTC
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synapse_sdk.formats.split import parse_split
from synapse_sdk.loggers import NullLogger
from synapse_sdk.plugins.actions.export.collector import YOUNG_THRESHOLD, relax_collector
from synapse_sdk.plugins.actions.export.selection import SelectionRows, build_plan
from synapse_sdk.plugins.builtin.formats import YoloExportAction
from synapse_sdk.plugins.context import RuntimeContext
from synapse_sdk.server.store import Store

# -- imports -------------------------------------------------------------------------------------

#: Modules an export to a local directory, without originals, has no use for (each costs start-up
#: time every run pays: HTTP client, object storage, console UI, image decoding, the server).
NOT_IMPORTED = (
    'httpx',
    'fsspec',
    'tenacity',
    'rich',
    'PIL',
    'cv2',
    'uvicorn',
    'starlette',
    'typer',
    'synapse_sdk.server.app',
    'synapse_sdk.clients.backend',
)

_SCRIPT = """
import sys
from synapse_sdk.clients.local import LocalClient
from synapse_sdk.loggers import NullLogger
from synapse_sdk.plugins.builtin.formats import {action}
from synapse_sdk.plugins.context import RuntimeContext

client = LocalClient(sys.argv[1])
params = {{'name': 'lean', 'storage': 1, 'path': 'exports', 'target': 'task',
          'filter': {{'project': 1}}, 'save_original_file': False,
          'extra_params': {{'split': 'train=0.8,val=0.2'}}}}
result = {action}.dispatch(params, RuntimeContext(logger=NullLogger(), client=client))
assert result['exported_count'] > 0, result
client.close()
print(' '.join(sorted(m for m in {modules!r} if m in sys.modules)))
"""


@pytest.mark.parametrize('action', ['YoloExportAction', 'CsvExportAction', 'VocExportAction'])
def test_an_export_imports_only_what_it_uses(synapse_home: Path, action: str) -> None:
    script = _SCRIPT.format(action=action, modules=NOT_IMPORTED)
    proc = subprocess.run(
        [sys.executable, '-c', script, str(synapse_home)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == '', f'imported without need: {proc.stdout.strip()}'


def test_the_lazy_names_still_resolve() -> None:
    from synapse_sdk import clients, loggers, storage

    assert clients.BackendClient.__name__ == 'BackendClient'
    assert clients.LocalClient.__name__ == 'LocalClient'
    assert loggers.ConsoleLogger.__name__ == 'ConsoleLogger'
    assert storage.Downloader.__name__ == 'Downloader'
    assert storage.ObjectStorage.__name__ == 'ObjectStorage'
    assert {'BackendClient', 'LocalClient'} <= set(dir(clients))
    with pytest.raises(AttributeError, match='no attribute'):
        _ = storage.NoSuchThing  # type: ignore[attr-defined]


def test_a_local_storage_makes_its_filesystem_when_asked(tmp_path: Path) -> None:
    from synapse_sdk.storage import LocalStorage

    location = LocalStorage(tmp_path)
    assert location._fs is None
    (tmp_path / 'a.txt').write_text('x')
    assert location.fs.exists(str(tmp_path / 'a.txt'))


# -- the collector -------------------------------------------------------------------------------


@pytest.fixture
def thresholds() -> Any:
    before = gc.get_threshold()
    yield before
    gc.set_threshold(*before)


def test_the_collector_is_relaxed_for_the_loop_and_restored(thresholds: Any) -> None:
    gc.set_threshold(700, 10, 10)
    restore = relax_collector()
    assert gc.get_threshold() == (YOUNG_THRESHOLD, 10, 10)
    restore()
    assert gc.get_threshold() == (700, 10, 10)


def test_the_collector_is_never_tightened_nor_restored_over_a_change(thresholds: Any) -> None:
    gc.set_threshold(50_000, 5, 5)
    relax_collector()()
    assert gc.get_threshold() == (50_000, 5, 5)
    gc.set_threshold(0, 10, 10)  # passes turned off: left off
    relax_collector()()
    assert gc.get_threshold() == (0, 10, 10)
    gc.set_threshold(700, 10, 10)
    restore = relax_collector()
    gc.set_threshold(1_000, 10, 10)  # somebody else's choice meanwhile wins
    restore()
    assert gc.get_threshold() == (1_000, 10, 10)


def test_an_export_leaves_the_collector_as_it_found_it(local_client: Any, thresholds: Any) -> None:
    gc.set_threshold(700, 10, 10)
    params = {'name': 'gc', 'storage': 1, 'path': 'exports', 'target': 'task',
              'filter': {'project': 1}, 'save_original_file': False}  # fmt: skip
    result = YoloExportAction.dispatch(params, RuntimeContext(NullLogger(), local_client))
    assert result['exported_count'] > 0
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.isenabled()


def test_reading_a_page_keeps_the_collector_switch(synapse_home: Path) -> None:
    with Store(synapse_home) as store:
        query = store.query('task', {'project': 1})
        assert gc.isenabled()
        records, _ = store.page(query, str)
        assert records and gc.isenabled()
        gc.disable()
        try:
            store.page(query, str)
            assert not gc.isenabled()  # was off: stays off
        finally:
            gc.enable()


# -- selection lookups ---------------------------------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(
    units=st.lists(st.integers(1, 40), min_size=1, max_size=120),
    asks=st.lists(st.integers(-2, 130), max_size=60),
)
def test_plan_lookups_answer_as_a_dict_would(units: list[int], asks: list[int]) -> None:
    """The cursor over sorted keys gives the same answers as a plain mapping, whatever order
    the keys are asked in (in order, backwards, repeated, absent)."""
    rows = SelectionRows()
    for i, unit in enumerate(units):
        rows.add(i + 1, unit)
    plan = build_plan(rows, spec=parse_split('a=0.5,b=0.3,c=0.2'), seed=3)
    assert plan.splits is not None
    truth = {int(k): plan.split_names[int(s)] for k, s in zip(plan.keys, plan.splits, strict=True)}
    in_order = list(range(-1, len(units) + 3))
    for key in [*in_order, *asks, *reversed(in_order)]:
        assert plan.keeps(key) == (key in truth)
        assert plan.split_of(key) == truth.get(key)
    for odd in (True, False, '3', 3.0, None):
        assert not plan.keeps(odd)
    first = int(plan.keys[0])
    assert plan.keeps(np.int64(first)) and plan.split_of(np.int32(first)) == truth[first]


@given(st.datetimes(timezones=st.none() | st.just(UTC)))
@settings(max_examples=200, deadline=None)
def test_created_is_read_the_same_as_text_or_as_a_datetime(moment) -> None:
    """Planning reads ``created`` through a cache of its text: the text, with a ``Z`` or an
    offset or none, gives the same microseconds as the datetime itself, every time."""
    from synapse_sdk.plugins.actions.export.selection import _micros

    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    expected = int(aware.timestamp() * 1_000_000)
    text = moment.isoformat()
    assert _micros(moment) == expected
    assert _micros(text) == _micros(text) == expected
    if moment.tzinfo is not None:
        assert _micros(text.replace('+00:00', 'Z')) == expected


@pytest.mark.parametrize('value', [None, '', 'yesterday', 3, b'2024-01-01'])
def test_an_unreadable_created_ranks_as_time_zero(value: Any) -> None:
    from synapse_sdk.plugins.actions.export.selection import _micros

    assert _micros(value) == 0

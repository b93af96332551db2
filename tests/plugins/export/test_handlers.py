"""Target handlers and the selection plan: samples per data unit, splits per data unit, checks
that refuse a selection before anything is created. (The CLI runs are in test_handlers_cli.)"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synapse_sdk.clients import BackendClient, LocalClient
from synapse_sdk.errors import ParamsError
from synapse_sdk.formats.split import parse_split
from synapse_sdk.plugins.actions.export import (
    ExportTargetHandler,
    TargetHandlerFactory,
)
from synapse_sdk.plugins.actions.export.selection import (
    SelectionRows,
    build_plan,
    dominant_class,
    select_samples,
)


def rec(key: int, unit: int, status: str = 'submitted', minute: int = 0) -> dict[str, Any]:
    return {'id': key, 'data_unit': {'id': unit}, 'status': status,
            'created': f'2026-01-05T09:{minute:02d}:00Z'}  # fmt: skip


RECORDS = [
    rec(1, 10, 'rejected', 1),
    rec(2, 10, 'submitted', 5),  # unit 10: re-annotated after a rejection
    rec(3, 11, 'approved', 1),
    rec(4, 11, 'submitted', 9),  # unit 11: a later submission beside an approved one
    rec(5, 12, 'rejected', 1),
    rec(6, 12, 'rejected', 3),  # unit 12: only rejected ones
    rec(7, 13, 'submitted', 2),
    rec(8, 14, 'in_progress', 7),
    rec(9, 14, 'in_progress', 7),  # same time: the higher id wins
]


@pytest.mark.parametrize(
    ('policy', 'expected'),
    [
        ('latest_approved', [2, 3, 6, 7, 9]),
        ('latest', [2, 4, 6, 7, 9]),
        ('all', [1, 2, 3, 4, 5, 6, 7, 8, 9]),
    ],
)
def test_sample_policies(policy: Any, expected: list[int]) -> None:
    assert [r['id'] for r in select_samples(RECORDS, policy=policy)] == expected


def test_plan_summary_counts_what_was_left_out_and_why() -> None:
    plan = build_plan(SelectionRows.from_records(RECORDS), reviewed=True, noun='assignment')
    summary = plan.summary()
    assert summary == {
        'records': 9,
        'samples': 5,
        'data_units': 5,
        'sample_policy': 'latest_approved',
        'superseded_records': 4,
        'units_without_approved': 4,  # 10, 12, 13, 14 fell back to the latest not rejected
    }
    assert plan.warnings == ()


def test_policy_all_is_reported_and_keeps_a_unit_in_one_split() -> None:
    rows = SelectionRows.from_records(RECORDS)
    spec = parse_split('a=1,b=1,c=1,d=1,e=1')
    plan = build_plan(rows, policy='all', spec=spec, noun='assignment')
    assert plan.count == 9
    assert plan.warnings == (
        'sample_policy all: 4 data unit(s) exported as 8 samples (one per assignment); each '
        "data unit's samples share one split",
    )
    for a, b in ((1, 2), (3, 4), (5, 6), (8, 9)):
        assert plan.split_of(a) == plan.split_of(b) is not None
    assert sorted(plan.split_counts.values()) == [1, 1, 1, 1, 1]  # 5 units, one each
    assert plan.summary()['warnings'] == list(plan.warnings)


def test_plan_lookups_and_shard_ranges() -> None:
    plan = build_plan(SelectionRows.from_records(RECORDS), spec=parse_split('train=3,val=2'))
    assert [k for k in range(12) if plan.keeps(k)] == [2, 3, 6, 7, 9]
    assert not plan.keeps('2') and not plan.keeps(None) and not plan.keeps(True)
    assert plan.split_of(4) is None
    assert sorted(plan.split_counts.items()) == [('train', 3), ('val', 2)]
    assert plan.count_between(None, None) == 5
    assert plan.count_between(3, 8) == 3  # keys 3, 6, 7
    assert plan.count_between(10, None) == 0
    assert [r['id'] for r in plan.select(iter(RECORDS))] == [2, 3, 6, 7, 9]


@settings(max_examples=60, deadline=None)
@given(
    pairs=st.lists(
        st.tuples(st.integers(1, 30), st.sampled_from(['approved', 'rejected', 'submitted']),
                  st.integers(0, 59)),
        min_size=1, max_size=80,
    ),
    policy=st.sampled_from(['latest_approved', 'latest', 'all']),
    cuts=st.lists(st.integers(1, 100), max_size=4),
)  # fmt: skip
def test_a_plan_is_one_function_of_the_whole_selection(
    pairs: list[tuple[int, str, int]], policy: Any, cuts: list[int]
) -> None:
    """Shards read key ranges in any order; the plan the driver built gives each the same
    samples and splits: no data unit twice, no data unit in two splits."""
    records = [rec(i + 1, unit, status, minute) for i, (unit, status, minute) in enumerate(pairs)]
    spec = parse_split('train=0.6,val=0.3,test=0.1')
    plan = build_plan(SelectionRows.from_records(records), policy=policy, spec=spec, seed=5)
    shuffled = SelectionRows.from_records(list(reversed(records)))
    again = build_plan(shuffled, policy=policy, spec=spec, seed=5)
    assert np.array_equal(plan.keys, again.keys)
    assert plan.splits is not None and again.splits is not None
    assert np.array_equal(plan.splits, again.splits)
    bounds = [None, *sorted(set(cuts)), None]
    exported = []
    for lo, hi in pairwise(bounds):
        shard = [
            r for r in records if (lo is None or r['id'] >= lo) and (hi is None or r['id'] < hi)
        ]
        mine = list(plan.select(reversed(shard)))
        assert len(mine) == plan.count_between(lo, hi)
        exported.extend(mine)
    assert len(exported) == plan.count
    units = [r['data_unit']['id'] for r in exported]
    if policy != 'all':
        assert len(units) == len(set(units)) == len({r['data_unit']['id'] for r in records})
    split_of_unit: dict[int, str | None] = {}
    for r in exported:
        assert split_of_unit.setdefault(r['data_unit']['id'], plan.split_of(r['id'])) == (
            plan.split_of(r['id'])
        )


def test_dominant_class_breaks_ties_by_project_order() -> None:
    order = {'car': 0, 'person': 1, 'road': 2}
    anns = [{'category': c} for c in ('road', 'person', 'road', 'person')]
    assert dominant_class(anns, order) == 'person'
    assert dominant_class([*anns, {'category': 'road'}], order) == 'road'
    assert dominant_class([{'category': 'zebra'}, {'category': 'car'}], order) == 'car'
    assert dominant_class([{'category': 'b'}, {'category': 'a'}], {}) == 'a'
    assert dominant_class([{'tool': 'polygon'}, 'junk'], order) is None


def test_rows_are_compact_arrays() -> None:
    rows = SelectionRows()
    for i in range(10_000):
        rows.add(i, {'id': i // 2}, 'approved', '2026-01-05T09:00:00Z')
    assert rows.keys.itemsize == rows.units.itemsize == rows.times.itemsize == 8
    assert rows.ranks.itemsize == 1
    plan = build_plan(rows)
    assert plan.count == 5000 and plan.keys.dtype == np.int64


def test_a_record_without_data_unit_is_its_own_sample() -> None:
    records = [{'id': 1, 'data_unit': None}, {'id': 2, 'data_unit': None}, rec(3, 1)]
    assert [r['id'] for r in select_samples(records)] == [1, 2, 3]


# -- handler.plan on both clients --------------------------------------------------------------
@pytest.fixture(params=['local', 'http'])
def client(request: pytest.FixtureRequest, synapse_home: Path) -> Any:
    if request.param == 'local':
        local = LocalClient(synapse_home, page_size=4)
        yield local
        local.close()
    else:
        http = BackendClient(request.getfixturevalue('live_server'), page_size=4, retries=1)
        yield http
        http.close()


def params(**extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {'extra_params': {}, 'sample_policy': 'latest_approved'}
    for key, value in extra.items():
        (out if key in {'allow_empty', 'sample_policy'} else out['extra_params'])[key] = value
    return out


def test_assignment_plan_keeps_one_record_per_unit_on_both_clients(client: Any) -> None:
    handler = TargetHandlerFactory.get_handler('assignment')
    records = list(client.get_assignments({'project': 1})[0])
    plan = handler.plan(client, {'project': 1}, params(split='train=0.5,val=0.5'))
    assert plan is not None and plan.records == len(records)
    results, count = handler.get_results(client, {'project': 1})
    items = list(handler.get_export_item(results))
    assert count == len(items) == plan.count < len(records)
    assert [i['id'] for i in items] == [r['id'] for r in select_samples(records)]
    units = [i['data_unit']['id'] for i in items]
    assert len(units) == len(set(units))
    assert {i['split'] for i in items} == {'train', 'val'}


def test_ground_truth_plan_keys_by_pgh_id(client: Any) -> None:
    handler = TargetHandlerFactory.get_handler('ground_truth')
    flt = {'ground_truth_dataset_version': [1, 2]}  # version 2 repeats units of version 1
    events = list(client.get_ground_truth_events(flt)[0])
    plan = handler.plan(client, flt, params(split='train=0.5,val=0.5'))
    assert plan is not None and plan.key == 'pgh_id'
    assert plan.records == len(events) > plan.count == len({e['data_unit']['id'] for e in events})
    latest = {e['data_unit']['id']: e['pgh_id'] for e in sorted(events, key=lambda e: e['pgh_id'])}
    assert sorted(plan.keys.tolist()) == sorted(latest.values())


def test_light_pass_and_stratified_pass_select_the_same_samples(client: Any) -> None:
    handler = TargetHandlerFactory.get_handler('assignment')
    project = client.get_project(1)
    light = handler.plan(client, {'project': 1}, params(split='a=1,b=1'), project)
    full = TargetHandlerFactory.get_handler('assignment').plan(
        client, {'project': 1}, params(split='a=1,b=1', split_mode='stratified'), project
    )
    assert light is not None and full is not None
    assert light.keys.tolist() == full.keys.tolist()


@pytest.mark.parametrize(
    ('target', 'flt', 'extra', 'field', 'needle'),
    [
        ('task', {'project': 1}, {'split': 'category'}, 'extra_params.split', 'tasks have none'),
        ('assignment', {'project': 1}, {'split': 'category'}, 'extra_params.split', 'ground_truth'),
        ('ground_truth', {'ground_truth_dataset_version': 1},
         {'split': 'category', 'split_mode': 'sticky'}, 'extra_params.split_mode', 'ratios'),
        ('task', {'project': 1}, {'split_mode': 'random'}, 'extra_params.split_mode', 'sticky'),
        ('task', {'project': 1}, {'seed': '1'}, 'extra_params.seed', 'integer'),
        ('task', {'project': 1}, {'sample_policy': 'newest'}, 'sample_policy', 'latest_approved'),
        ('task', {'project': 1, 'tags': 'none'}, {}, 'filter', '"tags":"none"'),
        ('ground_truth', {'ground_truth_dataset_version': 1, 'category': 'val'}, {}, 'filter',
         'no ground-truth event matches'),
    ],
)  # fmt: skip
def test_plan_refuses(
    local_client: LocalClient, target: str, flt: dict[str, Any], extra: dict[str, Any],
    field: str, needle: str,
) -> None:  # fmt: skip
    with pytest.raises(ParamsError) as info:
        TargetHandlerFactory.get_handler(target).plan(local_client, flt, params(**extra))
    assert [f for f, _ in info.value.errors] == [field]
    assert needle in str(info.value)


def test_allow_empty_plans_nothing(local_client: LocalClient) -> None:
    handler = TargetHandlerFactory.get_handler('task')
    plan = handler.plan(local_client, {'project': 1, 'tags': 'none'}, params(allow_empty=True))
    assert plan is not None and plan.count == 0
    results, count = handler.get_results(local_client, {'project': 1, 'tags': 'none'})
    assert count == 0 and list(results) == []


@pytest.mark.parametrize(
    ('target', 'flt', 'field'),
    [
        ('assignment', {'project': 1, 'status': 'aproved'}, 'filter.status'),
        ('task', {'project': 1, 'status': ['completed', 'done']}, 'filter.status'),
        ('task', {'project': 1, 'assignment_status': 'Approved'}, 'filter.assignment_status'),
        ('task', {'project': 1, 'ids': 'one'}, 'filter.ids'),
    ],
)
def test_validate_filter_refuses_values_before_asking_the_backend(
    target: str, flt: dict[str, Any], field: str
) -> None:
    class NoBackend:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f'the backend was asked ({name}) before the filter was checked')

    with pytest.raises(ParamsError) as info:
        TargetHandlerFactory.get_handler(target).validate_filter(flt, NoBackend())
    assert [f for f, _ in info.value.errors] == [field]
    assert 'allowed' in str(info.value) or 'integer' in str(info.value)


def test_custom_handlers_keep_the_spec_api_and_get_the_empty_check() -> None:
    class Custom(ExportTargetHandler):
        def __init__(self, rows: list[dict[str, Any]]) -> None:
            self.rows = rows

        def get_results(self, client: Any, filters: dict[str, Any]) -> tuple[Any, int]:
            return iter(self.rows), len(self.rows)

    assert Custom([{'id': 1}]).plan(None, {}, params(split='train=0.5,val=0.5')) is None
    assert Custom([{'id': 1}]).plan(None, {}, params(split='category')) is None  # may have them
    with pytest.raises(ParamsError, match='no record matches'):
        Custom([]).plan(None, {'source': 'x'}, params())
    assert Custom([]).plan(None, {}, params(allow_empty=True)) is None
    items = list(Custom([{'id': 1}]).get_export_item([{'id': 1, 'data_unit': {'id': 4}}]))
    assert items[0]['id'] == 1 and 'split' not in items[0]

"""Filter values outside a field's known set, and light listings (``fields=``), in the store,
over the REST server and through both clients."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from synapse_sdk.clients import BackendClient, LocalClient
from synapse_sdk.errors import FilterError
from synapse_sdk.server.filters import (
    ASSIGNMENT_STATUSES,
    MAX_LIGHT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    TARGETS,
    TASK_STATUSES,
    check_filter_values,
    parse_query,
)
from synapse_sdk.server.store import Store

REFUSED = [
    ('assignment', {'status': 'approvd'}, "did you mean 'approved'"),
    ('assignment', {'status': ['approved', 'Rejected']}, "'Rejected'"),
    ('assignment', {'status': 'approved,done'}, "'done'"),
    ('task', {'status': 'approved'}, 'pending, in_progress, completed'),  # not a task status
    ('task', {'assignment_status': 'complete'}, 'in_progress, submitted, approved, rejected'),
]


@pytest.mark.parametrize(('target', 'flt', 'needle'), REFUSED)
def test_values_outside_the_known_set_are_refused(target: str, flt: Any, needle: str) -> None:
    with pytest.raises(FilterError, match='unknown value') as info:
        parse_query(target, {'project': 1, **flt})
    assert needle in str(info.value)
    assert check_filter_values(target, flt) == [(next(iter(flt)), str(info.value))]


@pytest.mark.parametrize(
    ('target', 'key', 'values'),
    [
        ('assignment', 'status', ASSIGNMENT_STATUSES),
        ('task', 'status', TASK_STATUSES),
        ('task', 'assignment_status', ASSIGNMENT_STATUSES),
    ],
)
def test_every_known_value_is_accepted(target: str, key: str, values: tuple[str, ...]) -> None:
    parse_query(target, {'project': 1, key: list(values)})
    assert check_filter_values(target, {key: ','.join(values)}) == []


def test_check_filter_values_leaves_unknown_keys_and_free_text_to_the_backend() -> None:
    assert check_filter_values('task', {'project': 1, 'tags': 'anything', 'x_custom': 'y'}) == []
    problems = check_filter_values('ground_truth_event', {'ids': 'a,2', 'category': 'whatever'})
    assert [key for key, _ in problems] == ['ids']


ALLOWED = {
    'int': 'an integer',
    'ints': 'an integer or a list of integers',
    'strs': 'a string or a list of strings',
    'bool': 'true or false',
    'datetime': 'an ISO 8601 date/time string',
}
#: A value of each JSON type, the words the error uses for it, and the kinds that take it.
WRONG = [
    ({'a': 1}, 'an object', ()),
    ([[1]], 'a list', ()),  # a list inside the list: every list kind refuses its element
    (1.5, 'a decimal number', ()),
    (True, 'true/false', ('bool',)),
    (7, 'a whole number', ('int', 'ints', 'strs')),  # a tag named 2024 is text
    ([{'a': 1}], 'an object', ()),
]
EVERY_FILTER = [
    (target, key, flt.kind)
    for target, spec in sorted(TARGETS.items())
    for key, flt in sorted(spec.filters.items())
]


@pytest.mark.parametrize(('target', 'key', 'kind'), EVERY_FILTER)
@pytest.mark.parametrize(('value', 'words', 'takes'), WRONG)
def test_a_value_of_the_wrong_type_names_the_field_and_both_types(
    target: str, key: str, kind: str, value: Any, words: str, takes: tuple[str, ...]
) -> None:
    """``{"tags": {"a": 1}}`` was turned into the tag "{'a': 1}" and gave an empty selection;
    every filter of every target refuses a value of a type it does not take, naming the
    field, the type given and the types allowed."""
    if kind in takes:  # the type is right (a status has its own set of values)
        assert all('expects' not in m for _, m in check_filter_values(target, {key: value}))
        return
    ((field, message),) = check_filter_values(target, {key: value})
    assert field == key
    assert message.startswith(f'Filter {key!r} expects {ALLOWED[kind]}')
    if isinstance(value, list) and kind not in ('ints', 'strs'):
        words = 'a list'  # a one-value filter: the list itself is the wrong type
    assert f'got {words} (' in message, message
    with pytest.raises(FilterError, match=f'Filter {key!r} expects'):
        parse_query(target, {**dict.fromkeys(TARGETS[target].required_any, 1), key: value})


def test_light_query_fields() -> None:
    query = parse_query('assignment', {'project': 1, 'fields': 'data_unit,status'})
    assert query.fields == ('id', 'data_unit', 'status')  # the paging key comes first
    big = parse_query('task', {'project': 1, 'fields': 'id', 'page_size': 10**6})
    assert big.page_size == MAX_LIGHT_PAGE_SIZE
    full = parse_query('task', {'project': 1, 'page_size': 10**6})
    assert full.page_size == MAX_PAGE_SIZE and full.fields == ()
    gt = parse_query('ground_truth_event', {'ground_truth_dataset_version': 1, 'fields': 'id'})
    assert gt.fields == ('pgh_id', 'id')
    with pytest.raises(FilterError, match=r'data, .*allowed: annotations, created, data_unit'):
        parse_query('task', {'project': 1, 'fields': 'data,  nope'})
    with pytest.raises(FilterError, match='none given'):
        parse_query('task', {'project': 1, 'fields': ' , '})


def test_store_light_rows_match_the_full_records(synapse_home: Path) -> None:
    url = str  # media URLs do not matter here
    with Store(synapse_home) as store:
        full = store.query('assignment', {'project': 1, 'page_size': 1000})
        records, _ = store.page(full, url)
        light = store.query(
            'assignment', {'project': 1, 'fields': 'data_unit,status,created,annotations'}
        )
        rows, more = store.page(light, url)
    assert not more
    assert rows == [
        {'id': r['id'], 'data_unit': r['data_unit']['id'], 'status': r['status'],
         'created': r['created'], 'annotations': _listed(r['data'])}
        for r in records
    ]  # fmt: skip
    assert any(row['annotations'] for row in rows)


def _listed(data: Any) -> int | None:
    """How many annotations a record's document lists (``None``: it lists none)."""
    listed = data.get('annotations') if isinstance(data, dict) else None
    return len(listed) if isinstance(listed, list) else None


@pytest.mark.parametrize('target', ['assignment', 'task', 'ground_truth_event'])
def test_both_clients_iterate_the_same_light_rows(
    synapse_home: Path, live_server: str, target: str
) -> None:
    flt = (
        {'ground_truth_dataset_version': [1, 2]}
        if target == 'ground_truth_event'
        else {'project': 1}
    )
    fields = ['data_unit', 'created', 'annotations']
    with LocalClient(synapse_home) as local, BackendClient(live_server) as http:
        a = list(local.iter_fields(target, flt, fields, page_size=3))
        b = list(http.iter_fields(target, flt, fields, page_size=3))
        full = list(local._iterate(target, flt))
    assert a == b and len(a) == len(full) > 3
    key = 'pgh_id' if target == 'ground_truth_event' else 'id'
    assert [row[key] for row in a] == [r[key] for r in full]
    assert all(set(row) == {key, *fields} for row in a)
    assert [row['data_unit'] for row in a] == [r['data_unit']['id'] for r in full]


def test_backend_client_and_server_refuse_a_status_typo(live_server: str) -> None:
    client = BackendClient(live_server, retries=0)
    with client, pytest.raises(FilterError, match="did you mean 'approved'"):
        client.count_assignments({'project': 1, 'status': 'approvd'})
    answer = httpx.get(f'{live_server}sdk/tasks/', params={'project': 1, 'status': 'done'})
    assert answer.status_code == 400 and 'pending, in_progress, completed' in answer.text

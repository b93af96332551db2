"""One contract, two clients: LocalClient and BackendClient (over the real server on 127.0.0.1)
must return the same records for the same calls."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from synapse_sdk.clients import BackendClient, ClientBase, LazyResults, LocalClient
from synapse_sdk.errors import FilterError, NotFoundError
from synapse_sdk.server.store import Store

PAGE = 4  # small pages: every listing below crosses several page boundaries


@pytest.fixture(params=['local', 'http'])
def client(request: pytest.FixtureRequest, synapse_home: Path) -> Iterator[ClientBase]:
    """Each contract test runs once per client, with small pages."""
    if request.param == 'local':
        local = LocalClient(synapse_home, page_size=PAGE)
        yield local
        local.close()
    else:
        url = request.getfixturevalue('live_server')
        backend = BackendClient(url, page_size=PAGE, retries=1, backoff=0.01)
        yield backend
        backend.close()


def strip_urls(value: Any) -> Any:
    """Records minus media URLs (file:// locally, http:// from the server)."""
    if isinstance(value, dict):
        return {k: strip_urls(v) for k, v in value.items() if k != 'url'}
    if isinstance(value, list):
        return [strip_urls(v) for v in value]
    return value


@pytest.fixture
def everything(local_client: LocalClient) -> dict[str, list[dict[str, Any]]]:
    """Every record of each target, unfiltered, as the ground truth for filter tests."""
    return {
        'assignment': list(local_client.get_assignments({'project': 1})[0]),
        'task': list(local_client.get_tasks({'project': 1})[0]),
        'gt1': list(local_client.get_ground_truth_events({'ground_truth_dataset_version': 1})[0]),
    }


def test_both_clients_return_identical_records(synapse_home: Path, live_server: str) -> None:
    local = LocalClient(synapse_home, page_size=5)
    http = BackendClient(live_server, page_size=3)
    for method, filters in [
        ('get_assignments', {'project': 1}),
        ('get_tasks', {'project': 1}),
        ('get_ground_truth_events', {'ground_truth_dataset_version': 1}),
    ]:
        (a, na), (b, nb) = getattr(local, method)(filters), getattr(http, method)(filters)
        ra, rb = list(a), list(b)
        assert na == nb == len(ra) == len(rb) > 0
        assert strip_urls(ra) == strip_urls(rb)
    assert local.get_project(1) == http.get_project(1)
    assert local.get_storage(1) == http.get_storage(1)
    assert local.get_ground_truth_version(1) == http.get_ground_truth_version(1)


def test_records_have_the_design_shape(client: ClientBase) -> None:
    task = next(iter(client.get_tasks({'project': 1})[0]))
    assert {'id', 'project', 'status', 'tags', 'created', 'data_unit', 'data'} <= set(task)
    unit = task['data_unit']
    assert {'id', 'name', 'width', 'height', 'files'} <= set(unit)
    image = unit['files']['image_1']
    assert {'url', 'file_name_original', 'is_primary', 'size', 'checksum'} <= set(image)
    assert set(task['data']) == {'annotations', 'classifications'}
    assignment = next(iter(client.get_assignments({'project': 1})[0]))
    assert {'id', 'project', 'task', 'user', 'status', 'data_unit', 'data'} <= set(assignment)
    event = next(iter(client.get_ground_truth_events({'ground_truth_dataset_version': 1})[0]))
    assert {'id', 'pgh_id', 'ground_truth_dataset_version', 'category', 'data_unit'} <= set(event)


def test_media_urls_resolve_to_the_original_file(client: ClientBase, synapse_home: Path) -> None:
    for task in client.get_tasks({'project': 1})[0]:
        entry = task['data_unit']['files']['image_1']
        url = entry['url']
        if url.startswith('file://'):
            data = Path(httpx.URL(url).path).read_bytes()
        else:
            data = httpx.get(url).content
        assert len(data) == entry['size']


def pick(records: list[dict[str, Any]], pred: Any) -> list[int]:
    return [r['id'] for r in records if pred(r)]


ASSIGNMENT_FILTERS = [
    ({'status': 'submitted'}, lambda r: r['status'] == 'submitted'),
    ({'status': ['approved', 'rejected']}, lambda r: r['status'] in {'approved', 'rejected'}),
    ({'status': 'approved,rejected'}, lambda r: r['status'] in {'approved', 'rejected'}),
    ({'tags': ['night']}, lambda r: 'night' in r['tags']),
    ({'user': 2}, lambda r: r['user'] == 2),
    ({'ids': [1, 3, 5, 999]}, lambda r: r['id'] in {1, 3, 5}),
    ({'task': 1}, lambda r: r['task'] == 1),
    ({'created__gte': '2026-01-05T14:00:00Z'}, lambda r: r['created'] >= '2026-01-05T14:00:00Z'),
    (
        {'created__lte': '2026-01-05T14:00:00+00:00'},
        lambda r: r['created'] <= '2026-01-05T14:00:00Z',
    ),
    ({'tags': 'no-such-tag'}, lambda r: False),
]


@pytest.mark.parametrize(('filters', 'pred'), ASSIGNMENT_FILTERS)
def test_assignment_filters(client: ClientBase, everything: Any, filters: Any, pred: Any) -> None:
    expected = pick(everything['assignment'], pred)
    results, count = client.get_assignments({'project': 1, **filters})
    assert [r['id'] for r in results] == expected
    assert count == len(expected) == client.count_assignments({'project': 1, **filters})


TASK_FILTERS = [
    ({'status': 'in_progress'}, lambda r: r['status'] == 'in_progress'),
    ({'tags': 'batch-2'}, lambda r: 'batch-2' in r['tags']),
    ({'ids': '2,4'}, lambda r: r['id'] in {2, 4}),
]


@pytest.mark.parametrize(('filters', 'pred'), TASK_FILTERS)
def test_task_filters(client: ClientBase, everything: Any, filters: Any, pred: Any) -> None:
    expected = pick(everything['task'], pred)
    results, count = client.get_tasks({'project': 1, **filters})
    assert [r['id'] for r in results] == expected
    assert count == len(expected)


@pytest.mark.parametrize('flag', [True, False, 'true', 'false'])
def test_task_has_assignment(client: ClientBase, everything: Any, flag: Any) -> None:
    with_assignment = {a['task'] for a in everything['assignment']}
    want = flag in (True, 'true')
    expected = pick(everything['task'], lambda r: (r['id'] in with_assignment) == want)
    assert expected  # the demo has tasks on both sides
    results, count = client.get_tasks({'project': 1, 'has_assignment': flag})
    assert [r['id'] for r in results] == expected and count == len(expected)


@pytest.mark.parametrize('category', ['train', 'validation', 'test'])
def test_ground_truth_category(client: ClientBase, everything: Any, category: str) -> None:
    expected = [r['pgh_id'] for r in everything['gt1'] if r['category'] == category]
    assert expected
    events = client.list_ground_truth_events(
        params={'ground_truth_dataset_versions': 1, 'category': category}, list_all=True
    )
    assert isinstance(events, LazyResults)
    assert len(events) == len(expected)
    assert [e['pgh_id'] for e in events] == expected
    assert [e['pgh_id'] for e in events] == expected  # iterating again starts over


def test_ground_truth_versions_repeat_ids_but_not_pgh_ids(client: ClientBase) -> None:
    v1, n1 = client.get_ground_truth_events({'ground_truth_dataset_version': 1})
    v2, n2 = client.get_ground_truth_events({'ground_truth_dataset_version': '2'})
    r1, r2 = list(v1), list(v2)
    assert n2 < n1 and {e['id'] for e in r2} <= {e['id'] for e in r1}
    assert not {e['pgh_id'] for e in r1} & {e['pgh_id'] for e in r2}
    both, n = client.get_ground_truth_events({'ground_truth_dataset_version': [1, 2]})
    assert n == n1 + n2 == len(list(both))


def test_descending_order(client: ClientBase, everything: Any) -> None:
    results, _ = client.get_assignments({'project': 1, 'ordering': '-id'})
    assert [r['id'] for r in results] == [r['id'] for r in reversed(everything['assignment'])]


@pytest.mark.parametrize(
    ('call', 'filters', 'message'),
    [
        ('get_assignments', {'project': 1, 'projct': 2}, 'Unknown assignment filter'),
        ('get_tasks', {'status': 'completed'}, 'Missing required task filter'),
        ('get_tasks', {'project': 1, 'assignee': 3}, 'Unknown task filter'),
        ('get_tasks', {}, 'Missing required task filter'),
        ('get_ground_truth_events', {'project': 1}, 'Unknown ground_truth_event filter'),
        ('get_ground_truth_events', {'category': 'train'}, 'Missing required'),
        ('count_assignments', {'project': 1, 'bogus': 1}, 'Unknown assignment filter'),
    ],
)
def test_bad_filter_keys_are_rejected_with_supported_keys(
    client: ClientBase, call: str, filters: Any, message: str
) -> None:
    with pytest.raises(FilterError) as info:
        getattr(client, call)(filters)
    assert message in str(info.value)
    assert 'project' in info.value.supported or 'ground_truth_dataset_version' in (
        info.value.supported
    )
    assert info.value.status_code == 400


@pytest.mark.parametrize(
    'filters',
    [
        {'project': 'one'},
        {'project': 1, 'ids': []},
        {'project': 1, 'ids': '1,x'},
        {'project': 1, 'created__gte': 'yesterday'},
        {'project': 1, 'has_assignment': 'maybe'},
        {'project': 1, 'ordering': 'name'},
    ],
)
def test_malformed_values_fail(client: ClientBase, filters: Any) -> None:
    call = client.get_tasks if 'has_assignment' in filters else client.get_assignments
    with pytest.raises(FilterError):
        call(filters)


def test_errors_are_identical_across_clients(synapse_home: Path, live_server: str) -> None:
    local, http = LocalClient(synapse_home), BackendClient(live_server)
    for call, filters in (
        ('get_assignments', {'projct': 1}),
        ('get_tasks', {}),
        ('get_assignments', {'project': 'x'}),
    ):
        errors = []
        for c in (local, http):
            with pytest.raises(FilterError) as info:
                getattr(c, call)(filters)
            errors.append((str(info.value), info.value.supported))
        assert errors[0] == errors[1]


def test_stream_is_lazy_and_complete(client: ClientBase, everything: Any) -> None:
    calls = []
    original = client._page

    def counting(*args: Any) -> Any:
        calls.append(args[2])
        return original(*args)

    client._page = counting  # type: ignore[method-assign]
    stream = client.get_assignments_stream({'project': 1})
    assert calls == []
    first = next(stream)
    assert len(calls) == 1
    ids = [first['id'], *(r['id'] for r in stream)]
    assert ids == [r['id'] for r in everything['assignment']]
    assert len(calls) == -(-len(ids) // PAGE)  # one request per page, no more
    assert calls[1:] == ids[PAGE - 1 :: PAGE][: len(calls) - 1]  # each resumes after a key


def test_stream_raises_bad_filters_on_iteration(client: ClientBase) -> None:
    stream = client.get_assignments_stream({'project': 1, 'nope': 1})
    with pytest.raises(FilterError):
        next(stream)


def test_list_without_list_all_is_one_page_envelope(client: ClientBase) -> None:
    page = client.list_tasks({'project': 1})
    assert isinstance(page, dict)
    assert page['count'] == client.get_tasks({'project': 1})[1]
    assert len(page['results']) == PAGE and page['next'] and page['previous'] is None


def test_many_pages(client: ClientBase, synapse_home: Path) -> None:
    """2,500 extra assignments read back in pages of 4 (local) / 100: each exactly once."""
    with Store(synapse_home) as store, store.transaction() as conn:
        for i in range(2500):
            store.insert(
                'assignments',
                {'project': 1, 'task': 1 + i % 12, 'user': 9, 'status': 'in_progress', 'tags': [],
                 'data': {'annotations': [], 'classifications': {}}},
                conn,
            )  # fmt: skip
    client.page_size = 100
    results, count = client.get_assignments({'project': 1, 'status': 'in_progress'})
    ids = [r['id'] for r in results]
    assert count == len(ids) == len(set(ids)) == 2500
    assert ids == sorted(ids)
    assert client.count_assignments({'project': 1, 'user': 9}) == 2500


def test_single_records(client: ClientBase) -> None:
    project = client.get_project(1)
    names = [c['name'] for c in project['configuration']['classes']]
    assert names == ['car', 'person', 'road', 'person_pose', 'sky']
    storage = client.get_storage(1)
    assert storage['provider'] == 'file_system'
    version = client.get_ground_truth_version(1)
    assert version['ground_truth_dataset']['project'] == 1
    for call in (client.get_project, client.get_storage, client.get_ground_truth_version):
        with pytest.raises(NotFoundError):
            call(999)


def test_jobs_and_logs(client: ClientBase, synapse_home: Path) -> None:
    client.update_job(7, {'status': 'running', 'progress': {'current': 1}})
    job = client.update_job(7, {'result': {'exported': 3}})
    assert job['status'] == 'running' and job['result'] == {'exported': 3}
    assert client.get_job(7)['id'] == 7
    client.create_logs([{'job': 7, 'message': 'one'}, {'job': 7, 'message': 'two'}])
    client.create_logs({'job': 7, 'message': 'three'})
    with Store(synapse_home) as store:
        assert [row['message'] for row in store.list_job_logs(7)] == ['one', 'two', 'three']

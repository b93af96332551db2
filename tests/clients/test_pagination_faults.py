"""Silent truncation, an ignored cursor and non-strict JSON, against the real server on
127.0.0.1 with its fault plan: the client either recovers every record or fails loudly, fast."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest

from synapse_sdk.clients import BackendClient
from synapse_sdk.errors import BackendError
from synapse_sdk.server.faults import Fault, FaultPlan
from synapse_sdk.server.store import Store

PATH = '/sdk/assignments/'


def client(url: str) -> BackendClient:
    return BackendClient(url, page_size=3, retries=2, sleep=lambda _s: None)


def test_early_next_null_is_recovered(
    faulty_server: str, fault_plan: FaultPlan, assignment_ids: list[int]
) -> None:
    fault_plan.add(Fault('early_end', path=PATH, after=1, times=1))  # page 2 claims to be the last
    with client(faulty_server) as c:
        results, count = c.get_assignments({'project': 1})
        ids = [r['id'] for r in results]
    assert ('early_end', PATH) in fault_plan.fired
    assert ids == assignment_ids and count == len(assignment_ids)


def test_early_end_on_lazy_results_is_recovered(
    faulty_server: str, fault_plan: FaultPlan, assignment_ids: list[int]
) -> None:
    with client(faulty_server) as c:
        lazy = c.list_assignments({'project': 1}, list_all=True)
        fault_plan.add(Fault('early_end', path=PATH, times=-1))  # every page says "last"
        ids = [r['id'] for r in lazy]  # type: ignore[union-attr]
    assert ids == assignment_ids


def _empty_after_first(body: bytes) -> bytes:
    page = orjson.loads(body)
    page.update(results=[], next=None)
    return orjson.dumps(page)


def test_truncated_listing_fails_naming_what_is_missing(
    faulty_server: str, fault_plan: FaultPlan, assignment_ids: list[int]
) -> None:
    # the first page arrives; every later page is empty and "last", while the count stays
    fault_plan.add(Fault('rewrite', path=PATH, after=1, times=-1, rewrite=_empty_after_first))
    got: list[int] = []
    with client(faulty_server) as c:
        results, count = c.get_assignments({'project': 1})
        with pytest.raises(BackendError) as info:
            got.extend(r['id'] for r in results)
    assert count == len(assignment_ids)
    assert got == assignment_ids[:3]
    text = str(info.value)
    assert f'after 3 of {len(assignment_ids)} records' in text and 'truncated' in text


def test_server_ignoring_the_cursor_fails_fast(
    faulty_server: str, fault_plan: FaultPlan, assignment_ids: list[int]
) -> None:
    fault_plan.add(Fault('ignore_cursor', path=PATH, times=-1))
    started = time.monotonic()
    with (
        client(faulty_server) as c,
        pytest.raises(BackendError, match='ignored the cursor id__gt=3'),
    ):
        for _ in c.get_assignments_stream({'project': 1}):
            pass
    assert time.monotonic() - started < 10
    assert len(fault_plan.requests) == 2  # the first page, then the same page again: stop


def test_ignored_cursor_on_descending_order(faulty_server: str, fault_plan: FaultPlan) -> None:
    fault_plan.add(Fault('ignore_cursor', path=PATH, times=-1))
    with client(faulty_server) as c, pytest.raises(BackendError, match='id__lt='):
        list(c.get_assignments_stream({'project': 1, 'ordering': '-id'}))


def test_nan_in_a_page_is_read_like_python_json(
    faulty_server: str, fault_plan: FaultPlan, assignment_ids: list[int]
) -> None:
    def add_nan(body: bytes) -> bytes:
        return body.replace(b'"data":{', b'"data":{"score":NaN,"peak":Infinity,', 1)

    fault_plan.add(Fault('rewrite', path=PATH, after=1, times=1, rewrite=add_nan))
    with client(faulty_server) as c:
        records = list(c.get_assignments({'project': 1})[0])
    assert [r['id'] for r in records] == assignment_ids
    odd = [r for r in records if 'score' in r['data']]
    assert len(odd) == 1 and odd[0]['data']['score'] != odd[0]['data']['score']  # NaN
    assert odd[0]['data']['peak'] == float('inf')


def test_invalid_json_is_still_an_error(faulty_server: str, fault_plan: FaultPlan) -> None:
    fault_plan.add(Fault('rewrite', path=PATH, times=1, rewrite=lambda b: b[: len(b) // 2]))
    with client(faulty_server) as c, pytest.raises(BackendError, match='not JSON'):
        c.get_assignments({'project': 1})


def test_records_removed_mid_listing_end_cleanly(
    faulty_server: str, synapse_home: Path, assignment_ids: list[int]
) -> None:
    """A shorter list because records were deleted is not a truncation: the re-count agrees."""
    with client(faulty_server) as c:
        results, count = c.get_assignments({'project': 1})
        first = next(results)
        with Store(synapse_home) as store, store.transaction() as conn:
            conn.execute('DELETE FROM assignments WHERE id > ?', [assignment_ids[4]])
        ids = [first['id'], *(r['id'] for r in results)]
    assert count == len(assignment_ids)
    assert ids == assignment_ids[:5]

"""Faults injected into the real server mid-pagination: every record still arrives exactly once."""

from __future__ import annotations

import time

import pytest

from synapse_sdk.clients import BackendClient
from synapse_sdk.errors import BackendError
from synapse_sdk.server.faults import Fault, FaultPlan

PATH = '/sdk/assignments/'


def fetch(url: str, **kwargs: float) -> tuple[list[int], int, list[float]]:
    slept: list[float] = []
    options = {'backoff': 0.01, 'max_backoff': 0.05, 'retries': 4, **kwargs}
    with BackendClient(url, page_size=3, sleep=slept.append, **options) as client:  # type: ignore[arg-type]
        results, count = client.get_assignments({'project': 1})
        return [r['id'] for r in results], count, slept


def test_injected_503s_mid_pagination(
    faulty_server: str, fault_plan: FaultPlan, assignment_ids: list[int]
):
    fault_plan.add(Fault('status', path=PATH, status=503, after=2, times=2))
    fault_plan.add(Fault('status', path=PATH, status=502, after=6, times=1))
    ids, count, slept = fetch(faulty_server)
    assert ids == assignment_ids and count == len(assignment_ids)
    assert [kind for kind, _ in fault_plan.fired] == ['status'] * 3
    assert len(slept) == 3


def test_429_honours_retry_after(
    faulty_server: str, fault_plan: FaultPlan, assignment_ids: list[int]
):
    fault_plan.add(Fault('status', path=PATH, status=429, retry_after=0.3, after=3, times=1))
    ids, _, slept = fetch(faulty_server)
    assert ids == assignment_ids
    assert slept == [0.3]


def test_429_really_waits(faulty_server: str, fault_plan: FaultPlan, assignment_ids: list[int]):
    fault_plan.add(Fault('status', path=PATH, status=429, retry_after=0.4, after=1, times=1))
    started = time.monotonic()
    with BackendClient(faulty_server, page_size=5) as client:
        ids = [r['id'] for r in client.get_assignments_stream({'project': 1})]
    assert ids == assignment_ids
    assert time.monotonic() - started >= 0.4


def test_dropped_connection_mid_pagination(
    faulty_server: str, fault_plan: FaultPlan, assignment_ids: list[int]
):
    fault_plan.add(Fault('drop', path=PATH, after=2, times=2))
    ids, count, slept = fetch(faulty_server)
    assert ids == assignment_ids and count == len(assignment_ids)
    assert [kind for kind, _ in fault_plan.fired] == ['drop', 'drop']
    assert len(slept) == 2


def test_slow_response_mid_pagination_times_out_and_resumes(
    faulty_server: str, fault_plan: FaultPlan, assignment_ids: list[int]
):
    fault_plan.add(Fault('delay', path=PATH, delay=1.5, after=3, times=1))
    ids, _, slept = fetch(faulty_server, timeout=0.4)
    assert ids == assignment_ids
    assert len(slept) == 1  # the timed-out page was retried once


def test_slow_response_within_timeout_just_waits(
    faulty_server: str, fault_plan: FaultPlan, assignment_ids: list[int]
):
    fault_plan.add(Fault('delay', path=PATH, delay=0.3, after=1, times=2))
    ids, _, slept = fetch(faulty_server, timeout=5)
    assert ids == assignment_ids and slept == []


def test_every_fault_at_once(faulty_server: str, fault_plan: FaultPlan, assignment_ids: list[int]):
    fault_plan.add(Fault('status', path=PATH, status=503, after=1, times=1))
    fault_plan.add(Fault('status', path=PATH, status=429, retry_after=0, after=3, times=1))
    fault_plan.add(Fault('drop', path=PATH, after=5, times=1))
    fault_plan.add(Fault('delay', path=PATH, delay=1.0, after=7, times=1))
    ids, count, _ = fetch(faulty_server, timeout=0.4)
    assert ids == assignment_ids and count == len(assignment_ids)
    assert len(fault_plan.fired) == 4


def test_retries_exhausted_raise_backend_error(faulty_server: str, fault_plan: FaultPlan):
    fault_plan.add(Fault('status', path=PATH, status=503, after=1, times=-1))
    with pytest.raises(BackendError) as info:
        fetch(faulty_server, retries=2)
    assert info.value.status_code == 503


def test_drop_on_lazy_ground_truth_listing(faulty_server: str, fault_plan: FaultPlan, local_client):
    expected = [e['pgh_id'] for e in local_client.list_ground_truth_events(
        params={'ground_truth_dataset_version': 1}, list_all=True)]  # fmt: skip
    fault_plan.add(Fault('drop', path='/sdk/ground_truth_events/', after=2, times=1))
    with BackendClient(faulty_server, page_size=2, backoff=0.01) as client:
        events = client.list_ground_truth_events(
            params={'ground_truth_dataset_version': 1}, list_all=True
        )
        assert len(events) == len(expected)
        assert [e['pgh_id'] for e in events] == expected
    assert fault_plan.fired == [('drop', '/sdk/ground_truth_events/')]

"""What the client fault tests share."""

from __future__ import annotations

import pytest

from synapse_sdk.clients import LocalClient


@pytest.fixture
def assignment_ids(local_client: LocalClient) -> list[int]:
    """The ids of project 1's assignments, read without HTTP: what a client must return."""
    ids = [r['id'] for r in local_client.get_assignments({'project': 1})[0]]
    assert len(ids) > 6  # several pages of 3
    return ids

"""The class map: configured order, 0-based indices, keypoint definitions."""

from __future__ import annotations

import pytest

from synapse_sdk.errors import ParamsError
from synapse_sdk.formats.classmap import ClassMap

from .helpers import configuration


def test_configured_order() -> None:
    cmap = ClassMap.from_configuration(configuration())
    assert cmap.names == ['car', 'person', 'road', 'person_pose', 'sky', 'lane']
    assert len(cmap) == 6
    assert [cmap.index(n) for n in cmap.names] == list(range(6))
    assert cmap.index('bicycle') is None and 'bicycle' not in cmap
    assert cmap.tool('road') == 'polygon' and cmap.tool('nope') is None
    kp = cmap.keypoints('person_pose')
    assert kp is not None and kp['names'][0] == 'head' and kp['skeleton'][0] == [0, 1]
    assert cmap.keypoints('car') is None


def test_order_is_not_alphabetical_or_first_seen() -> None:
    cmap = ClassMap.from_configuration({'classes': ['zebra', 'ant', {'name': 'moose'}]})
    assert cmap.names == ['zebra', 'ant', 'moose']


def test_round_trips_through_configuration() -> None:
    cmap = ClassMap.from_configuration(configuration())
    again = ClassMap.from_configuration(cmap.to_configuration())
    assert again.names == cmap.names and again.keypoints('person_pose') == cmap.keypoints(
        'person_pose'
    )


@pytest.mark.parametrize(
    ('conf', 'message'),
    [
        ({'classes': ['a', 'a']}, 'more than once'),
        ({'classes': [{'tool': 'polygon'}]}, 'name'),
        ({'classes': 'a,b'}, 'list'),
    ],
)
def test_bad_configuration(conf: dict[str, object], message: str) -> None:
    with pytest.raises(ParamsError, match=message):
        ClassMap.from_configuration(conf)


def test_empty() -> None:
    assert len(ClassMap.from_configuration(None)) == 0

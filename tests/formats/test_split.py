"""Split parsing and stable assignment."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from synapse_sdk.errors import ItemExportError, ParamsError
from synapse_sdk.formats.split import parse_split

VALID = [
    (None, (('train', 1.0),), False),
    ('', (('train', 1.0),), False),
    ({'train': 0.8, 'val': 0.2}, (('train', 0.8), ('val', 0.2)), False),
    ('train=0.8,val=0.2', (('train', 0.8), ('val', 0.2)), False),
    (' train = 8 , val = 1 , test = 1 ', (('train', 0.8), ('val', 0.1), ('test', 0.1)), False),
    ({'all': 3}, (('all', 1.0),), False),
    ('category', (), True),
]


@pytest.mark.parametrize(('value', 'ratios', 'by_category'), VALID)
def test_valid(value: Any, ratios: tuple[tuple[str, float], ...], by_category: bool) -> None:
    spec = parse_split(value)
    assert spec.by_category is by_category
    assert [n for n, _ in spec.ratios] == [n for n, _ in ratios]
    assert [r for _, r in spec.ratios] == pytest.approx([r for _, r in ratios])


INVALID = [
    ({'train': 0}, 'positive'),
    ({'train': -0.5}, 'positive'),
    ({'train': float('nan')}, 'positive'),
    ({'train': 'half'}, 'must be a number'),
    ({'train': True}, 'must be a number'),
    ({'../x': 1}, 'split name'),
    ({'a/b': 1}, 'split name'),
    ('train=0.8,val', 'not name=ratio'),
    ('train=abc', 'not a number'),
    ('train=1,train=2', 'given twice'),
    (42, 'got int'),
    (['train'], 'got list'),
]


@pytest.mark.parametrize(('value', 'message'), INVALID)
def test_invalid(value: Any, message: str) -> None:
    with pytest.raises(ParamsError, match=message) as info:
        parse_split(value)
    assert info.value.errors[0][0] == 'extra_params.split'


def test_category_uses_the_event_category() -> None:
    spec = parse_split('category')
    assert spec.names == ('train', 'validation', 'test')
    assert [spec.assign(1, c) for c in ('train', 'validation', 'test')] == list(spec.names)
    with pytest.raises(ItemExportError, match='category'):
        spec.assign(7, None)


def test_ratios_are_respected_roughly() -> None:
    spec = parse_split({'train': 0.7, 'val': 0.2, 'test': 0.1})
    counts = Counter(spec.assign(i) for i in range(20_000))
    assert counts['train'] / 20_000 == pytest.approx(0.7, abs=0.02)
    assert counts['val'] / 20_000 == pytest.approx(0.2, abs=0.02)
    assert counts['test'] / 20_000 == pytest.approx(0.1, abs=0.02)


def test_known_assignments_never_change() -> None:
    """Golden values: changing the hash would move items between splits across releases."""
    spec = parse_split('train=0.5,val=0.5')
    assert [spec.assign(i) for i in range(1, 9)] == [spec.assign(i) for i in range(1, 9)]
    golden = [spec.assign(i, seed=0) for i in range(1, 9)]
    assert golden == GOLDEN


GOLDEN = ['val', 'val', 'train', 'val', 'train', 'val', 'train', 'train']


@given(item_id=st.integers(0, 10**12), seed=st.integers(0, 2**31), others=st.lists(st.integers()))
def test_assignment_depends_only_on_id_and_seed(item_id: int, seed: int, others: list[int]) -> None:
    spec = parse_split({'train': 0.8, 'val': 0.1, 'test': 0.1})
    before = spec.assign(item_id, seed=seed)
    for other in others:  # new data arriving does not move old items
        spec.assign(other, seed=seed)
    assert spec.assign(item_id, seed=seed) == before
    assert parse_split('train=0.8,val=0.1,test=0.1').assign(item_id, seed=seed) == before

"""Geometry helpers, with the RLE code checked against pycocotools (a test-only dependency)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from pycocotools import mask as mask_utils

from synapse_sdk.formats.base import ItemLog, Unsupported
from synapse_sdk.formats.geometry import (
    annotation_box,
    box_from_corners,
    clamp_box,
    clamp_points,
    enclosing_box,
    mask_to_rle,
    polygon_area,
    rle_area,
    rle_bbox,
    rle_compress,
    rle_decode_counts,
    rle_encode_counts,
    rle_to_mask,
    rotated_corners,
    rotated_enclosing_box,
)

masks = hnp.arrays(bool, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=24))


@settings(max_examples=150, deadline=None)
@given(mask=masks)
def test_rle_matches_pycocotools(mask: np.ndarray) -> None:
    ours = mask_to_rle(mask)
    theirs = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    assert ours['counts'] == theirs['counts'].decode('ascii')
    assert ours['size'] == list(theirs['size'])
    assert rle_area(ours) == int(mask_utils.area(theirs))
    assert rle_bbox(ours) == [float(v) for v in mask_utils.toBbox(theirs)]
    assert (rle_to_mask(ours) == mask).all()


@given(st.lists(st.integers(0, 10**6), max_size=30))
def test_counts_codec_round_trip(cnts: list[int]) -> None:
    assert rle_decode_counts(rle_encode_counts(cnts)) == cnts


def test_uncompressed_rle_is_compressed() -> None:
    rle = rle_compress({'size': [2, 2], 'counts': [1, 2, 1]})
    assert rle == {'size': [2, 2], 'counts': rle_encode_counts([1, 2, 1])}
    assert rle_area(rle) == 2


AREAS = [
    ([[0, 0], [4, 0], [4, 3], [0, 3]], 12.0),
    ([[0, 0], [0, 3], [4, 3], [4, 0]], 12.0),  # clockwise
    ([[0, 0], [10, 0], [0, 10]], 50.0),
    ([[0, 0], [4, 0], [4, 4], [2, 1], [0, 4]], 10.0),  # concave
    ([[0, 0], [1, 1]], 0.0),
]


@pytest.mark.parametrize(('points', 'area'), AREAS)
def test_polygon_area(points: list[list[float]], area: float) -> None:
    assert polygon_area(points) == pytest.approx(area)


def test_rotation_is_clockwise_on_screen() -> None:
    # a quarter turn clockwise with y pointing down: the top-left corner goes top-right
    corners = rotated_corners([0, 0, 4, 2], math.pi / 2)
    assert corners[0] == pytest.approx((3, -1))
    assert rotated_enclosing_box([0, 0, 4, 2], math.pi / 2) == pytest.approx([1, -1, 2, 4])
    assert rotated_enclosing_box([1, 2, 3, 4], 0.0) == [1, 2, 3, 4]


@given(
    x=st.floats(-100, 100),
    y=st.floats(-100, 100),
    w=st.floats(0.1, 100),
    h=st.floats(0.1, 100),
    r=st.floats(-3.1, 3.1),
)
def test_corners_inverse(x: float, y: float, w: float, h: float, r: float) -> None:
    box, rotation = box_from_corners(rotated_corners([x, y, w, h], r))
    assert box == pytest.approx([x, y, w, h], abs=1e-6)
    assert rotation == pytest.approx(r, abs=1e-6)


CLAMPS = [
    ([1, 1, 2, 2], [1, 1, 2, 2], False),
    ([-2, 1, 4, 2], [0, 1, 2, 2], True),
    ([8, 8, 5, 5], [8, 8, 2, 2], True),
    ([20, 20, 5, 5], [10, 10, 0, 0], True),
]


@pytest.mark.parametrize(('box', 'expected', 'changed'), CLAMPS)
def test_clamp_box(box: list[float], expected: list[float], changed: bool) -> None:
    assert clamp_box(box, 10, 10) == (expected, changed)


def test_clamp_tolerance_keeps_rounding_noise() -> None:
    assert clamp_box([0, 0, 10.00001, 5], 10, 10, tolerance=1e-4) == ([0, 0, 10.00001, 5], False)
    assert clamp_points([(10.00001, -0.00001)], 10, 10, 1e-4) == ([(10.00001, -0.00001)], False)
    assert clamp_points([(11, 5)], 10, 10) == ([(10, 5)], True)


def test_enclosing_box() -> None:
    assert enclosing_box([[3, 4], [1, 8], [5, 6]]) == [1, 4, 4, 4]
    with pytest.raises(ValueError):
        enclosing_box([])


ANNOTATION_BOXES = [
    ({'tool': 'bounding_box', 'bbox': [1, 2, 3, 4]}, [1.0, 2.0, 3.0, 4.0], [], None),
    ({'tool': 'bounding_box', 'bbox': [0, 0, 2, 2], 'rotation': math.pi / 2}, [0.0, 0.0, 2.0, 2.0],
     ['rotated box -> enclosing box (fmt)'], None),
    ({'tool': 'polygon', 'points': [[1, 1], [4, 1], [2, 5]]}, [1.0, 1.0, 3.0, 4.0],
     ['polygon -> box (fmt)'], None),
    ({'tool': 'keypoint', 'keypoints': [[1, 1, 2], [9, 9, 0], [3, 4]]}, [1.0, 1.0, 2.0, 3.0],
     ['keypoint -> box (fmt)'], None),
    ({'tool': 'keypoint', 'bbox': [0, 0, 5, 5], 'keypoints': []}, [0.0, 0.0, 5.0, 5.0],
     ['keypoint -> box (fmt)'], None),
    ({'tool': 'keypoint', 'keypoints': [[1, 1, 0]]}, None, [], 'no box and no labelled point'),
    ({'tool': 'polyline', 'points': [[0, 0], [1, 1]]}, None, [],
     'polyline cannot be expressed in fmt'),
]  # fmt: skip


@pytest.mark.parametrize(('ann', 'box', 'converted', 'error'), ANNOTATION_BOXES)
def test_annotation_box(
    ann: dict[str, Any], box: list[float] | None, converted: list[str], error: str | None
) -> None:
    log = ItemLog()
    if error:
        with pytest.raises(Unsupported, match=error):
            annotation_box(ann, log, 'fmt')
        return
    got = annotation_box(ann, log, 'fmt')
    assert got == pytest.approx(box)
    assert [e[1] for e in log._events] == converted


def test_annotation_box_unreported() -> None:
    log = ItemLog()
    annotation_box({'tool': 'keypoint', 'bbox': [0, 0, 1, 1]}, log, 'yolo pose', report=False)
    assert log._events == []

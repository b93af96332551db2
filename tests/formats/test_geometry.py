"""Geometry helpers: numbers checked, masks through pycocotools (and refused when invalid),
mask -> polygon and minimum-area rectangles through OpenCV."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from pycocotools import mask as mask_utils

from synapse_sdk.formats.base import ItemLog, Unsupported
from synapse_sdk.formats.geometry import (
    annotation_box,
    box4,
    box_from_corners,
    check_mask,
    clamp_box,
    clamp_points,
    enclosing_box,
    fmt_exact,
    fmt_fixed,
    keypoints3,
    mask_pixel_corners,
    mask_polygons,
    mask_to_rle,
    min_area_box,
    plain_points_box,
    points2,
    polygon_area,
    rle_area,
    rle_bbox,
    rle_compress,
    rle_to_mask,
    rotated_corners,
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


def test_uncompressed_rle_is_compressed_by_pycocotools() -> None:
    rle = rle_compress({'size': [2, 2], 'counts': [1, 2, 1]})
    theirs = mask_utils.frPyObjects({'size': [2, 2], 'counts': [1, 2, 1]}, 2, 2)
    assert rle == {'size': [2, 2], 'counts': theirs['counts'].decode('ascii')}
    assert rle_area(rle) == 2


BAD_MASKS = [
    ('not a dict', [1, 2, 3], 'without an RLE mask'),
    ('no counts', {'size': [2, 2]}, 'without an RLE mask'),
    ('size of strings', {'size': ['2', '2'], 'counts': [4]}, 'mask size'),
    ('zero size', {'size': [0, 2], 'counts': []}, 'mask size'),
    ('runs short of the mask', {'size': [2, 2], 'counts': [1, 2]}, 'do not cover'),
    ('runs past the mask', {'size': [2, 2], 'counts': [1, 2, 9]}, 'do not cover'),
    ('negative run', {'size': [2, 2], 'counts': [5, -1]}, 'negative'),
    ('float runs', {'size': [2, 2], 'counts': [1.5, 2.5]}, 'list of integers'),
    ('bool runs', {'size': [1, 1], 'counts': [True]}, 'list of integers'),
    ('string runs past the mask', {'size': [2, 2], 'counts': 'P1'}, 'do not cover'),
    ('string ends inside a number', {'size': [2, 2], 'counts': '1P'}, 'malformed'),
    ('string with a bad character', {'size': [2, 2], 'counts': '1~'}, 'malformed'),
    ('non-ascii string', {'size': [2, 2], 'counts': '13é'}, 'not ASCII'),
    ('null counts', {'size': [2, 2], 'counts': None}, 'not a string'),
]


@pytest.mark.parametrize(('case', 'mask', 'reason'), BAD_MASKS, ids=[b[0] for b in BAD_MASKS])
def test_invalid_masks_are_refused_before_decoding(case: str, mask: Any, reason: str) -> None:
    with pytest.raises(Unsupported, match=reason):
        check_mask(mask)


def test_mask_must_match_the_image() -> None:
    rle = mask_to_rle(np.ones((3, 4), bool))
    assert check_mask(rle, (4, 3)) == rle
    with pytest.raises(Unsupported, match='differs from the image'):
        check_mask(rle, (3, 4))


@settings(max_examples=80, deadline=None)
@given(mask=masks)
def test_checked_runs_agree_with_pycocotools(mask: np.ndarray) -> None:
    """A mask pycocotools wrote always passes the check, in string and in list form."""
    theirs = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle = {'size': list(theirs['size']), 'counts': theirs['counts'].decode('ascii')}
    assert check_mask(rle) == rle
    flat = mask.flatten(order='F').astype(np.int8)
    bounds = np.concatenate(([0], np.flatnonzero(np.diff(flat)) + 1, [flat.size]))
    counts = [int(c) for c in np.diff(bounds)]
    if flat[0]:
        counts.insert(0, 0)
    assert check_mask({'size': rle['size'], 'counts': counts}) == rle


NUMBERS = [
    ('nan', [float('nan'), 0, 1, 1]),
    ('inf', [0, float('inf'), 1, 1]),
    ('string', ['1', 0, 1, 1]),
    ('huge', [1e308, 0, 1, 1]),
    ('bool', [True, 0, 1, 1]),
    ('none', [None, 0, 1, 1]),
    ('short', [0, 0, 1]),
    ('not a list', '0 0 1 1'),
]


@pytest.mark.parametrize(('case', 'bbox'), NUMBERS, ids=[n[0] for n in NUMBERS])
def test_box_numbers_are_checked(case: str, bbox: Any) -> None:
    with pytest.raises(Unsupported, match='bbox is not 4 finite numbers'):
        box4(bbox)


def test_valid_numbers_pass() -> None:
    assert box4([1, 2.5, np.float64(3), 4]) == (1.0, 2.5, 3.0, 4.0)
    assert points2([[1, 2], (3.5, 4)]) == [(1.0, 2.0), (3.5, 4.0)]
    assert keypoints3([[1, 2, 2], [3, 4], [0, 0, 0.0]]) == [(1, 2, 2), (3, 4, 2), (0, 0, 0)]
    for bad in ([[1, 'x']], [[float('nan'), 1]], [[1]], 'abc'):
        with pytest.raises(Unsupported, match='points are not'):
            points2(bad)
    with pytest.raises(Unsupported, match='visibility'):
        keypoints3([[1, 2, 3]])


def test_number_text() -> None:
    assert fmt_fixed(-1e-9, 3) == '0.000' and fmt_fixed(-0.5, 1) == '-0.5'
    assert fmt_exact(12.0) == '12' and fmt_exact(12.5) == '12.5' and fmt_exact(0.1) == '0.1'


def _ring(size: int, outer: int, inner: int) -> np.ndarray:
    m = np.zeros((size, size), bool)
    m[outer:-outer, outer:-outer] = True
    m[inner:-inner, inner:-inner] = False
    return m


def test_mask_polygons_outer_contours_largest_first() -> None:
    import cv2

    m = np.zeros((20, 30), bool)
    m[2:5, 2:6] = True  # small region
    m[8:18, 10:28] = True  # large region with a hole
    m[12:14, 15:20] = False
    m[0, 29] = True  # one pixel: too small for a polygon
    polygons, holes, tiny = mask_polygons(mask_to_rle(m))
    assert (len(polygons), holes, tiny) == (2, 1, 1)
    assert enclosing_box(polygons[0]) == [10.0, 8.0, 17.0, 9.0]
    # Ultralytics rasterises polygons with fillPoly: the regions come back, holes filled
    back = np.zeros(m.shape, np.uint8)
    cv2.fillPoly(back, [np.array(p, np.int32) for p in polygons], 1)
    filled = m.copy()
    filled[12:14, 15:20] = True
    filled[0, 29] = False
    assert (back.astype(bool) == filled).all()


def test_min_area_box() -> None:
    box, rotation = min_area_box([[1, 2], [11, 2], [11, 7], [1, 7]])
    assert (box, rotation) == ([1.0, 2.0, 10.0, 5.0], 0.0)
    corners = rotated_corners([40, 30, 20, 10], 0.5)
    box, rotation = min_area_box(corners)
    assert box == pytest.approx([40, 30, 20, 10], abs=1e-3)
    assert rotation == pytest.approx(0.5, abs=1e-4)
    box, rotation = min_area_box(rotated_corners([0, 0, 4, 8], 1.2))  # normalised to +-pi/4
    assert -math.pi / 4 <= rotation < math.pi / 4
    assert sorted(box[2:]) == pytest.approx([4, 8], abs=1e-3)


def test_mask_pixel_corners_cover_the_pixels() -> None:
    m = np.zeros((6, 8), bool)
    m[1:3, 2:5] = True
    box, rotation = min_area_box(mask_pixel_corners(mask_to_rle(m)))
    assert (box, rotation) == ([2.0, 1.0, 3.0, 2.0], 0.0)


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
    assert enclosing_box(corners) == pytest.approx([1, -1, 2, 4])


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


def test_rle_counts_reads_the_runs() -> None:
    from synapse_sdk.formats.geometry import rle_counts

    assert rle_counts({'size': [2, 2], 'counts': [1, 2, 1]}) == [1, 2, 1]
    assert rle_counts(mask_to_rle(np.array([[0, 1], [1, 0]], bool))) == [1, 2, 1]


@settings(max_examples=400, deadline=None)
@given(
    points=st.lists(
        st.lists(st.one_of(st.sampled_from([0, 1, 2.5]), st.integers(-2, 30), st.floats(-1, 31),
                           st.sampled_from([float('nan'), float('inf'), True, None])),
                 min_size=1, max_size=3),
        max_size=6,
    )
    | st.lists(st.lists(st.sampled_from([0, 1, 2, 1.5, 3]), min_size=2, max_size=2),
               max_size=5),  # small grids: flat, single-point and border polygons
    size=st.tuples(st.integers(1, 30), st.integers(1, 30)) | st.just((2, 2)),
)  # fmt: skip
def test_plain_points_box_is_the_checked_enclosing_box(
    points: list[Any], size: tuple[int, int]
) -> None:
    """When it answers, the shortcut's box is exactly points2 -> enclosing_box, inside the
    image with a positive size (nothing to clamp or refuse)."""
    box = plain_points_box(points, *size)
    event('shortcut' if box is not None else 'declined')
    if box is None:
        return
    checked = enclosing_box(points2(points))
    assert list(box) == checked
    x, y, w, h = box
    assert x >= 0 and y >= 0 and w > 0 and h > 0 and x + w <= size[0] and y + h <= size[1]

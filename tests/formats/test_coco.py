"""COCO: pycocotools loads every file and COCOeval of the export against itself gives AP 1.0;
the pitfalls are table-driven."""

from __future__ import annotations

import contextlib
import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from synapse_sdk.errors import ParamsError
from synapse_sdk.formats.base import ItemLog, Unsupported
from synapse_sdk.formats.coco.convert import annotation_to_coco, categories_to_coco
from synapse_sdk.formats.coco.reader import read_dataset
from synapse_sdk.formats.coco.writer import CocoWriter
from synapse_sdk.formats.geometry import mask_to_rle

from .contract import WriterContract
from .helpers import class_map, configuration, export, make_items

_holed = np.zeros((100, 100), bool)
_holed[2:8, 2:8] = True
_holed[4:6, 4:6] = False
HOLED = mask_to_rle(_holed)


class TestCocoContract(WriterContract):
    fmt = 'coco'


def _load(path: Path) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


def _self_eval(gt: COCO, iou_type: str, cat_ids: list[int] | None = None) -> float:
    ann_ids = gt.getAnnIds(catIds=cat_ids or [])
    results = []
    for ann in gt.loadAnns(ann_ids):
        res: dict[str, Any] = {
            'image_id': ann['image_id'],
            'category_id': ann['category_id'],
            'score': 1.0,
            'bbox': ann['bbox'],
        }
        if iou_type == 'segm':
            res['segmentation'] = ann['segmentation']
        if iou_type == 'keypoints':
            res['keypoints'] = ann['keypoints']
        results.append(res)
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, iou_type)
        if cat_ids:
            ev.params.catIds = cat_ids
        if iou_type == 'keypoints':
            ev.params.kpt_oks_sigmas = np.full(5, 0.05)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[0])


def test_pycocotools_loads_and_self_eval_is_perfect(tmp_path: Path) -> None:
    report, _ = export('coco', tmp_path, make_items())
    gt = _load(tmp_path / 'annotations' / 'instances_train.json')
    kp = _load(tmp_path / 'annotations' / 'person_keypoints_train.json')
    assert len(gt.getImgIds()) == len(kp.getImgIds()) == 4
    assert len(gt.getAnnIds()) + len(kp.getAnnIds()) == report.annotations_exported == 9
    assert len(kp.getAnnIds()) == 1
    assert _self_eval(gt, 'bbox') == pytest.approx(1.0)
    assert _self_eval(gt, 'segm') == pytest.approx(1.0)
    assert _self_eval(kp, 'keypoints') == pytest.approx(1.0)


def test_every_annotation_has_a_segmentation_annToMask_accepts(tmp_path: Path) -> None:
    export('coco', tmp_path, make_items())
    for name in ('instances_train.json', 'person_keypoints_train.json'):
        gt = _load(tmp_path / 'annotations' / name)
        for ann in gt.loadAnns(gt.getAnnIds()):
            assert ann['segmentation'], ann
            mask = gt.annToMask(ann)
            img = gt.loadImgs(ann['image_id'])[0]
            assert mask.shape == (img['height'], img['width'])
            if ann['category_id'] in gt.getCatIds(catNms=['car', 'person']) and not ann.get(
                'attributes', {}
            ).get('occluded'):
                w, h = ann['bbox'][2:]
                assert mask.sum() == pytest.approx(w * h, rel=0.35)


def test_every_split_file_loads_with_the_same_categories(tmp_path: Path) -> None:
    export('coco', tmp_path, make_items(split='category'))
    files = sorted((tmp_path / 'annotations').glob('*.json'))
    assert [f.name for f in files] == [
        'instances_test.json',
        'instances_train.json',
        'instances_validation.json',
        'person_keypoints_train.json',  # only train has keypoint annotations
    ]
    cats = None
    ann_ids: list[int] = []
    for f in files:
        gt = _load(f)
        # the same ids and names everywhere; person_keypoints files give every category its
        # (maybe empty) keypoints and skeleton, as Datumaro requires there
        here = [
            (c['id'], c['name'], c.get('keypoints') or None) for c in gt.loadCats(gt.getCatIds())
        ]
        assert cats is None or here == cats
        cats = here
        ann_ids += gt.getAnnIds()
    assert sorted(ann_ids) == list(range(1, 10))
    assert [c[0] for c in cats or []] == [1, 2, 3, 4, 5, 6]


def test_no_file_for_an_empty_split(tmp_path: Path) -> None:
    export('coco', tmp_path, make_items()[1:2], {'split': 'train=0.999999,val=0.000001'})
    assert sorted(p.name for p in (tmp_path / 'annotations').iterdir()) == [
        'instances_train.json'  # no keypoint annotation: no person_keypoints file either
    ]
    assert sorted(p.name for p in (tmp_path / 'images').iterdir()) == ['train']


def test_images_keep_record_ids_and_unique_names(tmp_path: Path) -> None:
    export('coco', tmp_path, make_items())
    data = orjson.loads((tmp_path / 'annotations' / 'instances_train.json').read_bytes())
    assert [(i['id'], i['file_name']) for i in data['images']] == [
        (1, 'crossing 0007.jpg'),
        (2, 'crossing 0007_1.jpg'),
        (3, '東京 駅.png'),
        (4, 'CROSSING 0007_2.JPG'),
    ]
    for image in data['images']:
        assert (tmp_path / 'images' / 'train' / image['file_name']).is_file()
    assert data['images'][0]['attributes'] == {'weather': 'sunny'}
    assert [a['id'] for a in data['annotations']] == [1, 2, 3, 5, 6, 7, 8, 9]  # 4: keypoints


BOX = {'id': 'x', 'category': 'car', 'tool': 'bounding_box', 'attributes': {}}

# (case, annotation, expected subset of the COCO annotation, converted reason or None)
PITFALLS: list[tuple[str, dict[str, Any], dict[str, Any], str | None]] = [
    ('bbox is xywh, not xyxy', {**BOX, 'bbox': [10, 20, 30, 40]},
     {'bbox': [10.0, 20.0, 30.0, 40.0], 'area': 1200.0, 'iscrowd': 0}, None),
    ('polygon area is the shoelace area, not the box',
     {**BOX, 'tool': 'polygon', 'points': [[0, 0], [10, 0], [0, 10]]},
     {'bbox': [0.0, 0.0, 10.0, 10.0], 'area': 50.0,
      'segmentation': [[0.0, 0.0, 10.0, 0.0, 0.0, 10.0]]}, None),
    ('holed mask is not a crowd', {**BOX, 'tool': 'segmentation', 'mask': HOLED},
     {'iscrowd': 0, 'area': 32.0, 'bbox': [2.0, 2.0, 6.0, 6.0]}, None),
    ('crowd flag kept when the source says so',
     {**BOX, 'tool': 'segmentation', 'mask': HOLED, 'iscrowd': True}, {'iscrowd': 1}, None),
    ('rotated box becomes its enclosing box, corners kept as polygon',
     {**BOX, 'bbox': [20, 20, 10, 10], 'rotation': math.pi / 4},
     {'area': pytest.approx(100.0)}, 'rotated box -> enclosing box (coco)'),
    ('a box has its four corners as segmentation', {**BOX, 'bbox': [1, 2, 3, 4]},
     {'segmentation': [[1.0, 2.0, 4.0, 2.0, 4.0, 6.0, 1.0, 6.0]]}, None),
    ('keypoints are triplets with num_keypoints, unlabelled as 0 0 0',
     {**BOX, 'tool': 'keypoint', 'bbox': [0, 0, 5, 5],
      'keypoints': [[1, 2, 2], [3, 4, 1], [9, 9, 0]]},
     {'keypoints': [1.0, 2.0, 2, 3.0, 4.0, 1, 0, 0, 0], 'num_keypoints': 2, 'area': 25.0}, None),
    ('attributes travel along', {**BOX, 'bbox': [1, 1, 2, 2], 'attributes': {'occluded': True}},
     {'attributes': {'occluded': True}}, None),
]  # fmt: skip


@pytest.mark.parametrize(
    ('case', 'ann', 'expected', 'converted'), PITFALLS, ids=[p[0] for p in PITFALLS]
)
def test_pitfalls(
    case: str, ann: dict[str, Any], expected: dict[str, Any], converted: str | None
) -> None:
    log = ItemLog()
    out = annotation_to_coco(
        ann, category_id=1, image_size=(100, 100), keypoint_names=['a', 'b', 'c'], log=log
    )
    assert out | expected == out
    assert out['segmentation']
    assert 'iscrowd' in out
    events = [e for e in log._events if e[0] == 'convert']
    assert [e[1] for e in events] == ([converted] if converted else [])


def test_rotated_box_enclosing_geometry() -> None:
    ann = {**BOX, 'bbox': [20, 20, 10, 10], 'rotation': math.pi / 4}
    out = annotation_to_coco(ann, category_id=1, image_size=(100, 100))
    half = 5 * math.sqrt(2)
    assert out['bbox'] == pytest.approx([25 - half, 25 - half, 2 * half, 2 * half])
    assert len(out['segmentation'][0]) == 8


UNSUPPORTED = [
    ({**BOX, 'tool': 'polyline', 'points': [[0, 0], [1, 1]]}, 'polyline cannot be expressed'),
    ({**BOX, 'tool': 'classification'}, 'image-level label: coco has only objects'),
    ({**BOX}, 'image-level label: coco has only objects'),
    ({**BOX, 'bbox': [float('nan'), 0, 1, 1]}, 'bbox is not 4 finite numbers'),
    ({**BOX, 'bbox': '[0, 0, 1, 1]'}, 'bbox is not 4 finite numbers'),
    ({**BOX, 'bbox': [0, 0, 1e308, 1]}, 'bbox is not 4 finite numbers'),
    ({**BOX, 'bbox': [20, 20, 5, 5]}, 'box outside the image'),
    (
        {**BOX, 'tool': 'segmentation', 'mask': {'size': [10, 10], 'counts': [50, 60]}},
        'runs do not cover',
    ),
    (
        {
            **BOX,
            'tool': 'keypoint',
            'bbox': [0, 0, 2, 2],
            'area': float('inf'),
            'keypoints': [[1, 1, 2], [1, 1, 2]],
        },
        'area is not a finite number',
    ),
    ({**BOX, 'bbox': [0, 0, 0, 5]}, 'zero or negative size'),
    ({**BOX, 'tool': 'polygon', 'points': [[0, 0], [1, 1]]}, 'fewer than 3 points'),
    ({**BOX, 'tool': 'segmentation', 'mask': {'size': [5, 5], 'counts': [25]}}, 'differs'),
    ({**BOX, 'tool': 'keypoint', 'keypoints': [[1, 1, 2]]}, 'keypoint count differs'),
    ({**BOX, 'tool': 'cuboid'}, 'unknown tool'),
]


@pytest.mark.parametrize(('ann', 'reason'), UNSUPPORTED)
def test_unsupported_reasons(ann: dict[str, Any], reason: str) -> None:
    with pytest.raises(Unsupported, match=reason):
        annotation_to_coco(ann, category_id=1, image_size=(10, 10), keypoint_names=['a', 'b'])


@pytest.mark.parametrize('start', [0, 1, 100])
def test_category_id_start(tmp_path: Path, start: int) -> None:
    export('coco', tmp_path, make_items(), {'category_id_start': start})
    data = orjson.loads((tmp_path / 'annotations' / 'instances_train.json').read_bytes())
    assert [c['id'] for c in data['categories']] == list(range(start, start + 6))
    car = [a for a in data['annotations'] if a['bbox'] == [12.5, 10.0, 20.0, 12.0]]
    assert car[0]['category_id'] == start


@pytest.mark.parametrize('bad', [-1, 'one', 1.5, True])
def test_bad_category_id_start(bad: Any) -> None:
    with pytest.raises(ParamsError, match='category_id_start'):
        CocoWriter.validate_options({'category_id_start': bad})


def test_keypoint_category_skeleton_is_one_based() -> None:
    cats = categories_to_coco(class_map())
    pose = next(c for c in cats if c['name'] == 'person_pose')
    assert pose['skeleton'] == [[1, 2], [1, 3], [1, 4], [1, 5]]
    assert pose['keypoints'][0] == 'head'


def test_report_counts(tmp_path: Path) -> None:
    report, _ = export('coco', tmp_path, make_items())
    d = report.to_dict()
    assert d['skipped_reasons'] == {
        "class 'bicycle' not in the project configuration": 1,
        'polyline cannot be expressed in coco': 1,
    }
    assert d['converted_reasons'] == {'rotated box -> enclosing box (coco)': 1}
    assert d['per_class'] == {'car': 2, 'person': 3, 'person_pose': 1, 'road': 1, 'sky': 2}


def test_reader_round_trip(tmp_path: Path) -> None:
    export('coco', tmp_path / 'a', make_items())
    dataset = read_dataset(tmp_path / 'a' / 'annotations' / 'instances_train.json')
    assert [c['name'] for c in dataset.configuration['classes']] == class_map().names
    assert dataset.configuration['keypoints']['person_pose']['skeleton'] == [
        [0, 1], [0, 2], [0, 3], [0, 4]
    ]  # fmt: skip
    images = list(dataset.images)
    assert [i.file_name for i in images] == [
        'crossing 0007.jpg', 'crossing 0007_1.jpg', '東京 駅.png', 'CROSSING 0007_2.JPG'
    ]  # fmt: skip
    assert all(i.path is not None and i.path.is_file() for i in images)
    first = {a['id']: a for a in images[0].annotations}
    assert first['1']['bbox'] == [12.5, 10.0, 20.0, 12.0]
    assert first['3']['tool'] == 'polygon' and first['3']['area'] == pytest.approx(1056.0)
    assert first['5']['tool'] == 'segmentation' and 'iscrowd' not in first['5']
    assert images[3].annotations[1].get('iscrowd') is True
    assert images[0].classifications == {'weather': 'sunny'}
    # export again from the import: identical annotation file
    from synapse_sdk.formats.base import FormatItem

    items = [
        FormatItem(id=n, stem=Path(i.file_name).stem, ext=Path(i.file_name).suffix, split='train',
                   width=i.width, height=i.height, annotations=i.annotations,
                   classifications=i.classifications)
        for n, i in enumerate(images, 1)
    ]  # fmt: skip
    export('coco', tmp_path / 'b', items)
    a = orjson.loads((tmp_path / 'a' / 'annotations' / 'instances_train.json').read_bytes())
    b = orjson.loads((tmp_path / 'b' / 'annotations' / 'instances_train.json').read_bytes())
    assert a['categories'] == b['categories'] and a['images'] == b['images']
    # the rotated box comes back as its corner polygon, everything else is identical (ids
    # differ: the keypoint annotation, id 4, is in person_keypoints_train.json)
    assert [x['id'] for x in a['annotations']] == [1, 2, 3, 5, 6, 7, 8, 9]
    for x, y in zip(a['annotations'], b['annotations'], strict=True):
        if x['id'] != 2:
            assert {**x, 'id': 0} == {**y, 'id': 0}


@given(
    x=st.floats(0, 1e4),
    y=st.floats(0, 1e4),
    w=st.floats(1e-3, 1e4),
    h=st.floats(1e-3, 1e4),
)
def test_box_conversion_is_exact_inside_the_image(x: float, y: float, w: float, h: float) -> None:
    out = annotation_to_coco(
        {**BOX, 'bbox': [x, y, w, h]}, category_id=3, image_size=(30_000, 30_000)
    )
    assert out['bbox'] == [x, y, w, h] and out['area'] == w * h and out['category_id'] == 3


def test_masks_agree_with_pycocotools(tmp_path: Path) -> None:
    export('coco', tmp_path, make_items())
    gt = _load(tmp_path / 'annotations' / 'instances_train.json')
    for ann in gt.loadAnns(gt.getAnnIds(catIds=gt.getCatIds(catNms=['sky']))):
        rle = ann['segmentation']
        assert mask_utils.area(rle) == ann['area']
        assert list(mask_utils.toBbox(rle)) == ann['bbox']


def test_source_ids_are_kept(tmp_path: Path) -> None:
    """CONTRACTS #1: a dataset imported from COCO keeps its image and category ids."""
    conf = configuration()
    for n, cls in enumerate(conf['classes']):
        cls['source_id'] = 10 * (n + 1)
    items = make_items()
    for item, source_id in zip(items, [501, 502, 1, None], strict=True):
        item.source['data_unit'] = {'source_id': source_id} if source_id else {}
    export('coco', tmp_path, items, cmap=class_map(conf))
    data = orjson.loads((tmp_path / 'annotations' / 'instances_train.json').read_bytes())
    assert [c['id'] for c in data['categories']] == [10, 20, 30, 40, 50, 60]
    # the last item has no source id and its record id (4) is free: it keeps that
    assert [i['id'] for i in data['images']] == [501, 502, 1, 4]
    car = next(a for a in data['annotations'] if a['bbox'] == [12.5, 10.0, 20.0, 12.0])
    assert (car['category_id'], car['image_id']) == (10, 501)


def test_ids_never_collide_when_sources_mix(tmp_path: Path) -> None:
    items = make_items()
    for item, source_id in zip(items, [2, None, 3, 1], strict=True):
        item.source['data_unit'] = {'source_id': source_id}
    conf = configuration()
    conf['classes'][0]['source_id'] = 7  # not every class has one: sequential category ids
    export('coco', tmp_path, items, cmap=class_map(conf))
    data = orjson.loads((tmp_path / 'annotations' / 'instances_train.json').read_bytes())
    # item 2 has no source id and its record id (2) is taken by item 1's source id
    assert [i['id'] for i in data['images']] == [2, 3, 4, 1]
    assert [c['id'] for c in data['categories']] == [1, 2, 3, 4, 5, 6]


def test_coordinates_outside_the_image_are_clamped_and_counted(tmp_path: Path) -> None:
    ann = {**BOX, 'tool': 'polygon', 'points': [[-5, 1], [8, 1], [8, 30]]}
    log = ItemLog()
    out = annotation_to_coco(ann, category_id=1, image_size=(10, 20), log=log)
    assert out['segmentation'] == [[0.0, 1.0, 8.0, 1.0, 8.0, 20.0]]
    assert out['bbox'] == [0.0, 1.0, 8.0, 19.0]
    assert [e[0] for e in log._events] == ['clamp']
    report, _ = export('coco', tmp_path, make_items())
    assert report.clamped == 1  # the person box at x=-4
    data = orjson.loads((tmp_path / 'annotations' / 'instances_train.json').read_bytes())
    for a in data['annotations']:
        image = next(i for i in data['images'] if i['id'] == a['image_id'])
        x, y, w, h = a['bbox']
        assert x >= 0 and y >= 0 and x + w <= image['width'] and y + h <= image['height']

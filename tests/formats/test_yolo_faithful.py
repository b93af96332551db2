"""YOLO carries what it can and says what it cannot: masks as region polygons (segment),
minimum-area rectangles (obb), image-level labels as classify folders, flip_idx, no empty splits,
numbers checked per annotation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml

from synapse_sdk.errors import ItemExportError, ParamsError
from synapse_sdk.formats.base import FormatItem, ItemLog, Unsupported
from synapse_sdk.formats.classmap import ClassMap
from synapse_sdk.formats.geometry import mask_to_rle, rotated_corners
from synapse_sdk.formats.report import ExportReport
from synapse_sdk.formats.yolo.convert import annotation_to_yolo, flip_index
from synapse_sdk.formats.yolo.writer import YoloWriter

from .helpers import configuration, export, make_items

CONF = {
    'classes': [
        {'name': 'car', 'tool': 'bounding_box'},
        {'name': 'sky', 'tool': 'segmentation'},
        {'name': 'sunny', 'tool': 'classification'},
        {'name': 'rain', 'tool': 'classification'},
    ]
}


def _item(anns: list[dict[str, Any]], *, id: int = 1, w: Any = 40, h: Any = 30,
          stem: str = 'img', split: str = 'train') -> FormatItem:  # fmt: skip
    return FormatItem(id=id, stem=stem, ext='.jpg', split=split, width=w, height=h,
                      annotations=anns)  # fmt: skip


def _lines(root: Path, stem: str = 'img', split: str = 'train') -> list[list[float]]:
    text = (root / 'labels' / split / f'{stem}.txt').read_text('utf-8')
    return [[float(v) for v in line.split()] for line in text.splitlines()]


def _two_regions_with_a_hole() -> np.ndarray:
    m = np.zeros((30, 40), bool)
    m[2:8, 3:12] = True  # small region
    m[12:28, 15:38] = True  # large region ...
    m[17:22, 20:30] = False  # ... with a hole
    return m


def test_segment_mask_becomes_the_outer_contour_of_each_region(tmp_path: Path) -> None:
    mask = _two_regions_with_a_hole()
    ann = {'id': 'm', 'category': 'sky', 'tool': 'segmentation', 'mask': mask_to_rle(mask)}
    report, _ = export('yolo', tmp_path, [_item([ann])], {'task': 'segment'},
                       cmap=ClassMap.from_configuration(CONF))  # fmt: skip
    lines = _lines(tmp_path)
    assert [line[0] for line in lines] == [1, 1]  # one line per region, largest first
    # rasterised the way Ultralytics does (fillPoly of the denormalised polygon)
    back = np.zeros(mask.shape, np.uint8)
    for line in lines:
        pts = np.array(line[1:], float).reshape(-1, 2) * [40, 30]
        cv2.fillPoly(back, [np.rint(pts).astype(np.int32)], 1)
    filled = mask.copy()
    filled[17:22, 20:30] = True  # holes are filled, as Ultralytics' and Datumaro's converters do
    assert (back.astype(bool) == filled).all()
    d = report.to_dict()
    assert d['converted_reasons'] == {
        'mask holes filled (yolo segment)': 1,
        'mask regions -> one polygon each (yolo segment)': 1,
        'segmentation -> polygon (yolo segment)': 1,
    }
    assert d['per_class'] == {'sky': 1} and not d['skipped_reasons']


def test_obb_polygon_is_the_minimum_area_rectangle() -> None:
    corners = rotated_corners([10, 8, 12, 6], 0.4)
    ann = {'id': 'p', 'category': 'car', 'tool': 'polygon', 'points': [list(c) for c in corners]}
    log = ItemLog()
    line = annotation_to_yolo(ann, class_index=0, image_size=(40, 30), task='obb', log=log)
    values = np.array([float(v) for v in line.split()[1:]]).reshape(4, 2) * [40, 30]
    assert values == pytest.approx(np.array(corners), abs=1e-4)  # not the axis-aligned box
    assert [e[1] for e in log._events] == ['polygon -> rotated box (yolo obb)']


def test_obb_mask_is_the_rectangle_around_its_pixels() -> None:
    mask = np.zeros((30, 40), bool)
    mask[5:9, 10:30] = True
    ann = {'id': 'm', 'category': 'sky', 'tool': 'segmentation', 'mask': mask_to_rle(mask)}
    line = annotation_to_yolo(ann, class_index=1, image_size=(40, 30), task='obb')
    values = np.array([float(v) for v in line.split()[1:]]).reshape(4, 2) * [40, 30]
    assert values == pytest.approx(np.array([[10, 5], [30, 5], [30, 9], [10, 9]]), abs=1e-4)


def test_rotated_box_keeps_its_rotation_in_obb() -> None:
    ann = {'id': 'b', 'category': 'car', 'tool': 'bounding_box', 'bbox': [10, 10, 8, 4],
           'rotation': 0.3}  # fmt: skip
    line = annotation_to_yolo(ann, class_index=0, image_size=(40, 30), task='obb')
    values = np.array([float(v) for v in line.split()[1:]]).reshape(4, 2) * [40, 30]
    assert values == pytest.approx(np.array(rotated_corners([10, 10, 8, 4], 0.3)), abs=1e-4)


LABEL_ONLY = [
    {'id': 't1', 'category': 'sunny', 'tool': 'classification', 'attributes': {}},
    {'id': 't2', 'category': 'car', 'attributes': {}},  # no geometry at all
    {'id': 't3', 'category': 'car', 'tool': 'bounding_box', 'bbox': [], 'attributes': {}},
]


@pytest.mark.parametrize('task', ['detect', 'segment', 'obb', 'pose'])
def test_label_only_annotations_are_never_boxes(tmp_path: Path, task: str) -> None:
    conf = {**CONF, 'keypoints': {'car': {'names': ['a', 'b']}}}
    report, _ = export('yolo', tmp_path, [_item(LABEL_ONLY)], {'task': task},
                       cmap=ClassMap.from_configuration(conf))  # fmt: skip
    assert (tmp_path / 'labels' / 'train' / 'img.txt').read_bytes() == b''
    reason = f'image-level label: yolo {task} has only objects (task=classify writes them)'
    assert report.to_dict()['skipped_reasons'] == {reason: 3}


def test_classify_folders(tmp_path: Path) -> None:
    items = [
        _item([LABEL_ONLY[0]], id=1, stem='a'),
        _item([{'id': 'r', 'category': 'rain', 'tool': 'classification'},
               {'id': 's', 'category': 'sunny', 'tool': 'classification'},
               {'id': 'c', 'category': 'car', 'tool': 'bounding_box', 'bbox': [1, 1, 2, 2]}],
              id=2, stem='b', split='val', w=None, h=None),
        _item([], id=3, stem='c'),
    ]  # fmt: skip
    report, writer = export('yolo', tmp_path, items, {'task': 'classify'},
                            cmap=ClassMap.from_configuration(CONF))  # fmt: skip
    assert writer.image_relpath(items[0]) == 'train/sunny/a.jpg'
    assert writer.image_relpath(items[1]) == 'val/rain/b.jpg'  # first label wins; no size needed
    assert writer.image_relpath(items[2]) is None
    assert (tmp_path / 'train' / 'sunny' / 'a.jpg').is_file()
    assert (tmp_path / 'val' / 'rain').is_dir()
    assert not (tmp_path / 'labels').exists()
    d = report.to_dict()
    assert d['items'] == {'total': 3, 'exported': 2, 'failed': 1}
    assert 'no image-level label' in d['failed_items'][0]['reason']
    assert d['skipped_reasons'] == {
        'object annotation: yolo classify has only image-level labels': 1,
        'yolo classify is single-label: a further image-level label skipped': 1,
    }
    assert d['per_class'] == {'rain': 1, 'sunny': 1}
    data = yaml.safe_load((tmp_path / 'data.yaml').read_text('utf-8'))
    assert (data['train'], data['val'], data['task']) == ('train', 'val', 'classify')


def test_classify_folder_names_are_safe_and_unique() -> None:
    conf = {'classes': ['a/b', 'a_b', 'CON', '..']}
    writer = YoloWriter(Path('/nonexistent'), ClassMap.from_configuration(conf),
                        {'task': 'classify'}, ExportReport())  # fmt: skip
    writer.class_map = ClassMap.from_configuration(conf)
    from synapse_sdk.formats.yolo.writer import _class_dirs

    dirs = _class_dirs(['a/b', 'a_b', 'CON', '..'])
    assert len({d.casefold() for d in dirs}) == 4
    assert all('/' not in d and d not in ('.', '..') for d in dirs)


WEATHER = {
    'classes': [{'name': 'car', 'tool': 'bounding_box'}],
    'classifications': [{'name': 'weather', 'values': ['sunny', 'rain', 'night']},
                        {'name': 'time', 'values': ['day', 'dusk']}],
}  # fmt: skip


def _classify(
    root: Path, items: list[FormatItem], conf: dict[str, Any], options: dict[str, Any]
) -> tuple[ExportReport, YoloWriter]:
    """The pipeline's order, with the project the writer takes its classifications from."""
    report, writer = export('yolo', root, items, {'task': 'classify', **options},
                            ClassMap.from_configuration(conf), images=False,
                            project={'title': 'p', 'configuration': conf})  # fmt: skip
    assert isinstance(writer, YoloWriter)
    return report, writer


def _weather(value: Any, id: int) -> FormatItem:
    box = {'id': 'b', 'category': 'car', 'tool': 'bounding_box', 'bbox': [1, 1, 2, 2]}
    item = _item([box], id=id, stem=f'i{id}')
    if value is not None:
        item.classifications['weather'] = value
    return item


def test_classify_takes_the_class_from_a_classification(tmp_path: Path) -> None:
    """The demo project has no classification class: every item failed ("no image-level
    label"). Its ``weather`` classification's value is the class, named with
    ``-o classification=weather``."""
    items = [_weather('rain', 1), _weather('night', 2), _weather(None, 3), _weather('fog', 4),
             _weather(['sunny', 'rain'], 5)]  # fmt: skip
    report, writer = _classify(tmp_path, items, WEATHER, {'classification': 'weather'})
    assert [writer.image_relpath(i) for i in items] == [
        'train/rain/i1.jpg', 'train/night/i2.jpg', None, None, 'train/sunny/i5.jpg'
    ]  # fmt: skip
    d = report.to_dict()
    assert d['items'] == {'total': 5, 'exported': 3, 'failed': 2}
    reasons = {f['id']: f['reason'] for f in d['failed_items']}
    assert reasons[3] == (
        "yolo classify: no 'weather' classification, which gives the image its class (sunny, "
        'rain, night); an image without a class has no class folder'
    )
    assert "'weather' is 'fog', not one of its declared values (sunny, rain, night)" in reasons[4]
    assert d['per_class'] == {'night': 1, 'rain': 1, 'sunny': 1}
    assert d['skipped_reasons'] == {
        'object annotation: yolo classify has only image-level labels': 3,
        "yolo classify is single-label: a further 'weather' value skipped": 1,
    }
    data = yaml.safe_load((tmp_path / 'data.yaml').read_text('utf-8'))
    assert data['names'] == {0: 'sunny', 1: 'rain', 2: 'night'} and data['nc'] == 3
    assert data['classification'] == 'weather'


def test_the_only_classification_is_the_default(tmp_path: Path) -> None:
    conf = {**WEATHER, 'classifications': WEATHER['classifications'][:1]}
    _, writer = _classify(tmp_path, [_weather('rain', 1)], conf, {})
    assert writer.image_relpath(_weather('rain', 1)) == 'train/rain/i1.jpg'


@pytest.mark.parametrize(
    ('conf', 'options', 'message'),
    [
        (WEATHER, {}, 'not exactly one classification; name the classification whose value is '
                      'the class (one of: weather, time)'),
        ({'classes': ['car']}, {}, 'the project has no classification class'),
        (WEATHER, {'classification': 'season'},
         "'season' is not a classification of the project (its classifications: weather, time)"),
        ({**WEATHER, 'classifications': [{'name': 'note'}]}, {'classification': 'note'},
         "the classification 'note' declares no \"values\""),
    ],
)  # fmt: skip
def test_classify_without_a_class_source_is_refused(
    tmp_path: Path, conf: dict[str, Any], options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ParamsError) as info:
        _classify(tmp_path, [], conf, options)
    ((field, text),) = info.value.errors
    assert field == 'extra_params.classification' and message in text


def test_classification_option_needs_task_classify() -> None:
    options = YoloWriter.validate_options({'classification': 'weather'})
    with pytest.raises(ParamsError, match='only applies to task=classify'):
        YoloWriter.check_export(options, save_original=True)


def test_pose_flip_idx_from_the_schema(tmp_path: Path) -> None:
    export('yolo', tmp_path, make_items(), {'task': 'pose'})
    data = yaml.safe_load((tmp_path / 'data.yaml').read_text('utf-8'))
    # head, left_hand, right_hand, left_foot, right_foot
    assert data['flip_idx'] == [0, 2, 1, 4, 3]
    assert flip_index(['nose', 'eye_Left', 'eye_Right', 'leftEar', 'rightEar']) == [0, 2, 1, 4, 3]


def test_pose_flip_idx_explicit_and_conflicting(tmp_path: Path) -> None:
    conf = configuration()
    conf['keypoints']['person_pose']['flip_idx'] = [0, 1, 2, 3, 4]
    export('yolo', tmp_path / 'a', make_items(), {'task': 'pose'},
           cmap=ClassMap.from_configuration(conf))  # fmt: skip
    data = yaml.safe_load((tmp_path / 'a' / 'data.yaml').read_text('utf-8'))
    assert data['flip_idx'] == [0, 1, 2, 3, 4]
    conf['keypoints']['car'] = {'names': ['right', 'left']}
    report, _ = export('yolo', tmp_path / 'b', make_items(), {'task': 'pose'},
                       cmap=ClassMap.from_configuration(conf))  # fmt: skip
    data = yaml.safe_load((tmp_path / 'b' / 'data.yaml').read_text('utf-8'))
    assert 'flip_idx' not in data and 'flip_idx left out' in report.extra['warnings'][0]


def test_splits_without_items_are_not_declared(tmp_path: Path) -> None:
    items = [i for i in make_items(split='category') if i.split == 'train']
    export('yolo', tmp_path, items, {'split': 'category'})
    data = yaml.safe_load((tmp_path / 'data.yaml').read_text('utf-8'))
    assert 'test' not in data
    assert data['val'] == data['train'] == 'images/train'  # Ultralytics requires a val
    assert sorted(p.name for p in (tmp_path / 'labels').iterdir()) == ['train']
    assert sorted(p.name for p in (tmp_path / 'images').iterdir()) == ['train']


BAD_NUMBERS = [
    ({'tool': 'bounding_box', 'bbox': [float('nan'), 1, 2, 2]}, 'bbox is not 4 finite numbers'),
    ({'tool': 'bounding_box', 'bbox': ['inf', 1, 2, 2]}, 'bbox is not 4 finite numbers'),
    ({'tool': 'bounding_box', 'bbox': [1e308, 1, 1e308, 2]}, 'bbox is not 4 finite numbers'),
    ({'tool': 'bounding_box', 'bbox': '1 1 2 2'}, 'bbox is not 4 finite numbers'),
    ({'tool': 'bounding_box', 'bbox': [1, 1, 2, 2], 'rotation': 'NaN'},
     'rotation is not a finite number'),
    ({'tool': 'polygon', 'points': [[1, 1], [float('inf'), 2], [3, 3]]},
     'points are not [x, y] pairs of finite numbers'),
    ({'tool': 'segmentation', 'mask': {'size': [30, 40], 'counts': [5, 5]}},
     'mask counts are invalid (runs do not cover the mask)'),
]  # fmt: skip


@pytest.mark.parametrize('task', ['detect', 'segment', 'obb'])
def test_bad_numbers_are_skipped_never_written(tmp_path: Path, task: str) -> None:
    anns = [{'id': str(i), 'category': 'car', **a} for i, (a, _) in enumerate(BAD_NUMBERS)]
    report, _ = export('yolo', tmp_path, [_item(anns)], {'task': task},
                       cmap=ClassMap.from_configuration(CONF))  # fmt: skip
    assert (tmp_path / 'labels' / 'train' / 'img.txt').read_bytes() == b''
    skipped = report.to_dict()['skipped_reasons']
    assert sum(skipped.values()) == len(BAD_NUMBERS)
    assert set(skipped) == {reason for _, reason in BAD_NUMBERS}


def test_whole_number_float_size_works(tmp_path: Path) -> None:
    ann = {'id': 'b', 'category': 'car', 'tool': 'bounding_box', 'bbox': [0, 0, 128, 64]}
    report, _ = export('yolo', tmp_path, [_item([ann], w=256.0, h=128.0)],
                       cmap=ClassMap.from_configuration(CONF), images=False)  # fmt: skip
    assert _lines(tmp_path) == [[0, 0.25, 0.25, 0.5, 0.5]]
    report, _ = export('yolo', tmp_path / 'x', [_item([ann], w=256.5, h=128.0)],
                       cmap=ClassMap.from_configuration(CONF), images=False)  # fmt: skip
    assert report.items_failed == 1
    assert 'width=256.5' in report.failed_items[0]['reason']


def test_crowd_and_keypoints_skipped_with_reasons() -> None:
    crowd = {'id': 'c', 'category': 'car', 'tool': 'bounding_box', 'bbox': [1, 1, 2, 2],
             'iscrowd': True}  # fmt: skip
    with pytest.raises(Unsupported, match='yolo has no crowd regions'):
        annotation_to_yolo(crowd, class_index=0, image_size=(10, 10))
    kp = {'id': 'k', 'category': 'car', 'tool': 'keypoint', 'bbox': [1, 1, 2, 2],
          'keypoints': [[1, 1, 2]]}  # fmt: skip
    with pytest.raises(Unsupported, match='yolo obb has no keypoints'):
        annotation_to_yolo(kp, class_index=0, image_size=(10, 10), task='obb')


def test_failed_item_names_the_size(tmp_path: Path) -> None:
    writer = YoloWriter(tmp_path, ClassMap.from_configuration(CONF), {}, ExportReport())
    writer.start()
    with pytest.raises(ItemExportError, match='width=0'):
        writer.write_item(_item([], w=0, h=10))

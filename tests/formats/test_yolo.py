"""YOLO: layout, normalisation and clamping, every task, and write -> read -> write identity."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
import yaml
from hypothesis import event, given, settings
from hypothesis import strategies as st

from synapse_sdk.errors import ParamsError
from synapse_sdk.formats.base import FormatItem, ItemLog, Unsupported
from synapse_sdk.formats.yolo.convert import annotation_to_yolo, fmt, yolo_to_annotation
from synapse_sdk.formats.yolo.reader import read_dataset
from synapse_sdk.formats.yolo.writer import YoloWriter

from .contract import WriterContract
from .helpers import export, make_items, tree


class TestYoloDetectContract(WriterContract):
    fmt = 'yolo'


class TestYoloSegmentContract(WriterContract):
    fmt = 'yolo'
    options = {'task': 'segment'}


class TestYoloPoseContract(WriterContract):
    fmt = 'yolo'
    options = {'task': 'pose'}


class TestYoloObbContract(WriterContract):
    fmt = 'yolo'
    options = {'task': 'obb'}


def _labels(root: Path, split: str, stem: str) -> list[list[str]]:
    text = (root / 'labels' / split / f'{stem}.txt').read_text('utf-8')
    return [line.split() for line in text.splitlines()]


def test_layout_and_data_yaml(tmp_path: Path) -> None:
    export('yolo', tmp_path, make_items(split='category'))
    data = yaml.safe_load((tmp_path / 'data.yaml').read_text('utf-8'))
    assert data['path'] == '.'
    assert data['train'] == 'images/train' and data['val'] == 'images/validation'
    assert data['test'] == 'images/test'
    assert data['names'] == {
        0: 'car',
        1: 'person',
        2: 'road',
        3: 'person_pose',
        4: 'sky',
        5: 'lane',
    }
    assert data['nc'] == 6 and data['task'] == 'detect'
    assert (tmp_path / 'images' / 'validation' / 'crossing 0007_1.jpg').is_file()
    # the empty image has an empty label file
    assert (tmp_path / 'labels' / 'validation' / 'crossing 0007_1.txt').read_bytes() == b''
    assert (tmp_path / 'labels' / 'train' / '東京 駅.txt').is_file()


def test_val_falls_back_to_train_and_path_option(tmp_path: Path) -> None:
    export('yolo', tmp_path, make_items(), {'path': '/datasets/street'})
    data = yaml.safe_load((tmp_path / 'data.yaml').read_text('utf-8'))
    assert data['path'] == '/datasets/street'
    assert data['train'] == data['val'] == 'images/train'


@pytest.mark.parametrize(
    ('split', 'named'),
    [('foo=1', "split 'foo'"), ('train=0.8,holdout=0.2', "split 'holdout'"),
     ('val=0.5,test=0.5', 'no "train" split'), ({'valid': 1}, "split 'valid'")],
)  # fmt: skip
def test_splits_ultralytics_cannot_read_are_refused(split: Any, named: str) -> None:
    """``--split foo=1`` wrote a data.yaml with a ``foo:`` key and no ``train``/``val``, which
    Ultralytics refuses to load; such splits are refused before anything is written."""
    options = YoloWriter.validate_options({'split': split})
    with pytest.raises(ParamsError) as info:
        YoloWriter.check_export(options, save_original=True)
    ((field, message),) = info.value.errors
    assert field == 'extra_params.split'
    assert named in message and 'train, val (or validation) and test' in message


@pytest.mark.parametrize('split', [None, 'train=1', 'train=0.8,val=0.2', 'category',
                                   'train=0.7,validation=0.2,test=0.1'])  # fmt: skip
def test_splits_ultralytics_reads_are_taken(split: Any) -> None:
    YoloWriter.check_export(YoloWriter.validate_options({'split': split}), save_original=True)


def test_train_points_at_val_when_no_item_is_train(tmp_path: Path) -> None:
    """Split ``category`` where no item's category is train: Ultralytics still needs the key."""
    items = [i for i in make_items(split='category') if i.split != 'train']
    export('yolo', tmp_path, items, {'split': 'category'})
    data = yaml.safe_load((tmp_path / 'data.yaml').read_text('utf-8'))
    assert data['train'] == data['val'] == 'images/validation'
    assert list(data)[:4] == ['path', 'train', 'val', 'test']


def test_class_order_is_the_same_in_every_split_and_partial_export(tmp_path: Path) -> None:
    export('yolo', tmp_path / 'full', make_items(split='category'))
    export('yolo', tmp_path / 'part', make_items(split='category')[3:])
    full = yaml.safe_load((tmp_path / 'full' / 'data.yaml').read_text('utf-8'))
    part = yaml.safe_load((tmp_path / 'part' / 'data.yaml').read_text('utf-8'))
    assert full['names'] == part['names']
    # 'person' is class 1 in both, though it is the first class seen in the partial export
    assert _labels(tmp_path / 'part', 'test', 'CROSSING 0007_2')[0][0] == '1'


def test_detect_values(tmp_path: Path) -> None:
    report, _ = export('yolo', tmp_path, make_items())
    first = _labels(tmp_path, 'train', 'crossing 0007')
    # car [12.5, 10, 20, 12] in 64x48: centre (22.5, 16)
    assert first[0] == ['0', '0.351562', '0.333333', '0.312500', '0.250000']
    assert [line[0] for line in first] == ['0', '0', '2', '4']  # no keypoint box
    # person [-4, 2, 10, 30] in 32x24 is clamped to [0, 2, 6, 22]
    assert _labels(tmp_path, 'train', '東京 駅')[0] == [
        '1', '0.093750', '0.541667', '0.187500', '0.916667'
    ]  # fmt: skip
    d = report.to_dict()
    assert d['annotations']['clamped'] == 1
    assert d['converted_reasons'] == {
        'polygon -> box (yolo detect)': 1,
        'rotated box -> enclosing box (yolo detect)': 1,
        'segmentation -> box (yolo detect)': 1,
    }
    assert d['skipped_reasons'] == {
        "class 'bicycle' not in the project configuration": 1,
        'crowd region: yolo has no crowd regions': 1,
        'polyline cannot be expressed in yolo detect': 1,
        'yolo detect has no keypoints': 1,
    }


@pytest.mark.parametrize('precision', [1, 3, 6, 9])
def test_precision_is_fixed(tmp_path: Path, precision: int) -> None:
    export('yolo', tmp_path, make_items(), {'precision': precision})
    for line in _labels(tmp_path, 'train', 'crossing 0007'):
        assert all(len(v.split('.')[1]) == precision for v in line[1:] if '.' in v)


def test_segment_lines(tmp_path: Path) -> None:
    report, _ = export('yolo', tmp_path, make_items(), {'task': 'segment'})
    lines = _labels(tmp_path, 'train', 'crossing 0007')
    assert [line[0] for line in lines] == ['0', '0', '2', '4']  # the sky mask is kept
    assert len(lines[2]) == 1 + 8
    assert lines[2][1:3] == ['0.000000', '0.625000']
    d = report.to_dict()
    assert d['converted_reasons']['bounding_box -> polygon (yolo segment)'] == 5
    assert d['converted_reasons']['segmentation -> polygon (yolo segment)'] == 1
    assert d['skipped_reasons']['crowd region: yolo has no crowd regions'] == 1
    assert d['skipped_reasons']['yolo segment has no keypoints'] == 1
    assert 'sky' in d['per_class']


def test_pose_lines(tmp_path: Path) -> None:
    export('yolo', tmp_path, make_items(), {'task': 'pose'})
    data = yaml.safe_load((tmp_path / 'data.yaml').read_text('utf-8'))
    assert data['kpt_shape'] == [5, 3]
    assert data['kpt_names'] == {3: ['head', 'left_hand', 'right_hand', 'left_foot', 'right_foot']}
    (line,) = _labels(tmp_path, 'train', 'crossing 0007')
    assert line[0] == '3' and len(line) == 1 + 4 + 5 * 3
    assert line[5:8] == ['0.687500', '0.229167', '2']
    assert line[-3:] == ['0', '0', '0']


def test_pose_needs_keypoint_classes(tmp_path: Path) -> None:
    from synapse_sdk.formats.classmap import ClassMap
    from synapse_sdk.formats.report import ExportReport

    cmap = ClassMap.from_configuration({'classes': [{'name': 'car', 'tool': 'bounding_box'}]})
    writer = YoloWriter(tmp_path, cmap, {'task': 'pose'}, ExportReport())
    with pytest.raises(ParamsError, match='task'):
        writer.start()


def test_obb_keeps_true_corners() -> None:
    ann = {'id': 'r', 'category': 'car', 'tool': 'bounding_box', 'bbox': [40, 30, 20, 10],
           'rotation': 0.5}  # fmt: skip
    log = ItemLog()
    line = annotation_to_yolo(ann, class_index=0, image_size=(100, 100), task='obb', log=log)
    assert not log._events  # nothing converted, nothing clamped
    values = [float(v) for v in line.split()[1:]]
    back = yolo_to_annotation(values, image_size=(100, 100), task='obb', category='car', ann_id='1')
    assert back['bbox'] == pytest.approx([40, 30, 20, 10], abs=1e-4)
    assert back['rotation'] == pytest.approx(0.5, abs=1e-5)


@pytest.mark.parametrize(
    ('bad', 'key'),
    [
        ({'task': 'clasify'}, 'task'),
        ({'precision': 0}, 'precision'),
        ({'path': 3}, 'path'),
        ({'precision': '3'}, 'precision'),
        ({'precision': True}, 'precision'),
        ({'tsk': 'segment'}, 'tsk'),
    ],
)
def test_bad_options(bad: dict[str, Any], key: str) -> None:
    with pytest.raises(ParamsError, match=key):
        YoloWriter.validate_options(bad)


def test_box_entirely_outside_is_skipped() -> None:
    ann = {'id': 'o', 'category': 'car', 'tool': 'bounding_box', 'bbox': [50, 50, 5, 5]}
    with pytest.raises(Unsupported, match='outside'):
        annotation_to_yolo(ann, class_index=0, image_size=(10, 10))


def test_fmt_never_negative_zero() -> None:
    assert fmt(-1e-9, 6) == '0.000000'
    assert fmt(0.5, 2) == '0.50'


def _items_from(dataset: Any) -> list[FormatItem]:
    return [
        FormatItem(id=n, stem=Path(i.file_name).stem, ext=Path(i.file_name).suffix,
                   split={'validation': 'val'}.get(i.split or 'train', i.split or 'train'),
                   width=i.width, height=i.height, annotations=i.annotations)
        for n, i in enumerate(dataset.images, 1)
    ]  # fmt: skip


@pytest.mark.parametrize('task', ['detect', 'segment', 'pose', 'obb'])
def test_round_trip_write_read_write_is_identity(tmp_path: Path, task: str) -> None:
    options = {'task': task, 'split': 'train=0.5,val=0.5'}
    export('yolo', tmp_path / 'a', make_items(split=options['split']), options)
    dataset = read_dataset(tmp_path / 'a')
    names = [c['name'] for c in dataset.configuration['classes']]
    assert names == ['car', 'person', 'road', 'person_pose', 'sky', 'lane']
    from synapse_sdk.formats.classmap import ClassMap

    cmap = ClassMap.from_configuration(dataset.configuration)
    export('yolo', tmp_path / 'b', _items_from(dataset), options, cmap=cmap)
    a = {k: v for k, v in tree(tmp_path / 'a').items() if not k.startswith('images')}
    b = {k: v for k, v in tree(tmp_path / 'b').items() if not k.startswith('images')}
    assert a == b


@settings(max_examples=60, deadline=None)
@given(
    x=st.floats(0, 600),
    y=st.floats(0, 400),
    w=st.floats(0.5, 40),
    h=st.floats(0.5, 40),
    precision=st.integers(3, 8),
)
def test_detect_box_round_trip_within_precision(
    x: float, y: float, w: float, h: float, precision: int
) -> None:
    size = (640, 480)
    ann = {'id': '1', 'category': 'c', 'tool': 'bounding_box', 'bbox': [x, y, w, h]}
    try:
        line = annotation_to_yolo(ann, class_index=0, image_size=size, precision=precision)
    except Unsupported:
        return  # clamped away entirely
    values = [float(v) for v in line.split()[1:]]
    back = yolo_to_annotation(values, image_size=size, task='detect', category='c', ann_id='1')
    x2, y2 = min(x + w, 640), min(y + h, 480)
    tol = 640 * 10**-precision
    assert back['bbox'][0] == pytest.approx(x, abs=tol)
    assert back['bbox'][0] + back['bbox'][2] == pytest.approx(x2, abs=tol)
    assert back['bbox'][1] + back['bbox'][3] == pytest.approx(y2, abs=tol)
    line2 = annotation_to_yolo(back, class_index=0, image_size=size, precision=precision)
    assert line2 == line or all(
        math.isclose(float(p), float(q), abs_tol=2 * 10**-precision)
        for p, q in zip(line.split(), line2.split(), strict=True)
    )


_COORD = st.one_of(
    st.sampled_from([0, 1, 2, 2.5]),  # repeated values: flat and single-point polygons
    st.integers(-1, 40),
    st.floats(-0.5, 40.5),
    st.sampled_from([float('nan'), True, '3']),
)


@settings(max_examples=400, deadline=None)
@given(
    points=st.lists(st.lists(_COORD, min_size=1, max_size=3), max_size=6)
    | st.lists(
        st.lists(st.sampled_from([0, 1, 2, 1.5, 3]), min_size=2, max_size=2), max_size=5
    ),  # small grids: flat, single-point and border polygons
    size=st.tuples(st.integers(1, 40), st.integers(1, 40)) | st.just((3, 3)),
    iscrowd=st.sampled_from([None, False, True]),
)
def test_a_detect_polygon_takes_the_shortcut_to_the_same_line(
    points: list[Any], size: tuple[int, int], iscrowd: Any
) -> None:
    """A polygon inside the image becomes its box without the checked path; line and reports
    are what the checked path gives (and anything else is left to it)."""
    from synapse_sdk.formats.yolo import convert

    ann: dict[str, Any] = {'id': 'p', 'category': 'road', 'tool': 'polygon', 'points': points}
    if iscrowd is not None:
        ann['iscrowd'] = iscrowd
    converter = convert.YoloConverter('detect')

    def run() -> tuple[Any, list[Any]]:
        log = ItemLog('item')
        try:
            return converter.line(ann, 2, *size, log), log._events
        except (Unsupported, TypeError, ValueError) as exc:
            return type(exc), log._events

    fast = run()
    event('shortcut' if isinstance(fast[0], str) and fast[1] else 'other')
    with patch.object(convert, 'plain_points_box', lambda *args: None):
        checked = run()
    assert fast == checked

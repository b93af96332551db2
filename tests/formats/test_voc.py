"""Pascal VOC: devkit coordinates, layout, and write -> read -> write identity."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from synapse_sdk.errors import ParamsError
from synapse_sdk.formats.base import FormatItem, ItemLog, Unsupported
from synapse_sdk.formats.classmap import ClassMap
from synapse_sdk.formats.voc.convert import annotation_to_voc, box_to_voc, voc_to_box
from synapse_sdk.formats.voc.reader import read_dataset
from synapse_sdk.formats.voc.writer import VocWriter

from .contract import WriterContract
from .helpers import export, make_items, tree


class TestVocContract(WriterContract):
    fmt = 'voc'


# (document box, devkit xmin ymin xmax ymax)
DEVKIT = [
    ([0, 0, 10, 10], ('1', '1', '10', '10')),  # pixels 1..10 inclusive
    ([5, 7, 1, 1], ('6', '8', '6', '8')),  # a single pixel
    ([12.5, 10.0, 20.0, 12.0], ('13', '11', '32', '22')),  # half pixels round to even
    ([0.4, 0.6, 0.2, 0.2], ('1', '2', '1', '2')),  # sub-pixel box keeps one pixel
]


@pytest.mark.parametrize(('box', 'expected'), DEVKIT)
def test_devkit_convention(box: list[float], expected: tuple[str, ...]) -> None:
    got = box_to_voc(box)
    assert (got['xmin'], got['ymin'], got['xmax'], got['ymax']) == expected


@given(x=st.integers(0, 500), y=st.integers(0, 500), w=st.integers(1, 500), h=st.integers(1, 500))
def test_whole_pixel_boxes_round_trip_exactly(x: int, y: int, w: int, h: int) -> None:
    v = box_to_voc([x, y, w, h])
    assert voc_to_box(*(float(v[k]) for k in ('xmin', 'ymin', 'xmax', 'ymax'))) == [x, y, w, h]


def test_precision_option_writes_decimals() -> None:
    assert box_to_voc([12.5, 10.0, 20.0, 12.0], precision=2) == {
        'xmin': '13.50', 'ymin': '11.00', 'xmax': '32.50', 'ymax': '22.00'
    }  # fmt: skip


def test_layout(tmp_path: Path) -> None:
    export('voc', tmp_path, make_items(split='category'))
    assert (tmp_path / 'labels.txt').read_text('utf-8').split() == [
        'car', 'person', 'road', 'person_pose', 'sky', 'lane'
    ]  # fmt: skip
    sets = tmp_path / 'ImageSets' / 'Main'
    assert (sets / 'train.txt').read_text('utf-8') == 'crossing 0007\n東京 駅\n'
    assert (sets / 'validation.txt').read_text('utf-8') == 'crossing 0007_1\n'
    assert (sets / 'test.txt').read_text('utf-8') == 'CROSSING 0007_2\n'
    assert (tmp_path / 'JPEGImages' / '東京 駅.png').is_file()
    empty = ET.parse(tmp_path / 'Annotations' / 'crossing 0007_1.xml').getroot()
    assert empty.findtext('filename') == 'crossing 0007_1.jpg'
    assert empty.findall('object') == []
    assert empty.findtext('size/width') == '64'


def test_objects(tmp_path: Path) -> None:
    report, _ = export('voc', tmp_path, make_items())
    root = ET.parse(tmp_path / 'Annotations' / '東京 駅.xml').getroot()
    objs = root.findall('object')
    assert [o.findtext('name') for o in objs] == ['person', 'person']
    clamped = objs[0]
    assert [clamped.findtext(f'bndbox/{k}') for k in ('xmin', 'ymin', 'xmax', 'ymax')] == [
        '1', '3', '6', '24'
    ]  # fmt: skip
    assert clamped.findtext('truncated') == '1'
    assert objs[1].findtext('attributes/attribute/value') == '"a, \\"quoted\\" note"'
    first = ET.parse(tmp_path / 'Annotations' / 'crossing 0007.xml').getroot()
    assert first.find('object').findtext('occluded') == '0'  # type: ignore[union-attr]
    d = report.to_dict()
    assert d['annotations']['clamped'] == 1
    assert d['converted_reasons']['rotated box -> enclosing box (voc)'] == 1
    assert d['converted_reasons']['crowd flag not expressible (voc)'] == 1
    assert d['skipped_reasons']['polyline cannot be expressed in voc'] == 1


def test_rotated_box_becomes_enclosing_box() -> None:
    ann = {'id': 'r', 'category': 'car', 'tool': 'bounding_box', 'bbox': [10, 10, 10, 10],
           'rotation': math.pi / 4}  # fmt: skip
    log = ItemLog()
    obj = annotation_to_voc(ann, image_size=(100, 100), log=log)
    half = 5 * math.sqrt(2)
    assert obj['bndbox']['xmin'] == str(round(15 - half) + 1)
    assert obj['bndbox']['xmax'] == str(round(15 + half))
    assert [e[1] for e in log._events] == ['rotated box -> enclosing box (voc)']


def test_keypoints_without_box_or_labelled_point_are_unsupported() -> None:
    ann = {'id': 'k', 'category': 'car', 'tool': 'keypoint', 'keypoints': [[1, 2, 0]]}
    with pytest.raises(Unsupported, match='no box and no labelled point'):
        annotation_to_voc(ann, image_size=(100, 100))


def _items_from(dataset: Any) -> list[FormatItem]:
    return [
        FormatItem(id=n, stem=Path(i.file_name).stem, ext=Path(i.file_name).suffix,
                   split=i.split or 'train', width=i.width, height=i.height,
                   annotations=i.annotations)
        for n, i in enumerate(dataset.images, 1)
    ]  # fmt: skip


@pytest.mark.parametrize('precision', [0, 2])
def test_round_trip_write_read_write_is_identity(tmp_path: Path, precision: int) -> None:
    options = {'split': 'category', 'precision': precision}
    export('voc', tmp_path / 'a', make_items(split='category'), options)
    dataset = read_dataset(tmp_path / 'a')
    assert [c['name'] for c in dataset.configuration['classes']][:2] == ['car', 'person']
    images = list(dataset.images)
    assert [i.split for i in images] == ['test', 'train', 'validation', 'train']
    cmap = ClassMap.from_configuration(dataset.configuration)
    export('voc', tmp_path / 'b', _items_from(dataset), options, cmap=cmap)
    assert tree(tmp_path / 'a') == tree(tmp_path / 'b')


def test_reader_accepts_a_vocdevkit_dir_and_foreign_files(tmp_path: Path) -> None:
    root = tmp_path / 'VOCdevkit' / 'VOC2012'
    (root / 'Annotations').mkdir(parents=True)
    (root / 'Annotations' / '2008_000001.xml').write_text(
        '<annotation><filename>2008_000001.jpg</filename><size><width>500</width>'
        '<height>375</height></size><object><name>dog</name><pose>Left</pose>'
        '<truncated>1</truncated><difficult>0</difficult><bndbox><xmin>1</xmin><ymin>11</ymin>'
        '<xmax>100</xmax><ymax>110</ymax></bndbox></object></annotation>',
        encoding='utf-8',
    )
    dataset = read_dataset(tmp_path / 'VOCdevkit')
    (image,) = list(dataset.images)
    (ann,) = image.annotations
    assert ann['bbox'] == [0.0, 10.0, 100.0, 100.0]
    assert ann['attributes'] == {'difficult': False, 'truncated': True, 'pose': 'Left'}
    assert dataset.configuration['classes'][0]['name'] == 'dog'
    assert (image.width, image.height) == (500, 375)


def test_bad_precision() -> None:
    with pytest.raises(ParamsError, match='precision'):
        VocWriter.validate_options({'precision': 9})

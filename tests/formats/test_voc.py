"""Pascal VOC: devkit coordinates, layout, and write -> read -> write identity."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from synapse_sdk.errors import ParamsError
from synapse_sdk.formats.base import FormatItem, ItemLog, Unsupported
from synapse_sdk.formats.classmap import ClassMap
from synapse_sdk.formats.voc.convert import annotation_to_voc, box_to_voc, voc_to_box
from synapse_sdk.formats.voc.reader import read_dataset
from synapse_sdk.formats.voc.writer import VocWriter, object_xml, plain_object_xml, voc_xml

from .contract import WriterContract
from .helpers import export, make_items, tree


class TestVocContract(WriterContract):
    fmt = 'voc'


# (document box, zero-based xmin ymin xmax ymax): Datumaro/CVAT/Ultralytics/MMDetection
ZERO_BASED = [
    ([0, 0, 10, 10], ('0', '0', '10', '10')),
    ([5, 7, 1, 1], ('5', '7', '6', '8')),  # a single pixel stays one pixel wide
    ([12.5, 10.0, 20.0, 12.0], ('12.5', '10', '32.5', '22')),  # exact, no rounding
]

# (document box, devkit xmin ymin xmax ymax): 1-based inclusive pixels the box touches
DEVKIT = [
    ([0, 0, 10, 10], ('1', '1', '10', '10')),  # pixels 1..10 inclusive
    ([5, 7, 1, 1], ('6', '8', '6', '8')),  # a single pixel
    ([12.5, 10.0, 20.0, 12.0], ('13', '11', '33', '22')),  # every pixel touched
    ([0.4, 0.6, 0.2, 0.2], ('1', '1', '1', '1')),  # sub-pixel box keeps one pixel
]


def _corners(v: dict[str, str]) -> tuple[str, ...]:
    return (v['xmin'], v['ymin'], v['xmax'], v['ymax'])


@pytest.mark.parametrize(('box', 'expected'), ZERO_BASED)
def test_zero_based_convention(box: list[float], expected: tuple[str, ...]) -> None:
    assert _corners(box_to_voc(box)) == expected
    back = voc_to_box(*(float(v) for v in expected))
    assert back == [float(v) for v in box]


@pytest.mark.parametrize(('box', 'expected'), DEVKIT)
def test_devkit_convention(box: list[float], expected: tuple[str, ...]) -> None:
    assert _corners(box_to_voc(box, one_based=True)) == expected


@given(x=st.integers(0, 500), y=st.integers(0, 500), w=st.integers(1, 500), h=st.integers(1, 500))
def test_whole_pixel_boxes_round_trip_exactly(x: int, y: int, w: int, h: int) -> None:
    for one_based in (False, True):
        v = box_to_voc([x, y, w, h], one_based=one_based)
        corners = (float(v[k]) for k in ('xmin', 'ymin', 'xmax', 'ymax'))
        assert voc_to_box(*corners, one_based=one_based) == [x, y, w, h]


@given(x=st.floats(0, 500), y=st.floats(0, 500), w=st.floats(0.01, 500), h=st.floats(0.01, 500))
def test_float_boxes_round_trip_exactly_by_default(x: float, y: float, w: float, h: float) -> None:
    v = box_to_voc([x, y, w, h])
    back = voc_to_box(*(float(v[k]) for k in ('xmin', 'ymin', 'xmax', 'ymax')))
    assert back[:2] == [x, y]
    assert back[2] == pytest.approx(w, abs=1e-9) and back[3] == pytest.approx(h, abs=1e-9)


def test_precision_option_writes_decimals() -> None:
    assert box_to_voc([12.5, 10.0, 20.0, 12.0], precision=2) == {
        'xmin': '12.50', 'ymin': '10.00', 'xmax': '32.50', 'ymax': '22.00'
    }  # fmt: skip
    assert _corners(box_to_voc([0.4, 0.6, 0.2, 0.2], precision=0)) == ('0', '1', '1', '2')


def test_layout(tmp_path: Path) -> None:
    export('voc', tmp_path, make_items(split='category'))
    assert (tmp_path / 'labels.txt').read_text('utf-8').split() == [
        'car', 'person', 'road', 'person_pose', 'sky', 'lane'
    ]  # fmt: skip
    assert (tmp_path / 'labelmap.txt').read_text('utf-8') == (
        '# label:color_rgb:parts:actions\ncar:::\nperson:::\nroad:::\nperson_pose:::\n'
        'sky:::\nlane:::\n'
    )
    sets = tmp_path / 'ImageSets' / 'Main'
    assert (sets / 'train.txt').read_text('utf-8') == 'crossing 0007\n東京 駅\n'
    assert (sets / 'validation.txt').read_text('utf-8') == 'crossing 0007_1\n'
    assert (sets / 'test.txt').read_text('utf-8') == 'CROSSING 0007_2\n'
    assert (sets / 'trainval.txt').read_text('utf-8') == 'crossing 0007\ncrossing 0007_1\n東京 駅\n'
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
        '0', '2', '6', '24'
    ]  # fmt: skip
    assert clamped.findtext('truncated') == '1'
    assert objs[1].findtext('attributes/attribute/value') == 'a, "quoted" note'
    first = ET.parse(tmp_path / 'Annotations' / 'crossing 0007.xml').getroot()
    car = first.find('object')
    assert car is not None and car.findtext('occluded') == '0'
    assert car.find('attributes') is None  # occluded is an element, not repeated
    d = report.to_dict()
    assert d['annotations']['clamped'] == 1
    assert d['converted_reasons'] == {
        'polygon -> box (voc)': 1,
        'rotated box -> enclosing box (voc)': 1,
    }
    assert d['skipped_reasons'] == {
        "class 'bicycle' not in the project configuration": 1,
        'polyline cannot be expressed in voc': 1,
        'voc has no keypoints': 1,
        'voc has no masks (segmentation)': 2,
    }


def test_rotated_box_becomes_enclosing_box() -> None:
    ann = {'id': 'r', 'category': 'car', 'tool': 'bounding_box', 'bbox': [10, 10, 10, 10],
           'rotation': math.pi / 4}  # fmt: skip
    log = ItemLog()
    obj = annotation_to_voc(ann, image_size=(100, 100), log=log, one_based=True)
    half = 5 * math.sqrt(2)
    assert obj['bndbox']['xmin'] == str(math.floor(15 - half) + 1)
    assert obj['bndbox']['xmax'] == str(math.ceil(15 + half))
    assert [e[1] for e in log._events] == ['rotated box -> enclosing box (voc)']


def test_keypoints_and_masks_are_unsupported() -> None:
    ann = {'id': 'k', 'category': 'car', 'tool': 'keypoint', 'keypoints': [[1, 2, 2]]}
    with pytest.raises(Unsupported, match='voc has no keypoints'):
        annotation_to_voc(ann, image_size=(100, 100))
    ann = {'id': 'm', 'category': 'car', 'tool': 'segmentation', 'mask': {}}
    with pytest.raises(Unsupported, match='voc has no masks'):
        annotation_to_voc(ann, image_size=(100, 100))


def _items_from(dataset: Any) -> list[FormatItem]:
    return [
        FormatItem(id=n, stem=Path(i.file_name).stem, ext=Path(i.file_name).suffix,
                   split=i.split or 'train', width=i.width, height=i.height,
                   annotations=i.annotations)
        for n, i in enumerate(dataset.images, 1)
    ]  # fmt: skip


@pytest.mark.parametrize('precision', [None, 0, 2])
def test_round_trip_write_read_write_is_identity(tmp_path: Path, precision: int | None) -> None:
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
    assert ann['bbox'] == [1.0, 11.0, 99.0, 99.0]  # Datumaro's default: zero-based
    assert ann['attributes'] == {'difficult': False, 'truncated': True, 'pose': 'Left'}
    assert dataset.configuration['classes'][0]['name'] == 'dog'
    assert (image.width, image.height) == (500, 375)


@pytest.mark.parametrize(
    ('bad', 'key'), [({'precision': 9}, 'precision'), ({'coordinates': 'devkit'}, 'coordinates')]
)
def test_bad_options(bad: dict[str, Any], key: str) -> None:
    with pytest.raises(ParamsError, match=key):
        VocWriter.validate_options(bad)


HOSTILE_NAMES = ['car', 'two\nlines', 'a:b', ' padded ', '#hash', '100%', 'x%41y', 'cr\rlf', 'é']


def test_class_names_with_line_breaks_survive_the_class_list(tmp_path: Path) -> None:
    from synapse_sdk.formats.voc.convert import parse_labelmap

    cmap = ClassMap.from_configuration({'classes': HOSTILE_NAMES})
    items = [
        FormatItem(id=i, stem=f's{i}', ext='.jpg', split='train', width=20, height=20,
                   annotations=[{'id': 'a', 'category': name, 'tool': 'bounding_box',
                                 'bbox': [1, 1, 5, 5]}])
        for i, name in enumerate(HOSTILE_NAMES)
    ]  # fmt: skip
    report, _ = export('voc', tmp_path, items, cmap=cmap, images=False)
    assert report.annotations_exported == len(HOSTILE_NAMES)
    text = (tmp_path / 'labelmap.txt').read_text('utf-8')
    assert parse_labelmap(text) == HOSTILE_NAMES
    assert 'car:::\n' in text and '100%:::\n' in text and 'é:::\n' in text  # unchanged
    lines = (tmp_path / 'labels.txt').read_text('utf-8').splitlines()
    assert len(lines) == len(HOSTILE_NAMES)
    for i, name in enumerate(HOSTILE_NAMES):
        root = ET.parse(tmp_path / 'Annotations' / f's{i}.xml').getroot()
        assert root.findtext('object/name') == name  # \r survives as a character reference


@pytest.mark.parametrize('bad', ['\x00', '\x01x', 'a\x0bb', '\x1f', '\ufffe', 'ok\x7f'])
def test_control_characters_never_make_invalid_xml(tmp_path: Path, bad: str) -> None:
    ann = {'id': 'a', 'category': 'car', 'tool': 'bounding_box', 'bbox': [1, 1, 5, 5],
           'attributes': {bad: bad, 'pose': bad}}  # fmt: skip
    cmap = ClassMap.from_configuration({'classes': ['car']})
    item = FormatItem(id=1, stem='s', ext='.jpg', split='train', width=20, height=20,
                      annotations=[ann])  # fmt: skip
    report, _ = export('voc', tmp_path, [item], cmap=cmap, images=False)
    root = ET.parse(tmp_path / 'Annotations' / 's.xml').getroot()  # parses: valid XML
    assert root.findtext('object/name') == 'car'
    if bad != 'ok\x7f':  # DEL is valid XML
        assert report.converted.get('characters XML cannot hold replaced (voc)')


def test_flags_are_elements_and_attributes_are_text(tmp_path: Path) -> None:
    attrs = {'difficult': True, 'truncated': False, 'occluded': True, 'pose': 'Left',
             'parked': False, 'count': 3, 'ratio': 0.5, 'color': 'red', 'tags': ['a', 'b'],
             'nothing': None}  # fmt: skip
    ann = {'id': 'a', 'category': 'car', 'tool': 'bounding_box', 'bbox': [1, 1, 5, 5],
           'attributes': attrs}  # fmt: skip
    item = FormatItem(id=1, stem='s', ext='.jpg', split='train', width=20, height=20,
                      annotations=[ann])  # fmt: skip
    export('voc', tmp_path, [item], cmap=ClassMap.from_configuration({'classes': ['car']}))
    obj = ET.parse(tmp_path / 'Annotations' / 's.xml').getroot().find('object')
    assert obj is not None
    flags = [obj.findtext(k) for k in ('pose', 'truncated', 'occluded', 'difficult')]
    assert flags == ['Left', '0', '1', '1']
    written = {a.findtext('name'): a.findtext('value') for a in obj.iter('attribute')}
    assert written == {'color': 'red', 'count': '3', 'nothing': 'null', 'parked': 'false',
                       'ratio': '0.5', 'tags': '["a","b"]'}  # fmt: skip
    back = read_dataset(tmp_path)
    (image,) = list(back.images)
    assert image.annotations[0]['attributes'] == attrs


def test_one_based_option(tmp_path: Path) -> None:
    export('voc', tmp_path, make_items(), {'coordinates': 'one_based'})
    root = ET.parse(tmp_path / 'Annotations' / 'crossing 0007.xml').getroot()
    box = [root.findtext(f'object/bndbox/{k}') for k in ('xmin', 'ymin', 'xmax', 'ymax')]
    assert box == ['13', '11', '33', '22']  # [12.5, 10, 20, 12]: the pixels it touches


# -- the XML text is ElementTree's, byte for byte ------------------------------------------------


def _sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    el = ET.SubElement(parent, tag)
    if text is not None:
        el.text = text
    return el


def _elementtree_xml(file_name: str, width: int, height: int, objects: list[Any]) -> str:
    """The annotation XML built as an ElementTree and indented (the writer's former way)."""
    root = ET.Element('annotation')
    _sub(root, 'folder', 'JPEGImages')
    _sub(root, 'filename', file_name)
    _sub(_sub(root, 'source'), 'database', 'Synapse')
    size = _sub(root, 'size')
    _sub(size, 'width', str(width))
    _sub(size, 'height', str(height))
    _sub(size, 'depth', '3')
    _sub(root, 'segmented', '0')
    for obj in objects:
        el = _sub(root, 'object')
        for key, value in obj.items():
            if key == 'bndbox':
                box = _sub(el, 'bndbox')
                for k in ('xmin', 'ymin', 'xmax', 'ymax'):
                    _sub(box, k, value[k])
            elif key == 'attributes':
                if value:
                    attrs = _sub(el, 'attributes')
                    for name, text in value:
                        a = _sub(attrs, 'attribute')
                        _sub(a, 'name', name)
                        _sub(a, 'value', text)
            else:
                _sub(el, key, value)
    ET.indent(root, space='  ')
    return ET.tostring(root, encoding='unicode').replace('\r', '&#13;') + '\n'


_TEXT = st.text(st.sampled_from(['a', ' ', '&', '<', '>', '"', "'", '\r', '\n', '\t', '東', ']']),
                max_size=5)  # fmt: skip
_OBJECT = st.fixed_dictionaries({
    'name': _TEXT, 'pose': _TEXT, 'truncated': st.sampled_from(['0', '1']), 'occluded': _TEXT,
    'difficult': st.just('0'),
    'bndbox': st.fixed_dictionaries({k: _TEXT for k in ('xmin', 'ymin', 'xmax', 'ymax')}),
    'attributes': st.lists(st.tuples(_TEXT, _TEXT), max_size=2),
})  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(name=_TEXT, width=st.integers(1, 10_000), height=st.integers(1, 10_000),
       objects=st.lists(_OBJECT, max_size=3))  # fmt: skip
def test_the_xml_text_is_what_elementtree_writes(
    name: str, width: int, height: int, objects: list[Any]
) -> None:
    """Written as text for speed, the XML stays exactly the indented ElementTree output:
    escaping, empty elements (``<name />``), carriage returns, nesting."""
    assert voc_xml(name, width, height, objects) == _elementtree_xml(name, width, height, objects)


_ODD = st.sampled_from([float('nan'), float('inf'), -0.0, -1, 1e16, True, '3'])
_FLAG = st.sampled_from([True, False, None, 'yes', 'no', 0, 1])


@st.composite
def _box_in(draw: Any, size: tuple[int, int]) -> list[Any]:
    """Mostly boxes inside the image (ints or floats, touching the border or not), sometimes
    one odd value (NaN, inf, -0.0, negative, huge, a bool, a string) or a wrong length."""
    box: list[Any] = []
    for extent in size:
        if draw(st.booleans()):
            a, b = draw(st.integers(0, extent)), draw(st.integers(0, extent + 1))
        else:
            a, b = draw(st.floats(0, extent)), draw(st.floats(0, extent + 0.5))
        box.insert(len(box) // 2, min(a, b))
        box.append(max(a, b) - min(a, b))
    if draw(st.integers(0, 3)) == 0:
        box[draw(st.integers(0, 3))] = draw(_ODD)
    if draw(st.integers(0, 9)) == 0:
        box = box[: draw(st.integers(0, 3))]
    return box


@settings(max_examples=600, deadline=None)
@given(
    data=st.data(),
    category=st.sampled_from(['car', 'car', 'car', 'a&b<c>', '', 'bad\x01name', 'road ']),
    attributes=st.one_of(
        st.dictionaries(st.sampled_from(['truncated', 'occluded', 'difficult']), st.booleans(),
                        max_size=3),
        st.none(),
        st.dictionaries(st.sampled_from(['truncated', 'occluded', 'difficult', 'pose', 'color']),
                        _FLAG, max_size=3),
        st.just(['not', 'a', 'dict']),
    ),
    rotation=st.sampled_from([None, None, None, 0, 0.0, 0.3]),
    iscrowd=st.sampled_from([None, None, None, False, True]),
    tool=st.sampled_from(['bounding_box'] * 3 + ['polygon'] * 2),
    size=st.tuples(st.integers(1, 120), st.integers(1, 120)),
)  # fmt: skip
def test_a_plain_box_is_written_as_the_general_path_writes_it(
    data: Any, category: str, attributes: Any, rotation: Any, iscrowd: Any, tool: str,
    size: tuple[int, int],
) -> None:  # fmt: skip
    """The writer's shortcut for plain boxes gives exactly the general path's object, and
    declines (None) whenever the general path would convert, clamp, skip or report."""
    ann: dict[str, Any] = {'id': 'a1', 'category': category, 'tool': tool}
    if tool == 'bounding_box':
        ann['bbox'] = data.draw(_box_in(size))
    else:  # points inside the image, sometimes one outside or odd
        n = data.draw(st.integers(0, 6))
        ann['points'] = [list(data.draw(_box_in(size))[:2]) for _ in range(n)]
        if n and data.draw(st.integers(0, 3)) == 0:
            ann['points'][0] = [data.draw(_ODD), 1]
    for key, value in (('attributes', attributes), ('rotation', rotation), ('iscrowd', iscrowd)):
        if value is not None:
            ann[key] = value
    fast_log = ItemLog('item')
    fast = plain_object_xml(ann, *size, fast_log)
    event(f'shortcut taken ({tool})' if fast is not None else 'general path')
    if fast is None:
        assert not fast_log._events  # declined: nothing reported twice
        return
    log = ItemLog('item')
    assert fast == object_xml(annotation_to_voc(ann, image_size=size, log=log))
    assert fast_log._events == log._events  # the same reports (a polygon's conversion)


@pytest.mark.parametrize('value', [True, False, None, 'no', 'yes', 0, 1, 'true'])
@pytest.mark.parametrize('key', ['truncated', 'occluded', 'difficult'])
def test_the_plain_box_shortcut_reads_flags_as_the_general_path(key: str, value: Any) -> None:
    ann = {'id': 'a', 'category': 'car', 'tool': 'bounding_box', 'bbox': [0, 1, 5, 5],
           'attributes': {key: value}}  # fmt: skip
    fast = plain_object_xml(ann, 10, 10)
    slow = object_xml(annotation_to_voc(ann, image_size=(10, 10)))
    assert fast in (None, slow)
    assert (fast is None) == (type(value) is not bool)  # only booleans take the shortcut


@settings(max_examples=300, deadline=None)
@given(
    size=st.tuples(st.integers(1, 50), st.integers(1, 50)),
    data=st.data(),
    attributes=st.sampled_from([None, {}, {'occluded': True}, {'truncated': False}]),
)
def test_a_plain_polygon_is_written_as_the_general_path_writes_it(
    size: tuple[int, int], data: Any, attributes: Any
) -> None:
    w, h = size
    coordinate = st.one_of(st.integers(0, w + 1), st.floats(-0.5, w + 0.5))
    points = data.draw(st.lists(st.tuples(coordinate, st.floats(0, h)).map(list), max_size=6))
    ann: dict[str, Any] = {'id': 'p', 'category': 'road', 'tool': 'polygon', 'points': points}
    if attributes is not None:
        ann['attributes'] = attributes
    fast_log = ItemLog('item')
    fast = plain_object_xml(ann, w, h, fast_log)
    event('shortcut taken' if fast is not None else 'general path')
    if fast is None:
        assert not fast_log._events
        return
    log = ItemLog('item')
    assert fast == object_xml(annotation_to_voc(ann, image_size=size, log=log))
    assert fast_log._events == log._events == [('convert', 'polygon -> box (voc)', None)]

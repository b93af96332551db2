"""CVAT for images 1.1: element conversions, the streamed XML, files as CVAT writes them, and
write -> read -> write identity."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synapse_sdk.errors import ParamsError
from synapse_sdk.formats import get_writer
from synapse_sdk.formats.base import FormatItem, ItemLog, Unsupported
from synapse_sdk.formats.cvat.convert import (
    annotation_to_cvat,
    cvat_mask_to_rle,
    rle_to_cvat_mask,
)
from synapse_sdk.formats.cvat.reader import read_dataset
from synapse_sdk.formats.dataset import ImportedDataset
from synapse_sdk.formats.geometry import mask_to_rle, rle_to_mask
from synapse_sdk.formats.names import StemAllocator
from synapse_sdk.formats.report import ExportReport

from .contract import WriterContract
from .helpers import DATA, class_map, export, make_items, save_image, tree


class TestCvatContract(WriterContract):
    fmt = 'cvat'


def _xml(root: Path) -> ET.Element:
    return ET.parse(root / 'annotations.xml').getroot()


def test_box_rotation_is_degrees_clockwise_and_only_when_rotated() -> None:
    ann = {'category': 'car', 'tool': 'bounding_box', 'bbox': [10, 20, 30, 40], 'rotation': 0.0}
    tag, attrs, _ = annotation_to_cvat(ann, image_size=(100, 100))
    assert tag == 'box'
    assert dict(attrs) == {
        'label': 'car', 'source': 'manual', 'occluded': '0', 'xtl': '10.00', 'ytl': '20.00',
        'xbr': '40.00', 'ybr': '60.00', 'z_order': '0',
    }  # fmt: skip
    rotated = annotation_to_cvat({**ann, 'rotation': -math.pi / 2}, image_size=(100, 100))
    assert dict(rotated[1])['rotation'] == '270.00'
    assert dict(rotated[1])['xtl'] == '10.00'  # the unrotated box, as CVAT keeps it


def test_occluded_and_z_order_are_cvat_flags_not_attributes() -> None:
    ann = {
        'category': 'car', 'tool': 'polygon', 'points': [[0, 0], [4, 0], [4, 4]],
        'attributes': {'occluded': True, 'z_order': 3, 'color': 'red', 'n': 2, 'ok': False},
    }  # fmt: skip
    _, attrs, children = annotation_to_cvat(ann, image_size=(10, 10))
    assert dict(attrs)['occluded'] == '1' and dict(attrs)['z_order'] == '3'
    assert children == [
        ('attribute', [('name', 'color')], ['red']),
        ('attribute', [('name', 'n')], ['2']),
        ('attribute', [('name', 'ok')], ['false']),
    ]


@pytest.mark.parametrize(
    ('ann', 'reason'),
    [
        ({'tool': 'bounding_box', 'bbox': [0, 0, 0, 5]}, 'zero'),
        ({'tool': 'polygon', 'points': [[0, 0], [1, 1]]}, 'fewer than 3'),
        ({'tool': 'polygon', 'points': [[0, 0], [1, 1], [2, 2]]}, 'zero area'),
        ({'tool': 'polyline', 'points': [[0, 0]]}, 'fewer than 2'),
        ({'tool': 'segmentation', 'mask': {'size': [5, 5], 'counts': [25]}}, 'differs'),
        ({'tool': 'keypoint', 'keypoints': [[1, 1, 2]]}, 'keypoint names'),
        ({'tool': 'cuboid'}, 'unknown tool'),
    ],
)
def test_unsupported_geometry_names_the_reason(ann: dict[str, Any], reason: str) -> None:
    with pytest.raises(Unsupported, match=reason):
        annotation_to_cvat({'category': 'x', **ann}, image_size=(10, 10))


def test_crowd_is_reported_as_converted() -> None:
    log = ItemLog()
    ann = {'category': 'x', 'tool': 'bounding_box', 'bbox': [0, 0, 2, 2], 'iscrowd': True}
    annotation_to_cvat(ann, image_size=(10, 10), log=log)
    assert ('convert', 'crowd flag not expressible (cvat)', None) in log._events


def test_mask_rle_is_row_major_over_the_mask_box() -> None:
    mask = np.zeros((6, 8), dtype=bool)
    mask[1, 2:5] = True  # row 1: three pixels
    mask[3, 4] = True
    runs, left, top, width, height = rle_to_cvat_mask(mask_to_rle(mask))
    assert (left, top, width, height) == (2, 1, 3, 3)
    # box rows: [1 1 1] [0 0 0] [0 0 1]: 0 bg, 3 fg, 5 bg, 1 fg
    assert runs == [0, 3, 5, 1]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.booleans(), min_size=35, max_size=35))
def test_mask_round_trip(bits: list[bool]) -> None:
    mask = np.array(bits, dtype=bool).reshape(5, 7)
    if not mask.any():
        return
    runs, left, top, width, height = rle_to_cvat_mask(mask_to_rle(mask))
    back = rle_to_mask(cvat_mask_to_rle(runs, left, top, width, height, (7, 5)))
    assert np.array_equal(back, mask)


def test_streamed_xml_layout_and_meta(tmp_path: Path) -> None:
    report, _ = export('cvat', tmp_path, make_items(split='category'), {'split': 'category'})
    root = _xml(tmp_path)
    assert root.tag == 'annotations' and root.findtext('version') == '1.1'
    project = root.find('meta/project')
    assert project is not None
    labels = [(lb.findtext('name'), lb.findtext('type'), lb.findtext('parent')) for lb in
              project.iter('label')]  # fmt: skip
    assert labels[:4] == [
        ('car', 'rectangle', None),
        ('person', 'rectangle', None),
        ('road', 'polygon', None),
        ('person_pose', 'skeleton', None),
    ]
    assert ('head', 'points', 'person_pose') in labels and labels[-1] == ('lane', 'polyline', None)
    tasks = [(t.findtext('subset'), t.findtext('size')) for t in project.iter('task')]
    assert tasks == [('train', '2'), ('validation', '1'), ('test', '1')]
    images = root.findall('image')
    assert [(i.get('id'), i.get('name'), i.get('subset')) for i in images] == [
        ('0', 'crossing 0007.jpg', 'train'),
        ('1', 'crossing 0007_1.jpg', 'validation'),
        ('2', '東京 駅.png', 'train'),
        ('3', 'CROSSING 0007_2.JPG', 'test'),
    ]
    first = images[0]
    assert [el.tag for el in first] == ['box', 'box', 'polygon', 'skeleton', 'mask']
    skeleton = first.find('skeleton')
    assert skeleton is not None
    nodes = [(p.get('label'), p.get('outside'), p.get('occluded')) for p in skeleton]
    assert nodes == [
        ('head', '0', '0'), ('left_hand', '0', '0'), ('right_hand', '0', '1'),
        ('left_foot', '0', '0'), ('right_foot', '1', '0'),
    ]  # fmt: skip
    assert first.find('box[@rotation]') is not None
    note = images[2].find("box/attribute[@name='note']")
    assert note is not None and note.text == 'a, "quoted" note'
    assert report.to_dict()['skipped_reasons'] == {
        "class 'bicycle' not in the project configuration": 1
    }
    assert report.extra == {'cvat': {'classifications_not_written': 2}}


def test_a_failed_item_leaves_nothing(tmp_path: Path) -> None:
    items = make_items()
    writer = get_writer('cvat')(tmp_path, class_map(), {}, ExportReport())
    writer.start()
    bad = FormatItem(id=9, stem='x', ext='.jpg', split='train', width=None, height=None)
    with pytest.raises(Exception, match='image size unknown'):
        writer.write_item(bad)
    writer.write_item(items[0])
    writer.finish()
    assert [i.get('name') for i in _xml(tmp_path).findall('image')] == ['crossing 0007.jpg']


def test_unknown_option_and_bad_precision_are_refused() -> None:
    with pytest.raises(ParamsError, match=r'extra_params\.precison.*allowed keys'):
        get_writer('cvat').validate_options({'precison': 3})
    with pytest.raises(ParamsError, match=r'extra_params\.precision'):
        get_writer('cvat').validate_options({'precision': 9})


# --- files as CVAT writes them --------------------------------------------------------------

CVAT_TASK_XML = (DATA / 'cvat_task.xml').read_text(encoding='utf-8')  # as CVAT 2.x writes


def test_reads_a_task_file_as_cvat_writes_it(tmp_path: Path) -> None:
    (tmp_path / 'annotations.xml').write_text(CVAT_TASK_XML, encoding='utf-8')
    save_image(tmp_path / 'images' / 'frames' / 'a.jpg', 8, 6)
    (tmp_path.parent / 'outside.jpg').write_bytes(b'not yours')
    ds = read_dataset(tmp_path)
    conf = ds.configuration
    assert [(c['name'], c['tool']) for c in conf['classes']] == [
        ('car', 'bounding_box'), ('road', 'polygon'), ('lane', 'polyline'),
        ('sky', 'segmentation'), ('person', 'keypoint'), ('sign', 'keypoint'),
        ('night', 'classification'),
    ]  # fmt: skip
    assert conf['classes'][0]['attributes'] == [
        {'name': 'parked', 'type': 'bool'},
        {'name': 'color', 'type': 'select', 'values': ['red', 'blue']},
        {'name': 'speed', 'type': 'number'},
    ]
    assert conf['keypoints'] == {
        'person': {'names': ['head', 'foot'], 'skeleton': []},
        'sign': {'names': ['p1', 'p2', 'p3'], 'skeleton': []},
    }
    a, outside = list(ds.images)
    assert a.file_name == 'a.jpg' and a.path == (tmp_path / 'images/frames/a.jpg').resolve()
    by_tool = {ann['tool'] + ann['category']: ann for ann in a.annotations}
    box = by_tool['bounding_boxcar']
    assert box['bbox'] == [1.0, 1.0, 4.0, 2.0] and box['rotation'] == pytest.approx(math.pi / 2)
    assert box['attributes'] == {
        'parked': True, 'color': 'blue', 'speed': 30, 'occluded': True, 'z_order': 2
    }  # fmt: skip
    mask = rle_to_mask(by_tool['segmentationsky']['mask'])
    assert mask.shape == (6, 8) and mask.sum() == 4
    assert mask[0].tolist() == [False, False, False, True, True, False, False, False]
    assert mask[1].tolist() == mask[0].tolist()
    assert by_tool['keypointperson']['keypoints'] == [[3.0, 1.0, 2], [3.0, 5.0, 1]]
    assert by_tool['keypointsign']['keypoints'] == [[1.0, 1.0, 2], [2.0, 2.0, 2], [3.0, 3.0, 2]]
    assert 'classificationnight' in by_tool
    assert outside.path is None and outside.annotations == []
    assert ds.report.as_dict() == {
        'read': {'annotations': 7, 'image files': 1, 'images': 2},
        'skipped': {
            'annotation: ellipse shapes are not supported': 1,
            'annotation: malformed box (ValueError)': 1,
            'image file: path outside the images folder': 1,
            'track: CVAT for video tracks are not supported': 1,
        },
    }


def test_not_a_cvat_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / 'x.xml').write_text('<annotation><object/></annotation>', encoding='utf-8')
    with pytest.raises(ParamsError, match='no CVAT XML file'):
        read_dataset(tmp_path)
    (tmp_path / 'annotations.xml').write_text('<annotations><image id="0"/>', encoding='utf-8')
    with pytest.raises(ParamsError, match=r'not readable XML|no <meta>'):
        read_dataset(tmp_path)


# --- our own files round trip ---------------------------------------------------------------


def items_from(ds: ImportedDataset) -> list[FormatItem]:
    """Items the way the pipeline would build them from an imported dataset."""
    alloc = StemAllocator()
    items = []
    for n, image in enumerate(ds.images, 1):
        stem, ext, _ = alloc.allocate(image.file_name)
        items.append(
            FormatItem(
                id=n, stem=stem, ext=ext, split=image.split or 'train', width=image.width,
                height=image.height, annotations=image.annotations,
                classifications=image.classifications,
            )
        )  # fmt: skip
    return items


def test_export_import_export_is_byte_identical(tmp_path: Path) -> None:
    options = {'split': 'category'}
    export('cvat', tmp_path / 'a', make_items(split='category'), options)
    ds = read_dataset(tmp_path / 'a')
    cmap = class_map(ds.configuration)
    assert cmap.names == class_map().names
    export('cvat', tmp_path / 'b', items_from(ds), options, cmap=cmap)
    assert tree(tmp_path / 'a') == tree(tmp_path / 'b')

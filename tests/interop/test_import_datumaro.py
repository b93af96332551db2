"""Peer -> ours: Datumaro writes COCO, VOC and YOLO datasets; we import them.

The dataset has boxes (with attributes), a polygon, a mask, an image-level label, an unused
class and an image without annotations. What Datumaro itself writes of each format is what
must come back: boxes equal within 1e-3, class names kept, and counts for what we read and
what we could not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from synapse_sdk.formats import read_dataset
from synapse_sdk.formats.geometry import rle_area
from synapse_sdk.server.importer import import_dataset
from synapse_sdk.server.store import Store

dm = pytest.importorskip('datumaro')

LABELS = ['car', 'person', 'sunny', 'unused']
W, H = 64, 48
# (item, label, x, y, w, h, attributes): the boxes every format must give back. Datumaro
# writes a boolean VOC attribute as Python prints it ("True"), which must come back a boolean.
BOXES = [
    ('a', 'car', 1.5, 2.25, 10.0, 5.5, {'color': 'red', 'n': 3, 'parked': True}),
    ('a', 'person', 30.0, 10.0, 12.25, 20.5, {}),
    ('c', 'person', 0.0, 0.0, 64.0, 48.0, {}),
]


def source() -> Any:
    mask = np.zeros((H, W), dtype=np.uint8)
    mask[20:30, 40:52] = 1

    def image() -> Any:
        return dm.Image.from_numpy(data=np.full((H, W, 3), 127, dtype=np.uint8))

    def boxes(item: str) -> list[Any]:
        return [
            dm.Bbox(x, y, w, h, label=LABELS.index(label), id=n, attributes=dict(attrs))
            for n, (it, label, x, y, w, h, attrs) in enumerate(BOXES, 1)
            if it == item
        ]

    items = [
        dm.DatasetItem(id='a', subset='train', media=image(), annotations=[
            *boxes('a'),
            dm.Polygon([5, 30, 20, 30, 20, 45, 10, 47], label=1, id=10),
            dm.Mask(mask, label=1, id=11),
            dm.Label(2, id=12),
        ]),
        dm.DatasetItem(id='b', subset='train', media=image()),  # no annotations
        dm.DatasetItem(id='c', subset='val', media=image(), annotations=boxes('c')),
    ]  # fmt: skip
    return dm.Dataset.from_iterable(items, categories=LABELS)


@pytest.fixture(scope='module')
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp('datumaro')
    out = {}
    for fmt in ('coco', 'voc', 'yolo'):
        source().export(str(root / fmt), fmt, save_media=True)
        out[fmt] = root / fmt
    return out


def read(fmt: str, path: Path) -> tuple[Any, dict[str, Any]]:
    dataset = read_dataset(fmt, path)
    images = {Path(i.file_name).stem: i for i in dataset.images}
    return dataset, images


def assert_boxes(images: dict[str, Any], attributes: bool) -> None:
    for item, label, x, y, w, h, attrs in BOXES:
        got = [a for a in images[item].annotations
               if a['tool'] == 'bounding_box' and a['category'] == label]  # fmt: skip
        match = [a for a in got if np.allclose(a['bbox'], [x, y, w, h], atol=1e-3)]
        assert match, (item, label, [a['bbox'] for a in got])
        if attributes:
            for key, value in attrs.items():
                assert match[0]['attributes'][key] == value


def test_coco_written_by_datumaro(written: dict[str, Path], tmp_path: Path) -> None:
    dataset, images = read('coco', written['coco'])
    assert [c['name'] for c in dataset.configuration['classes']] == LABELS
    assert sorted(images) == ['a', 'b', 'c']
    assert all(i.path is not None for i in images.values())
    assert_boxes(images, attributes=True)
    a = images['a'].annotations
    (polygon,) = [x for x in a if x['tool'] == 'polygon']
    assert np.allclose(polygon['points'], [[5, 30], [20, 30], [20, 45], [10, 47]], atol=1e-3)
    (mask,) = [x for x in a if x['tool'] == 'segmentation']
    assert rle_area(mask['mask']) == 120
    assert [(x['category'], x['tool']) for x in a if x['tool'] == 'classification'] == [
        ('sunny', 'classification')]  # fmt: skip
    assert images['b'].annotations == []
    assert (images['a'].split, images['c'].split) == ('train', 'validation')
    report = dataset.report.as_dict()
    # instances_* and stuff_* repeat every annotation; panoptic_* is not imported (said so)
    assert report['read']['annotations'] == 6
    assert report['read']['annotations repeated across files'] == 5
    assert report['skipped'] == {
        'file: panoptic files need their PNG segment maps; import instances_*.json instead': 1
    }
    with Store(tmp_path / 'home') as store:
        ids = import_dataset(store, read_dataset('coco', written['coco']))
        assert ids['data_units'] == 3 and ids['read']['images'] == 3
        config = store.get_project(ids['project'])['configuration']
        assert all('source_id' in c for c in config['classes'])


def test_voc_boxes_written_by_datumaro(written: dict[str, Path]) -> None:
    _, images = read('voc', written['voc'])
    assert_boxes(images, attributes=True)


def test_voc_written_by_datumaro(written: dict[str, Path]) -> None:
    dataset, images = read('voc', written['voc'])
    assert [c['name'] for c in dataset.configuration['classes']] == LABELS  # no 'background'
    assert sorted(images) == ['a', 'b', 'c']  # b has no XML: a negative sample, not dropped
    assert images['b'].annotations == [] and images['b'].path is not None
    car = next(x for x in images['a'].annotations if x['category'] == 'car')
    assert car['attributes'] == {'truncated': False, 'occluded': False, 'difficult': False,
                                 'color': 'red', 'n': 3, 'parked': True}  # fmt: skip
    tags = [x['category'] for x in images['a'].annotations if x['tool'] == 'classification']
    assert tags == ['sunny']
    assert (images['a'].split, images['b'].split, images['c'].split) == (
        'train', 'train', 'validation')  # fmt: skip
    report = dataset.report.as_dict()
    assert report['read']['annotations'] == 3 and report['read']['tags'] == 1
    assert report['read']['images without annotation file'] == 1
    # Datumaro puts the mask in SegmentationObject/Class PNGs: counted as not imported
    assert report['skipped'] == {
        'segmentation mask: SegmentationClass/ PNGs are not imported': 1,
        'segmentation mask: SegmentationObject/ PNGs are not imported': 1,
    }


def test_yolo_written_by_datumaro(written: dict[str, Path]) -> None:
    dataset, images = read('yolo', written['yolo'])
    assert [c['name'] for c in dataset.configuration['classes']] == LABELS
    assert sorted(images) == ['a', 'b', 'c']
    assert_boxes(images, attributes=False)  # Darknet YOLO has no attributes
    assert images['b'].annotations == []
    report = dataset.report.as_dict()
    assert report['read'] == {'annotations': 3, 'image files': 3, 'images': 3,
                              'images without annotations': 1}  # fmt: skip
    assert report['skipped'] == {}

"""CVAT interop with Datumaro, the reference reader/writer of CVAT for images 1.1: Datumaro
reads our export (boxes, rotation, polygons, polylines, masks, attributes, subsets, images), and
our importer reads what Datumaro writes."""

from __future__ import annotations

import math
from pathlib import Path

import datumaro as dm
import numpy as np
import pytest
from tests.formats.helpers import export, fixture, make_items

from synapse_sdk.formats.cvat.reader import read_dataset
from synapse_sdk.formats.geometry import rle_to_mask

AnnotationType = dm.AnnotationType


def _by_subset(dataset: dm.Dataset) -> dict[str, list[dm.DatasetItem]]:
    out: dict[str, list[dm.DatasetItem]] = {}
    for item in dataset:
        out.setdefault(item.subset, []).append(item)
    return out


def test_datumaro_reads_our_export(tmp_path: Path) -> None:
    export('cvat', tmp_path, make_items(split='category'), {'split': 'category'})
    dataset = dm.Dataset.import_from(str(tmp_path), 'cvat')
    labels = dataset.categories()[AnnotationType.label]
    name = {i: labels[i].name for i in range(len(labels))}
    subsets = _by_subset(dataset)
    assert sorted(subsets) == ['test', 'train', 'validation']
    assert [(i.id, i.media.size) for i in subsets['validation']] == [('crossing 0007_1', (48, 64))]
    train = {item.id: item for item in subsets['train']}
    first = train['crossing 0007']
    assert Path(first.media.path) == tmp_path / 'images/train/crossing 0007.jpg'
    anns = {(a.type, name.get(a.label)): a for a in first.annotations}
    box = anns[(AnnotationType.bbox, 'car')]
    assert box.get_bbox() == pytest.approx([12.5, 10.0, 20.0, 12.0])
    assert box.attributes == {'occluded': False}
    rotated = anns[(AnnotationType.rotated_bbox, 'car')]
    cx, cy, w, h, r = rotated.points if hasattr(rotated, 'points') else rotated.get_points()
    assert (cx, cy, w, h) == pytest.approx((38.0, 24.0, 16.0, 8.0))
    assert r == pytest.approx(math.degrees(0.3), abs=0.01)
    assert rotated.attributes['occluded'] is True
    polygon = anns[(AnnotationType.polygon, 'road')]
    assert polygon.points == pytest.approx([0, 30, 64, 33, 64, 48, 0, 48])
    mask = anns[(AnnotationType.mask, 'sky')]
    ours = rle_to_mask(fixture()['records'][0]['data']['annotations'][4]['mask'])
    assert np.array_equal(mask.image.astype(bool), ours)
    # The skeleton's nodes come out as named points (Datumaro has no CVAT skeletons).
    heads = [a for a in first.annotations if a.type == AnnotationType.points and
             name.get(a.label) == 'head']  # fmt: skip
    assert len(heads) == 1 and heads[0].points == pytest.approx([44.0, 11.0])
    tokyo = train['東京 駅']
    kinds = sorted((a.type.name, name[a.label]) for a in tokyo.annotations)
    assert kinds == [('bbox', 'person'), ('bbox', 'person'), ('polyline', 'lane')]
    noted = [a for a in tokyo.annotations if 'note' in a.attributes]
    assert noted[0].attributes['note'] == 'a, "quoted" note'


def test_we_read_what_datumaro_writes(tmp_path: Path) -> None:
    image = np.full((20, 30, 3), 120, dtype=np.uint8)
    mask = np.zeros((20, 30), dtype=np.uint8)
    mask[2:6, 3:9] = 1
    categories = {AnnotationType.label: dm.LabelCategories.from_iterable(
        [('car', '', ['color']), 'road', 'lane', 'sign', 'sky', 'night'])}  # fmt: skip
    items = [
        dm.DatasetItem(
            id='a', subset='train', media=dm.Image.from_numpy(data=image),
            annotations=[
                dm.Bbox(1, 2, 10, 5, label=0, z_order=1,
                        attributes={'occluded': True, 'color': 'red'}),
                dm.Polygon([0, 10, 30, 10, 30, 20], label=1),
                dm.PolyLine([0, 15, 30, 16], label=2),
                dm.Points([5, 5, 6, 6], label=3),
                dm.Mask(mask, label=4),
                dm.Label(5),
            ],
        ),
        dm.DatasetItem(id='b', subset='val', media=dm.Image.from_numpy(data=image)),
    ]  # fmt: skip
    source = dm.Dataset.from_iterable(items, categories=categories)
    source.export(str(tmp_path), 'cvat', save_media=True)
    ds = read_dataset(tmp_path)
    assert [c['name'] for c in ds.configuration['classes']] == [
        'car', 'road', 'lane', 'sign', 'sky', 'night'
    ]  # fmt: skip
    images = {i.file_name: i for i in ds.images}
    assert set(images) == {'a.jpg', 'b.jpg'}
    a = images['a.jpg']
    assert a.split == 'train' and images['b.jpg'].split == 'validation'
    assert a.path is not None and a.path.is_file() and (a.width, a.height) == (30, 20)
    tools = {ann['tool']: ann for ann in a.annotations}
    assert sorted(tools) == [
        'bounding_box', 'classification', 'keypoint', 'polygon', 'polyline', 'segmentation'
    ]  # fmt: skip
    assert tools['bounding_box']['bbox'] == [1.0, 2.0, 10.0, 5.0]
    assert tools['bounding_box']['attributes'] == {'occluded': True, 'color': 'red', 'z_order': 1}
    assert np.array_equal(rle_to_mask(tools['segmentation']['mask']), mask.astype(bool))
    assert tools['keypoint']['keypoints'] == [[5.0, 5.0, 2], [6.0, 6.0, 2]]
    assert ds.report.as_dict()['skipped'] == {}

"""LabelMe: shapes as the labelme tool writes them, embedded images, files labelme wrote, and
write -> read -> write identity."""

from __future__ import annotations

import base64
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from synapse_sdk.errors import ParamsError
from synapse_sdk.formats import get_writer
from synapse_sdk.formats.base import ItemLog, Unsupported
from synapse_sdk.formats.geometry import mask_to_rle, rle_to_mask
from synapse_sdk.formats.labelme.convert import annotation_to_shapes, png_mask
from synapse_sdk.formats.labelme.reader import read_dataset

from .contract import WriterContract
from .helpers import class_map, export, fixture, make_items, save_image, tree
from .test_cvat import items_from


class TestLabelmeContract(WriterContract):
    fmt = 'labelme'


class TestLabelmeEmbeddedContract(WriterContract):
    fmt = 'labelme'
    options = {'embed_images': True}


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding='utf-8'))
    return data


def test_layout_and_file_as_labelme_writes_it(tmp_path: Path) -> None:
    report, _ = export('labelme', tmp_path, make_items(split='category'), {'split': 'category'})
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob('*.json')) == [
        'project.json',
        'test/CROSSING 0007_2.json',
        'train/crossing 0007.json',
        'train/東京 駅.json',
        'validation/crossing 0007_1.json',
    ]
    assert (tmp_path / 'labels.txt').read_text('utf-8').split() == class_map().names
    raw = (tmp_path / 'train/crossing 0007.json').read_text('utf-8')
    data = json.loads(raw)
    assert list(data) == [
        'version', 'flags', 'shapes', 'imagePath', 'imageData', 'imageHeight', 'imageWidth',
        'classifications',
    ]  # fmt: skip
    assert raw == json.dumps(data, ensure_ascii=False, indent=2) + '\n'  # labelme's own dump
    assert data['imagePath'] == 'crossing 0007.jpg' and data['imageData'] is None
    assert (data['imageWidth'], data['imageHeight']) == (64, 48)
    assert data['classifications'] == {'weather': 'sunny'}
    shapes = data['shapes']
    assert [s['shape_type'] for s in shapes] == [
        'rectangle', 'polygon', 'polygon', 'point', 'point', 'point', 'point', 'mask'
    ]  # fmt: skip
    assert shapes[0]['points'] == [[12.5, 10.0], [32.5, 22.0]]
    assert shapes[0]['flags'] == {'occluded': False} and shapes[0]['group_id'] is None
    assert list(shapes[0]) == [
        'label', 'points', 'group_id', 'description', 'shape_type', 'flags', 'mask'
    ]  # fmt: skip
    points = shapes[3:7]
    assert {p['group_id'] for p in points} == {1}
    assert [p['description'] for p in points] == ['head', 'left_hand', 'right_hand', 'left_foot']
    assert [p['flags'] for p in points] == [{}, {}, {'occluded': True}, {}]
    mask = shapes[7]
    assert mask['points'] == [[0.0, 0.0], [63.0, 11.0]]
    crop = png_mask(mask['mask'])
    full = rle_to_mask(fixture()['records'][0]['data']['annotations'][4]['mask'])
    assert np.array_equal(crop, full[0:12, 0:64])
    tokyo = _load(tmp_path / 'train/東京 駅.json')
    assert [s['shape_type'] for s in tokyo['shapes']] == ['rectangle', 'linestrip', 'rectangle']
    assert tokyo['shapes'][2]['attributes'] == {'note': 'a, "quoted" note'}
    assert report.to_dict()['converted_reasons'] == {
        'crowd flag not expressible (labelme)': 1,
        'rotated box -> polygon (labelme)': 1,
    }


def test_mask_png_is_labelme_s_0_1_grey_image() -> None:
    mask = np.zeros((4, 6), dtype=bool)
    mask[1:3, 2:5] = True
    rle = mask_to_rle(mask)
    ann = {'category': 'sky', 'tool': 'segmentation', 'mask': rle}
    (shape,) = annotation_to_shapes(ann, image_size=(6, 4))
    with Image.open(io.BytesIO(base64.b64decode(shape['mask']))) as im:
        assert im.format == 'PNG' and im.mode == 'L'
        assert np.asarray(im).tolist() == [[1, 1, 1], [1, 1, 1]]
    assert shape['points'] == [[2.0, 1.0], [4.0, 2.0]]


@pytest.mark.parametrize(
    ('ann', 'reason'),
    [
        ({'tool': 'bounding_box', 'bbox': [0, 0, -1, 5]}, 'zero'),
        ({'tool': 'polygon', 'points': [[0, 0], [1, 1]]}, 'fewer than 3'),
        ({'tool': 'polyline', 'points': [[0, 0]]}, 'fewer than 2'),
        ({'tool': 'keypoint', 'keypoints': [[1, 1, 0]], 'names': ['a']}, 'no labelled point'),
        ({'tool': 'segmentation', 'mask': {'size': [2, 2], 'counts': [4]}}, 'differs'),
        ({'tool': 'ellipse'}, 'unknown tool'),
    ],
)
def test_unsupported_names_the_reason(ann: dict[str, Any], reason: str) -> None:
    names = ann.pop('names', None)
    with pytest.raises(Unsupported, match=reason):
        annotation_to_shapes(
            {'category': 'x', **ann}, image_size=(10, 10), keypoint_names=names, log=ItemLog()
        )


def test_classification_annotations_are_image_flags(tmp_path: Path) -> None:
    conf = {'classes': [{'name': 'night', 'tool': 'classification'}, 'car']}
    items = make_items(
        [
            {'id': 1, 'width': 4, 'height': 4, 'files': {'file_name_original': 'a.png'},
             'data': {'annotations': [{'id': 'x', 'category': 'night',
                                       'tool': 'classification'}]}}
        ]
    )  # fmt: skip
    export('labelme', tmp_path, items, cmap=class_map(conf))
    assert _load(tmp_path / 'train/a.json')['flags'] == {'night': True}
    (image,) = read_dataset(tmp_path).images
    assert [(a['category'], a['tool']) for a in image.annotations] == [('night', 'classification')]


def test_embedded_images_are_base64_of_the_original(tmp_path: Path) -> None:
    export('labelme', tmp_path, make_items(), {'embed_images': True})
    data = _load(tmp_path / 'train/crossing 0007.json')
    original = (tmp_path / 'train/crossing 0007.jpg').read_bytes()
    assert base64.b64decode(data['imageData']) == original


def test_embedding_without_originals_keeps_null_and_counts(tmp_path: Path) -> None:
    report, _ = export('labelme', tmp_path, make_items(), {'embed_images': True}, images=False)
    assert _load(tmp_path / 'train/crossing 0007.json')['imageData'] is None
    assert report.extra == {'labelme': {'images_not_embedded': 4}}


def test_options_are_checked() -> None:
    with pytest.raises(ParamsError, match=r'extra_params\.embed.*allowed keys'):
        get_writer('labelme').validate_options({'embed': True})
    with pytest.raises(ParamsError, match=r'extra_params\.embed_images'):
        get_writer('labelme').validate_options({'embed_images': 'yes'})


# --- files labelme wrote --------------------------------------------------------------------


def _labelme_file(image_path: str, shapes: list[dict[str, Any]], **extra: Any) -> str:
    data = {
        'version': '5.4.1', 'flags': {'blurry': False}, 'shapes': shapes,
        'imagePath': image_path, 'imageData': None, 'imageHeight': 10, 'imageWidth': 12, **extra,
    }  # fmt: skip
    return json.dumps(data, ensure_ascii=False, indent=2)


def _s(label: str, points: list[list[float]], shape_type: str, **kw: Any) -> dict[str, Any]:
    shape = {'label': label, 'points': points, 'group_id': None, 'description': '',
             'shape_type': shape_type, 'flags': {}, 'mask': None}  # fmt: skip
    shape.update(kw)
    return shape


def test_reads_files_as_the_labelme_tool_writes_them(tmp_path: Path) -> None:
    save_image(tmp_path / 'images' / 'street.png', 12, 10)
    mask = np.zeros((3, 4), dtype=np.uint8)
    mask[1, 1:3] = 1
    buf = io.BytesIO()
    Image.fromarray(mask).save(buf, format='PNG')
    shapes = [
        _s('car', [[1, 1], [5, 4]], 'rectangle', flags={'parked': True}),
        _s('car', [[2, 2], [8, 2], [8, 6], [2, 6]], 'oriented_rectangle'),
        _s('road', [[0, 6], [12, 6], [12, 10]], 'polygon', description='wet'),
        _s('lane', [[0, 8], [12, 9]], 'line'),
        _s('sky', [[4.0, 0.0], [7.0, 2.0]], 'mask', mask=base64.b64encode(buf.getvalue()).decode()),
        _s('person', [[3, 3]], 'point', group_id=7, description='head'),
        _s('person', [[3, 8]], 'point', group_id=7, description='foot'),
        _s('person', [[9, 9]], 'point', group_id=None),
        _s('ball', [[6, 6], [7, 7]], 'circle'),
        _s('car', [[1, 1]], 'rectangle'),
    ]
    (tmp_path / 'ann').mkdir()
    (tmp_path / 'ann' / 'street.json').write_text(
        _labelme_file('..\\images\\street.png', shapes), encoding='utf-8'
    )
    (tmp_path / 'ann' / 'escape.json').write_text(
        _labelme_file('../../../etc/passwd', []), encoding='utf-8'
    )
    (tmp_path / 'ann' / 'other.json').write_text('{"not": "labelme"}', encoding='utf-8')
    (tmp_path / 'labels.txt').write_text('__ignore__\n_background_\nroad\ncar\n', 'utf-8')
    ds = read_dataset(tmp_path)
    assert [c['name'] for c in ds.configuration['classes']] == [
        'road', 'car', 'lane', 'person', 'sky'
    ]  # fmt: skip
    assert ds.configuration['keypoints'] == {
        'person': {'names': ['head', 'foot'], 'skeleton': []}
    }  # fmt: skip
    escape, street = list(ds.images)
    assert escape.path is None and escape.file_name == 'passwd'
    assert street.path == (tmp_path / 'images/street.png').resolve()
    assert street.classifications == {'blurry': False}
    tools = [(a['category'], a['tool']) for a in street.annotations]
    assert tools == [
        ('car', 'bounding_box'), ('car', 'bounding_box'), ('road', 'polygon'),
        ('lane', 'polyline'), ('sky', 'segmentation'), ('person', 'keypoint'),
        ('person', 'keypoint'),
    ]  # fmt: skip
    box, oriented = street.annotations[0], street.annotations[1]
    assert box['bbox'] == [1.0, 1.0, 4.0, 3.0] and box['attributes'] == {'parked': True}
    assert oriented['bbox'] == pytest.approx([2.0, 2.0, 6.0, 4.0])
    assert oriented['rotation'] == pytest.approx(0.0) or math.isclose(oriented['rotation'], 0)
    sky = rle_to_mask(street.annotations[4]['mask'])
    assert sky.sum() == 2 and sky[1, 5] and sky[1, 6]
    assert street.annotations[5]['keypoints'] == [[3.0, 3.0, 2], [3.0, 8.0, 2]]
    assert street.annotations[6]['keypoints'] == [[9.0, 9.0, 2], [0.0, 0.0, 0]]
    assert ds.report.as_dict() == {
        'read': {'annotations': 7, 'image files': 1, 'images': 2},
        'skipped': {
            'annotation: circle shapes are not supported': 1,
            'annotation: malformed rectangle shape (ValueError)': 1,
            'file: not a LabelMe JSON file': 1,
            'image file: path outside the images folder': 1,
        },
    }


def test_embedded_image_data_is_used_when_the_file_is_missing(tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.new('RGB', (12, 10), (1, 2, 3)).save(buf, format='PNG')
    text = _labelme_file('gone.png', [], imageData=base64.b64encode(buf.getvalue()).decode())
    (tmp_path / 'a.json').write_text(text.replace('"imageData": null,\n', ''), 'utf-8')
    images = read_dataset(tmp_path).images
    for image in images:  # the temporary copy exists while the importer holds the image
        assert image.path is not None and image.path.read_bytes() == buf.getvalue()
        assert image.file_name == 'gone.png'


def test_nothing_to_read_is_refused(tmp_path: Path) -> None:
    (tmp_path / 'x.json').write_text('[]', encoding='utf-8')
    with pytest.raises(ParamsError, match='no LabelMe JSON files'):
        read_dataset(tmp_path)


# --- our own files round trip ---------------------------------------------------------------


@pytest.mark.parametrize('options', [{}, {'embed_images': True}])
def test_export_import_export_is_byte_identical(tmp_path: Path, options: dict[str, Any]) -> None:
    options = {'split': 'category', **options}
    export('labelme', tmp_path / 'a', make_items(split='category'), options)
    ds = read_dataset(tmp_path / 'a')
    cmap = class_map(ds.configuration)
    assert cmap.to_configuration() == class_map().to_configuration()
    export('labelme', tmp_path / 'b', items_from(ds), options, cmap=cmap)
    assert tree(tmp_path / 'a') == tree(tmp_path / 'b')


def test_a_dataset_is_its_folder_and_split_folders_not_the_whole_tree(tmp_path: Path) -> None:
    """LabelMe files are ``DIR/*.json`` and ``DIR/<split>/*.json``: every JSON file anywhere
    below DIR was read (``rglob``), merging other datasets kept in subfolders."""
    for rel in ('top.json', 'train/a.json', 'copy/train/b.json', 'train/deep/c.json'):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(_labelme_file(f'{Path(rel).stem}.png', []), 'utf-8')
    (tmp_path / 'copy' / 'project.json').write_text('{}', 'utf-8')  # a dataset of its own
    ds = read_dataset(tmp_path)
    assert [(i.file_name, i.split) for i in ds.images] == [('top.png', None), ('a.png', 'train')]
    skipped = ds.report.as_dict()['skipped']
    assert skipped['folder: nested dataset copy, not read (import it on its own)'] == 1
    assert skipped['folder: nested dataset train/deep, not read (import it on its own)'] == 1


def test_a_folder_of_nested_datasets_only_is_refused_naming_them(tmp_path: Path) -> None:
    (tmp_path / 'a' / 'deep').mkdir(parents=True)
    (tmp_path / 'a' / 'deep' / 'x.json').write_text(_labelme_file('x.png', []), 'utf-8')
    with pytest.raises(ParamsError) as info:
        read_dataset(tmp_path)
    assert info.value.errors == [
        (str(tmp_path), f'no LabelMe JSON files (expected {tmp_path}/*.json or '
                        f'{tmp_path}/<split>/*.json); nested datasets not read: a/deep')
    ]  # fmt: skip


@pytest.mark.parametrize(
    ('image_path', 'reason'),
    [('/etc/passwd', 'absolute path'), ('C:\\x.png', 'absolute path'),
     ('c:/x.png', 'absolute path'), ('a:b.png', None)],
)  # fmt: skip
def test_image_paths_in_a_split_folder_are_checked_before_joining(
    tmp_path: Path, image_path: str, reason: str | None
) -> None:
    """An absolute ``imagePath`` in ``train/x.json`` was joined to ``train/`` first and then
    reported as "file not found"; ``a:b.png`` is a plain name beside the JSON file."""
    save_image(tmp_path / 'train' / 'a:b.png', 12, 10)
    (tmp_path / 'train' / 'x.json').write_text(_labelme_file(image_path, []), 'utf-8')
    ds = read_dataset(tmp_path)
    (image,) = ds.images
    if reason is None:
        assert image.path == (tmp_path / 'train' / 'a:b.png').resolve()
        assert image.file_name == 'a:b.png' and ds.report.as_dict()['skipped'] == {}
    else:
        assert image.path is None
        assert ds.report.as_dict()['skipped'] == {f'image file: {reason}': 1}


def test_the_title_of_our_project_json_is_the_dataset_title(tmp_path: Path) -> None:
    """Our LabelMe export writes ``project.json`` with the project's title; the importer
    named the project after the folder instead (dm and csv read the title)."""
    (tmp_path / 'train').mkdir()
    (tmp_path / 'train' / 'a.json').write_text(_labelme_file('a.png', []), 'utf-8')
    conf = {'classes': [{'name': 'car', 'tool': 'bounding_box', 'attributes': []}]}
    (tmp_path / 'project.json').write_text(
        json.dumps({'title': 'Street scenes', 'configuration': conf}), 'utf-8'
    )
    assert read_dataset(tmp_path).title == 'Street scenes'
    (tmp_path / 'project.json').write_text(json.dumps({'configuration': conf}), 'utf-8')
    assert read_dataset(tmp_path).title == tmp_path.name  # no title: the folder's name


@pytest.mark.parametrize('image_data', [123, ['aGk='], {'b64': 'aGk='}, True])
def test_image_data_that_is_not_a_string_is_named_as_such(tmp_path: Path, image_data: Any) -> None:
    """``imageData: 123`` (with no image file) was reported as "file not found" only."""
    text = _labelme_file('gone.png', [], imageData=image_data)
    (tmp_path / 'a.json').write_text(text.replace('"imageData": null,\n', ''), 'utf-8')
    dataset = read_dataset(tmp_path)
    (image,) = dataset.images
    assert image.path is None
    assert dataset.report.as_dict()['skipped'] == {
        'image file: file not found, and imageData must be a base64 string or null': 1
    }

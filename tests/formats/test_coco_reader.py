"""COCO import: what other tools write (keypoints with segmentation, label-only annotations,
split file names, Roboflow, image layouts), refusals, counts and paths kept inside."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from synapse_sdk.errors import ParamsError
from synapse_sdk.formats.coco.reader import read_dataset

from .helpers import save_image

CATS = [{'id': 7, 'name': 'car'}, {'id': 3, 'name': 'person'}]


def write(path: Path, images: list[dict[str, Any]], anns: list[dict[str, Any]],
          cats: list[dict[str, Any]] | None = None) -> Path:  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {'images': images, 'annotations': anns, 'categories': CATS if cats is None else cats}
    path.write_bytes(orjson.dumps(data))
    return path


def img(i: int, name: str | None = None, w: int = 40, h: int = 30) -> dict[str, Any]:
    return {'id': i, 'file_name': name or f'im{i}.jpg', 'width': w, 'height': h}


def box(i: int, image: int, cat: int = 7, b: list[float] | None = None, **kw: Any) -> dict:
    return {'id': i, 'image_id': image, 'category_id': cat, 'bbox': b or [1, 2, 10, 5],
            'area': 50, 'iscrowd': 0, **kw}  # fmt: skip


def read_all(path: Path, **kw: Any) -> tuple[Any, list[Any]]:
    dataset = read_dataset(path, **kw)
    return dataset, list(dataset.images)


def test_keypoint_category_with_empty_keypoint_list(tmp_path: Path) -> None:
    cats = [{'id': 1, 'name': 'person', 'keypoints': [], 'skeleton': []}]
    ann = box(1, 1, cat=1, keypoints=[5, 6, 2, 0, 0, 0, 8, 9, 1], num_keypoints=2)
    dataset, (image,) = read_all(write(tmp_path / 'person_keypoints_train.json', [img(1)],
                                       [ann], cats))  # fmt: skip
    (kp,) = image.annotations
    assert kp['tool'] == 'keypoint'
    assert kp['keypoints'] == [[5, 6, 2], [0, 0, 0], [8, 9, 1]]
    assert dataset.configuration['keypoints']['person']['names'] == ['kp_0', 'kp_1', 'kp_2']
    assert dataset.configuration['classes'][0]['tool'] == 'keypoint'


def test_segmentation_is_kept_beside_keypoints(tmp_path: Path) -> None:
    cats = [{'id': 1, 'name': 'person', 'keypoints': ['nose', 'eye'], 'skeleton': [[1, 2]]}]
    poly = [[2, 2, 12, 2, 12, 20, 2, 20], [20, 20, 25, 20, 25, 25]]
    ann = box(9, 1, cat=1, b=[2, 2, 23, 23], keypoints=[5, 6, 2, 7, 8, 2], segmentation=poly)
    dataset, (image,) = read_all(write(tmp_path / 'person_keypoints_val2017.json', [img(1)],
                                       [ann], cats))  # fmt: skip
    tools = [(a['id'], a['tool']) for a in image.annotations]
    assert tools == [('9', 'keypoint'), ('9_seg0', 'polygon'), ('9_seg1', 'polygon')]
    assert image.annotations[1]['points'][0] == [2.0, 2.0]
    assert dataset.configuration['keypoints']['person'] == {
        'names': ['nose', 'eye'], 'skeleton': [[0, 1]]}  # fmt: skip
    assert image.split == 'validation'


def test_box_written_with_its_corner_polygon_stays_a_box(tmp_path: Path) -> None:
    ann = box(1, 1, b=[1, 2, 10, 5], segmentation=[[1, 2, 11, 2, 11, 7, 1, 7]])
    _, (image,) = read_all(write(tmp_path / 'a.json', [img(1)], [ann]))
    assert [(a['tool'], a['bbox']) for a in image.annotations] == [
        ('bounding_box', [1.0, 2.0, 10.0, 5.0])]  # fmt: skip


def test_label_only_annotations_are_tags(tmp_path: Path) -> None:
    anns = [{'id': 1, 'image_id': 1, 'category_id': 3},
            box(2, 1, cat=7, b=[0, 0, 0, 0], segmentation=[])]  # fmt: skip
    dataset, (image,) = read_all(write(tmp_path / 'labels_train.json', [img(1)], anns))
    assert [(a['category'], a['tool']) for a in image.annotations] == [
        ('person', 'classification'), ('car', 'classification')]  # fmt: skip
    assert all('bbox' not in a for a in image.annotations)
    assert dataset.report.as_dict()['read']['tags'] == 2


@pytest.mark.parametrize(
    ('name', 'split'),
    [('instances_train.json', 'train'), ('person_keypoints_val2017.json', 'validation'),
     ('labels_test.json', 'test'), ('stuff_train2017.json', 'train'),
     ('image_info_test2017.json', 'test'), ('instances_valid.json', 'validation')],
)  # fmt: skip
def test_split_from_the_file_name(tmp_path: Path, name: str, split: str) -> None:
    _, (image,) = read_all(write(tmp_path / 'annotations' / name, [img(1)], []))
    assert image.split == split


def test_roboflow_per_split_folders(tmp_path: Path) -> None:
    for split, n in (('train', 2), ('valid', 1), ('test', 1)):
        images = [img(i, f'{split}{i}.jpg') for i in range(n)]  # Roboflow ids start at 0
        write(tmp_path / split / '_annotations.coco.json', images, [box(0, 0)])
        for image in images:
            save_image(tmp_path / split / image['file_name'], 40, 30)
    dataset, images = read_all(tmp_path)
    assert [(i.file_name, i.split, len(i.annotations)) for i in images] == [
        ('test0.jpg', 'test', 1), ('train0.jpg', 'train', 1), ('train1.jpg', 'train', 0),
        ('valid0.jpg', 'validation', 1)]  # fmt: skip
    assert all(i.path is not None for i in images)
    assert dataset.report.as_dict()['read']['image files'] == 4


@pytest.mark.parametrize('layout', ['images/train2017', 'train2017', 'images', 'annotations'])
def test_images_found_in_the_usual_layouts(tmp_path: Path, layout: str) -> None:
    write(tmp_path / 'annotations' / 'instances_train2017.json', [img(1, 'a.jpg')], [])
    save_image(tmp_path / layout / 'a.jpg', 40, 30)
    _, (image,) = read_all(tmp_path)
    assert image.path == (tmp_path / layout / 'a.jpg').resolve()


def test_files_of_one_split_merge_and_repeated_annotations_count_once(tmp_path: Path) -> None:
    """Datumaro writes every annotation to instances_* and stuff_*, labels to labels_*, and
    lists the images again in image_info_*."""
    ann_dir = tmp_path / 'annotations'
    anns = [box(1, 1), box(2, 1, cat=3, segmentation=[[1, 1, 9, 1, 9, 9]])]
    write(ann_dir / 'instances_train.json', [img(1), img(2)], anns)
    write(ann_dir / 'stuff_train.json', [img(1), img(2)], anns)
    write(ann_dir / 'labels_train.json', [img(1), img(2)],
          [{'id': 3, 'image_id': 2, 'category_id': 3}])  # fmt: skip
    write(ann_dir / 'image_info_train.json', [img(1), img(2)], [], cats=[])
    dataset, images = read_all(tmp_path)
    assert [[a['tool'] for a in i.annotations] for i in images] == [
        ['bounding_box', 'polygon'], ['classification']]  # fmt: skip
    assert dataset.report.as_dict()['read']['annotations repeated across files'] == 2


def test_source_ids_are_kept(tmp_path: Path) -> None:
    dataset, (image,) = read_all(write(tmp_path / 'a.json', [img(42)], [box(5, 42, cat=3)]))
    assert image.source_id == 42
    assert [(c['name'], c['source_id']) for c in dataset.configuration['classes']] == [
        ('person', 3), ('car', 7)]  # fmt: skip


@pytest.mark.parametrize(
    ('name', 'anns', 'message'),
    [('panoptic_val2017.json', [], 'panoptic'),
     ('captions_val2017.json', [], 'captions'),
     ('weird.json', [{'image_id': 1, 'file_name': 'x.png', 'segments_info': []}], 'panoptic'),
     ('other.json', [{'id': 1, 'image_id': 1, 'caption': 'a dog'}], 'captions')],
)  # fmt: skip
def test_panoptic_and_captions_are_refused(tmp_path: Path, name: str, anns: list, message: str):
    path = write(tmp_path / name, [img(1)], anns)
    with pytest.raises(ParamsError, match=message):
        read_dataset(path)


def test_a_directory_with_captions_beside_instances_skips_them_and_says_so(tmp_path: Path):
    write(tmp_path / 'annotations' / 'captions_train.json', [img(1)], [])
    write(tmp_path / 'annotations' / 'instances_train.json', [img(1)], [box(1, 1)])
    dataset, images = read_all(tmp_path)
    assert len(images) == 1
    assert dataset.report.as_dict()['skipped'] == {
        'file: captions files hold sentences, not annotations': 1,
        'image file: file not found': 1,
    }


def test_bad_annotations_are_skipped_and_counted_not_fatal(tmp_path: Path) -> None:
    anns = [box(1, 1), box(2, 1, cat=99), box(3, 1, b=['x', 1, 2, 3]),
            box(4, 1, b=[1, 1, None, 2]), box(5, 77),
            box(6, 1, segmentation=[[1, 2]]), box(7, 1, b=[1, 1, -3, 2])]  # fmt: skip
    dataset, (image,) = read_all(write(tmp_path / 'a.json', [img(1)], anns))
    assert [a['id'] for a in image.annotations] == ['1']
    assert dataset.report.as_dict()['skipped'] == {
        'annotation: bbox with zero or negative size': 1,
        'annotation: category_id not among the categories': 1,
        'annotation: its image_id is not in the images list': 1,
        'annotation: malformed bbox': 2,
        'annotation: polygon with fewer than 3 points': 1,
        'image file: file not found': 1,
    }


@pytest.mark.parametrize(
    ('file_name', 'reason'),
    [('../../etc/passwd', 'path outside the images folder'), ('/etc/passwd', 'absolute path'),
     ('link.jpg', 'path outside the images folder'), ('sub/../../x.jpg',
                                                       'path outside the images folder')],
)  # fmt: skip
def test_image_paths_stay_inside_the_images_folder(tmp_path: Path, file_name: str, reason: str):
    secret = tmp_path / 'x.jpg'
    save_image(secret, 4, 4)
    images = tmp_path / 'data' / 'images'
    images.mkdir(parents=True)
    os.symlink(secret, images / 'link.jpg')
    path = write(tmp_path / 'data' / 'a.json', [img(1, file_name)], [box(1, 1)])
    dataset, (image,) = read_all(path, images=images)
    assert image.path is None
    assert dataset.report.as_dict()['skipped'] == {f'image file: {reason}': 1}
    assert len(image.annotations) == 1  # the annotations are kept, the file is not read


def test_a_symlink_inside_the_folder_is_followed(tmp_path: Path) -> None:
    save_image(tmp_path / 'images' / 'real.jpg', 4, 4)
    os.symlink(tmp_path / 'images' / 'real.jpg', tmp_path / 'images' / 'alias.jpg')
    _, (image,) = read_all(write(tmp_path / 'a.json', [img(1, 'alias.jpg')], []))
    assert image.path == (tmp_path / 'images' / 'real.jpg').resolve()


def test_reading_twice_gives_the_same_counts(tmp_path: Path) -> None:
    dataset = read_dataset(write(tmp_path / 'a.json', [img(1), img(2)], [box(1, 1)]))
    first = (list(dataset.images), dataset.report.as_dict())
    second = (list(dataset.images), dataset.report.as_dict())
    assert first[1] == second[1]
    assert first[1]['read']['images'] == 2

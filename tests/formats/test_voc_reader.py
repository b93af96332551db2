"""VOC import of what other tools write: any attribute values, flags as elements, parts,
negative samples, labelmap.txt / labels.txt, per-class image lists, paths kept inside."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from synapse_sdk.formats._reader import OUTSIDE
from synapse_sdk.formats.voc.reader import read_dataset

from .helpers import save_image


def obj(name: str, box: tuple[int, int, int, int] = (2, 3, 12, 9), extra: str = '') -> str:
    x0, y0, x1, y1 = box
    return (f'<object><name>{name}</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>'
            f'<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox>{extra}</object>')  # fmt: skip


def voc(root: Path, stem: str, objects: str, filename: str | None = None) -> None:
    (root / 'Annotations').mkdir(parents=True, exist_ok=True)
    name = filename if filename is not None else f'{stem}.jpg'
    (root / 'Annotations' / f'{stem}.xml').write_text(
        f'<annotation><filename>{name}</filename><size><width>40</width><height>30</height>'
        f'</size>{objects}</annotation>',
        encoding='utf-8',
    )


def test_any_attribute_value_is_read(tmp_path: Path) -> None:
    attrs = ''.join(
        f'<attribute><name>{k}</name><value>{v}</value></attribute>'
        for k, v in (('color', 'red'), ('n', '3'), ('parked', 'true'), ('note', 'a "b" c'),
                     ('empty', ''))
    )  # fmt: skip
    flags = '<truncated>0</truncated><occluded>1</occluded><difficult>1</difficult>'
    voc(tmp_path, 'a', obj('car', extra=f'{flags}<attributes>{attrs}</attributes>'))
    dataset = read_dataset(tmp_path)
    ((ann,),) = [i.annotations for i in dataset.images]
    assert ann['attributes'] == {
        'truncated': False, 'occluded': True, 'difficult': True, 'color': 'red', 'n': 3,
        'parked': True, 'note': 'a "b" c', 'empty': '',
    }  # fmt: skip


def test_flags_pose_and_actions_are_read_as_attributes(tmp_path: Path) -> None:
    extra = ('<pose>Left</pose><truncated>1</truncated><difficult>0</difficult>'
             '<actions><jumping>1</jumping><running>0</running></actions>')  # fmt: skip
    voc(tmp_path, 'a', obj('person', extra=extra))
    ((ann,),) = [i.annotations for i in read_dataset(tmp_path).images]
    assert ann['attributes'] == {
        'pose': 'Left',
        'truncated': True,
        'difficult': False,
        'jumping': True,
        'running': False,
    }


def test_parts_are_kept_and_are_not_classes(tmp_path: Path) -> None:
    part = '<part><name>head</name><bndbox><xmin>3</xmin><ymin>3</ymin><xmax>5</xmax>' \
           '<ymax>6</ymax></bndbox></part>'  # fmt: skip
    attr = '<attributes><attribute><name>kind</name><value>x</value></attribute></attributes>'
    voc(tmp_path, 'a', obj('person', extra=part + attr))
    dataset = read_dataset(tmp_path)
    ((ann,),) = [i.annotations for i in dataset.images]
    assert [p['name'] for p in ann['parts']] == ['head']
    assert len(ann['parts'][0]['bbox']) == 4
    assert [c['name'] for c in dataset.configuration['classes']] == ['person']
    assert dataset.report.as_dict()['read']['parts'] == 1


def test_an_image_without_xml_is_a_negative_sample(tmp_path: Path) -> None:
    voc(tmp_path, 'a', obj('car'))
    save_image(tmp_path / 'JPEGImages' / 'a.jpg', 40, 30)
    save_image(tmp_path / 'JPEGImages' / 'empty.jpg', 20, 10)
    (tmp_path / 'ImageSets' / 'Main').mkdir(parents=True)
    (tmp_path / 'ImageSets' / 'Main' / 'val.txt').write_text('a\nempty\n', encoding='utf-8')
    dataset = read_dataset(tmp_path)
    images = list(dataset.images)
    assert [(i.file_name, len(i.annotations), i.split, i.width) for i in images] == [
        ('a.jpg', 1, 'validation', 40), ('empty.jpg', 0, 'validation', 20)]  # fmt: skip
    assert images[1].path == (tmp_path / 'JPEGImages' / 'empty.jpg').resolve()
    assert dataset.report.as_dict()['read']['images without annotation file'] == 1


def test_labelmap_gives_the_classes_without_background_or_parts(tmp_path: Path) -> None:
    voc(tmp_path, 'a', obj('dog'))
    (tmp_path / 'labelmap.txt').write_text(
        '# label:color_rgb:parts:actions\nbackground:0,0,0::\ncat:128,0,0::\n'
        'person:192,128,128:head,hand:jumping,running\ndog:64,0,128::\n',
        encoding='utf-8',
    )
    dataset = read_dataset(tmp_path)
    list(dataset.images)
    classes = dataset.configuration['classes']
    assert [c['name'] for c in classes] == ['cat', 'person', 'dog']
    assert classes[1]['attributes'] == [{'name': 'jumping', 'type': 'bool'},
                                        {'name': 'running', 'type': 'bool'}]  # fmt: skip


def test_labels_txt_and_undeclared_classes_are_added_and_counted(tmp_path: Path) -> None:
    voc(tmp_path, 'a', obj('zebra') + obj('cat'))
    (tmp_path / 'labels.txt').write_text('cat\nunused\n', encoding='utf-8')
    dataset = read_dataset(tmp_path)
    list(dataset.images)
    assert [c['name'] for c in dataset.configuration['classes']] == ['cat', 'unused', 'zebra']
    assert dataset.report.as_dict()['read']['classes not in the class list (added)'] == 1


def test_without_a_class_list_attribute_names_never_become_classes(tmp_path: Path) -> None:
    attr = '<attributes><attribute><name>color</name><value>red</value></attribute></attributes>'
    voc(tmp_path, 'b', obj('truck', extra=attr))
    voc(tmp_path, 'a', obj('car'))
    dataset = read_dataset(tmp_path)
    list(dataset.images)
    assert [c['name'] for c in dataset.configuration['classes']] == ['car', 'truck']


def test_classes_option_sets_the_order(tmp_path: Path) -> None:
    voc(tmp_path, 'a', obj('car') + obj('bus'))
    dataset = read_dataset(tmp_path, classes='bus,car,train')
    list(dataset.images)
    assert [c['name'] for c in dataset.configuration['classes']] == ['bus', 'car', 'train']


def test_per_class_lists_flag_image_level_labels(tmp_path: Path) -> None:
    voc(tmp_path, 'a', obj('car'))
    voc(tmp_path, 'b', '')
    main = tmp_path / 'ImageSets' / 'Main'
    main.mkdir(parents=True)
    (main / 'train.txt').write_text('a\nb\n', encoding='utf-8')
    (main / 'car_train.txt').write_text('a  1\nb -1\n', encoding='utf-8')
    (main / 'sunny_train.txt').write_text('a -1\nb  1\n', encoding='utf-8')
    dataset = read_dataset(tmp_path)
    images = list(dataset.images)
    assert [[(x['category'], x['tool']) for x in i.annotations] for i in images] == [
        [('car', 'bounding_box')], [('sunny', 'classification')]]  # fmt: skip
    tools = {c['name']: c['tool'] for c in dataset.configuration['classes']}
    assert tools == {'car': 'bounding_box', 'sunny': 'classification'}


def test_a_malformed_object_or_file_is_skipped_and_counted(tmp_path: Path) -> None:
    voc(tmp_path, 'a', obj('car') + '<object><name>bad</name></object>' +
        obj('car', extra='').replace('<xmin>2', '<xmin>x'))  # fmt: skip
    (tmp_path / 'Annotations' / 'broken.xml').write_text('<annotation><object>', 'utf-8')
    dataset = read_dataset(tmp_path)
    images = list(dataset.images)
    assert [len(i.annotations) for i in images] == [1]
    skipped = dataset.report.as_dict()['skipped']
    assert skipped['annotation: malformed <object>: no <bndbox>'] == 1
    assert skipped["annotation: malformed <object>: could not convert string to float: 'x'"] == 1
    assert skipped['image: annotation XML not readable (ParseError)'] == 1


@pytest.mark.parametrize(
    ('filename', 'reason'),
    [('../../secret.jpg', 'path outside the images folder'),
     ('/etc/passwd', 'absolute path'), ('link.jpg', 'path outside the images folder')],
)  # fmt: skip
def test_filename_must_stay_inside_jpegimages(tmp_path: Path, filename: str, reason: str) -> None:
    save_image(tmp_path / 'secret.jpg', 4, 4)
    root = tmp_path / 'voc'
    (root / 'JPEGImages').mkdir(parents=True)
    os.symlink(tmp_path / 'secret.jpg', root / 'JPEGImages' / 'link.jpg')
    voc(root, 'a', obj('car'), filename=filename)
    dataset = read_dataset(root)
    (image,) = list(dataset.images)  # link.jpg itself is no sample: it leads out
    assert image.path is None
    expected = Counter([f'image file: {reason}', f'image file: {OUTSIDE}'])
    assert dataset.report.as_dict()['skipped'] == expected


def test_segmentation_pngs_are_counted_as_not_imported(tmp_path: Path) -> None:
    voc(tmp_path, 'a', obj('car'))
    save_image(tmp_path / 'SegmentationObject' / 'a.png', 40, 30)
    dataset = read_dataset(tmp_path)
    list(dataset.images)
    assert dataset.report.as_dict()['skipped'] == {
        'image file: file not found': 1,
        'segmentation mask: SegmentationObject/ PNGs are not imported': 1,
    }


def test_labelmap_names_escaped_by_our_writer_come_back(tmp_path: Path) -> None:
    voc(tmp_path, 'a', obj('a:b'))
    (tmp_path / 'labelmap.txt').write_text('# label:color_rgb:parts:actions\na%3Ab:::\n', 'utf-8')
    dataset = read_dataset(tmp_path)
    list(dataset.images)
    assert [c['name'] for c in dataset.configuration['classes']] == ['a:b']
    assert 'classes not in the class list (added)' not in dataset.report.as_dict()['read']

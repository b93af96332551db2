"""YOLO import: Darknet layout, folders without data.yaml, Roboflow entries, bad lines counted,
every image path inside the dataset folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from synapse_sdk.errors import ParamsError
from synapse_sdk.formats.yolo.reader import read_dataset

from .helpers import save_image


def darknet(root: Path, absolute: bool = False) -> None:
    """What CVAT's "YOLO 1.1" and Datumaro's ``yolo`` exports look like."""
    (root / 'obj.names').parent.mkdir(parents=True, exist_ok=True)
    (root / 'obj.names').write_text('cat\ndog\n', encoding='utf-8')
    (root / 'obj.data').write_text(
        'classes = 2\ntrain = data/train.txt\nvalid = data/valid.txt\nnames = data/obj.names\n'
        'backup = backup/\n',
        encoding='utf-8',
    )
    for split, stem in (('train', 'a'), ('valid', 'b')):
        save_image(root / f'obj_{split}_data' / f'{stem}.jpg', 100, 50)
        (root / f'obj_{split}_data' / f'{stem}.txt').write_text('1 0.5 0.5 0.2 0.4\n', 'utf-8')
        (root / f'{split}.txt').write_text(f'data/obj_{split}_data/{stem}.jpg\n', 'utf-8')


def test_darknet_layout(tmp_path: Path) -> None:
    darknet(tmp_path)
    dataset = read_dataset(tmp_path)
    images = list(dataset.images)
    assert [c['name'] for c in dataset.configuration['classes']] == ['cat', 'dog']
    assert [(i.file_name, i.split) for i in images] == [('a.jpg', 'train'),
                                                        ('b.jpg', 'validation')]  # fmt: skip
    (ann,) = images[0].annotations
    assert ann['category'] == 'dog'
    assert ann['bbox'] == pytest.approx([40, 15, 20, 20])


def test_darknet_obj_data_given_as_the_path(tmp_path: Path) -> None:
    darknet(tmp_path)
    assert len(list(read_dataset(tmp_path / 'obj.data').images)) == 2


@pytest.mark.parametrize('layout', ['images/train', 'train/images', 'flat'])
def test_without_data_yaml_the_classes_come_from_the_command_line(tmp_path: Path, layout: str):
    folder = tmp_path if layout == 'flat' else tmp_path / layout
    labels = folder if layout == 'flat' else Path(str(folder).replace('images', 'labels'))
    save_image(folder / 'x.jpg', 100, 50)
    labels.mkdir(parents=True, exist_ok=True)
    (labels / 'x.txt').write_text('2 0.5 0.5 0.2 0.4\n', encoding='utf-8')
    with pytest.raises(ParamsError, match='--classes'):
        read_dataset(tmp_path)
    dataset = read_dataset(tmp_path, classes='a,b,c')
    (image,) = list(dataset.images)
    assert image.annotations[0]['category'] == 'c'
    assert image.split == (None if layout == 'flat' else 'train')
    names = tmp_path.parent / f'{tmp_path.name}.names.txt'
    names.write_text('a\nb\nc\n', encoding='utf-8')
    assert [c['name'] for c in read_dataset(tmp_path, classes=str(names)).configuration[
        'classes']] == ['a', 'b', 'c']  # fmt: skip


def test_a_names_file_in_the_folder_is_used(tmp_path: Path) -> None:
    save_image(tmp_path / 'images' / 'x.jpg', 10, 10)
    (tmp_path / 'classes.txt').write_text('one\ntwo\n', encoding='utf-8')
    dataset = read_dataset(tmp_path)
    assert [c['name'] for c in dataset.configuration['classes']] == ['one', 'two']
    assert len(list(dataset.images)) == 1


def test_roboflow_parent_relative_entries(tmp_path: Path) -> None:
    (tmp_path / 'data.yaml').write_text(
        'train: ../train/images\nval: ../valid/images\nnc: 1\nnames: [cell]\n', encoding='utf-8'
    )
    for split in ('train', 'valid'):
        save_image(tmp_path / split / 'images' / f'{split}.jpg', 10, 10)
    images = list(read_dataset(tmp_path).images)
    assert [(i.file_name, i.split) for i in images] == [('train.jpg', 'train'),
                                                        ('valid.jpg', 'validation')]  # fmt: skip


def test_bad_label_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    darknet(tmp_path)
    (tmp_path / 'obj_train_data' / 'a.txt').write_text(
        '1 0.5 0.5 0.2 0.4\n7 0.5 0.5 0.1 0.1\n0 x 0.5 0.1 0.1\n0 0.5 0.5 nan 0.1\n', 'utf-8'
    )
    dataset = read_dataset(tmp_path)
    images = list(dataset.images)
    assert len(images[0].annotations) == 1
    assert dataset.report.as_dict()['skipped'] == {
        'annotation: class index not in names': 1,
        'annotation: malformed label line': 2,
    }


@pytest.mark.parametrize(
    ('entry', 'reason'),
    [('/etc/passwd', 'absolute path'), ('../secret.jpg', 'path outside the images folder'),
     ('data/link.jpg', 'path outside the images folder'), ('C:\\data\\a.jpg', 'absolute path'),
     ('c:/data/a.jpg', 'absolute path')],
)  # fmt: skip
def test_list_entries_stay_inside_the_dataset(tmp_path: Path, entry: str, reason: str) -> None:
    save_image(tmp_path / 'secret.jpg', 10, 10)
    root = tmp_path / 'ds'
    darknet(root)
    os.symlink(tmp_path / 'secret.jpg', root / 'link.jpg')
    (root / 'train.txt').write_text(f'{entry}\ndata/obj_train_data/a.jpg\n', encoding='utf-8')
    dataset = read_dataset(root)
    images = list(dataset.images)
    assert [i.file_name for i in images] == ['a.jpg', 'b.jpg']
    assert dataset.report.as_dict()['skipped'] == {f'image: {reason}': 1}


def test_a_colon_in_a_list_entry_is_part_of_the_name(tmp_path: Path) -> None:
    darknet(tmp_path)
    save_image(tmp_path / 'obj_train_data' / 'a:b.jpg', 10, 10)
    (tmp_path / 'train.txt').write_text('data/obj_train_data/a:b.jpg\n', encoding='utf-8')
    dataset = read_dataset(tmp_path)
    assert [i.file_name for i in dataset.images] == ['a:b.jpg', 'b.jpg']
    assert dataset.report.as_dict()['skipped'] == {}


def test_a_split_folder_outside_the_dataset_is_refused(tmp_path: Path) -> None:
    save_image(tmp_path / 'elsewhere' / 'x.jpg', 10, 10)
    root = tmp_path / 'ds'
    root.mkdir()
    (root / 'data.yaml').write_text('train: /' + str(tmp_path / 'elsewhere').lstrip('/') +
                                    '\nnames: [a]\n', encoding='utf-8')  # fmt: skip
    dataset = read_dataset(root)
    assert list(dataset.images) == []
    (reason,) = dataset.report.as_dict()['skipped']
    assert reason.startswith('split entry:') and 'not found inside the dataset folder' in reason


# -- classify layout (<split>/<class>/<image>) ------------------------------------------------
def test_classify_yaml_names_come_back_exactly_from_their_folders(tmp_path: Path) -> None:
    """Our writer names class folders safely ('a/b' -> a folder that is not 'a/b'); the yaml's
    names map them back, in order, unused classes kept; a folder no name matches is added."""
    from synapse_sdk.formats.yolo.writer import _class_dirs

    names = ['a/b', 'CON', 'unused']
    dirs = _class_dirs(names)
    assert dirs[0] != 'a/b'
    (tmp_path / 'data.yaml').write_text(
        'path: .\ntrain: train\nval: valid\ntask: classify\nnames:\n  0: a/b\n  1: CON\n'
        '  2: unused\n',
        encoding='utf-8',
    )
    save_image(tmp_path / 'train' / dirs[0] / 'x.jpg', 10, 8)
    save_image(tmp_path / 'valid' / dirs[1] / 'y.png', 12, 9)
    save_image(tmp_path / 'valid' / 'extra' / 'z.jpg', 4, 4)
    dataset = read_dataset(tmp_path)
    images = list(dataset.images)
    assert [(c['name'], c['tool']) for c in dataset.configuration['classes']] == [
        ('a/b', 'classification'), ('CON', 'classification'), ('unused', 'classification'),
        ('extra', 'classification'),
    ]  # fmt: skip
    got = [(i.split, i.file_name, i.width, [a['category'] for a in i.annotations]) for i in images]
    assert sorted(got) == [
        ('train', 'x.jpg', 10, ['a/b']),
        ('validation', 'y.png', 12, ['CON']),
        ('validation', 'z.jpg', 4, ['extra']),
    ]
    assert dataset.report.as_dict()['read']['classes not in the class list (added)'] == 1


def test_classify_by_a_classification_reads_back_what_the_writer_wrote(tmp_path: Path) -> None:
    """``-o classification=weather`` writes ``classification: weather`` and ``val: train`` (no
    val split): each image comes back once (it was read twice, once per entry), with its
    class as an image-level label and as its ``weather`` classification."""
    (tmp_path / 'data.yaml').write_text(
        'path: .\ntrain: train\nval: train\nnc: 3\nnames: {0: sunny, 1: rain, 2: night}\n'
        'task: classify\nclassification: weather\n',
        encoding='utf-8',
    )
    save_image(tmp_path / 'train' / 'rain' / 'a.jpg', 10, 8)
    save_image(tmp_path / 'train' / 'sunny' / 'b.jpg', 10, 8)
    dataset = read_dataset(tmp_path)
    got = sorted(
        (i.file_name, i.split, [a['category'] for a in i.annotations], i.classifications)
        for i in dataset.images
    )
    assert got == [
        ('a.jpg', 'train', ['rain'], {'weather': 'rain'}),
        ('b.jpg', 'train', ['sunny'], {'weather': 'sunny'}),
    ]
    assert dataset.configuration['classifications'] == [
        {'name': 'weather', 'values': ['sunny', 'rain', 'night']}
    ]


def test_object_layouts_are_not_read_as_classify(tmp_path: Path) -> None:
    """train/images + train/labels (Roboflow) is a detect dataset, not a class named images."""
    save_image(tmp_path / 'train' / 'images' / 'a.jpg', 20, 10)
    (tmp_path / 'train' / 'labels').mkdir(parents=True)
    (tmp_path / 'train' / 'labels' / 'a.txt').write_text('0 0.5 0.5 0.5 0.5\n', 'utf-8')
    dataset = read_dataset(tmp_path, classes='car')
    (image,) = list(dataset.images)
    assert [a['tool'] for a in image.annotations] == ['bounding_box']


def test_a_label_file_without_its_image_is_counted_once(tmp_path: Path) -> None:
    """Its annotations cannot be read (no image size), so it is reported, not dropped silently;
    once, though the yaml names the train folder again as val (as our writer does)."""
    (tmp_path / 'data.yaml').write_text(
        'path: .\ntrain: images/train\nval: images/train\nnames: [car]\n', encoding='utf-8'
    )
    save_image(tmp_path / 'images' / 'train' / 'a.jpg', 20, 10)
    (tmp_path / 'labels' / 'train').mkdir(parents=True)
    for stem in ('a', 'gone'):
        (tmp_path / 'labels' / 'train' / f'{stem}.txt').write_text('0 0.5 0.5 0.5 0.5\n', 'utf-8')
    dataset = read_dataset(tmp_path)
    for _ in range(2):  # a second pass counts the same
        assert [i.file_name for i in dataset.images] == ['a.jpg']
        assert dataset.report.as_dict()['skipped'] == {
            'image file: file not found (a label file without its image)': 1
        }

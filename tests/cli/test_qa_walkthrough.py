"""Defects a QA walk-through met at the CLI, each reproduced as the user ran it (a real
``synapse`` process, real files)."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synapse_sdk.server.store import Store

from .helpers import synapse
from .test_storage import invoke


def _labelme(path: Path, image: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = {'label': 'car', 'points': [[1, 1], [3, 3]], 'shape_type': 'rectangle'}
    doc = {'version': '5.5.0', 'flags': {}, 'shapes': [shape], 'imagePath': image,
           'imageData': None, 'imageHeight': 8, 'imageWidth': 8}  # fmt: skip
    path.write_bytes(orjson.dumps(doc))


def _parquet(path: Path, image: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table({'image': [{'bytes': None, 'path': image}],
                      'objects': [{'bbox': [[1.0, 1.0, 2.0, 2.0]], 'category': [0]}]})  # fmt: skip
    pq.write_table(table, path)


@pytest.mark.parametrize(
    ('fmt', 'write', 'nested', 'named'),
    [
        ('labelme', _labelme, ['exp1/train/a.json', 'exp2/train/b.json'], 'exp1, exp2/train'),
        (
            'parquet',
            _parquet,
            ['exp1/data/train-00000-of-00001.parquet', 'exp2/x.parquet'],
            'exp1, exp2',
        ),
    ],
)
def test_import_of_a_folder_holding_datasets_refuses_naming_them(
    tmp_path, fmt, write, nested, named
):
    """``synapse data import labelme|parquet DIR`` walked the whole tree and merged every
    dataset found below DIR into one project; now DIR is one dataset, read as its format's
    layout says, and a folder holding none is refused, naming the datasets below it."""
    root = tmp_path / 'exports'
    for rel in nested:
        write(root / rel, 'a.png')
    if fmt == 'labelme':
        (root / 'exp1' / 'labels.txt').write_text('car\n')  # marks a dataset of its own
    done = synapse('data', 'import', fmt, str(root), home=tmp_path / 'home')
    assert done.returncode == 2, done.stdout
    assert str(root) in done.stderr and 'expected' in done.stderr
    assert f'nested datasets not read: {named}\n' in done.stderr
    assert not done.stdout
    one = synapse('data', 'import', fmt, str(root / 'exp1'), home=tmp_path / 'home')
    assert one.returncode == 0, one.stderr
    assert orjson.loads(one.stdout)['read']['images'] == 1


def test_clean_of_a_storage_rooted_at_slash_lists_two_folders_and_warns(
    synapse_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``synapse storage clean`` walked every directory under the storage root; on a storage
    rooted at ``/`` that is the whole file system (160,000 directories here). It now lists
    the folders where exports put their staging directories (the root and the default export
    folder), nothing below them, and warns that the storage is the whole file system."""
    with Store(synapse_home) as store:
        rootfs = store.add_storage('rootfs', 'file_system', {'location': '/'})
    import synapse_sdk.storage.staging as staging

    listed: list[str] = []
    real_scandir = os.scandir

    def counting_scandir(path):  # the one call that lists a folder in the clean path
        listed.append(str(path))
        assert len(listed) < 20, f'clean is walking the file system: {listed[-5:]}'
        return real_scandir(path)

    monkeypatch.setattr(staging.os, 'scandir', counting_scandir)
    done = invoke('storage', 'clean', '--storage', str(rootfs['id']), '--dry-run')
    assert done.exit_code == 0, done.stderr
    assert listed == ['/']  # /exports does not exist here
    assert 'Warning: storage' in done.stderr and 'is rooted at /, the whole file system' in (
        done.stderr
    )
    assert orjson.loads(done.stdout)['removed'] == []


def test_a_colon_in_a_file_name_is_kept_on_import_and_export(tmp_path: Path) -> None:
    """``a:b.jpg`` (a legal Linux name) was refused on import as an "absolute path" ("a:" read
    as a Windows drive) and written as ``b.jpg`` on export. A real drive path is still
    refused."""
    from PIL import Image

    (tmp_path / 'images').mkdir()
    for name in ('a:b.jpg', '12:30.jpg'):
        Image.new('RGB', (8, 8)).save(tmp_path / 'images' / name, format='JPEG')
    names = ['a:b.jpg', '12:30.jpg', 'C:\\images\\a:b.jpg']
    data = {
        'images': [{'id': i, 'file_name': n, 'width': 8, 'height': 8}
                   for i, n in enumerate(names, 1)],
        'annotations': [{'id': 1, 'image_id': 1, 'category_id': 1, 'bbox': [1, 1, 2, 2],
                         'area': 4, 'iscrowd': 0}],
        'categories': [{'id': 1, 'name': 'x'}],
    }  # fmt: skip
    (tmp_path / 'ann.json').write_bytes(orjson.dumps(data))
    home = tmp_path / 'home'
    done = synapse(
        'data', 'import', 'coco', str(tmp_path / 'ann.json'), '--images',
        str(tmp_path / 'images'), home=home,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = orjson.loads(done.stdout)
    assert result['read']['image files'] == 2
    assert result['skipped'] == {'image file: absolute path': 1}  # the drive path only
    for fmt in ('coco', 'voc'):
        out = tmp_path / f'out-{fmt}'
        exported = synapse(
            'export', fmt, '--target', 'task', '--project', '1', '--output', str(out), home=home
        )
        assert exported.returncode == 0, exported.stderr
        written = {p.name for p in out.rglob('*') if p.is_file()}
        assert {'a:b.jpg', '12:30.jpg'} <= written, (fmt, sorted(written))
        assert 'b.jpg' not in written
    (ann,) = (tmp_path / 'out-coco' / 'annotations').glob('instances_*.json')
    assert {'12:30.jpg', 'a:b.jpg'} <= {
        i['file_name'] for i in orjson.loads(ann.read_bytes())['images']
    }


def test_yolo_refuses_a_split_ultralytics_cannot_load(synapse_home: Path) -> None:
    """``synapse export yolo --split foo=1`` wrote data.yaml with ``foo:`` and neither
    ``train`` nor ``val``, which Ultralytics refuses to load; it is refused with exit 2,
    naming the split and the names YOLO takes, and nothing is written."""
    done = synapse(
        'export', 'yolo', '--target', 'task', '--project', '1', '--name', 'custom',
        '--split', 'foo=1', home=synapse_home,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout
    assert "--split: split 'foo' has no data.yaml key Ultralytics reads" in done.stderr
    assert 'YOLO splits are train, val (or validation) and test' in done.stderr
    assert not (synapse_home / 'storage' / 'exports' / 'custom').exists()
    ok = synapse(
        'export', 'yolo', '--target', 'task', '--project', '1', '--name', 'ok',
        '--split', 'train=0.8,val=0.2', '--no-originals', home=synapse_home,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    data = (synapse_home / 'storage' / 'exports' / 'ok' / 'data.yaml').read_text()
    assert 'train: images/train' in data and 'val: images/val' in data


def test_yolo_classify_on_the_demo_takes_the_weather_classification(
    synapse_home: Path, tmp_path: Path
) -> None:
    """``-o task=classify`` on the demo failed every item: the demo's image class is its
    ``weather`` classification, not a classification class. The project's only
    classification is now the class; the images that truly have none fail, each named with
    what is missing; the import reads back the labels and the classification."""
    done = synapse(
        'export', 'yolo', '--target', 'task', '--project', '1', '--name', 'cls',
        '-o', 'task=classify', home=synapse_home,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = synapse_home / 'storage' / 'exports' / 'cls'
    folders = {p.name for p in (out / 'train').iterdir()}
    assert folders and folders <= {'sunny', 'rain', 'night'}
    exported = sum(1 for p in (out / 'train').rglob('*') if p.is_file())
    result = orjson.loads(done.stdout)
    assert result['exported_count'] == exported > 0
    failed = orjson.loads((out / 'error_file_list.json').read_bytes())
    assert failed and len(failed) + exported == 12
    for row in failed:  # the demo's unannotated images carry no weather
        assert "no 'weather' classification, which gives the image its class" in row['reason']
        assert row['id'] and row['file']
    assert 'failed: Item' in done.stderr and "no 'weather' classification" in done.stderr
    imported = synapse('data', 'import', 'yolo', str(out), home=tmp_path / 'home')
    assert imported.returncode == 0, imported.stderr
    assert orjson.loads(imported.stdout)['read']['images'] == exported  # each image once
    assert f'and {exported} image-level labels' in imported.stderr


@pytest.mark.parametrize(
    ('given', 'expected'),
    [
        ('tags={"a": 1}', "Filter 'tags' expects a string or a list of strings, got an object"),
        ('status={"a": 1}', "Filter 'status' expects a string or a list of strings, got an object"),
        ('ids=[1.5]', "Filter 'ids' expects an integer or a list of integers, got a decimal"),
        ('has_assignment=[true]', "Filter 'has_assignment' expects true or false, got a list"),
    ],
)
def test_a_filter_value_of_the_wrong_type_is_a_usage_error(
    synapse_home: Path, given: str, expected: str
) -> None:
    """``--filter tags={"a": 1}`` became the tag "{'a': 1}" and the export stopped on "no
    task matches" (an empty selection); it is exit 2 naming the field, the type given and the
    type allowed, before anything runs."""
    done = synapse(
        'export', 'coco', '--target', 'task', '--project', '1', '--name', 'f', '--filter',
        given, home=synapse_home,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert expected in done.stderr
    assert 'no task matches' not in done.stderr


def _gt_export(home: Path, fmt: str, name: str) -> Path:
    done = synapse(
        'export', fmt, '--target', 'ground_truth', '--gt-version', '1', '--name', name,
        home=home,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return Path(orjson.loads(done.stdout)['output_path'])


def _titles(home: Path) -> list[str]:
    with Store(home) as store:
        return [row['title'] for row in store.conn.execute('SELECT title FROM projects')]


def test_labelme_import_keeps_the_title_and_names_bad_image_data(
    synapse_home: Path, tmp_path: Path
) -> None:
    """A LabelMe import of our export named the project after the folder, not the title in
    its project.json; an ``imageData`` that is not a string was "file not found"."""
    out = _gt_export(synapse_home, 'labelme', 'lm')
    (original,) = _titles(synapse_home)
    bad = next(out.glob('*/*.json'))
    doc = orjson.loads(bad.read_bytes())
    (out / bad.parent.name / doc['imagePath']).unlink()
    bad.write_bytes(orjson.dumps({**doc, 'imageData': 12345}))
    done = synapse('data', 'import', 'labelme', str(out), home=tmp_path / 'home')
    assert done.returncode == 0, done.stderr
    assert _titles(tmp_path / 'home') == [original]
    assert orjson.loads(done.stdout)['skipped'] == {
        'image file: file not found, and imageData must be a base64 string or null': 1
    }
    assert 'imageData must be a base64 string' in done.stderr


def test_dm_import_refuses_an_image_linked_from_outside_naming_it(
    synapse_home: Path, tmp_path: Path
) -> None:
    """A dm image that is a symlink leading out of the dataset was "file not found"."""
    out = _gt_export(synapse_home, 'dm', 'dm')
    image = next((out / 'origin_files').iterdir())
    outside = tmp_path / 'elsewhere.jpg'
    outside.write_bytes(image.read_bytes())
    image.unlink()
    image.symlink_to(outside)
    done = synapse('data', 'import', 'dm', str(out), home=tmp_path / 'home')
    assert done.returncode == 0, done.stderr
    assert orjson.loads(done.stdout)['skipped'] == {
        'image file: a symbolic link pointing outside the dataset (refused)': 1
    }
    assert '1 image file not imported: a symbolic link pointing outside the dataset' in (
        done.stderr
    )

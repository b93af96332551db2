"""What a new user met running the CLI end to end, each reproduced as that user ran it (real
processes on the seeded demo home, real files): the stderr summary of skipped annotations, the
counts an import prints, hostile image names in imports, options that would silently lose
labels or splits, and option errors that say what is allowed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import orjson
import pytest
from PIL import Image

from .helpers import synapse


def gt_export(home: Path, fmt: str, name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return synapse(
        'export', fmt, '--target', 'ground_truth', '--gt-version', '1', '--name', name, *args,
        home=home,
    )  # fmt: skip


def test_skipped_annotations_are_summed_up_on_stderr(synapse_home):
    """Issue 8: what a format cannot carry is surfaced in the result *and* a short stderr
    summary ("N keypoint annotations skipped: yolo detect has no keypoints")."""
    done = gt_export(synapse_home, 'yolo', 'detect')
    assert done.returncode == 0, done.stderr
    result = orjson.loads(done.stdout)
    (reason,) = [r for r in result['skipped'] if 'keypoints' in r]
    n = result['skipped'][reason]
    assert n > 0
    assert f'{n} annotations skipped: {reason}' in done.stderr
    quiet = gt_export(synapse_home, 'yolo', 'detect-quiet', '-q')
    assert quiet.returncode == 0 and 'skipped' not in quiet.stderr  # -q: nothing on stderr


@pytest.mark.parametrize('fmt', ['cvat', 'labelme', 'parquet'])
def test_import_of_our_export_prints_the_annotations_it_read(synapse_home, tmp_path, fmt):
    """``synapse data import cvat|labelme|parquet`` said "with 0 annotations" (and counted
    ``annotation``/``image`` where every other importer counts ``annotations``/``images``)."""
    done = gt_export(synapse_home, fmt, f'rt-{fmt}')
    assert done.returncode == 0, done.stderr
    exported = orjson.loads(done.stdout)
    out = Path(exported['output_path'])
    written = orjson.loads((out / 'export_report.json').read_bytes())['annotations']['exported']
    assert written > 0
    home = tmp_path / 'import-home'
    imported = synapse('data', 'import', fmt, str(out), home=home)
    assert imported.returncode == 0, imported.stderr
    read = orjson.loads(imported.stdout)['read']
    assert read['images'] == exported['exported_count']
    assert read['annotations'] == written
    assert f'with {written} annotations' in imported.stderr


def _image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new('RGB', (8, 8)).save(path, format='PNG')


def test_coco_import_refuses_a_nul_in_one_file_name_and_imports_the_rest(tmp_path):
    """A NUL byte in one image's ``file_name`` aborted the whole import with "not a readable
    COCO json file (embedded null byte)"; it is one image refused, with its reason."""
    _image(tmp_path / 'images' / 'ok.png')
    names = ['ok.png', 'bad\x00name.png']
    data = {
        'images': [{'id': i, 'file_name': n, 'width': 8, 'height': 8}
                   for i, n in enumerate(names, 1)],
        'annotations': [{'id': i, 'image_id': i, 'category_id': 1, 'bbox': [1, 1, 2, 2],
                         'area': 4, 'iscrowd': 0} for i in (1, 2)],
        'categories': [{'id': 1, 'name': 'x'}],
    }  # fmt: skip
    (tmp_path / 'ann.json').write_bytes(orjson.dumps(data))
    done = synapse(
        'data', 'import', 'coco', str(tmp_path / 'ann.json'), '--images', str(tmp_path / 'images'),
        home=tmp_path / 'home',
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = orjson.loads(done.stdout)
    assert result['read']['image files'] == 1
    assert result['skipped'] == {'image file: invalid file name (a NUL byte)': 1}


def test_labelme_import_refuses_a_nul_in_one_image_path(tmp_path):
    _image(tmp_path / 'ok.png')
    for stem, image_path in (('ok', 'ok.png'), ('bad', 'b\x00d.png')):
        shape = {'label': 'x', 'points': [[1, 1], [3, 3]], 'shape_type': 'rectangle',
                 'group_id': None, 'flags': {}}  # fmt: skip
        doc = {'version': '5.5.0', 'flags': {}, 'shapes': [shape], 'imagePath': image_path,
               'imageData': None, 'imageHeight': 8, 'imageWidth': 8}  # fmt: skip
        (tmp_path / f'{stem}.json').write_bytes(orjson.dumps(doc))
    done = synapse('data', 'import', 'labelme', str(tmp_path), home=tmp_path / 'home')
    assert done.returncode == 0, done.stderr
    result = orjson.loads(done.stdout)
    assert result['read']['images'] == 2 and result['read']['annotations'] == 2
    assert result['skipped'] == {'image file: invalid file name (a NUL byte)': 1}


def test_yolo_classify_without_originals_is_refused(synapse_home):
    """``-o task=classify`` stores each image's label as the folder the image is copied into;
    with ``--no-originals`` it published empty class folders, exit 0, every label lost."""
    done = gt_export(synapse_home, 'yolo', 'cls', '-o', 'task=classify', '--no-originals')
    assert done.returncode == 2, done.stdout
    assert '--no-originals' in done.stderr and 'classify' in done.stderr
    assert not (synapse_home / 'storage' / 'exports' / 'cls').exists()


def test_dm_refuses_a_split_it_cannot_write(synapse_home):
    """dm writes every item to ``json/``: a requested split was reported in the export report
    (``per_split``) but written nowhere, so the dm round trip lost it. It is refused instead."""
    done = gt_export(synapse_home, 'dm', 'dm-split', '--split', 'category')
    assert done.returncode == 2, done.stdout
    assert '--split' in done.stderr and 'dm has no splits' in done.stderr
    plain = gt_export(synapse_home, 'dm', 'dm-plain')
    assert plain.returncode == 0, plain.stderr


@pytest.mark.parametrize(
    ('fmt', 'option', 'expected'),
    [
        ('coco', 'seed=abc', 'a valid integer'),
        ('labelme', 'embed_images=1', 'a valid boolean'),
    ],
)
def test_an_option_of_the_wrong_type_names_the_type(synapse_home, fmt, option, expected):
    """``-o seed=abc`` said "allowed: Seed of the split assignment (...)", not what a seed is."""
    done = gt_export(synapse_home, fmt, 'typed', '-o', option)
    assert done.returncode == 2
    key = option.split('=')[0]
    line = next(line for line in done.stderr.splitlines() if f'-o {key}=' in line)
    assert expected in line


@pytest.mark.parametrize('fmt', ['cvat', 'labelme', 'parquet'])
def test_an_invalid_mask_is_skipped_with_the_reason_every_format_gives(tmp_path, fmt):
    """cvat, labelme and parquet reported any bad mask as "malformed segmentation annotation
    (ValueError)"; they now give the reason the other formats give."""
    root = tmp_path / 'dm'
    masks = {
        'garbled': {'counts': '\x7f\x7f', 'size': [8, 8]},
        'short': {'counts': [3, 2], 'size': [8, 8]},
        'other_size': {'counts': [0, 16], 'size': [8, 2]},
    }
    for stem, mask in masks.items():
        _image(root / 'origin_files' / f'{stem}.png')
        doc = {'annotations': [{'id': 'a1', 'category': 'sky', 'tool': 'segmentation',
                                'mask': mask}], 'classifications': {}}  # fmt: skip
        (root / 'json').mkdir(exist_ok=True)
        (root / 'json' / f'{stem}.json').write_bytes(orjson.dumps(doc))
    home = tmp_path / 'home'
    assert synapse('data', 'import', 'dm', str(root), home=home).returncode == 0
    done = gt_export(home, fmt, 'masks')
    assert done.returncode == 0, done.stderr
    assert orjson.loads(done.stdout)['skipped'] == {
        'mask counts are invalid (malformed RLE string)': 1,
        'mask counts are invalid (runs do not cover the mask)': 1,
        'mask size differs from the image size': 1,
    }


@pytest.mark.parametrize('option', ['--name', '--path'])
def test_a_name_too_long_in_bytes_is_refused_before_the_export(synapse_home, option):
    """100 CJK characters (300 bytes) passed the 200-character check, the whole export ran,
    and publishing failed with 'File name too long' (exit 1). Names count UTF-8 bytes."""
    long = '交' * 100
    args = ['--name', long] if option == '--name' else ['--name', 'ok', '--path', f'a/{long}']
    done = synapse('export', 'csv', '--project', '1', '--no-originals', *args, home=synapse_home)
    assert done.returncode == 2, done.stderr
    assert f'{option[2:]}: ' in done.stderr and 'bytes' in done.stderr
    assert not [p for p in (synapse_home / 'storage').rglob('*') if p.is_file()]


def test_a_cvat_name_xml_cannot_hold_is_refused(synapse_home):
    """``-o name=...`` with a control character was replaced by 'synapse export' in <meta>,
    silently; it is refused like any bad option value."""
    done = synapse('export', 'cvat', '--project', '1', '--name', 'c', '-o', 'name=a\x01b',
                   home=synapse_home)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert '-o name=' in done.stderr and 'XML' in done.stderr


def _hostile_numbers_home(tmp_path: Path) -> Path:
    root = tmp_path / 'dm'
    _image(root / 'origin_files' / 'a.png')  # 8 x 8
    anns = [
        {'id': 'huge', 'category': 'car', 'tool': 'bounding_box', 'bbox': [1, 1, 1e308, 1e308]},
        {'id': 'text', 'category': 'car', 'tool': 'bounding_box', 'bbox': ['1', '1', '2', '2']},
        {'id': 'ok', 'category': 'car', 'tool': 'bounding_box', 'bbox': [1, 1, 2, 2]},
        {'id': 'over', 'category': 'car', 'tool': 'bounding_box', 'bbox': [6, 6, 5, 5]},
        {'id': 'poly', 'category': 'car', 'tool': 'polygon', 'points': [[-3, -3], [7, 0], [5, 7]]},
    ]
    (root / 'json').mkdir()
    (root / 'json' / 'a.json').write_bytes(orjson.dumps({'annotations': anns}))
    home = tmp_path / 'home'
    assert synapse('data', 'import', 'dm', str(root), home=home).returncode == 0
    return home


@pytest.mark.parametrize('fmt', ['cvat', 'labelme', 'parquet'])
def test_new_formats_refuse_numbers_no_tool_can_read(tmp_path, fmt):
    """Issue 9 for the formats of issue 13: cvat wrote a 309-digit coordinate for a 1e308 box,
    parquet an ``area`` of inf, and all three took a bbox of strings; those annotations are
    skipped with the reason every other format gives."""
    home = _hostile_numbers_home(tmp_path)
    done = gt_export(home, fmt, 'numbers')
    assert done.returncode == 0, done.stderr
    result = orjson.loads(done.stdout)
    assert result['skipped'] == {'bbox is not 4 finite numbers': 2}


def test_parquet_clamps_boxes_to_the_image_as_coco_does(tmp_path):
    """Parquet objects are COCO xywh boxes: one reaching past the image (which albumentations
    and other loaders refuse) was written as is; it is clamped and reported, as in COCO."""
    import pyarrow.parquet as pq

    home = _hostile_numbers_home(tmp_path)
    done = gt_export(home, 'parquet', 'clamped')
    assert done.returncode == 0, done.stderr
    result = orjson.loads(done.stdout)
    assert result['clamped'] == 2
    (shard,) = (Path(result['output_path']) / 'data').glob('*.parquet')
    (row,) = pq.read_table(shard).to_pylist()
    for x, y, w, h in row['objects']['bbox']:
        assert x >= 0 and y >= 0 and x + w <= 8 and y + h <= 8
    assert row['objects']['bbox'][:2] == [[1.0, 1.0, 2.0, 2.0], [6.0, 6.0, 2.0, 2.0]]


def test_strict_on_the_command_line(synapse_home):
    """Issue 8 names ``--strict`` (param ``strict: true``); ``synapse export`` had no such
    flag. Any skipped annotation fails the run and nothing is published."""
    done = gt_export(synapse_home, 'yolo', 'strict', '--strict')
    assert done.returncode == 1, done.stderr
    assert 'strict' in done.stderr and 'skipped' in done.stderr
    assert not (synapse_home / 'storage' / 'exports' / 'strict').exists()
    carried = gt_export(synapse_home, 'dm', 'strict-dm', '--strict')  # dm carries everything
    assert carried.returncode == 0, carried.stderr


def test_a_filter_that_contradicts_a_flag_is_refused(synapse_home):
    """``--project 1 --filter project=2`` exported project 1, silently dropping the filter."""
    done = synapse('export', 'coco', '--project', '1', '--filter', 'project=2', '--name', 'x',
                   home=synapse_home)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert '--project' in done.stderr and '--filter project=2' in done.stderr
    same = synapse('export', 'coco', '--project', '1', '--filter', 'project=1', '--name', 'y',
                   '-q', home=synapse_home)  # fmt: skip
    assert same.returncode == 0, same.stderr


@pytest.mark.parametrize(
    ('fmt', 'content'),
    [('coco', b'[1, 2]'), ('coco', b'{"images": "x"}'), ('coco', b'{"info": {}}')],
)
def test_an_import_that_finds_no_image_is_refused(tmp_path, fmt, content):
    """A JSON file that is not a COCO dataset at all imported as an empty project, exit 0
    ("Imported 0 images"); nothing is created and the user is told what was found."""
    path = tmp_path / 'instances_train.json'
    path.write_bytes(content)
    home = tmp_path / 'home'
    done = synapse('data', 'import', fmt, str(path), home=home)
    assert done.returncode == 2, done.stderr
    assert 'no images' in done.stderr
    listed = synapse('project', 'list', '--json', home=home)
    assert listed.returncode == 0 and orjson.loads(listed.stdout) == []


def test_dm_import_skips_an_annotation_without_a_class_name(tmp_path):
    root = tmp_path / 'dm'
    _image(root / 'origin_files' / 'a.png')
    box = {'tool': 'bounding_box', 'bbox': [1, 1, 2, 2]}
    anns = [{'id': '1', 'category': ['car'], **box}, {'id': '2', 'category': 'car', **box}]
    (root / 'json').mkdir()
    (root / 'json' / 'a.json').write_bytes(orjson.dumps({'annotations': anns}))
    done = synapse('data', 'import', 'dm', str(root), home=tmp_path / 'home')
    assert done.returncode == 0, done.stderr
    result = orjson.loads(done.stdout)
    assert result['read']['annotations'] == 1
    assert result['skipped'] == {'annotation: "category" is not a class name (text)': 1}

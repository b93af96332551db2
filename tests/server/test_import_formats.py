"""``synapse data import`` options per format, as a user runs them, and round trips through
``synapse export``: VOC's devkit (1-based) coordinates, YOLO's classify layout."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from synapse_sdk.cli.main import app


def _runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]
    except TypeError:  # click >= 8.2 keeps stderr apart already
        return CliRunner()


def synapse(home: Path, *args: str) -> Any:
    """``synapse ARGS --home HOME`` in process; returns the click result."""
    if args[0] == 'data':
        return _runner().invoke(app, [*args, '--home', str(home)])
    return _runner().invoke(app, [*args, '-q'], env={'SYNAPSE_HOME': str(home)})


def imported(result: Any) -> dict[str, Any]:
    assert result.exit_code == 0, result.stderr
    ids: dict[str, Any] = orjson.loads(result.stdout)
    return ids


def gt_boxes(home: Path, version: int) -> dict[str, list[list[float]]]:
    """Boxes per image file name of a ground-truth version (as the store keeps them)."""
    from synapse_sdk.clients import LocalClient

    client = LocalClient(home)
    events, _ = client.get_ground_truth_events({'ground_truth_dataset_version': version})
    out: dict[str, list[list[float]]] = {}
    for event in events:
        name = event['data_unit']['name']
        out[name] = [a['bbox'] for a in event['data']['annotations'] if 'bbox' in a]
    return out


# -- VOC: the devkit's 1-based coordinates ----------------------------------------------------
DEVKIT_XML = """<annotation><folder>VOC2007</folder><filename>{name}</filename>
<size><width>40</width><height>30</height><depth>3</depth></size>
<object><name>car</name><pose>Unspecified</pose><truncated>0</truncated><difficult>0</difficult>
<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>10</xmax><ymax>5</ymax></bndbox></object>
<object><name>dog</name><bndbox><xmin>7</xmin><ymin>8</ymin><xmax>7</xmax><ymax>8</ymax></bndbox>
</object></annotation>"""
CORNERS = re.compile(r'<xmin>(.*?)</xmin>\s*<ymin>(.*?)</ymin>\s*<xmax>(.*?)</xmax>\s*'
                     r'<ymax>(.*?)</ymax>')  # fmt: skip


def devkit(root: Path) -> Path:
    """A VOC2007-style dataset whose boxes are 1-based inclusive pixels: the car covers pixels
    1..10 x 1..5 (10 x 5), the dog the single pixel (7, 8)."""
    (root / 'Annotations').mkdir(parents=True)
    (root / 'JPEGImages').mkdir()
    Image.new('RGB', (40, 30)).save(root / 'JPEGImages' / '000001.jpg')
    (root / 'Annotations' / '000001.xml').write_text(
        DEVKIT_XML.format(name='000001.jpg'), encoding='utf-8'
    )
    return root


@pytest.mark.parametrize(
    ('option', 'expected'),
    [
        ([], [[1, 1, 9, 4], [7, 8, 0, 0]]),  # zero_based, the default: the devkit file is off
        (['--coordinates', 'zero_based'], [[1, 1, 9, 4], [7, 8, 0, 0]]),
        (['--coordinates', 'one_based'], [[0, 0, 10, 5], [6, 7, 1, 1]]),
    ],
)
def test_voc_import_reads_devkit_coordinates_on_request(
    tmp_path: Path, option: list[str], expected: list[list[float]]
) -> None:
    home = tmp_path / 'home'
    ids = imported(synapse(home, 'data', 'import', 'voc', str(devkit(tmp_path / 'voc')), *option))
    assert gt_boxes(home, ids['ground_truth_dataset_version']) == {'000001.jpg': expected}


def test_voc_devkit_round_trip_is_exact(tmp_path: Path) -> None:
    """devkit file -> import one_based -> export one_based: the same corners."""
    home = tmp_path / 'home'
    source = devkit(tmp_path / 'voc')
    ids = imported(synapse(home, 'data', 'import', 'voc', str(source), '--coordinates',
                           'one_based'))  # fmt: skip
    done = synapse(home, 'export', 'voc', '--target', 'ground_truth', '--gt-version',
                   str(ids['ground_truth_dataset_version']), '--storage', str(ids['storage']),
                   '--path', 'exports', '--name', 'back', '--no-originals',
                   '-o', 'coordinates=one_based')  # fmt: skip
    assert done.exit_code == 0, done.stderr
    out = Path(orjson.loads(done.stdout)['output_path'])
    (xml,) = (out / 'Annotations').glob('*.xml')
    written = CORNERS.findall(xml.read_text('utf-8'))
    original = CORNERS.findall((source / 'Annotations' / '000001.xml').read_text('utf-8'))
    assert written == original == [('1', '1', '10', '5'), ('7', '8', '7', '8')]


def test_voc_coordinates_typo_exits_2_naming_the_option(tmp_path: Path) -> None:
    result = synapse(tmp_path / 'home', 'data', 'import', 'voc', str(devkit(tmp_path / 'voc')),
                     '--coordinates', 'devkit')  # fmt: skip
    assert result.exit_code == 2
    assert 'coordinates' in result.stderr and 'zero_based, one_based' in result.stderr
    assert not (tmp_path / 'home' / 'media').exists() or not any(
        (tmp_path / 'home' / 'media').rglob('*.jpg')
    )


def test_coordinates_is_not_an_option_of_other_importers(tmp_path: Path) -> None:
    result = synapse(tmp_path / 'home', 'data', 'import', 'coco', str(tmp_path),
                     '--coordinates', 'one_based')  # fmt: skip
    assert result.exit_code == 2
    assert '--coordinates is not an option of the coco importer' in result.stderr


# -- YOLO classify: <split>/<class>/<image> ----------------------------------------------------
def classify_folder(root: Path) -> Path:
    """An Ultralytics classify dataset as users have them: no data.yaml, split folders of class
    folders; the same file name under two classes, a class name with a space and non-ASCII."""
    layout = {
        'train': {'cat': ['1.jpg', '2.png'], 'dog': ['1.jpg'], 'traffic light': ['a.jpg']},
        'val': {'cat': ['3.jpg'], 'straße': ['b.jpg']},
    }
    shade = 0
    for split, by_class in layout.items():
        for cls, files in by_class.items():
            (root / split / cls).mkdir(parents=True)
            for name in files:
                shade += 20
                Image.new('RGB', (8 + shade // 20, 6), (shade, 0, 0)).save(
                    root / split / cls / name
                )
    return root


def tags(home: Path, version: int) -> dict[tuple[str, str], list[str]]:
    """(split, file name) -> the image-level labels of each ground-truth event."""
    from synapse_sdk.clients import LocalClient

    events, _ = LocalClient(home).get_ground_truth_events({'ground_truth_dataset_version': version})
    out: dict[tuple[str, str], list[str]] = {}
    for event in events:
        anns = event['data']['annotations']
        assert all(a['tool'] == 'classification' for a in anns)
        out.setdefault((event['category'], event['data_unit']['name']), [])
        out[event['category'], event['data_unit']['name']] += [a['category'] for a in anns]
    return out


def test_yolo_import_reads_the_classify_layout_as_image_level_labels(tmp_path: Path) -> None:
    home = tmp_path / 'home'
    source = classify_folder(tmp_path / 'cls')
    (source / 'train' / 'stray.jpg').write_bytes((source / 'train' / 'cat' / '1.jpg').read_bytes())
    ids = imported(synapse(home, 'data', 'import', 'yolo', str(source)))
    assert ids['read'] == {'image files': 6, 'images': 6, 'tags': 6}
    assert ids['skipped'] == {'image: not in a class folder (yolo classify)': 1}
    from synapse_sdk.clients import LocalClient

    config = LocalClient(home).get_project(ids['project'])['configuration']
    assert [(c['name'], c['tool']) for c in config['classes']] == [
        (n, 'classification') for n in ('cat', 'dog', 'straße', 'traffic light')
    ]
    assert sorted(tags(home, ids['ground_truth_dataset_version']).items()) == sorted({
        ('train', '1.jpg'): ['cat', 'dog'],
        ('train', '2.png'): ['cat'],
        ('train', 'a.jpg'): ['traffic light'],
        ('validation', '3.jpg'): ['cat'],
        ('validation', 'b.jpg'): ['straße'],
    }.items())  # fmt: skip


def export_classify(home: Path, ids: dict[str, Any], name: str) -> Path:
    done = synapse(home, 'export', 'yolo', '--target', 'ground_truth', '--gt-version',
                   str(ids['ground_truth_dataset_version']), '--storage', str(ids['storage']),
                   '--path', 'exports', '--name', name, '--split', 'category',
                   '-o', 'task=classify')  # fmt: skip
    assert done.exit_code == 0, done.stderr
    result = orjson.loads(done.stdout)
    assert result['failed_count'] == 0 and result['skipped'] == {}, result
    return Path(result['output_path'])


def tree(root: Path) -> dict[str, bytes]:
    skip = ('export_report.json', 'error_file_list.json')
    files = (p for p in sorted(root.rglob('*')) if p.is_file() and p.name not in skip)
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


def test_yolo_classify_round_trip_is_identical(tmp_path: Path) -> None:
    """export -o task=classify -> import -> export: the same files, byte for byte."""
    home = tmp_path / 'home'
    first = imported(synapse(home, 'data', 'import', 'yolo', str(classify_folder(tmp_path / 'c'))))
    a = export_classify(home, first, 'a')
    data = yaml.safe_load((a / 'data.yaml').read_text('utf-8'))
    assert data['task'] == 'classify' and data['train'] == 'train'
    assert data['names'] == {0: 'cat', 1: 'dog', 2: 'straße', 3: 'traffic light'}
    second = imported(synapse(home, 'data', 'import', 'yolo', str(a)))
    assert second['read'] == {'image files': 6, 'images': 6, 'tags': 6}
    assert second['skipped'] == {}
    b = export_classify(home, second, 'b')
    assert tree(a) == tree(b)
    assert sorted(p for p in tree(a) if p != 'data.yaml') == [
        'train/cat/1.jpg', 'train/cat/2.png', 'train/dog/1_1.jpg', 'train/traffic light/a.jpg',
        'validation/cat/3.jpg', 'validation/straße/b.jpg',
    ]  # fmt: skip


# -- every importer says what it read and what it could not -----------------------------------
def drop_first_image(out: Path) -> None:
    """Remove one image of an export (parquet: null the bytes of its first row)."""
    shards = sorted((out / 'data').glob('*.parquet')) if (out / 'data').is_dir() else []
    if shards:
        import pyarrow.parquet as pq

        table = pq.read_table(shards[0])
        rows = table.to_pylist()
        rows[0]['image'] = {'bytes': None, 'path': rows[0]['image']['path']}
        pq.write_table(type(table).from_pylist(rows, schema=table.schema), shards[0])
        return
    images = sorted(p for p in out.rglob('*') if p.suffix.lower() in ('.jpg', '.png'))
    images[0].unlink()


IMPORTERS = ['coco', 'csv', 'cvat', 'dm', 'labelme', 'parquet', 'voc', 'yolo']


@pytest.mark.parametrize('fmt', IMPORTERS)
def test_every_importer_counts_what_it_read_and_what_it_could_not(
    synapse_home: Path, tmp_path: Path, fmt: str
) -> None:
    done = synapse(synapse_home, 'export', fmt, '--target', 'task', '--project', '1',
                   '--storage', '1', '--path', 'exports', '--name', fmt)  # fmt: skip
    assert done.exit_code == 0, done.stderr
    exported = orjson.loads(done.stdout)
    out = Path(exported['output_path'])
    drop_first_image(out)
    result = synapse(tmp_path / 'home', 'data', 'import', fmt, str(out))
    ids = imported(result)
    read, skipped = ids['read'], ids['skipped']
    # the image whose file is gone is counted (imported without its file, or not at all)
    lost = {k: v for k, v in skipped.items() if k.startswith('image file: ')}
    assert list(lost.values()) == [1], skipped
    assert read['images'] == ids['data_units']
    assert ids['data_units'] in (exported['exported_count'], exported['exported_count'] - 1)
    assert read['annotations'] > 0
    assert f'Imported {ids["data_units"]} images with {read["annotations"]} annotations' in (
        result.stderr
    )
    assert f'1 image file not imported: {next(iter(lost))[len("image file: ") :]}' in result.stderr


# -- dm and CSV round trips keep the project schema ----------------------------------------------
@pytest.mark.parametrize('fmt', ['dm', 'csv'])
def test_dm_and_csv_round_trips_keep_the_project_schema(
    synapse_home: Path, tmp_path: Path, fmt: str
) -> None:
    """Class order (one the data cannot tell), an unused class, keypoint names and
    classifications come back exactly after export -> import."""
    from synapse_sdk.clients import LocalClient
    from synapse_sdk.server.store import Store

    with LocalClient(synapse_home) as client:
        configuration = client.get_project(1)['configuration']
    configuration['classes'] = [
        {'name': 'unused', 'tool': 'polygon', 'attributes': []},
        *reversed(configuration['classes']),
    ]
    with Store(synapse_home) as store, store.transaction() as conn:
        conn.execute('UPDATE projects SET configuration = ? WHERE id = 1',
                     [orjson.dumps(configuration).decode()])  # fmt: skip
    done = synapse(synapse_home, 'export', fmt, '--target', 'task', '--project', '1',
                   '--storage', '1', '--path', 'exports', '--name', fmt)  # fmt: skip
    assert done.exit_code == 0, done.stderr
    out = Path(orjson.loads(done.stdout)['output_path'])
    ids = imported(synapse(tmp_path / 'home', 'data', 'import', fmt, str(out)))
    with LocalClient(tmp_path / 'home') as client:
        assert client.get_project(ids['project'])['configuration'] == configuration

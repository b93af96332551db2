"""``synapse data import`` options per format, as a user runs them, and round trips through
``synapse export``: VOC's devkit (1-based) coordinates, YOLO's classify layout."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest
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

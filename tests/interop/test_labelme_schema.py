"""LabelMe interop: every file we write validates against the LabelMe file schema (written from
the labelme project's own reader/writer, ``labelme/_label_file.py``), the schema refuses what
labelme refuses, and a whole export through the plugin imports back into a project.

Datumaro's ``label_me`` format is LabelMe's older XML format, not the labelme tool's JSON, so it
is not a peer here; the labelme package itself needs Qt and ONNX models to import.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from tests.formats.helpers import DATA, export, make_items, plugin_export

from synapse_sdk.formats.labelme.reader import read_dataset

SCHEMA = json.loads((DATA / 'labelme.schema.json').read_text(encoding='utf-8'))
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def _files(root: Path) -> list[Path]:
    return sorted(root.glob('*/*.json'))  # the split folders' files


@pytest.mark.parametrize('options', [{}, {'embed_images': True}])
def test_every_file_we_write_is_a_valid_labelme_file(tmp_path: Path, options: Any) -> None:
    export('labelme', tmp_path, make_items(split='category'), options)
    files = _files(tmp_path)
    assert len(files) == 4
    for path in files:
        data = json.loads(path.read_text(encoding='utf-8'))
        errors = [e.message for e in VALIDATOR.iter_errors(data)]
        assert not errors, (path.name, errors)
        assert (path.parent / data['imagePath']).is_file()
        assert (data['imageData'] is not None) == bool(options)


@pytest.mark.parametrize(
    'bad',
    [
        {'shapes': [{'label': 'a', 'points': [[1, 2]], 'shape_type': 'rectangle'}]},
        {'shapes': [{'label': 1, 'points': [[1, 2]], 'shape_type': 'point'}]},
        {'shapes': [{'label': 'a', 'points': [], 'shape_type': 'point'}]},
        {'shapes': [{'label': 'a', 'points': [[1, 2]], 'shape_type': 'point', 'flags': {'x': 1}}]},
        {'imagePath': ''},
        {'flags': {'night': 'yes'}},
    ],
)
def test_the_schema_refuses_what_labelme_refuses(bad: dict[str, Any]) -> None:
    shape = {'group_id': None, 'description': '', 'flags': {}, 'mask': None}
    data = {
        'version': '5.5.0', 'flags': {}, 'shapes': [], 'imagePath': 'a.jpg', 'imageData': None,
        'imageHeight': 4, 'imageWidth': 4,
    }  # fmt: skip
    data.update(bad)
    data['shapes'] = [{**shape, **s} for s in data['shapes']]
    assert list(VALIDATOR.iter_errors(data))


def test_plugin_export_validates_and_imports_back(local_client: Any, tmp_path: Path) -> None:
    _, out = plugin_export(local_client, 'labelme', 'lm', 'train=0.8,val=0.2')
    files = _files(out)
    tasks = list(local_client.get_tasks({'project': 1})[0])
    assert len(files) == len(tasks)
    for path in files:
        assert not list(VALIDATOR.iter_errors(json.loads(path.read_text('utf-8'))))
    ds = read_dataset(out)
    images = list(ds.images)
    assert len(images) == len(tasks) and all(i.path is not None for i in images)
    exported = sum(len(t['data']['annotations']) for t in tasks)
    report = json.loads((out / 'export_report.json').read_text('utf-8'))
    assert report['annotations']['exported'] + report['annotations']['skipped'] == exported
    assert ds.report.read['images'] == len(tasks) and not ds.report.skipped

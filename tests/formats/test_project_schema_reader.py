"""dm and CSV imports keep the project schema from project.json (CONTRACTS #2): class order,
unused classes and keypoint names; without it they fall back to the classes they see."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest

from synapse_sdk.errors import ParamsError
from synapse_sdk.formats import read_dataset

from .helpers import configuration, export, make_items


def schema() -> dict[str, Any]:
    conf = copy.deepcopy(configuration())
    conf['classes'] = list(reversed(conf['classes']))  # an order the data cannot tell
    conf['classes'].append({'name': 'never_used', 'tool': 'polygon', 'attributes': []})
    return {'title': 'Street scenes', 'configuration': conf}


@pytest.mark.parametrize('fmt', ['dm', 'csv'])
def test_project_json_is_the_schema(tmp_path: Path, fmt: str) -> None:
    export(fmt, tmp_path, make_items())
    project = schema()
    (tmp_path / 'project.json').write_bytes(orjson.dumps(project))
    dataset = read_dataset(fmt, tmp_path)
    images = list(dataset.images)
    assert dataset.configuration == project['configuration']
    assert dataset.title == 'Street scenes'
    assert len(images) == len(make_items())
    assert dataset.report.as_dict()['read']['images'] == len(images)


@pytest.mark.parametrize('fmt', ['dm', 'csv'])
def test_a_broken_project_json_is_a_clear_error(tmp_path: Path, fmt: str) -> None:
    export(fmt, tmp_path, make_items())
    (tmp_path / 'project.json').write_text('{"configuration": 3}', encoding='utf-8')
    with pytest.raises(ParamsError, match=r'project\.json'):
        read_dataset(fmt, tmp_path)


def test_dm_json_dir_given_directly_still_finds_project_json(tmp_path: Path) -> None:
    export('dm', tmp_path, make_items())
    (tmp_path / 'project.json').write_bytes(orjson.dumps(schema()))
    dataset = read_dataset('dm', tmp_path / 'json')
    assert dataset.configuration['classes'][-1]['name'] == 'never_used'


def test_an_unreadable_dm_file_is_skipped_and_counted(tmp_path: Path) -> None:
    export('dm', tmp_path, make_items())
    (tmp_path / 'json' / 'zz broken.json').write_text('{', encoding='utf-8')
    dataset = read_dataset('dm', tmp_path)
    images = list(dataset.images)
    assert len(images) == len(make_items())
    assert dataset.report.as_dict()['skipped'] == {'image: annotation json not readable': 1}

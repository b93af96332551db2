"""``synapse demo``, ``synapse data import`` and ``synapse server start`` through CliRunner."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from synapse_sdk.cli.data import data_app
from synapse_sdk.cli.demo import demo
from synapse_sdk.cli.server import server_app
from synapse_sdk.formats.dataset import ImportedDataset, ImportedImage
from synapse_sdk.server.store import Store

app = typer.Typer()
app.command('demo')(demo)
app.add_typer(data_app, name='data')
app.add_typer(server_app, name='server')


def runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]
    except TypeError:  # click >= 8.2 keeps stderr apart already
        return CliRunner()


def test_demo_prints_ids_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv('SYNAPSE_HOME', str(tmp_path / 'home'))
    result = runner().invoke(app, ['demo', '--images', '5', '--seed', '2'])
    assert result.exit_code == 0, result.output
    ids = json.loads(result.stdout)
    assert ids['project'] == 1 and ids['storage'] == 1 and ids['tasks'] == 5
    assert 'synapse export coco' in result.stderr
    assert (tmp_path / 'home' / 'local.db').is_file()


def test_demo_rejects_zero_images(tmp_path: Path) -> None:
    result = runner().invoke(app, ['demo', '--images', '0', '--home', str(tmp_path)])
    assert result.exit_code == 2


@pytest.fixture
def fake_format(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    """A ``synapse_sdk.formats.fake.reader`` module standing in for a real reader."""
    image = tmp_path / 'one.png'
    Image.new('RGB', (8, 6)).save(image)
    calls: dict[str, Any] = {}

    def read_dataset(path: Path, images: Path | None = None) -> ImportedDataset:
        calls.update(path=path, images=images)
        return ImportedDataset(
            configuration={'classes': [{'name': 'cat', 'tool': 'bounding_box'}]},
            images=[ImportedImage('one.png', image, None, None, split='train')],
            title='Fake set',
        )

    package = types.ModuleType('synapse_sdk.formats.fake')
    package.__path__ = []  # type: ignore[attr-defined]
    reader = types.ModuleType('synapse_sdk.formats.fake.reader')
    reader.read_dataset = read_dataset  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, 'synapse_sdk.formats.fake', package)
    monkeypatch.setitem(sys.modules, 'synapse_sdk.formats.fake.reader', reader)
    return calls


def test_data_import(tmp_path: Path, fake_format: dict[str, Any]) -> None:
    home = tmp_path / 'home'
    args = ['data', 'import', 'fake', str(tmp_path / 'ann.json'), '--images', str(tmp_path)]
    result = runner().invoke(app, [*args, '--project', 'Mine', '--home', str(home)])
    assert result.exit_code == 0, result.output
    ids = json.loads(result.stdout)
    assert fake_format == {'path': tmp_path / 'ann.json', 'images': tmp_path}
    with Store(home) as store:
        assert store.get_project(ids['project'])['title'] == 'Mine'
        assert store.get_ground_truth_version(ids['ground_truth_dataset_version'])


@pytest.mark.parametrize('fmt', ['no_such_format', '../etc', 'Coco'])
def test_data_import_unknown_format(tmp_path: Path, fmt: str) -> None:
    result = runner().invoke(app, ['data', 'import', fmt, str(tmp_path), '--home', str(tmp_path)])
    assert result.exit_code == 2
    assert 'format' in result.stderr


def test_server_refuses_public_host_without_token(tmp_path: Path) -> None:
    result = runner().invoke(app, ['server', 'start', '--host', '0.0.0.0', '--home', str(tmp_path)])
    assert result.exit_code == 2
    assert 'without a token' in result.stderr

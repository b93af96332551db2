"""The README stands on its own: its links stay inside the repository, and its first-export
walk-through runs as written."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import orjson

from synapse_sdk.formats import WRITERS, get_writer

from .helpers import synapse

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / 'README.md').read_text(encoding='utf-8')


def test_links_point_at_files_in_the_repository():
    links = re.findall(r'\]\(([^)\s]+)\)', README)
    assert links, 'the README links its design notes and the spec'
    for link in links:
        assert '://' not in link and not link.startswith(('/', '..')), link
        assert (ROOT / link.split('#')[0]).exists(), link
    assert '../shared' not in README and '/work/' not in README
    design = (ROOT / 'docs' / 'DESIGN.md').read_text(encoding='utf-8')
    for link in re.findall(r'\]\(([^)\s]+)\)', design):
        assert (ROOT / 'docs' / link).resolve().is_file(), link


def test_readme_shows_the_new_commands():
    shown = ('--output', '--overwrite', '--zip', 'synapse preview', 'synapse project list')
    shown += ('synapse gt list', '--version', '--debug', '--log-file', 'FORMAT --help')
    for text in shown:
        assert text in README, text


def test_first_export_walkthrough_runs_as_written(tmp_path):
    block = README.split('## First export in a minute')[1].split('```bash')[1].split('```')[0]
    commands = [line.split('  #')[0].strip() for line in block.splitlines()]
    commands = [c for c in commands if c.startswith('synapse ')]
    assert len(commands) >= 5
    home = tmp_path / 'home'
    for command in commands:
        args = shlex.split(command)[1:]
        if args[:1] == ['demo']:
            args = [a if a != '50' else '6' for a in args]  # a smaller demo, same commands
        done = synapse(*args, home=home, cwd=tmp_path)
        assert done.returncode == 0, (command, done.stderr)
    assert (tmp_path / 'demo-coco' / 'annotations' / 'instances_train.json').is_file()
    assert (tmp_path / 'demo-coco-preview' / 'contact_sheet.png').is_file()
    report = orjson.loads((tmp_path / 'demo-coco' / 'export_report.json').read_bytes())
    assert report['items']['exported'] == 6


def test_every_format_and_its_options_are_named():
    formats = README.split('- **Formats**:')[1].split('\n- **')[0]
    for name in WRITERS:
        assert f'`{name}`' in formats, name
        for option in get_writer(name).Options.model_fields:
            assert f'`{option}`' in formats, (name, option)


def test_every_format_can_be_exported_by_name():
    (row,) = [r for r in README.splitlines() if r.startswith('| `synapse export FORMAT')]
    assert set(WRITERS) <= set(re.findall(r'`(\w+)`', row))


def test_every_importer_is_named():
    from synapse_sdk.cli.data import importable_formats

    (row,) = [r for r in README.splitlines() if r.startswith('| `synapse data import')]
    named = {word.lower() for word in re.findall(r'\w+', row)}
    assert set(importable_formats()) <= named

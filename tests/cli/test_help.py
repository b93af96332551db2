"""``--version``, ``-h``, and each format's options in ``synapse export FORMAT --help``, read
from the writer's pydantic ``Options`` model (tested here with a model of every field kind)."""

from __future__ import annotations

import enum
import re
from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field

from synapse_sdk.cli import export as export_cli
from synapse_sdk.cli.options import describe_model, options_table
from synapse_sdk.plugins.discovery import builtin_codes

from .helpers import synapse

ANSI = re.compile(r'\x1b\[[0-9;]*m')


class Palette(enum.Enum):
    WARM = 'warm'
    COLD = 'cold'


class FakeOptions(BaseModel):
    """A writer's options, one field of each kind a format uses."""

    model_config = ConfigDict(extra='forbid')

    split: str | None = Field(None, description='Split ratios')  # a shared flag already
    task: Literal['detect', 'segment', 'pose'] = Field('detect', description='What labels hold')
    precision: int = Field(0, ge=0, le=6, description='Decimals of coordinates')
    start: int = Field(1, gt=0, description='First category id')
    include_empty: bool = Field(True, description='Write images that have no labels')
    palette: Palette = Field(Palette.WARM, description='Colours')
    prefix: str | None = Field(None, description='Text put before each name')
    keep: list[str] = Field(default_factory=list, description='Classes to keep')


def test_version_and_short_help(tmp_path):
    done = synapse('--version', home=tmp_path)
    assert done.returncode == 0 and re.fullmatch(r'synapse-sdk \d+\.\d+\.\d+\S*\n', done.stdout)
    for args in (['-h'], ['export', '-h'], ['export', 'coco', '-h'], ['plugin', 'run', '-h']):
        done = synapse(*args, home=tmp_path)
        assert done.returncode == 0 and 'Usage:' in done.stdout, args
    done = synapse('-h', home=tmp_path)
    for command in ('export', 'preview', 'project', 'gt', 'plugin', 'data', 'demo', 'server'):
        assert re.search(rf'│ {command} ', done.stdout), command


def test_export_help_lists_the_formats_and_flags_show_as_flags(tmp_path):
    done = synapse('export', '--help', home=tmp_path, COLUMNS='120')
    for fmt in builtin_codes():
        assert re.search(rf'│ {fmt} ', done.stdout)
    done = synapse('export', 'yolo', '--help', home=tmp_path, COLUMNS='120')
    text = ANSI.sub('', done.stdout)
    for flag in ('--project', '--output', '--overwrite', '--zip', '--no-originals', '--split'):
        assert flag in text
    assert '<bool>' not in text and 'install-completion' not in text
    assert re.search(r'--no-originals\s+Do not copy', text)  # no type column for a flag
    unknown = synapse('export', 'nope', home=tmp_path)
    assert unknown.returncode == 2 and "unknown format 'nope'" in unknown.stderr


def test_options_are_described_from_the_model():
    rows = {row[0]: row[1:] for row in options_table(describe_model(FakeOptions))}
    assert rows['--task'] == ('one of', 'detect', 'detect, segment, pose', 'What labels hold')
    assert rows['--precision'] == ('integer', '0', '0 to 6', 'Decimals of coordinates')
    assert rows['--start'][2] == '>= 1'
    assert rows['--include-empty / --no-include-empty'][:2] == ('flag', 'on')
    assert rows['--palette'][2] == 'warm, cold'
    assert rows['-o keep=JSON'][1] == '[]'


def _help(command, capsys, monkeypatch) -> str:
    monkeypatch.setenv('COLUMNS', '140')
    with pytest.raises(SystemExit) as stop:
        command.main(['--help'], prog_name='synapse export fake')
    assert stop.value.code == 0
    return ANSI.sub('', capsys.readouterr().out)


def test_format_help_shows_name_type_default_and_allowed_values(capsys, monkeypatch):
    command = export_cli.format_command('fake', describe_model(FakeOptions), title='Fake format')
    text = _help(command, capsys, monkeypatch)
    panel = text[text.index('fake options') : text.index('Example:')]
    assert re.search(r'--task\s+\[?<?detect\|segment\|pose>?\]?\s+What labels hold \(default: '
                     r'detect\)', panel)  # fmt: skip
    assert re.search(r'--precision\s+INTEGER \[0<=x<=6\]\s+Decimals of coordinates', panel)
    assert re.search(r'--include-empty\s+--no-include-empty\s+Write images that have no labels '
                     r'\(default: on\)', panel)  # fmt: skip
    assert '<bool>' not in text
    assert '--palette' in panel and 'warm|cold' in panel
    assert panel.count('--split') == 0  # the shared --split is not repeated
    assert '-o keep=... JSON' in text[text.index('More options') :]  # a list: -o keep=JSON


def test_format_flags_become_extra_params(monkeypatch):
    seen = {}

    def fake_run(fmt, values, option_flags, **shared):
        seen.update(fmt=fmt, values=values, flags=option_flags, shared=shared)

    monkeypatch.setattr(export_cli, 'run_export', fake_run)
    command = export_cli.format_command('fake', describe_model(FakeOptions))
    command.main(['--project', '3', '--task', 'pose', '--no-include-empty', '--precision', '2',
                  '--palette', 'cold'], standalone_mode=False)  # fmt: skip
    assert seen['values'] == {
        'task': 'pose',
        'include_empty': False,
        'precision': 2,
        'palette': 'cold',
    }
    assert seen['flags']['include_empty'] == '--include-empty'
    assert seen['shared']['project'] == 3
    seen.clear()
    command.main(['--project', '3'], standalone_mode=False)
    assert seen['values'] == {}  # not given: the model's defaults apply in the writer
    with pytest.raises(SystemExit) as stop:
        command.main(['--precision', '9'])
    assert stop.value.code == 2

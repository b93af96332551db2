"""Format options (CONTRACTS #6): a pydantic model per writer, unknown keys refused naming the
key and every allowed one, values not coerced, each field described (for ``--help``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from synapse_sdk.errors import ParamsError
from synapse_sdk.formats import WRITERS, get_writer
from synapse_sdk.formats.base import CommonOptions

FORMATS = ['coco', 'yolo', 'voc', 'csv', 'dm']


@pytest.mark.parametrize('fmt', FORMATS)
def test_every_writer_has_a_strict_described_options_model(fmt: str) -> None:
    options = WRITERS[fmt].Options
    assert issubclass(options, CommonOptions)
    assert options.model_config.get('extra') == 'forbid'
    for name, info in options.model_fields.items():
        assert info.description, f'{fmt}.{name} has no description'
    assert {'split', 'seed', 'on_error'} <= set(options.model_fields)


@pytest.mark.parametrize('fmt', FORMATS)
def test_unknown_key_is_refused_naming_it_and_the_allowed_keys(fmt: str) -> None:
    with pytest.raises(ParamsError) as info:
        get_writer(fmt).validate_options({'tsk': 'segment'})
    message = str(info.value)
    assert 'extra_params.tsk' in message
    for key in WRITERS[fmt].Options.model_fields:
        assert key in message


BAD = [
    ('yolo', {'task': 'segmnt'}, "extra_params.task: got 'segmnt'; allowed: 'detect', 'segment'"),
    ('yolo', {'precision': '6'}, "extra_params.precision: got '6'; allowed: an integer from 1"),
    ('coco', {'category_id_start': -1}, 'extra_params.category_id_start: got -1'),
    ('voc', {'coordinates': 'devkit'}, "allowed: 'zero_based', 'one_based'"),
    ('dm', {'dm_version': 3}, 'extra_params.dm_version: got 3; allowed: 1, 2'),
    ('csv', {'on_error': 'ignore'}, "extra_params.on_error: got 'ignore'; allowed: 'skip', 'fail'"),
    ('csv', {'seed': 1.5}, 'extra_params.seed'),
    ('coco', {'split': 'train=-1'}, 'extra_params.split'),
    ('coco', {'split_mode': 'stratifed'}, "extra_params.split_mode: got 'stratifed'"),
]


@pytest.mark.parametrize(('fmt', 'options', 'needle'), BAD)
def test_bad_values_name_the_key_and_what_is_allowed(
    fmt: str, options: dict[str, Any], needle: str
) -> None:
    with pytest.raises(ParamsError) as info:
        get_writer(fmt).validate_options(options)
    assert needle in str(info.value)


def test_defaults_are_filled_in() -> None:
    assert get_writer('yolo').validate_options({}) == {
        'split': None, 'split_mode': None, 'seed': 0, 'on_error': 'skip', 'task': 'detect',
        'precision': 6, 'path': '.', 'classification': None,
    }  # fmt: skip


def test_cli_refuses_a_mistyped_option_before_anything_runs(synapse_home: Path) -> None:
    env = {**os.environ, 'SYNAPSE_HOME': str(synapse_home)}
    env.pop('SYNAPSE_HOST', None)
    done = subprocess.run(
        [sys.executable, '-m', 'synapse_sdk.cli.main', 'export', 'yolo', '--project', '1',
         '--name', 'typo', '-o', 'tsk=segment'],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert '-o tsk' in done.stderr and 'task' in done.stderr  # the flag as typed
    assert 'Traceback' not in done.stderr
    assert not (synapse_home / 'storage' / 'exports' / 'typo').exists()

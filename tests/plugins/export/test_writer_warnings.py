"""What a format writer warns about (``report.extra['warnings']``) reaches the export's result
``warnings`` (CONTRACTS #5) and the summary on stderr, as a user runs ``synapse export``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import yaml
from typer.testing import CliRunner

from synapse_sdk.cli.main import app
from synapse_sdk.server.demo import DEMO_CONFIGURATION
from synapse_sdk.server.store import Store

FLIP_WARNING = 'yolo pose: keypoint classes mirror their points differently; flip_idx left out'


def _runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]
    except TypeError:  # click >= 8.2 keeps stderr apart already
        return CliRunner()


def add_keypoint_class(home: Path) -> None:
    """A second keypoint class whose points mirror differently from ``person_pose``."""
    configuration: dict[str, Any] = orjson.loads(orjson.dumps(DEMO_CONFIGURATION))
    configuration['classes'].append({'name': 'hand', 'tool': 'keypoint', 'attributes': []})
    configuration['keypoints']['hand'] = {'names': ['right', 'left']}
    with Store(home) as store, store.transaction() as conn:
        conn.execute(
            'UPDATE projects SET configuration = ? WHERE id = 1',
            [orjson.dumps(configuration).decode()],
        )


def export(name: str, *options: str) -> Any:
    args = ['export', 'yolo', '--target', 'task', '--project', '1', '--storage', '1']
    args += ['--path', 'exports', '--name', name, '--no-originals', *options]
    return _runner().invoke(app, args)


def test_a_writer_warning_is_in_the_result_warnings(synapse_home: Path) -> None:
    add_keypoint_class(synapse_home)
    result = export('pose', '-o', 'task=pose')
    assert result.exit_code == 0, result.stderr
    out = orjson.loads(result.stdout)
    data = yaml.safe_load(Path(out['output_path'], 'data.yaml').read_text('utf-8'))
    assert 'flip_idx' not in data
    assert sum(FLIP_WARNING in line for line in out['warnings']) == 1, out['warnings']
    report = orjson.loads(Path(out['output_path'], 'export_report.json').read_bytes())
    assert any(FLIP_WARNING in line for line in report['warnings'])
    assert f'warning: {FLIP_WARNING}' in result.stderr  # the CLI summary shows it


def test_no_writer_warning_when_the_classes_agree(synapse_home: Path) -> None:
    result = export('agree', '-o', 'task=pose')
    assert result.exit_code == 0, result.stderr
    out = orjson.loads(result.stdout)
    assert not any('flip_idx' in line for line in out['warnings'])

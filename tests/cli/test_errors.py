"""Errors in the user's words: the flags they typed, no class or step names, the plugin's file
and line (the traceback with --debug), exit codes, and the failure in --log-file."""

from __future__ import annotations

import orjson
import pytest

from synapse_sdk.cli.common import describe_params_error, explain
from synapse_sdk.errors import ExportError, ItemExportError, ParamsError, StepError

from .helpers import params, synapse, write_plugin

BROKEN = '    def convert_data(self, data):\n        return 1 / 0  # the bug\n'
NO_INTERNALS = ('filter.', 'extra_params', 'ExportAction', "Step '", 'Traceback', 'initialize')


@pytest.mark.parametrize(
    ('args', 'expected'),
    [
        ([], '--project: required for this target'),
        (['--project', '99'], '--project: no project with id 99'),
        (['--target', 'ground_truth'], '--gt-version: required for this target'),
        (['--target', 'ground_truth', '--gt-version', '77'], '--gt-version'),
        (['--target', 'nope', '--project', '1'], "--target: unknown target 'nope'"),
        (['--project', '1', '--filter', 'colour=red'], '--filter: Unknown task filter key'),
        (['--project', '1', '-o', 'precision=9'], '-o precision=...: got 9'),
        (['--project', '1', '--storage', '9'], '--storage: no storage with id 9'),
        (['--project', '1', '--name', '../up'], '--name: path separators are not allowed'),
    ],
)
def test_bad_input_names_the_flag_and_exits_2(synapse_home, args, expected):
    done = synapse('export', 'voc', *args, home=synapse_home)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith('Error: ') and expected in done.stderr, done.stderr
    assert not any(word in done.stderr for word in NO_INTERNALS), done.stderr
    assert done.stdout == ''


def _bug_line(plugin) -> int:
    lines = (plugin / 'plugin' / 'export.py').read_text().splitlines()
    return next(n for n, line in enumerate(lines, 1) if '# the bug' in line)


def test_plugin_exception_shows_its_file_and_line(synapse_home, tmp_path):
    plugin = write_plugin(tmp_path / 'p', BROKEN)
    line = _bug_line(plugin)
    log = tmp_path / 'run.jsonl'
    run = ('plugin', 'run', 'export', '--params', params(extra_params={'on_error': 'fail'}))
    done = synapse(*run, '--log-file', str(log), home=synapse_home, cwd=plugin)
    assert done.returncode == 1
    assert 'the export failed while converting and saving the items: item ' in done.stderr
    assert 'ZeroDivisionError: division by zero' in done.stderr
    assert f'at plugin/export.py:{line} in convert_data' in done.stderr
    assert 'return 1 / 0  # the bug' in done.stderr and '--debug' in done.stderr
    assert 'Traceback' not in done.stderr and "Step '" not in done.stderr
    rows = [orjson.loads(line) for line in log.read_bytes().splitlines()]
    failure = [r for r in rows if r['type'] == 'event' and r['event'] == 'run_failed']
    assert len(failure) == 1 and rows[-1] is failure[0]  # recorded last, after the progress
    assert f'plugin/export.py:{line}' in failure[0]['data']['error']
    assert 'ZeroDivisionError' in failure[0]['data']['traceback']
    assert failure[0]['data']['exit_code'] == 1

    debug = synapse(*run, '--debug', home=synapse_home, cwd=plugin)
    assert debug.returncode == 1
    assert 'Traceback (most recent call last)' in debug.stderr
    assert f'plugin/export.py", line {line}, in convert_data' in debug.stderr
    assert debug.stderr.rstrip().splitlines()[-1].strip() == 'return 1 / 0  # the bug'


def test_every_item_failing_also_points_at_the_plugin(synapse_home, tmp_path):
    plugin = write_plugin(tmp_path / 'p', BROKEN)
    done = synapse('plugin', 'run', 'export', '--params', params(), home=synapse_home, cwd=plugin)
    assert done.returncode == 1
    assert 'Every item failed (12)' in done.stderr
    assert f'at plugin/export.py:{_bug_line(plugin)} in convert_data' in done.stderr


def test_bad_params_are_recorded_in_the_log_file(synapse_home, tmp_path):
    log = tmp_path / 'run.jsonl'
    done = synapse('export', 'coco', '--log-file', str(log), home=synapse_home)
    assert done.returncode == 2
    rows = [orjson.loads(line) for line in log.read_bytes().splitlines()]
    assert rows[-1]['event'] == 'run_failed'
    assert rows[-1]['data']['error'] == '--project: required for this target'
    assert rows[-1]['data']['exit_code'] == 2


def test_plugin_run_keeps_param_paths_but_not_class_names(synapse_home):
    done = synapse('plugin', 'run', '--plugin', 'coco', 'export', '--params',
                   '{"name": "x", "storage": 1, "target": "task", "filter": {}, "extra": 1}',
                   home=synapse_home)  # fmt: skip
    assert done.returncode == 2
    assert 'invalid params: extra: Extra inputs are not permitted' in done.stderr
    assert 'CocoExportAction' not in done.stderr


def test_explain_translates_without_running_anything():
    error = ParamsError('Invalid params for YoloExportAction', [('filter.project', 'required')])
    assert describe_params_error(error, {'filter.project': '--project'}) == '--project: required'
    assert describe_params_error(error) == 'invalid params: filter.project: required'
    many = ParamsError('x', [('extra_params.task', 'bad'), ('extra_params.seed', 'not an int')])
    text = describe_params_error(many, {'extra_params.*': '-o {key}=...', 'extra_params.task':
                                        '--task'})  # fmt: skip
    assert text == 'invalid options:\n  --task: bad\n  -o seed=...: not an int'
    # a step's failure is told in words, with the item that failed
    try:
        try:
            raise ValueError('odd value')
        except ValueError as inner:
            raise ItemExportError('ValueError: odd value', item_id=5, file='a.jpg') from inner
    except ItemExportError as item:
        step = StepError('finalize', 'x')
        step.__cause__ = item
        failure = explain(step)
    assert failure.code == 1
    assert failure.message.startswith(
        'the export failed while publishing the export: item 5 (a.jpg): ValueError: odd value'
    )
    assert 'test_errors.py' in failure.message  # this test raised it: its line is shown
    assert explain(ExportError('disk full')).message == 'disk full'
    assert explain(KeyboardInterrupt()).code == 130


def test_config_errors_exit_2():
    """ConfigError (a ParamsError: bad SYNAPSE_HOST, a 401) exits 2 with its own words, also
    when a step raised it."""
    import synapse_sdk.errors as errors

    config_error = getattr(errors, 'ConfigError', None)
    if config_error is None:  # until helper net-security adds it: the same shape

        class config_error(ParamsError):  # type: ignore[no-redef]
            pass

    error = config_error('SYNAPSE_HOST=example.org has no http:// or https:// in front')
    step = StepError('initialize', str(error))
    step.__cause__ = error
    for raised in (error, step):
        failure = explain(raised)
        assert failure.code == 2
        assert failure.message == 'SYNAPSE_HOST=example.org has no http:// or https:// in front'

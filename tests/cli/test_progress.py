"""A readable run: bars on a real terminal, a few lines when piped, a human summary at the end,
and the JSON result alone on stdout."""

from __future__ import annotations

import re

import orjson

from synapse_sdk.cli.summary import export_summary

from .helpers import params, synapse, synapse_on_terminal, write_plugin

ANSI = re.compile(r'\x1b\[[0-9;?]*[A-Za-z]')
STATUS = re.compile(r'^\[(\d+):(\d\d)\] ', re.M)
INTERNAL = ('dataset_conversion', 'stand_by', '[data_file]', '[original_file]', "Step '")

SLOW = '    def convert_data(self, data):\n        time.sleep(0.05)\n        return data\n'


def test_terminal_shows_one_bar_per_phase_with_rate_and_eta(synapse_home, tmp_path):
    code, shown, out = synapse_on_terminal(
        'export', 'coco', '--project', '1', '--output', str(tmp_path / 'out'), home=synapse_home
    )
    assert code == 0, shown
    screen = ANSI.sub('', shown)
    assert '━' in screen  # rich bars were drawn on the terminal
    for label in ('Converting items', 'Copying original files', 'Export'):
        assert label in screen
    assert re.search(r'Converting items +━+ +12/12 ', screen)
    assert re.search(r'[\d.]+ items/s', screen) and 'ETA' in screen
    assert not any(word in screen for word in INTERNAL)
    assert 'Exported 12 of 12 items' in screen and f'Output: {tmp_path / "out"}' in screen
    assert orjson.loads(out)['output_path'] == str(tmp_path / 'out')  # stdout: JSON only


def test_piped_runs_write_a_line_every_few_seconds_at_most(synapse_home, tmp_path):
    plugin = write_plugin(tmp_path / 'slow', SLOW)  # 12 items x 50 ms
    done = synapse('plugin', 'run', 'export', '--params', params(), home=synapse_home,
                   cwd=plugin, SYNAPSE_PROGRESS_INTERVAL='0.2')  # fmt: skip
    assert done.returncode == 0, done.stderr
    stamps = [int(m) * 60 + int(s) for m, s in STATUS.findall(done.stderr)]
    assert len(stamps) >= 2  # a status line while it runs, and one at the end
    lines = [line for line in done.stderr.splitlines() if STATUS.match(line)]
    assert 'Converting items' in lines[-1] and 'done' in lines[-1]
    assert not any(word in done.stderr for word in INTERNAL)
    # the default interval (5 s) on a run of about a second: one final status line, no more
    done = synapse('plugin', 'run', 'export', '--params', params(name='again'),
                   home=synapse_home, cwd=plugin)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert len(STATUS.findall(done.stderr)) == 1
    assert len(done.stderr.splitlines()) <= 10, done.stderr
    assert orjson.loads(done.stdout)['exported_count'] == 12


def test_summary_names_what_was_written_skipped_and_where(synapse_home, tmp_path):
    done = synapse('export', 'yolo', '--project', '1', '--output', str(tmp_path / 'y'),
                   home=synapse_home)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert 'Exported 12 of 12 items' in done.stderr
    report = orjson.loads((tmp_path / 'y' / 'export_report.json').read_bytes())
    written = report['annotations']['exported']
    assert f'Annotations: {written} written' in done.stderr
    top = max(report['converted_reasons'].items(), key=lambda kv: kv[1])
    assert f'{top[0]} ({top[1]})' in done.stderr  # the most frequent conversion, counted
    assert f'Report: {tmp_path / "y" / "export_report.json"}' in done.stderr
    result = orjson.loads(done.stdout)  # the JSON result alone on stdout
    assert result['output_path'] == str(tmp_path / 'y')
    quiet = synapse('export', 'yolo', '--project', '1', '--output', str(tmp_path / 'q'), '-q',
                    home=synapse_home)  # fmt: skip
    assert quiet.returncode == 0 and quiet.stderr == ''


def test_summary_renders_the_engine_result_fields():
    result = {
        'output_path': '/data/out',
        'total_count': 10,
        'exported_count': 8,
        'failed_count': 2,
        'errors': ['Item 3 (a.jpg): ValueError: bad', 'Item 7 (b.jpg): KeyError: x'],
        'skipped': {'yolo detect has no keypoints': 21, 'class x unknown': 2, 'a': 1, 'b': 1},
        'converted': {'polygon -> box (yolo detect)': 5},
        'clamped': 3,
        'failed_original_count': 1,
        'original_file_metrics': {'success': 7, 'failed': 1, 'stand_by': 0},
        'warnings': ['21 keypoint annotations skipped: yolo detect has no keypoints'],
    }
    text = '\n'.join(export_summary(result, {'annotations': {'exported': 40}}))
    assert 'Exported 8 of 10 items' in text and '2 failed' in text
    assert '40 written, 5 converted, 3 clamped to the image' in text and '25 skipped' in text
    assert 'skipped: yolo detect has no keypoints (21); class x unknown (2)' in text
    assert '(2); a (1); and 1 more reason in the report' in text
    assert 'Original files: 7 copied' in text and '1 failed' in text
    assert 'Item 3 (a.jpg): ValueError: bad' in text
    assert 'warning:[/] 21 keypoint annotations skipped' in text
    assert 'Output: /data/out' in text and 'Report: /data/out/export_report.json' in text
    assert export_summary({'anything': 1}) == []  # not an export result: no summary

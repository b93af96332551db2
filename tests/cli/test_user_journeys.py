"""What a new user met running the CLI end to end, each reproduced as that user ran it (real
processes on the seeded demo home, real files): the stderr summary of skipped annotations, the
counts an import prints, hostile image names in imports, options that would silently lose
labels or splits, and option errors that say what is allowed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from PIL import Image

SYNAPSE = [sys.executable, '-m', 'synapse_sdk.cli.main']


def synapse(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, 'SYNAPSE_HOME': str(home)}
    env.pop('SYNAPSE_HOST', None)
    return subprocess.run([*SYNAPSE, *args], env=env, capture_output=True, text=True, timeout=300)


def gt_export(home: Path, fmt: str, name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return synapse(
        'export', fmt, '--target', 'ground_truth', '--gt-version', '1', '--name', name, *args,
        home=home,
    )  # fmt: skip


def test_skipped_annotations_are_summed_up_on_stderr(synapse_home):
    """Issue 8: what a format cannot carry is surfaced in the result *and* a short stderr
    summary ("N keypoint annotations skipped: yolo detect has no keypoints")."""
    done = gt_export(synapse_home, 'yolo', 'detect')
    assert done.returncode == 0, done.stderr
    result = orjson.loads(done.stdout)
    (reason,) = [r for r in result['skipped'] if 'keypoints' in r]
    n = result['skipped'][reason]
    assert n > 0
    assert f'{n} annotations skipped: {reason}' in done.stderr
    quiet = gt_export(synapse_home, 'yolo', 'detect-quiet', '-q')
    assert quiet.returncode == 0 and 'skipped' not in quiet.stderr  # -q: nothing on stderr


@pytest.mark.parametrize('fmt', ['cvat', 'labelme', 'parquet'])
def test_import_of_our_export_prints_the_annotations_it_read(synapse_home, tmp_path, fmt):
    """``synapse data import cvat|labelme|parquet`` said "with 0 annotations" (and counted
    ``annotation``/``image`` where every other importer counts ``annotations``/``images``)."""
    done = gt_export(synapse_home, fmt, f'rt-{fmt}')
    assert done.returncode == 0, done.stderr
    exported = orjson.loads(done.stdout)
    out = Path(exported['output_path'])
    written = orjson.loads((out / 'export_report.json').read_bytes())['annotations']['exported']
    assert written > 0
    home = tmp_path / 'import-home'
    imported = synapse('data', 'import', fmt, str(out), home=home)
    assert imported.returncode == 0, imported.stderr
    read = orjson.loads(imported.stdout)['read']
    assert read['images'] == exported['exported_count']
    assert read['annotations'] == written
    assert f'with {written} annotations' in imported.stderr

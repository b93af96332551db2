"""Issue 8 bullets as a user meets them on the demo, through ``synapse export``: the demo's
keypoints in YOLO detect are counted in the result, ``--strict`` fails the run and publishes
nothing, YOLO segment keeps every mask class, and splits are keyed by data unit for every
target (an image has one split whatever record it is exported from)."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from synapse_sdk.cli.main import app
from synapse_sdk.clients import LocalClient


def _runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]
    except TypeError:  # click >= 8.2 keeps stderr apart already
        return CliRunner()


def export(fmt: str, name: str, *args: str) -> Any:
    base = ['export', fmt, '--storage', '1', '--path', 'exports', '--name', name, '-q']
    if '--target' not in args:
        base += ['--target', 'task', '--project', '1']
    return _runner().invoke(app, [*base, *args])


def tasks(home: Path) -> list[dict[str, Any]]:
    with LocalClient(home) as client:
        return list(client.get_tasks({'project': 1})[0])


def exports(home: Path) -> Path:
    return home / 'storage' / 'exports'


def test_demo_keypoints_in_yolo_detect_are_counted_in_the_result(synapse_home: Path) -> None:
    keypoints = sum(
        a['tool'] == 'keypoint' for t in tasks(synapse_home) for a in t['data']['annotations']
    )
    assert keypoints > 0
    result = export('yolo', 'detect', '--no-originals')
    assert result.exit_code == 0, result.stderr
    out = orjson.loads(result.stdout)
    assert out['skipped'] == {'yolo detect has no keypoints': keypoints}
    assert f'{keypoints} annotations skipped: yolo detect has no keypoints' in out['warnings']


def test_strict_flag_fails_the_run_and_publishes_nothing(synapse_home: Path) -> None:
    result = export('yolo', 'strict', '--no-originals', '--strict')
    assert result.exit_code == 1
    assert 'yolo detect has no keypoints' in result.stderr
    assert 'nothing was published' in result.stderr
    assert not (exports(synapse_home) / 'strict').exists()
    lossless = export('dm', 'strict-dm', '--no-originals', '--strict')  # dm carries everything
    assert lossless.exit_code == 0, lossless.stderr
    assert (exports(synapse_home) / 'strict-dm').is_dir()


def test_yolo_segment_keeps_every_class_with_a_region(synapse_home: Path) -> None:
    """The demo's sky class (masks only) vanished from YOLO segment exports."""
    classes = [c['name'] for c in LocalClient(synapse_home).get_project(1)['configuration']
               ['classes']]  # fmt: skip
    regions = {
        a['category']
        for t in tasks(synapse_home)
        for a in t['data']['annotations']
        if a['tool'] in ('polygon', 'segmentation', 'bounding_box')
    }
    assert 'sky' in regions
    result = export('yolo', 'segment', '--no-originals', '-o', 'task=segment')
    assert result.exit_code == 0, result.stderr
    found = set()
    for label in (exports(synapse_home) / 'segment' / 'labels').rglob('*.txt'):
        for line in label.read_text('utf-8').splitlines():
            found.add(classes[int(line.split()[0])])
    assert found == regions


# -- splits keyed by data unit, for every target --------------------------------------------------
def unit_splits(home: Path, name: str, records: dict[int, int]) -> dict[int, str]:
    """data unit -> split from a CSV export, each unit in exactly one split."""
    seen: dict[int, set[str]] = defaultdict(set)
    with (exports(home) / name / 'annotations.csv').open(encoding='utf-8', newline='') as fh:
        for row in csv.DictReader(fh):
            seen[records[int(row['item_id'])]].add(row['split'])
    assert all(len(s) == 1 for s in seen.values()), 'a data unit in two splits'
    return {unit: s.pop() for unit, s in seen.items()}


TARGETS = {
    'task': ['--target', 'task', '--project', '1'],
    'assignment': ['--target', 'assignment', '--project', '1', '--sample-policy', 'all'],
    'ground_truth': ['--target', 'ground_truth', '--gt-version', '1'],
}


@pytest.mark.parametrize('mode', ['sticky', 'exact'])
def test_splits_are_keyed_by_data_unit_for_every_target(synapse_home: Path, mode: str) -> None:
    """Every record of an image lands in the image's split (``unit_splits`` checks it), and in
    sticky mode an image has the same split whichever target exports it."""
    with LocalClient(synapse_home) as client:
        by_target = {
            'task': client.get_tasks({'project': 1})[0],
            'assignment': client.get_assignments({'project': 1})[0],
            'ground_truth': client.get_ground_truth_events({'ground_truth_dataset_version': 1})[0],
        }
        units = {t: {r['id']: r['data_unit']['id'] for r in rs} for t, rs in by_target.items()}
    plans = {}
    for target, args in TARGETS.items():
        name = f'{target}-{mode}'
        result = export('csv', name, *args, '--split', 'train=0.5,val=0.3,test=0.2',
                        '-o', f'split_mode={mode}', '-o', 'seed=3', '--no-originals')  # fmt: skip
        assert result.exit_code == 0, result.stderr
        plans[target] = unit_splits(synapse_home, name, units[target])
    # the assignment export has several records of some images: each image still in one split
    assert len(set(units['assignment'].values())) < len(units['assignment'])
    if mode == 'sticky':  # keyed by (seed, data unit) alone: the same split whatever the target
        for target in ('assignment', 'ground_truth'):
            shared = set(plans[target]) & set(plans['task'])
            assert shared == set(plans[target])
            assert {u: plans[target][u] for u in shared} == {u: plans['task'][u] for u in shared}

"""``make bench`` runs to the end: each of its scripts, at a size too small to measure anything,
seeds, exports in fresh processes and writes its results. A script that no longer runs (an
export parameter a format now refuses broke ``run.py`` unnoticed once) fails here, in ``make
test``, not in the hands of the next person who measures. The figures themselves are
``benchmarks/README.md``'s, never asserted in a test."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / 'benchmarks'
FORMATS = {'dm', 'coco', 'yolo', 'voc', 'csv', 'cvat', 'labelme', 'parquet'}


def bench(script: str, tmp_path: Path, *args: str) -> tuple[Any, str]:
    """Run ``benchmarks/SCRIPT`` as ``make bench`` does; its JSON results and its table."""
    out = tmp_path / 'results.json'
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *args, '--output', str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(out.read_text()), done.stdout


@pytest.mark.slow
@pytest.mark.parametrize(('density', 'per_task'), [('issue', (8, 12)), ('light', (3, 5))])
def test_run_py_exports_every_format_at_each_density(tmp_path, density, per_task):
    results, table = bench('run.py', tmp_path, '--sizes', '40,80', '--repeat', '1',
                           '--density', density)  # fmt: skip
    assert set(results['runs']) == FORMATS | {'naive-coco'}
    for fmt, sizes in results['runs'].items():
        assert {n: row['items'] for n, row in sizes.items()} == {'40': 40, '80': 80}, fmt
    low, high = per_task
    assert low <= results['seed']['80']['annotations'] / 80 <= high
    assert results['density'] == density
    assert 'Scaling, N=80 vs N=40' in table


@pytest.mark.slow
def test_peers_py_compares_ours_with_the_minimal_script(tmp_path):
    """Datumaro and globox run only with ``make bench-peers``'s venv; ours and the minimal
    scripts run everywhere."""
    results, table = bench('peers.py', tmp_path, '--sizes', '60', '--repeat', '1', '--no-import')
    (size,) = results
    assert size['tasks'] == 60 and size['annotations'] >= 8 * 60
    tools = set(size['tools'])
    assert {'ours-yolo', 'ours-coco', 'ours-voc', 'ours-csv'} <= tools
    assert {'minimal-yolo', 'minimal-csv'} <= tools
    assert 'minimal-yolo' in table


@pytest.mark.slow
@pytest.mark.xdist_group('ray')  # starts a Ray and a head of its own (see executors/test_ray.py)
def test_parallel_py_runs_every_mode(tmp_path):
    results, table = bench('parallel.py', tmp_path, '--size', '600', '--formats', 'coco',
                           '--repeat', '1')  # fmt: skip
    runs = results['runs']['coco']
    assert set(runs) == {'one process', 'workers 2', 'ray 2', 'ray 2 cluster'}
    assert all(row['items'] == 600 for row in runs.values())
    assert results['annotations'] >= 8 * 600
    assert set(results['ray_floor']) == {'ray 2', 'ray 2 cluster'}
    assert '1.6x means done in' in table

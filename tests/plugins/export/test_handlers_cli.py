"""What an export selects, as a user runs it: ``synapse export ...`` on the 50-image demo,
locally (LocalClient) and over HTTP (BackendClient on the embedded server), exit codes checked.

- typos in filter values, ``--split category`` without categories and empty selections are
  refused with exit 2 before anything is created;
- one sample per data unit (``sample_policy``), and no image in two splits;
- exact, seeded split counts (largest remainder), stratified and sticky modes.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from typer.testing import CliRunner

from synapse_sdk.cli.main import app
from synapse_sdk.clients import LocalClient
from synapse_sdk.formats.split import exact_counts
from synapse_sdk.server.app import serve_in_thread
from synapse_sdk.server.store import Store

SYNAPSE = [sys.executable, '-m', 'synapse_sdk.cli.main']


def _runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]
    except TypeError:  # click >= 8.2 keeps stderr apart already
        return CliRunner()


@pytest.fixture(scope='module')
def demo50(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``synapse demo --images 50``, run once as a user would, as a template home."""
    home = tmp_path_factory.mktemp('demo50') / 'home'
    env = {**os.environ, 'SYNAPSE_HOME': str(home)}
    env.pop('SYNAPSE_HOST', None)
    done = subprocess.run(
        [*SYNAPSE, 'demo', '--images', '50'], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return home


@pytest.fixture
def home(demo50: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the 50-image demo; ``SYNAPSE_HOME`` points at it."""
    copy = tmp_path / 'home'
    shutil.copytree(demo50, copy)
    with Store(copy) as store:
        store.update_storage(1, configuration={'location': str(copy / 'storage')})
    monkeypatch.setenv('SYNAPSE_HOME', str(copy))
    for var in ('SYNAPSE_HOST', 'SYNAPSE_ACCESS_TOKEN', 'SYNAPSE_TENANT'):
        monkeypatch.delenv(var, raising=False)
    return copy


@pytest.fixture(params=['local', 'http'])
def via(
    request: pytest.FixtureRequest, home: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """Each test runs once with LocalClient and once with BackendClient over real HTTP."""
    if request.param == 'local':
        yield 'local'
        return
    with serve_in_thread(home) as url:
        monkeypatch.setenv('SYNAPSE_HOST', url)
        yield 'http'


def export(*args: str) -> Any:
    """``synapse export ARGS -q``; returns the click result (exit_code, stdout, stderr)."""
    return _runner().invoke(app, ['export', *args, '-q'])


def exports_dir(home: Path) -> Path:
    return home / 'storage' / 'exports'


def refused(result: Any, home: Path, *needles: str) -> str:
    """Exit 2, one message naming every needle, and nothing created in the storage."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    message = result.stderr
    for needle in needles:
        assert needle in message, message
    assert not exports_dir(home).exists() or not any(exports_dir(home).iterdir())
    return message


# -- typos refused before anything runs -------------------------------------------------------
TYPOS = [
    # (target args, filter, what the message must name)
    (['--target', 'assignment', '--project', '1'], 'status=approvd',
     ["'approvd'", "did you mean 'approved'", 'in_progress, submitted, approved, rejected']),
    (['--target', 'task', '--project', '1'], 'status=complete',
     ["'complete'", "did you mean 'completed'", 'pending, in_progress, completed']),
    (['--target', 'task', '--project', '1'], 'assignment_status=submitted,aproved',
     ["'aproved'", '--filter assignment_status']),
]  # fmt: skip


@pytest.mark.parametrize(('target', 'flt', 'needles'), TYPOS)
def test_filter_value_typos_exit_2_naming_value_and_allowed(
    via: str, home: Path, target: list[str], flt: str, needles: list[str]
) -> None:
    result = export('coco', *target, '--name', 'typo', '--filter', flt)
    refused(result, home, '--filter', *needles)


def test_the_server_refuses_a_status_typo_itself(home: Path) -> None:
    """The list API refuses it too (a client that does not check first still cannot widen or
    empty an export), with the value and the allowed ones in the 400 answer."""
    import httpx

    with serve_in_thread(home) as url:
        answer = httpx.get(f'{url}sdk/assignments/', params={'project': 1, 'status': 'approvd'})
    assert answer.status_code == 400
    assert "'approvd'" in answer.json()['detail'] and 'approved' in answer.json()['detail']


@pytest.mark.parametrize('target', ['assignment', 'task'])
def test_split_category_without_categories_exits_2_at_initialize(
    via: str, home: Path, target: str
) -> None:
    result = export(
        'yolo', '--target', target, '--project', '1', '--name', 'c', '--split', 'category'
    )
    message = refused(result, home, '--split', '"category"', 'ground_truth')
    assert 'Every item failed' not in message


def test_split_category_on_ground_truth_uses_the_categories(via: str, home: Path) -> None:
    result = export('csv', '--target', 'ground_truth', '--gt-version', '1', '--name', 'gt',
                    '--split', 'category', '--no-originals')  # fmt: skip
    assert result.exit_code == 0, result.stderr
    with LocalClient(home) as client:
        events = list(client.get_ground_truth_events({'ground_truth_dataset_version': 1})[0])
    expected = {e['id']: e['category'] for e in events}
    assert item_splits(exports_dir(home) / 'gt') == expected


EMPTY = [
    (['--target', 'task', '--project', '1'], 'tags=nigth', 'no task matches'),
    (['--target', 'assignment', '--project', '1'], 'user=99', 'no assignment matches'),
    (['--target', 'ground_truth', '--gt-version', '1'], 'category=valdation',
     'no ground-truth event matches'),
]  # fmt: skip


@pytest.mark.parametrize(('target', 'flt', 'needle'), EMPTY)
def test_empty_selection_exits_2_naming_the_filter(
    via: str, home: Path, target: list[str], flt: str, needle: str
) -> None:
    result = export('coco', *target, '--name', 'empty', '--filter', flt)
    key, _, value = flt.partition('=')
    refused(result, home, needle, f'"{key}":', value, 'allow_empty')


def test_allow_empty_publishes_an_empty_dataset(via: str, home: Path) -> None:
    result = export('coco', '--project', '1', '--name', 'empty', '--filter', 'tags=nigth',
                    '--allow-empty')  # fmt: skip
    assert result.exit_code == 0, result.stderr
    out = orjson.loads(result.stdout)
    assert out['exported_count'] == 0 and out['success'] is True
    assert (exports_dir(home) / 'empty').is_dir()


# -- one sample per image, no leakage ---------------------------------------------------------
def item_splits(out: Path) -> dict[int, str]:
    """item id -> split, from a CSV export (one row per annotation, or one for an empty item)."""
    splits: dict[int, set[str]] = defaultdict(set)
    with (out / 'annotations.csv').open(encoding='utf-8', newline='') as fh:
        for row in csv.DictReader(fh):
            splits[int(row['item_id'])].add(row['split'])
    assert all(len(s) == 1 for s in splits.values())
    return {item: s.pop() for item, s in splits.items()}


def assignments(home: Path) -> list[dict[str, Any]]:
    with LocalClient(home) as client:
        return list(client.get_assignments({'project': 1})[0])


def reannotated(records: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    by_unit: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        by_unit[record['data_unit']['id']].append(record)
    return {unit: recs for unit, recs in by_unit.items() if len(recs) > 1}


def rank_latest_approved(r: dict[str, Any]) -> tuple[Any, ...]:
    return (r['status'] == 'approved', r['status'] != 'rejected', r['created'], r['id'])


def test_demo_reannotated_images_are_one_sample_in_one_split(via: str, home: Path) -> None:
    records = assignments(home)
    twice = reannotated(records)
    assert len(twice) >= 5, 'the demo should have re-annotated images'
    result = export('csv', '--target', 'assignment', '--project', '1', '--name', 'a',
                    '--split', 'train=0.8,val=0.2', '--no-originals')  # fmt: skip
    assert result.exit_code == 0, result.stderr
    splits = item_splits(exports_dir(home) / 'a')
    units = {r['id']: r['data_unit']['id'] for r in records}
    exported_units = Counter(units[item] for item in splits)
    assert len(exported_units) == len({r['data_unit']['id'] for r in records})
    assert max(exported_units.values()) == 1, 'a data unit was exported twice'
    for unit, recs in twice.items():
        # latest_approved: the approved one if any, else the latest not rejected
        ranked = sorted(recs, key=rank_latest_approved)
        chosen = [r['id'] for r in recs if r['id'] in splits]
        assert chosen == [ranked[-1]['id']], unit
    summary = orjson.loads(result.stdout)['selection']
    assert summary['records'] == len(records)
    assert summary['samples'] == len(exported_units)
    assert summary['superseded_records'] == len(records) - len(exported_units)


def test_yolo_writes_each_reannotated_image_once(via: str, home: Path) -> None:
    records = assignments(home)
    names = {recs[0]['data_unit']['name'] for recs in reannotated(records).values()}
    result = export('yolo', '--target', 'assignment', '--project', '1', '--name', 'y',
                    '--split', 'train=0.8,val=0.2')  # fmt: skip
    assert result.exit_code == 0, result.stderr
    images = [p for p in (exports_dir(home) / 'y' / 'images').rglob('*') if p.is_file()]
    stems = Counter(p.stem for p in images)
    for name in names:
        stem = Path(name).stem
        assert stems[stem] == 1, (name, sorted(p.relative_to(exports_dir(home)) for p in images
                                               if p.stem.startswith(stem)))  # fmt: skip
        assert not any(s.startswith(f'{stem}_') for s in stems), stem


def test_sample_policy_all_keeps_every_assignment_in_one_split_and_says_so(
    via: str, home: Path
) -> None:
    records = assignments(home)
    twice = reannotated(records)
    result = export('csv', '--target', 'assignment', '--project', '1', '--name', 'all',
                    '--split', 'train=0.5,val=0.5', '--sample-policy', 'all',
                    '--no-originals')  # fmt: skip
    assert result.exit_code == 0, result.stderr
    splits = item_splits(exports_dir(home) / 'all')
    assert set(splits) == {r['id'] for r in records}
    for recs in twice.values():
        assert len({splits[r['id']] for r in recs}) == 1, 'one image in two splits'
    out = orjson.loads(result.stdout)
    assert any('sample_policy all' in w and f'{len(twice)} data unit' in w for w in out['warnings'])
    report = orjson.loads((exports_dir(home) / 'all' / 'export_report.json').read_bytes())
    assert report['selection']['warnings'] == out['warnings']


def test_sample_policy_latest_ignores_review_status(via: str, home: Path) -> None:
    records = assignments(home)
    with Store(home) as store:  # make an earlier assignment approved and a later one rejected
        recs = sorted(next(iter(reannotated(records).values())), key=lambda r: r['created'])
        first, last = recs[0], recs[-1]
        store.conn.execute("UPDATE assignments SET status = 'approved' WHERE id = ?", [first['id']])
        store.conn.execute("UPDATE assignments SET status = 'rejected' WHERE id = ?", [last['id']])
    for policy, winner in (('latest', last), ('latest_approved', first)):
        result = export('csv', '--target', 'assignment', '--project', '1', '--name', policy,
                        '--sample-policy', policy, '--no-originals')  # fmt: skip
        assert result.exit_code == 0, result.stderr
        chosen = set(item_splits(exports_dir(home) / policy)) & {r['id'] for r in recs}
        assert chosen == {winner['id']}, policy


# -- exact, reproducible splits ---------------------------------------------------------------
def yolo_split_counts(out: Path) -> dict[str, int]:
    data = yaml.safe_load((out / 'data.yaml').read_text(encoding='utf-8'))
    counts = {}
    for split in ('train', 'val', 'test'):
        folder = out / 'images' / split
        if folder.is_dir():
            counts[split] = sum(1 for p in folder.iterdir() if p.is_file())
    assert data
    return counts


@pytest.mark.parametrize(
    ('split', 'expected'),
    [
        ('train=0.8,val=0.2', {'train': 40, 'val': 10}),
        ('train=0.7,val=0.2,test=0.1', {'train': 35, 'val': 10, 'test': 5}),
        ('train=0.85,val=0.15', {'train': 43, 'val': 7}),  # 42.5/7.5: remainder tie to train
    ],
)
def test_ratios_give_exact_counts_on_50_images(
    via: str, home: Path, split: str, expected: dict[str, int]
) -> None:
    result = export('yolo', '--project', '1', '--name', 'exact', '--split', split)
    assert result.exit_code == 0, result.stderr
    assert yolo_split_counts(exports_dir(home) / 'exact') == expected
    out = orjson.loads(result.stdout)
    assert out['selection']['split_data_units'] == expected


def test_splits_are_seeded_and_reproducible(home: Path) -> None:
    runs = {}
    for name, seed in (('s0', 0), ('s0again', 0), ('s7', 7)):
        result = export('csv', '--project', '1', '--name', name, '--split', 'train=0.8,val=0.2',
                        '-o', f'seed={seed}', '--no-originals')  # fmt: skip
        assert result.exit_code == 0, result.stderr
        runs[name] = item_splits(exports_dir(home) / name)
    assert runs['s0'] == runs['s0again']
    assert runs['s0'] != runs['s7']
    assert Counter(runs['s7'].values()) == Counter(runs['s0'].values()) == {'train': 40, 'val': 10}


def test_stratified_spreads_each_dominant_class_over_the_splits(home: Path) -> None:
    result = export('csv', '--project', '1', '--name', 'strat', '--split', 'train=0.5,val=0.5',
                    '-o', 'split_mode=stratified', '--no-originals')  # fmt: skip
    assert result.exit_code == 0, result.stderr
    splits = item_splits(exports_dir(home) / 'strat')
    assert Counter(splits.values()) == {'train': 25, 'val': 25}
    with LocalClient(home) as client:
        tasks = list(client.get_tasks({'project': 1})[0])
        order = [c['name'] for c in client.get_project(1)['configuration']['classes']]
    per_class: dict[str | None, Counter[str]] = defaultdict(Counter)
    for task in tasks:
        counts = Counter(a['category'] for a in task['data']['annotations'])
        dominant = min(counts, key=lambda c: (-counts[c], order.index(c))) if counts else None
        per_class[dominant][splits[task['id']]] += 1
    assert len(per_class) >= 2
    for cls, tally in per_class.items():
        assert abs(tally['train'] - tally['val']) <= 1, (cls, tally)


def test_sticky_keeps_each_image_in_its_split_as_the_dataset_grows(home: Path) -> None:
    args = ['--split', 'train=0.8,val=0.2', '-o', 'split_mode=sticky', '--no-originals']
    first = export('csv', '--project', '1', '--name', 'before', *args)
    assert first.exit_code == 0, first.stderr
    before = item_splits(exports_dir(home) / 'before')
    with Store(home) as store:  # ten more tasks on ten new images
        for i in range(10):
            unit = store.add_data_unit(1, f'new {i}.jpg', 32, 32, {})
            empty = {'annotations': [], 'classifications': {}}
            row = {'project': 1, 'data_unit': unit, 'status': 'completed', 'data': empty}
            store.insert('tasks', row)
    second = export('csv', '--project', '1', '--name', 'after', *args)
    assert second.exit_code == 0, second.stderr
    after = item_splits(exports_dir(home) / 'after')
    assert len(after) == len(before) + 10
    assert {item: after[item] for item in before} == before


def test_bad_split_mode_exits_2(home: Path) -> None:
    result = export('csv', '--project', '1', '--name', 'x', '--split', 'train=1',
                    '-o', 'split_mode=stratifed')  # fmt: skip
    refused(result, home, '-o split_mode', 'stratified', 'sticky')


def test_split_counts_match_largest_remainder_for_every_size() -> None:
    """The CLI tests above pin a few sizes; the rule itself holds for every size."""
    for n in range(0, 120):
        counts = exact_counts(n, [0.7, 0.2, 0.1])
        assert sum(counts) == n
        assert all(abs(c - q) < 1 for c, q in zip(counts, (0.7 * n, 0.2 * n, 0.1 * n), strict=True))

"""Export throughput and peak memory, per format and dataset size (``make bench``).

The parent process seeds one synthetic project per size into a temporary ``SYNAPSE_HOME``, then
runs every measurement in a fresh subprocess (``--child``) so each peak RSS belongs to exactly
one export. See ``benchmarks/README.md`` for what the numbers mean.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / 'src'))

FORMATS = ('dm', 'coco', 'yolo', 'voc', 'csv', 'cvat', 'labelme', 'parquet')
BASELINE = 'naive-coco'
DEFAULT_SIZES = (2_000, 20_000)
QUICK_SIZES = (1_000, 5_000)
SPLIT = 'train=0.8,val=0.2'
#: Formats without splits, exported without ``split``.
UNSPLIT = frozenset({'dm'})
#: Objects per seeded image, as (cars, people) ranges beside one road polygon. ``issue`` is the
#: density of the sets the issues measure on (issue 10: 20,000 images with 198,000 annotations,
#: 100,000 with 991,000; about 10 per image); ``light`` is the ~4 per image that the runs
#: before 2026-11-29 used (their figures in README.md are on it).
DENSITIES = {'issue': ((3, 8), (2, 5)), 'light': ((1, 3), (0, 2))}
DEFAULT_DENSITY = 'issue'


# -- seeding ---------------------------------------------------------------------------------


def _annotations(
    rng: random.Random, w: int, h: int, density: str = DEFAULT_DENSITY
) -> list[dict[str, Any]]:
    """A road polygon, cars and people (:data:`DENSITIES`): the record shape of
    ``server.demo``."""
    cars, people = DENSITIES[density]
    anns: list[dict[str, Any]] = []
    horizon = int(h * rng.uniform(0.25, 0.4))
    left, right = horizon + rng.randint(5, 20), horizon + rng.randint(5, 20)
    top = min(left, right)
    anns.append({
        'category': 'road', 'tool': 'polygon',
        'points': [[0.0, float(left)], [float(w), float(right)], [float(w), float(h)],
                   [0.0, float(h)]],
        'bbox': [0.0, float(top), float(w), float(h - top)],
        'area': round(w * (h - (left + right) / 2), 2),
    })  # fmt: skip
    for _ in range(rng.randint(*cars)):
        bw, bh = rng.uniform(w * 0.12, w * 0.3), rng.uniform(h * 0.08, h * 0.2)
        x, y = rng.uniform(bw * 0.3, w - bw * 1.3), rng.uniform(horizon, h - bh * 1.2)
        anns.append({
            'category': 'car', 'tool': 'bounding_box',
            'bbox': [round(x, 2), round(y, 2), round(bw, 2), round(bh, 2)],
            'area': round(bw * bh, 2), 'rotation': 0.0,
            'attributes': {'occluded': rng.random() < 0.3},
        })  # fmt: skip
    for _ in range(rng.randint(*people)):
        bw, bh = rng.uniform(8, w * 0.08), rng.uniform(h * 0.15, h * 0.3)
        x, y = rng.uniform(0, w - bw), rng.uniform(horizon * 0.8, h - bh)
        anns.append({
            'category': 'person', 'tool': 'bounding_box',
            'bbox': [round(x, 2), round(y, 2), round(bw, 2), round(bh, 2)],
            'area': round(bw * bh, 2), 'rotation': 0.0,
        })  # fmt: skip
    for n, ann in enumerate(anns, 1):
        ann['id'] = f'a{n}'
        ann.setdefault('attributes', {})
        ann['media'] = 'image_1'
    return anns


def seed(home: Path, n: int, density: str = DEFAULT_DENSITY) -> dict[str, Any]:
    """A demo-configured project with ``n`` tasks (no image files) and a file_system storage."""
    from synapse_sdk.server.demo import DEMO_CONFIGURATION
    from synapse_sdk.server.store import Store

    started = time.perf_counter()
    n_annotations = 0
    with Store(home) as store:
        location = home / 'storage'
        location.mkdir(parents=True, exist_ok=True)
        storage = store.create_storage('bench', 'file_system', {'location': str(location)})
        with store.transaction() as conn:
            project = store.insert(
                'projects', {'title': f'bench {n}', 'configuration': DEMO_CONFIGURATION}, conn
            )
            for i in range(n):
                rng = random.Random(i)
                w, h = rng.randrange(640, 1921, 16), rng.randrange(480, 1081, 8)
                name = f'frame_{i:06d}.jpg'
                files = {'image_1': {'path': None, 'file_name_original': name, 'is_primary': True}}
                unit = store.add_data_unit(project, name, w, h, files, conn)
                anns = _annotations(rng, w, h, density)
                n_annotations += len(anns)
                doc = {'annotations': anns, 'classifications': {'weather': rng.choice(
                    ['sunny', 'rain', 'night'])}}  # fmt: skip
                store.insert(
                    'tasks',
                    {'project': project, 'data_unit': unit, 'status': 'completed',
                     'tags': [], 'data': doc},
                    conn,
                )  # fmt: skip
    return {
        'project': project,
        'storage': int(storage['id']),
        'tasks': n,
        'annotations': n_annotations,
        'seconds': time.perf_counter() - started,
    }


# -- the measured exports (run in a child process) ---------------------------------------------


def _maxrss_mib() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == 'darwin' else rss / 1024  # bytes vs KiB


def export_sdk(home: Path, fmt: str, project: int, storage: int, name: str) -> int:
    """The real built-in exporter, exactly as a plugin run dispatches it."""
    from synapse_sdk.clients.local import LocalClient
    from synapse_sdk.loggers import NullLogger
    from synapse_sdk.plugins.builtin import formats
    from synapse_sdk.plugins.context import RuntimeContext

    action = getattr(formats, f'{fmt.capitalize()}ExportAction')
    params = {
        'name': name,
        'storage': storage,
        'path': 'bench',
        'target': 'task',
        'filter': {'project': project},
        'save_original_file': False,
        # dm writes every item to json/ and refuses a split (exit 2); every other format splits
        'extra_params': {} if fmt in UNSPLIT else {'split': SPLIT},
    }
    client = LocalClient(home)
    try:
        result = action.dispatch(params, RuntimeContext(logger=NullLogger(), client=client))
    finally:
        client.close()
    return int(result['exported_count'])


def export_naive(home: Path, project: int, storage: int, name: str) -> int:
    """The spec's "Example: COCO Format Exporter": one in-memory dict, one ``json.dump``."""
    from synapse_sdk.clients.local import LocalClient

    client = LocalClient(home)
    try:
        location = Path(client.get_storage(storage)['configuration']['location'])
        results, _total = client.get_tasks({'project': project})
        coco: dict[str, Any] = {
            'info': {'description': 'Exported from Synapse'},
            'images': [],
            'annotations': [],
            'categories': [],
        }
        annotation_id = 0
        category_map: dict[str, int] = {}
        for task in results:
            data_unit = task.get('data_unit', {})
            image_id = data_unit.get('id')
            coco['images'].append({
                'id': image_id,
                'file_name': data_unit.get('name', ''),
                'width': data_unit.get('width', 0),
                'height': data_unit.get('height', 0),
            })  # fmt: skip
            for ann in task.get('data', {}).get('annotations', []):
                category = ann.get('category', 'default')
                if category not in category_map:
                    category_map[category] = len(category_map)
                    coco['categories'].append({'id': category_map[category], 'name': category})
                coco['annotations'].append({
                    'id': annotation_id, 'image_id': image_id,
                    'category_id': category_map[category], 'bbox': ann.get('bbox', []),
                    'area': ann.get('area', 0), 'iscrowd': 0,
                })  # fmt: skip
                annotation_id += 1
        out = location / 'bench' / name
        out.mkdir(parents=True, exist_ok=True)
        with open(out / 'annotations.json', 'w', encoding='utf-8') as fh:
            json.dump(coco, fh)
        return len(coco['images'])
    finally:
        client.close()


def _vm_hwm_mib() -> float | None:
    """Linux's own high-water mark of this process image (cross-check of ``ru_maxrss``)."""
    try:
        with open('/proc/self/status', encoding='ascii') as fh:
            for line in fh:
                if line.startswith('VmHWM:'):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def child(args: argparse.Namespace) -> None:
    home = Path(args.home)
    os.environ['SYNAPSE_HOME'] = str(home)
    if args.seed_tasks:
        print(json.dumps(seed(home, args.seed_tasks, args.density)))
        return
    # Import everything the export will use first (the format's writer and its geometry code
    # included), so the peak before the export is the interpreter + SDK baseline and the growth
    # after it is what the data costs.
    import synapse_sdk.clients.local
    import synapse_sdk.plugins.builtin.formats  # noqa: F401
    from synapse_sdk.formats import get_writer

    for name in ('dm', 'coco' if args.format == BASELINE else args.format):
        get_writer(name)
    if args.format == 'parquet':
        import pyarrow.parquet  # noqa: F401 - the writer imports it when it starts
    base = _maxrss_mib()
    started = time.perf_counter()
    if args.format == BASELINE:
        count = export_naive(home, args.project, args.storage, args.name)
    else:
        count = export_sdk(home, args.format, args.project, args.storage, args.name)
    seconds = time.perf_counter() - started
    out = {
        'items': count,
        'seconds': seconds,
        'base_rss_mib': base,
        'peak_rss_mib': _maxrss_mib(),
        'vm_hwm_mib': _vm_hwm_mib(),
    }
    print(json.dumps(out))


# -- the parent: seed, measure, report ---------------------------------------------------------


def add_density_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        '--density', choices=sorted(DENSITIES), default=DEFAULT_DENSITY,
        help='objects per seeded image: issue (~10, the issues\' sets; default) or light (~4)',
    )  # fmt: skip


def _run_child(home: Path, what: str, *args: str) -> dict[str, Any]:
    """Run ``--child`` in a fresh interpreter; its last stdout line is a JSON object.

    The parent never imports the SDK and never holds the data: on Linux a child's ``ru_maxrss``
    starts from the RSS of the process that forked it, so a fat parent would inflate every peak.
    """
    cmd = [sys.executable, __file__, '--child', '--home', str(home), *args]
    env = {**os.environ, 'SYNAPSE_HOME': str(home)}
    if hasattr(os, 'sync'):
        os.sync()  # the previous run's dirty pages are flushed outside this run's clock
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise SystemExit(f'{what} failed:\n{proc.stderr}')
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def measure(home: Path, fmt: str, seeded: dict[str, Any], repeat: int) -> dict[str, Any]:
    """``repeat`` runs in fresh processes: the median time, the highest peak RSS."""
    runs = []
    for i in range(repeat):
        name = f'{fmt}-{seeded["tasks"]}-{i}'
        row = _run_child(
            home, f'{fmt} export of {seeded["tasks"]} tasks', '--format', fmt,
            '--project', str(seeded['project']), '--storage', str(seeded['storage']),
            '--name', name,
        )  # fmt: skip
        if row['items'] != seeded['tasks']:
            raise SystemExit(f'{fmt}: exported {row["items"]} of {seeded["tasks"]} tasks')
        out = home / 'storage' / 'bench' / name
        row['output_mib'] = _tree_size(out) / (1024 * 1024)
        shutil.rmtree(out, ignore_errors=True)
        runs.append(row)
    result = max(runs, key=lambda r: r['peak_rss_mib'])
    result = {**result, 'seconds': statistics.median(r['seconds'] for r in runs)}
    result['all_seconds'] = [round(r['seconds'], 3) for r in runs]
    result['items_per_s'] = result['items'] / result['seconds'] if result['seconds'] else 0.0
    result['us_per_item'] = result['seconds'] / result['items'] * 1e6 if result['items'] else 0.0
    return result


def _tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob('*') if p.is_file())


def _per_item(small: dict[str, Any], large: dict[str, Any]) -> float | None:
    """Marginal peak RSS per additional item, in bytes: ~0 when memory is flat."""
    extra = large['items'] - small['items']
    if extra <= 0:
        return None
    return round((large['peak_rss_mib'] - small['peak_rss_mib']) * 1024 * 1024 / extra, 1)


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


def _fmt(value: float | None, spec: str) -> str:
    return '-' if value is None else format(value, spec)


def report(results: dict[str, Any], sizes: list[int], formats: list[str]) -> str:
    lines = []
    header = (
        f'{"format":<11}{"N":>8}{"seconds":>9}{"items/s":>10}{"us/item":>9}'
        f'{"base MiB":>10}{"peak MiB":>10}{"out MiB":>9}'
    )
    lines += [header, '-' * len(header)]
    for fmt in formats:
        for n in sizes:
            r = results['runs'][fmt][str(n)]
            lines.append(
                f'{fmt:<11}{n:>8}{r["seconds"]:>9.2f}{r["items_per_s"]:>10.0f}'
                f'{r["us_per_item"]:>9.0f}{r["base_rss_mib"]:>10.1f}{r["peak_rss_mib"]:>10.1f}'
                f'{r["output_mib"]:>9.1f}'
            )
    if len(sizes) > 1:
        small, large = sizes[0], sizes[-1]
        lines += ['', f'Scaling, N={large} vs N={small} ({large / small:g}x the data):']
        header = (
            f'{"format":<11}{"peak RSS x":>11}{"RSS growth x":>13}{"time/item x":>12}'
            f'{"B/extra item":>13}'
        )
        lines += [header, '-' * len(header)]
        for fmt in formats:
            s = results['scaling'][fmt]
            lines.append(
                f'{fmt:<11}{_fmt(s["peak_rss_ratio"], ".2f"):>11}'
                f'{_fmt(s["rss_growth_ratio"], ".2f"):>13}'
                f'{_fmt(s["time_per_item_ratio"], ".2f"):>12}'
                f'{_fmt(s["bytes_per_extra_item"], ".0f"):>13}'
            )
    if results.get('vs_baseline'):
        lines += ['', 'SDK COCO writer / naive in-memory COCO (lower is better):']
        header = f'{"N":>8}{"time x":>9}{"peak RSS x":>12}{"RSS growth x":>14}'
        lines += [header, '-' * len(header)]
        for n in sizes:
            v = results['vs_baseline'][str(n)]
            lines.append(
                f'{n:>8}{_fmt(v["time_ratio"], ".2f"):>9}{_fmt(v["peak_rss_ratio"], ".2f"):>12}'
                f'{_fmt(v["rss_growth_ratio"], ".2f"):>14}'
            )
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sizes', help='comma-separated task counts (default 2000,20000)')
    parser.add_argument('--formats', help=f'comma-separated subset of {",".join(FORMATS)}')
    parser.add_argument('--quick', action='store_true', help=f'small run: sizes {QUICK_SIZES}')
    parser.add_argument(
        '--repeat', type=int, help='runs per measurement: median time (default 3, quick 1)'
    )
    parser.add_argument('--no-baseline', action='store_true', help='skip the naive COCO run')
    add_density_flag(parser)
    parser.add_argument('--output', default=str(ROOT / '.bench' / 'results.json'))
    parser.add_argument('--keep', action='store_true', help='keep the temporary SYNAPSE_HOMEs')
    # Internal: one measurement in a fresh process.
    parser.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
    for flag in ('--home', '--format', '--name'):
        parser.add_argument(flag, help=argparse.SUPPRESS)
    for flag in ('--project', '--storage', '--seed-tasks'):
        parser.add_argument(flag, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return

    if args.sizes:
        sizes = sorted(int(s.replace('_', '')) for s in args.sizes.split(',') if s.strip())
    else:
        sizes = list(QUICK_SIZES if args.quick else DEFAULT_SIZES)
    formats = [f.strip() for f in args.formats.split(',')] if args.formats else list(FORMATS)
    args.repeat = args.repeat or (1 if args.quick else 3)
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not sizes or min(sizes) < 1:
        parser.error(f'unknown formats {unknown}' if unknown else 'sizes must be positive')
    runs_formats = formats + ([] if args.no_baseline or 'coco' not in formats else [BASELINE])

    results: dict[str, Any] = {
        'python': sys.version.split()[0],
        'platform': sys.platform,
        'cpus': os.cpu_count(),
        'split': SPLIT,
        'density': args.density,
        'repeat': args.repeat,
        'sizes': sizes,
        'seed': {},
        'runs': {fmt: {} for fmt in runs_formats},
    }
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix='synapse-bench-'))
    try:
        for n in sizes:
            home = tmp / f'home-{n}'
            seeded = _run_child(
                home, f'seeding {n} tasks', '--seed-tasks', str(n), '--density', args.density
            )
            results['seed'][str(n)] = seeded
            print(
                f'seeded {n} tasks ({seeded["annotations"]} annotations) '
                f'in {seeded["seconds"]:.1f}s',
                file=sys.stderr,
            )
            for fmt in runs_formats:
                row = measure(home, fmt, seeded, args.repeat)
                results['runs'][fmt][str(n)] = row
                print(
                    f'  {fmt:<11} {row["seconds"]:7.2f}s  {row["peak_rss_mib"]:7.1f} MiB',
                    file=sys.stderr,
                )
    finally:
        if args.keep:
            print(f'kept {tmp}', file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    small, large = str(sizes[0]), str(sizes[-1])
    results['scaling'] = {}
    for fmt in runs_formats:
        a, b = results['runs'][fmt][small], results['runs'][fmt][large]
        results['scaling'][fmt] = {
            'peak_rss_ratio': _ratio(b['peak_rss_mib'], a['peak_rss_mib']),
            'rss_growth_ratio': _ratio(
                b['peak_rss_mib'] - b['base_rss_mib'], a['peak_rss_mib'] - a['base_rss_mib']
            ),
            'time_per_item_ratio': _ratio(b['us_per_item'], a['us_per_item']),
            'bytes_per_extra_item': _per_item(a, b),
        }
    if BASELINE in runs_formats:
        results['vs_baseline'] = {}
        for key in map(str, sizes):
            ours, naive = results['runs']['coco'][key], results['runs'][BASELINE][key]
            results['vs_baseline'][key] = {
                'time_ratio': _ratio(ours['seconds'], naive['seconds']),
                'peak_rss_ratio': _ratio(ours['peak_rss_mib'], naive['peak_rss_mib']),
                'rss_growth_ratio': _ratio(
                    ours['peak_rss_mib'] - ours['base_rss_mib'],
                    naive['peak_rss_mib'] - naive['base_rss_mib'],
                ),
            }
    results['total_seconds'] = round(time.perf_counter() - started, 1)

    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + '\n', encoding='utf-8')
    print(report(results, sizes, runs_formats))
    print(f'\ntotal {results["total_seconds"]}s; results in {output}')


if __name__ == '__main__':
    main()

"""Ours against peers on the same data: a minimal script, Datumaro (stream mode) and globox.

``make bench-peers`` builds ``.bench/peers-venv`` with Datumaro and globox (kept apart from the
project's ``.venv`` so their pins never touch ours); ``make bench`` then runs this script when
that venv exists. For each size N it:

1. seeds a temporary ``SYNAPSE_HOME`` with N tasks (``benchmarks/run.py``'s generator);
2. exports them once with our COCO writer: that one COCO file is every peer's input;
3. times, in fresh processes, alternating tools, ``--repeat`` rounds (median wall time, highest
   peak RSS), on tmpfs (``/dev/shm``) when there is one:

   - ours: ``yolo``, ``coco``, ``voc``, ``csv`` exports from the store (no originals);
   - ``minimal``: orjson reads the COCO file and writes YOLO label files (or one CSV);
   - Datumaro stream: COCO -> YOLO, COCO -> COCO, COCO -> VOC;
   - globox: COCO -> YOLO;
   - imports: ``synapse data import coco`` against Datumaro's (non-stream) import of the file.

Every figure is printed as a ratio to ours (peer time / our time: above 1 means we are faster).
Wall time here includes interpreter start and imports for every tool alike, from compiled
bytecode (our sources are compiled first, as a pip install would).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from run import add_density_flag  # benchmarks/run.py, beside this script

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / 'benchmarks' / 'run.py'
PEERS_VENV = ROOT / '.bench' / 'peers-venv'
OUR_PYTHON = ROOT / '.venv' / 'bin' / 'python'

# (label, tool, task): task names what is produced.
OURS = {'yolo': 'ours-yolo', 'coco': 'ours-coco', 'voc': 'ours-voc', 'csv': 'ours-csv'}
TARGETS = {
    'yolo': 'within 1.5x minimal; >= 2x faster than min(datumaro, globox)',
    'csv': 'within 1.5x minimal',
    'coco': '>= 3x faster than datumaro coco->coco',
    'voc': '>= 5x faster than datumaro coco->voc',
}

# -- the tools, each run as `python peers.py --tool NAME --src COCO --out DIR` ---------------


def tool_minimal(src: Path, out: Path, task: str) -> int:
    """What a person writes in ten minutes: orjson in, label files (or one CSV) out."""
    import orjson

    coco = orjson.loads(src.read_bytes())
    images = {img['id']: img for img in coco['images']}
    cats = {c['id']: i for i, c in enumerate(sorted(coco['categories'], key=lambda c: c['id']))}
    by_image: dict[int, list[dict[str, Any]]] = {}
    for ann in coco['annotations']:
        by_image.setdefault(ann['image_id'], []).append(ann)
    out.mkdir(parents=True, exist_ok=True)
    if task == 'csv':
        with open(out / 'annotations.csv', 'w', encoding='utf-8') as fh:
            fh.write('image,width,height,category,x,y,w,h\n')
            for image_id, img in images.items():
                for ann in by_image.get(image_id, ()):
                    x, y, w, h = ann['bbox']
                    fh.write(
                        f'{img["file_name"]},{img["width"]},{img["height"]},'
                        f'{ann["category_id"]},{x},{y},{w},{h}\n'
                    )
        return len(images)
    labels = out / 'labels'
    labels.mkdir()
    for image_id, img in images.items():
        iw, ih = img['width'], img['height']
        lines = []
        for ann in by_image.get(image_id, ()):
            x, y, w, h = ann['bbox']
            lines.append(
                f'{cats[ann["category_id"]]} {(x + w / 2) / iw:.6f} {(y + h / 2) / ih:.6f} '
                f'{w / iw:.6f} {h / ih:.6f}\n'
            )
        stem = img['file_name'].rsplit('.', 1)[0]
        (labels / f'{stem}.txt').write_text(''.join(lines), encoding='utf-8')
    return len(images)


def tool_datumaro(src: Path, out: Path, task: str) -> int:
    import datumaro as dm

    formats = {'yolo': 'yolo', 'coco': 'coco_instances', 'voc': 'voc_detection'}
    if task == 'import':
        dataset = dm.Dataset.import_from(str(src.parent.parent), 'coco_instances')
        return len(dataset)
    dataset = dm.StreamDataset.import_from(str(src.parent.parent), 'coco_instances')
    dataset.export(str(out), formats[task], save_media=False)
    return len(dataset)


def tool_globox(src: Path, out: Path, task: str) -> int:
    from globox import AnnotationSet

    annotations = AnnotationSet.from_coco(file_path=src)
    labels = sorted(annotations._labels()) if hasattr(annotations, '_labels') else None
    label_to_id = {label: i for i, label in enumerate(labels)} if labels else None
    annotations.save_yolo_v5(save_dir=out, label_to_id=label_to_id)
    return len(annotations)


TOOLS = {'minimal': tool_minimal, 'datumaro': tool_datumaro, 'globox': tool_globox}


# -- measuring -------------------------------------------------------------------------------


def _timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Wall seconds and peak RSS (MiB) of one fresh process tree (``RUSAGE_CHILDREN`` delta)."""
    if hasattr(os, 'sync'):
        os.sync()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)  # files: no pipe stalls
        _pid, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors='replace')
        stderr = err.read().decode(errors='replace')
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f'{" ".join(cmd[:6])} failed:\n{stderr[-3000:]}')
    return seconds, usage.ru_maxrss / 1024, stdout


def _seed(home: Path, n: int, density: str) -> dict[str, Any]:
    cmd = [str(OUR_PYTHON), str(RUN), '--child', '--home', str(home), '--seed-tasks', str(n),
           '--density', density]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def _ours_cmd(home: Path, fmt: str, seeded: dict[str, Any], name: str) -> list[str]:
    return [
        str(OUR_PYTHON), str(RUN), '--child', '--home', str(home), '--format', fmt,
        '--project', str(seeded['project']), '--storage', str(seeded['storage']), '--name', name,
    ]  # fmt: skip


def _coco_source(home: Path, seeded: dict[str, Any], work: Path) -> Path:
    """Export the seeded tasks once as COCO with our writer; peers read that file.

    The split files are merged in a child process: this parent must stay small, because on
    Linux a child's ``ru_maxrss`` starts at the peak RSS of the process that spawned it (a
    vfork'd child execs from the parent's memory), so a parent that once held the parsed COCO
    file would show its size as every tool's peak.
    """
    _timed(_ours_cmd(home, 'coco', seeded, 'peer-source'))
    exported = home / 'storage' / 'bench' / 'peer-source'
    # Datumaro's coco importer wants <root>/annotations/instances_<subset>.json.
    dest = work / 'coco' / 'annotations' / 'instances_default.json'
    dest.parent.mkdir(parents=True, exist_ok=True)
    (work / 'coco' / 'images' / 'default').mkdir(parents=True, exist_ok=True)  # no media
    cmd = [str(OUR_PYTHON), __file__, '--tool', 'merge', '--src', str(exported),
           '--out', str(dest)]  # fmt: skip
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    shutil.rmtree(exported, ignore_errors=True)
    return dest


def tool_merge(src: Path, out: Path, task: str | None = None) -> int:
    """One COCO file of an export's per-split files (``src``: the export directory)."""
    import orjson

    files = sorted(p for p in src.rglob('*.json') if p.parent.name == 'annotations')
    if not files:
        raise SystemExit(f'no COCO annotation file under {src}')
    # One file with every section COCO defines (Datumaro's stream reader needs `licenses`).
    merged: dict[str, Any] = {'licenses': [], 'info': {}, 'categories': [], 'images': [],
                              'annotations': []}  # fmt: skip
    for f in files:  # one file per split: ids are unique across an export's splits
        doc = orjson.loads(f.read_bytes())
        merged['images'] += doc['images']
        merged['annotations'] += doc['annotations']
        merged['categories'] = doc['categories']
        merged['info'] = doc.get('info') or merged['info']
    out.write_bytes(orjson.dumps(merged))
    return len(merged['images'])


def measure_size(
    n: int, repeat: int, tmp: Path, peers: bool, imports: bool, density: str
) -> dict[str, Any]:
    home = tmp / f'home-{n}'
    seeded = _seed(home, n, density)
    print(f'seeded {n} tasks ({seeded["annotations"]} annotations)', file=sys.stderr)
    work = tmp / f'work-{n}'
    src = _coco_source(home, seeded, work)
    peer_python = str(PEERS_VENV / 'bin' / 'python')
    runs: dict[str, list[tuple[float, float]]] = {}

    jobs: list[tuple[str, list[str], Path, dict[str, str] | None]] = []
    for fmt, label in OURS.items():
        name = f'{label}-{n}'
        jobs.append((label, _ours_cmd(home, fmt, seeded, name), home / 'storage' / 'bench' / name,
                     None))  # fmt: skip
    for task in ('yolo', 'csv'):
        out = work / f'minimal-{task}'
        cmd = [str(OUR_PYTHON), __file__, '--tool', 'minimal', '--task', task,
               '--src', str(src), '--out', str(out)]  # fmt: skip
        jobs.append((f'minimal-{task}', cmd, out, None))
    if peers:
        for task in ('yolo', 'coco', 'voc'):
            out = work / f'datumaro-{task}'
            cmd = [peer_python, __file__, '--tool', 'datumaro', '--task', task,
                   '--src', str(src), '--out', str(out)]  # fmt: skip
            jobs.append((f'datumaro-{task}', cmd, out, None))
        out = work / 'globox-yolo'
        cmd = [peer_python, __file__, '--tool', 'globox', '--task', 'yolo',
               '--src', str(src), '--out', str(out)]  # fmt: skip
        jobs.append(('globox-yolo', cmd, out, None))
    if imports:
        out = work / 'ours-import-home'
        synapse = str(ROOT / '.venv' / 'bin' / 'synapse')
        cmd = [synapse, 'data', 'import', 'coco', str(src)]
        jobs.append(('ours-import', cmd, out, {**os.environ, 'SYNAPSE_HOME': str(out)}))
        if peers:
            cmd = [peer_python, __file__, '--tool', 'datumaro', '--task', 'import',
                   '--src', str(src), '--out', str(work / 'unused')]  # fmt: skip
            jobs.append(('datumaro-import', cmd, work / 'unused', None))

    for round_ in range(repeat):  # alternate: every tool once per round
        for label, cmd, out, env in jobs:
            shutil.rmtree(out, ignore_errors=True)
            seconds, rss, _ = _timed(cmd, env)
            shutil.rmtree(out, ignore_errors=True)
            runs.setdefault(label, []).append((seconds, rss))
            print(f'  [{round_ + 1}/{repeat}] {label:<16} {seconds:7.2f}s {rss:7.1f} MiB',
                  file=sys.stderr)  # fmt: skip
    summary = {
        label: {
            'seconds': statistics.median(s for s, _ in rows),
            'all_seconds': [round(s, 3) for s, _ in rows],
            'peak_rss_mib': max(r for _, r in rows),
        }
        for label, rows in runs.items()
    }
    return {'tasks': n, 'annotations': seeded['annotations'], 'tools': summary,
            'coco_mib': src.stat().st_size / 2**20}  # fmt: skip


def _ratio(a: dict[str, Any], b: dict[str, Any] | None, key: str = 'seconds') -> str:
    if not b:
        return '-'
    return f'{b[key] / a[key]:.2f}' if a[key] else '-'


def report(results: list[dict[str, Any]]) -> str:
    lines = []
    for res in results:
        tools = res['tools']
        lines.append(
            f'N={res["tasks"]} ({res["annotations"]} annotations, COCO file '
            f'{res["coco_mib"]:.1f} MiB): seconds (median), peak RSS MiB, and ratios '
            'peer/ours (>1: ours is faster or smaller)'
        )
        header = f'{"tool":<17}{"seconds":>9}{"peak MiB":>10}'
        lines += [header, '-' * len(header)]
        for label, row in tools.items():
            lines.append(f'{label:<17}{row["seconds"]:>9.2f}{row["peak_rss_mib"]:>10.1f}')
        lines.append('')
        comparisons = [
            ('yolo', 'minimal-yolo'), ('yolo', 'datumaro-yolo'), ('yolo', 'globox-yolo'),
            ('csv', 'minimal-csv'), ('coco', 'datumaro-coco'), ('voc', 'datumaro-voc'),
            ('import', 'datumaro-import'),
        ]  # fmt: skip
        header = f'{"ours":<12}{"vs":<17}{"time x":>8}{"RSS x":>8}  target'
        lines += [header, '-' * len(header)]
        for ours, peer in comparisons:
            a, b = tools.get(f'ours-{ours}'), tools.get(peer)
            if not a or not b:
                continue
            lines.append(
                f'{ours:<12}{peer:<17}{_ratio(a, b):>8}{_ratio(a, b, "peak_rss_mib"):>8}'
                f'  {TARGETS.get(ours, "report")}'
            )
        lines.append('')
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sizes', default='20000,100000', help='comma-separated task counts')
    parser.add_argument('--repeat', type=int, default=3, help='rounds (median time)')
    parser.add_argument('--no-import', action='store_true', help='skip the import comparison')
    add_density_flag(parser)
    parser.add_argument('--output', default=str(ROOT / '.bench' / 'peers.json'))
    parser.add_argument('--tool', choices=[*sorted(TOOLS), 'merge'], help=argparse.SUPPRESS)
    parser.add_argument('--task', help=argparse.SUPPRESS)
    parser.add_argument('--src', help=argparse.SUPPRESS)
    parser.add_argument('--out', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.tool:
        tools = {**TOOLS, 'merge': tool_merge}
        count = tools[args.tool](Path(args.src), Path(args.out), args.task)
        print(json.dumps({'items': count}))
        return
    # Every tool starts from compiled bytecode, as a pip install leaves it: the peers' site
    # packages have theirs, and our editable install gets its own here (an environment with
    # PYTHONDONTWRITEBYTECODE would otherwise recompile our sources in every timed run).
    subprocess.run([str(OUR_PYTHON), '-m', 'compileall', '-q', str(ROOT / 'src')], check=True)
    peers = (PEERS_VENV / 'bin' / 'python').exists()
    if not peers:
        print('no .bench/peers-venv (make bench-peers): Datumaro and globox are left out',
              file=sys.stderr)  # fmt: skip
    sizes = [int(s.replace('_', '')) for s in args.sizes.split(',') if s.strip()]
    base = Path('/dev/shm') if Path('/dev/shm').is_dir() else None
    tmp = Path(tempfile.mkdtemp(prefix='synapse-peers-', dir=base))
    try:
        results = [
            measure_size(n, args.repeat, tmp, peers, not args.no_import, args.density)
            for n in sizes
        ]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + '\n', encoding='utf-8')
    print(report(results))
    print(f'results in {output}')


if __name__ == '__main__':
    main()

"""Speed-up of sharded exports (``make bench``): one process vs ``--workers 2`` vs ``--mode ray
--workers 2`` on the same seeded store, and where the time goes.

The parent seeds one synthetic project (``run.py``'s seeding: N tasks with about 10 annotations
each, the density of the issues' sets, or about 4 with ``--density light``; no image files, so
``save_original_file`` is off) and runs every measurement in a fresh process, alternating the
modes each round (median of ``--repeat``):

- ``one process``: ``ExportAction.dispatch``, what ``synapse export`` runs by default;
- ``workers 2``: ``run_action(..., Execution(workers=2))``, two worker processes;
- ``ray 2``: ``Execution(mode='ray', workers=2)`` on a local Ray started by the run
  (its start-up is timed apart and included in the total);
- ``ray 2 cluster``: the same, joining a Ray head started (``ray start --head --num-cpus 2``)
  before the timing, as a user with a running cluster does (``--ray-address``).

Reported per run: wall seconds (imports excluded, worker start-up included), the speed-up over
one process, the CPU seconds of the driver and of the worker processes (a shared machine shows
here: CPU seconds do not change with the load, wall seconds do), and the driver's phases from
the run's own timing line (planning before the shards, the shards, the merge after the last
shard, reports). Then Ray's floor, timed apart (the fastest of the rounds): what any ``--mode
ray --workers 2`` run pays before its first item (importing Ray, starting or joining it, two Ray
workers ready), beside the time a run must end in for 1.6x. The load average before and after
is printed: the target (at least 1.6x on 2 cores) assumes the cores are ours.

The store and the exports live in ``/dev/shm`` (as in ``peers.py``) so that the figures are the
engine's, not the virtual disk's: ``--disk`` puts them in the temporary directory instead (on
this VM's ext4, 100,000 files created by two processes at once cost more CPU than by one).
Sources are compiled to bytecode first, as an install leaves them.

    .venv/bin/python benchmarks/parallel.py                        # 100,000 tasks, coco + yolo
    .venv/bin/python benchmarks/parallel.py --size 20000 --formats coco --repeat 1
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from run import add_density_flag  # benchmarks/run.py, beside this script

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / 'src'))

MODES = ('one process', 'workers 2', 'ray 2', 'ray 2 cluster')
SPLIT = 'train=0.8,val=0.2'
PHASES = re.compile(
    r'shards (?P<shards>[\d.]+) s, then merging the parts (?P<merge>[\d.]+) s, '
    r'extra files and reports (?P<reports>[\d.]+) s'
)


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def child(args: argparse.Namespace) -> None:
    """One measured export in this fresh process; prints a JSON line."""
    os.environ['SYNAPSE_HOME'] = args.home
    os.environ.setdefault('RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER', '0')  # Ray on loopback only
    from synapse_sdk.clients.local import LocalClient
    from synapse_sdk.loggers import NullLogger
    from synapse_sdk.plugins.context import RuntimeContext
    from synapse_sdk.plugins.discovery import load_plugin
    from synapse_sdk.plugins.executors import Execution, run_action

    class Lines(NullLogger):
        def __init__(self) -> None:
            super().__init__()
            self.lines: list[str] = []

        def log_message(self, message: str, level: str = 'info') -> None:
            self.lines.append(message)

    fmt, mode = args.format, args.mode
    if mode.startswith('floor'):
        print(json.dumps(_ray_floor(args.ray_address if mode == 'floor cluster' else None)))
        return
    # What `synapse export FMT` runs (the plugin's action, with its config.yaml), in every
    # mode: the workers load the same one.
    action = load_plugin(fmt).get_action('export')
    params = {
        'name': args.name,
        'storage': 1,
        'path': 'bench',
        'target': 'task',
        'filter': {'project': 1},
        'save_original_file': False,
        'extra_params': {'split': SPLIT},
    }
    client = LocalClient(args.home)
    logger = Lines()
    ctx = RuntimeContext(logger=logger, client=client)
    out: dict[str, Any] = {}
    started = time.perf_counter()
    if mode == 'one process':
        result = action.dispatch(params, ctx)
    elif mode == 'workers 2':
        execution = Execution(workers=2)
        result = run_action(action, params, ctx, execution, plugin=fmt, action='export')
    else:
        from synapse_sdk.plugins.executors.ray_backend import RayBackend
        from synapse_sdk.plugins.executors.run import PRELOAD

        address = args.ray_address if mode == 'ray 2 cluster' else None
        backend = RayBackend(2, preload=PRELOAD, address=address)
        out['startup'] = time.perf_counter() - started
        try:
            execution = Execution(mode='ray', workers=2)
            result = run_action(
                action, params, ctx, execution, plugin=fmt, action='export', backend=backend
            )
        finally:
            backend.close()
    out['seconds'] = time.perf_counter() - started
    out['items'] = result['exported_count']
    out['driver_cpu'] = _cpu(resource.RUSAGE_SELF)
    out['workers_cpu'] = _cpu(resource.RUSAGE_CHILDREN) if mode == 'workers 2' else None
    for line in logger.lines:
        found = PHASES.search(line)
        if found:
            out['phases'] = {k: float(v) for k, v in found.groupdict().items()}
    client.close()
    shutil.rmtree(result['output_path'], ignore_errors=True)
    print(json.dumps(out))


def _ray_floor(address: str | None) -> dict[str, float]:
    """What any ``--mode ray --workers 2`` run pays before its first item: importing Ray,
    starting or joining it, and two Ray workers ready (each has imported Ray and the SDK), the
    way ``RayBackend`` starts them. No export work."""
    from synapse_sdk.plugins.executors.ray_backend import kept_signal_handlers, ray_warm_up
    from synapse_sdk.plugins.executors.run import PRELOAD

    started = time.perf_counter()
    import ray

    imported = time.perf_counter()
    where = {'address': address} if address else {'address': 'local', 'num_cpus': 2}
    with kept_signal_handlers():
        ray.init(**where, include_dashboard=False, log_to_driver=False)
    joined = time.perf_counter()
    warm = ray.remote(num_cpus=1, max_retries=0)(ray_warm_up)
    ray.get([warm.remote(PRELOAD) for _ in range(2)])
    ready = time.perf_counter()
    ray.shutdown()
    return {'import': imported - started, 'init': joined - imported,
            'workers': ready - joined, 'seconds': ready - started}  # fmt: skip


def _run(cmd: list[str], what: str) -> dict[str, Any]:
    if hasattr(os, 'sync'):
        os.sync()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f'{what} failed:\n{proc.stderr[-3000:]}')
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def _ray_env() -> dict[str, str]:
    # A head on 127.0.0.1 for this benchmark alone: Ray's token authentication is off.
    return {**os.environ, 'RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER': '0', 'RAY_AUTH_MODE': 'disabled'}


class _RayHead:
    """A Ray head of the benchmark's own on 127.0.0.1 with 2 CPUs, for one ``ray 2 cluster``
    run (started before the timing, stopped after, so it idles beside no other run). Stopped
    through its process group: ``ray stop`` would stop every Ray on the machine."""

    def __init__(self, tmp: Path) -> None:
        import socket

        self.proc: subprocess.Popen[bytes] | None = None
        self.address: str | None = None
        ray = Path(sys.executable).with_name('ray')
        if not ray.exists():
            return
        with socket.socket() as sock:
            sock.bind(('127.0.0.1', 0))
            port = sock.getsockname()[1]
        self.proc = subprocess.Popen(
            [str(ray), 'start', '--head', '--block', '--node-ip-address=127.0.0.1',
             f'--port={port}', '--num-cpus=2', '--include-dashboard=false',
             '--disable-usage-stats', f'--temp-dir={tmp / "ray"}'],
            env=_ray_env(), start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with socket.create_connection(('127.0.0.1', port), timeout=0.5):
                    self.address = f'127.0.0.1:{port}'
                    break
            except OSError:
                time.sleep(0.2)
        if self.address is not None:
            # Ready once a driver has come and gone (the raylet registers after the GCS
            # listens, and takes its time on a slow host): a running cluster has had drivers.
            probe = f'import ray; ray.init(address={self.address!r}); ray.shutdown()'
            try:
                subprocess.run([sys.executable, '-c', probe], env=_ray_env(), timeout=120,
                               check=False, capture_output=True)  # fmt: skip
            except subprocess.TimeoutExpired:
                self.address = None  # left out, as without a head
            time.sleep(1)

    def stop(self) -> None:
        import signal

        if self.proc is None:
            return
        for sig, wait in ((signal.SIGTERM, 3), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue


def _measured(tmp: Path, home: Path, fmt: str, mode: str, name: str) -> dict[str, Any] | None:
    """One child run of ``mode`` (``None``: a cluster mode without a Ray head to join)."""
    head = _RayHead(tmp) if mode.endswith('cluster') else None
    if head is not None and head.address is None:
        head.stop()
        print(f'no Ray head: the {mode} run is left out', file=sys.stderr)
        return None
    try:
        return _run(
            [sys.executable, __file__, '--child', '--home', str(home), '--format', fmt,
             '--mode', mode, '--name', name, '--ray-address', head.address if head else ''],
            f'{fmt} {mode}',
        )  # fmt: skip
    finally:
        if head is not None:
            head.stop()


def _load() -> str:
    try:
        return ' '.join(f'{x:.2f}' for x in os.getloadavg())
    except OSError:
        return '?'


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--size', type=int, default=100_000, help='tasks (default 100000)')
    parser.add_argument('--formats', default='coco,yolo', help='default coco,yolo')
    parser.add_argument('--repeat', type=int, default=3, help='rounds (median; default 3)')
    add_density_flag(parser)
    parser.add_argument('--output', default=str(ROOT / '.bench' / 'parallel.json'))
    parser.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
    parser.add_argument(
        '--disk', action='store_true', help='store and exports on disk, not /dev/shm'
    )
    for flag in ('--home', '--format', '--mode', '--name', '--ray-address'):
        parser.add_argument(flag, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return
    formats = [f.strip() for f in args.formats.split(',') if f.strip()]
    subprocess.run([sys.executable, '-m', 'compileall', '-q', str(ROOT / 'src')], check=True)
    os.environ.update(_ray_env())  # every run, and the head, on loopback without tokens
    shm = Path('/dev/shm')
    base = None if args.disk or not shm.is_dir() else shm
    tmp = Path(tempfile.mkdtemp(prefix='synapse-bench-par-', dir=base))
    results: dict[str, Any] = {'size': args.size, 'cpus': os.cpu_count(), 'runs': {},
                               'where': 'disk' if base is None else str(base)}  # fmt: skip
    try:
        home = tmp / 'home'
        seeded = _run(
            [sys.executable, str(ROOT / 'benchmarks' / 'run.py'), '--child', '--home', str(home),
             '--seed-tasks', str(args.size), '--density', args.density],
            'seeding',
        )  # fmt: skip
        results['annotations'] = seeded['annotations']
        print(f'seeded {args.size} tasks ({seeded["annotations"]} annotations) in '
              f'{seeded["seconds"]:.1f}s', file=sys.stderr)  # fmt: skip
        results['load_before'] = _load()
        for fmt in formats:
            rows: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
            for round_ in range(args.repeat):
                for mode in MODES:
                    name = f'{fmt}-{mode}-{round_}'.replace(' ', '')
                    row = _measured(tmp, home, fmt, mode, name)
                    if row is None:
                        continue
                    if row['items'] != args.size:
                        raise SystemExit(f'{fmt} {mode}: exported {row["items"]} of {args.size}')
                    rows[mode].append(row)
                    print(f'  {fmt:<5} {mode:<12} {row["seconds"]:7.2f}s', file=sys.stderr)
            # The median run, whole: its phases and CPU seconds are of the run its seconds are
            # (the lower of the two middle runs for an even --repeat).
            results['runs'][fmt] = {
                mode: {**sorted(runs, key=lambda r: r['seconds'])[(len(runs) - 1) // 2],
                       'all_seconds': [r['seconds'] for r in runs]}
                for mode, runs in rows.items() if runs
            }  # fmt: skip
        floors: dict[str, list[dict[str, Any]]] = {'ray 2': [], 'ray 2 cluster': []}
        for _ in range(args.repeat):
            for mode, floor in (('ray 2', 'floor'), ('ray 2 cluster', 'floor cluster')):
                row = _measured(tmp, home, '-', floor, '-')
                if row is not None:
                    floors[mode].append(row)
                    print(f'  ray floor {mode:<14} {row["seconds"]:7.2f}s', file=sys.stderr)
        results['ray_floor'] = {
            mode: min(runs, key=lambda r: r['seconds']) for mode, runs in floors.items() if runs
        }
        results['load_after'] = _load()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(results, indent=2))
    print(report(results))


def report(results: dict[str, Any]) -> str:
    lines = [
        f'Sharded export speed-up, {results["size"]} tasks ({results.get("annotations")} '
        f'annotations), {results["cpus"]} CPUs; load average '
        f'{results.get("load_before")} before, {results.get("load_after")} after',
        '',
        f'{"format":<7}{"mode":<13}{"seconds":>8}{"speed-up":>9}{"driver CPU":>11}'
        f'{"workers CPU":>12}   where the time goes',
    ]
    lines.append('-' * 100)
    for fmt, runs in results['runs'].items():
        base = runs['one process']['seconds']
        for mode, row in runs.items():
            phases = row.get('phases') or {}
            where = ''
            if phases:
                before = row['seconds'] - sum(phases.values()) - row.get('startup', 0)
                where = (
                    f'plan {before:.1f}s, shards {phases["shards"]:.1f}s, merge after the last '
                    f'{phases["merge"]:.2f}s, reports {phases["reports"]:.2f}s'
                )
                if 'startup' in row:
                    where = f'ray start {row["startup"]:.1f}s, {where}'
            workers = row.get('workers_cpu')
            lines.append(
                f'{fmt:<7}{mode:<13}{row["seconds"]:>8.2f}{base / row["seconds"]:>8.2f}x'
                f'{row["driver_cpu"]:>10.1f}s'
                f'{(f"{workers:.1f}s" if workers is not None else "-"):>12}   {where}'
            )
    floors = results.get('ray_floor') or {}
    if floors:
        lines.append('')
        lines.append('Ray before any item (import Ray, start or join it, two workers ready):')
        for mode, row in floors.items():
            lines.append(
                f'  {mode:<14}{row["seconds"]:6.2f}s  (import {row["import"]:.2f}s, '
                f'{"start" if mode == "ray 2" else "join"} {row["init"]:.2f}s, '
                f'workers {row["workers"]:.2f}s)'
            )
        for fmt, runs in results['runs'].items():
            budget = runs['one process']['seconds'] / 1.6
            lines.append(f'  {fmt}: 1.6x means done in {budget:.2f}s')
    return '\n'.join(lines)


if __name__ == '__main__':
    main()

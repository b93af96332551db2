"""What the executor tests share: a seeded home with several shards' worth of data, and
exports run once in one process and once sharded, compared byte for byte."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Any

from synapse_sdk.clients import LocalClient
from synapse_sdk.loggers import MemoryLogger
from synapse_sdk.plugins.context import RuntimeContext
from synapse_sdk.plugins.discovery import load_plugin
from synapse_sdk.plugins.executors import Execution, run_action
from synapse_sdk.server.demo import create_demo
from synapse_sdk.testing import read_tree_digest

#: 40 images: duplicate file names every 5th image, empty images, rejected and approved
#: assignments, two ground-truth versions. With 7 items a shard: 6 shards, names repeating
#: across shard boundaries.
IMAGES = 40
SHARD_SIZE = 7
#: Every built-in format: all shard but parquet (row groups and shards written at the end from
#: spooled Arrow), which runs whole on one worker.
FORMATS = ('coco', 'yolo', 'voc', 'csv', 'dm', 'labelme', 'cvat', 'parquet')
TARGETS = ('task', 'assignment', 'ground_truth')
WHOLE = ('parquet',)
#: Formats without splits (a split param is refused).
UNSPLIT = ('dm',)


def seed_home(home: Path) -> dict[str, Any]:
    return create_demo(home, seed=3, images=IMAGES)


def params_for(fmt: str, target: str, name: str) -> dict[str, Any]:
    """Export params exercising splits: ratios (planned per data unit) or GT categories."""
    if target == 'ground_truth':
        flt: dict[str, Any] = {'ground_truth_dataset_version': 1}
        extra: dict[str, Any] = {'split': 'category'}
    else:
        flt = {'project': 1}
        extra = {'split': 'train=0.5,val=0.3,test=0.2', 'seed': 7}
    if fmt in UNSPLIT:
        extra = {}
    return {
        'name': name,
        'storage': 1,
        'path': 'exports',
        'target': target,
        'filter': flt,
        'extra_params': extra,
    }


def single(client: LocalClient, fmt: str, params: dict[str, Any]) -> tuple[dict, dict, Path]:
    """The single-process export (moved aside once written, so the same name is free)."""
    action = load_plugin(fmt).get_action('export')
    result = action.dispatch(params, RuntimeContext(MemoryLogger(), client))
    out = Path(result['output_path'])
    aside = out.with_name(out.name + '.single')
    shutil.move(out, aside)
    return result, read_tree_digest(aside), aside


def sharded(
    client: LocalClient,
    fmt: str,
    params: dict[str, Any],
    execution: Execution,
    backend: Any = None,
    logger: MemoryLogger | None = None,
) -> tuple[dict, dict, Path]:
    action = load_plugin(fmt).get_action('export')
    ctx = RuntimeContext(logger or MemoryLogger(), client)
    result = run_action(
        action, params, ctx, execution, plugin=fmt, action='export', backend=backend
    )
    out = Path(result['output_path'])
    return result, read_tree_digest(out), out


def retries(logger: MemoryLogger) -> list[str]:
    """The messages saying a shard runs again."""
    return [m['message'] for m in logger.of_type('message') if 'running it again' in m['message']]


def without_path(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k != 'output_path'}


def assert_same_export(a: tuple[dict, dict, Path], b: tuple[dict, dict, Path]) -> None:
    """Same files, same bytes, same result (but where it was published)."""
    (ra, da, pa), (rb, db, pb) = a, b
    assert sorted(da) == sorted(db), set(da) ^ set(db)
    differ = [k for k in da if da[k] != db[k]]
    assert not differ, f'files differ: {differ[:10]}'
    dirs_a = sorted(p.relative_to(pa).as_posix() for p in pa.rglob('*') if p.is_dir())
    dirs_b = sorted(p.relative_to(pb).as_posix() for p in pb.rglob('*') if p.is_dir())
    assert dirs_a == dirs_b
    assert without_path(ra) == without_path(rb)
    assert Path(rb['output_path']).name == Path(ra['output_path']).name


def ray_daemons() -> set[int]:
    """Pids of the Ray node processes (GCS and raylet) running on this machine."""
    pids = set()
    for entry in Path('/proc').iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and (entry / 'comm').read_text().strip() in (
                'gcs_server',
                'raylet',
            ):
                pids.add(int(entry.name))
    return pids

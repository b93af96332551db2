"""``--mode``, ``--workers``, ``--ray-address`` and ``--resume``: where a run goes.

Shared by ``synapse plugin run`` and ``synapse export``; see
:mod:`synapse_sdk.plugins.executors` for what each mode does.
"""

from __future__ import annotations

from typing import Annotated

import typer

from synapse_sdk.plugins.executors.run import Execution

__all__ = [
    'ModeOption',
    'RayAddressOption',
    'ResumeOption',
    'WorkersOption',
    'execution',
]

_PANEL = 'Execution'

ModeOption = Annotated[
    str,
    typer.Option(
        '--mode',
        help='Where to run: local (this machine; --workers processes), ray (Ray tasks on a '
        'local Ray instance, or the cluster at --ray-address / RAY_ADDRESS), job (submitted '
        'to a Ray cluster through its Jobs API at --ray-address http://HOST:8265)',
        rich_help_panel=_PANEL,
    ),
]
WorkersOption = Annotated[
    int,
    typer.Option(
        '--workers',
        min=1,
        help='Worker processes (local) or concurrent Ray tasks (ray, job) the export is '
        'sharded over; the files are the same as with one',
        rich_help_panel=_PANEL,
    ),
]
RayAddressOption = Annotated[
    str | None,
    typer.Option(
        '--ray-address',
        envvar='RAY_ADDRESS',
        help='Ray cluster to join (ray: HOST:6379 or ray://HOST:10001; job: the dashboard, '
        'http://HOST:8265); ray without it starts a local instance for the run, which takes '
        'seconds (on one machine --workers is faster, or start a head once with `ray start '
        '--head` and join it)',
        rich_help_panel=_PANEL,
    ),
]
ResumeOption = Annotated[
    bool,
    typer.Option(
        '--resume',
        help='Continue an interrupted sharded export of the same params from its staging '
        'directory (only the shards not finished run again)',
        rich_help_panel=_PANEL,
    ),
]


def execution(mode: str, workers: int, ray_address: str | None, resume: bool) -> Execution:
    """The :class:`Execution` of the command-line options (``ParamsError``: exit 2)."""
    if mode == 'local':
        ray_address = None  # RAY_ADDRESS in the environment only matters for ray and job
    return Execution(mode=mode, workers=workers, ray_address=ray_address, resume=resume)

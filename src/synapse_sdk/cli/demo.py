"""``synapse demo``: create the demo project in ``$SYNAPSE_HOME`` and print what to run next."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from synapse_sdk.cli.common import EXIT_USAGE, fail, print_result


def demo(
    images: Annotated[
        int, typer.Option('--images', help='How many demo images to create', min=1)
    ] = 50,
    seed: Annotated[
        int, typer.Option('--seed', help='Seed: the same seed gives the same data')
    ] = 0,
    home: Annotated[
        Path | None,
        typer.Option('--home', help='Synapse home (default: $SYNAPSE_HOME or ~/.synapse)'),
    ] = None,
) -> None:
    """Create a demo project to try exports on; print the ids to export with.

    The project has real images, annotations of every tool, tasks, assignments, a
    ground-truth dataset and a file_system storage.
    """
    from synapse_sdk.server.demo import create_demo

    try:
        ids = create_demo(home, seed=seed, images=images)
    except (ValueError, OSError) as exc:
        fail(str(exc), EXIT_USAGE)
    typer.echo(
        f'Demo project {ids["project"]} with {ids["data_units"]} images, {ids["tasks"]} tasks, '
        f'{ids["assignments"]} assignments and {ids["ground_truth_events"]} ground-truth events '
        f'in {ids["home"]}',
        err=True,
    )
    typer.echo(
        f'Storage {ids["storage"]} (file_system) -> {Path(ids["home"]) / "storage"}', err=True
    )
    typer.echo('Export it and look at it, for example:', err=True)
    typer.echo(
        f'  synapse export coco --project {ids["project"]} --output ./demo-coco '
        '--split train=0.8,val=0.2',
        err=True,
    )
    typer.echo('  synapse preview ./demo-coco --output ./demo-coco-preview', err=True)
    typer.echo(
        f'  synapse export yolo --target ground_truth '
        f'--gt-version {ids["ground_truth_dataset_version"]} --storage {ids["storage"]} '
        '--path exports --name demo-yolo --split category',
        err=True,
    )
    print_result(ids)

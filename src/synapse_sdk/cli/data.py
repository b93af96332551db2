"""``synapse data import FORMAT PATH``: load a dataset into the embedded store."""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import re
from pathlib import Path
from typing import Annotated, Any

import typer

from synapse_sdk.cli.common import EXIT_USAGE, fail, print_result, reported_errors

data_app = typer.Typer(help='Load datasets into the embedded store.', no_args_is_help=True)


def importable_formats() -> list[str]:
    """Format subpackages that ship a ``reader`` module."""
    import synapse_sdk.formats as formats

    names = []
    for info in pkgutil.iter_modules(formats.__path__):
        if info.ispkg and importlib.util.find_spec(f'synapse_sdk.formats.{info.name}.reader'):
            names.append(info.name)
    return sorted(names)


def load_reader(fmt: str) -> Any:
    """The ``read_dataset`` function of ``synapse_sdk.formats.<fmt>.reader``."""
    if not re.fullmatch(r'[a-z][a-z0-9_]*', fmt):
        fail(f'unknown format {fmt!r}', EXIT_USAGE)
    try:
        module = importlib.import_module(f'synapse_sdk.formats.{fmt}.reader')
    except ModuleNotFoundError:
        known = ', '.join(importable_formats()) or 'none'
        fail(f'no importer for format {fmt!r} (available: {known})', EXIT_USAGE)
    reader = getattr(module, 'read_dataset', None)
    if reader is None:
        fail(f'synapse_sdk.formats.{fmt}.reader has no read_dataset()', EXIT_USAGE)
    return reader


@data_app.command('import')
def import_(
    fmt: Annotated[str, typer.Argument(metavar='FORMAT', help='coco, yolo, voc or dm')],
    path: Annotated[Path, typer.Argument(help='Annotation file or dataset directory')],
    images: Annotated[
        Path | None, typer.Option('--images', help='Directory holding the image files')
    ] = None,
    project: Annotated[
        str | None, typer.Option('--project', help='Title of the project to create')
    ] = None,
    home: Annotated[
        Path | None,
        typer.Option('--home', help='Synapse home (default: $SYNAPSE_HOME or ~/.synapse)'),
    ] = None,
) -> None:
    """Create a project from a dataset: its classes, one task, assignment and ground-truth
    event per image, with the images copied into the store's media."""
    from synapse_sdk.server.store import Store

    reader = load_reader(fmt)
    with reported_errors():
        try:
            dataset = reader(path, images=images)
            with Store(home) as store:
                ids = store.import_dataset(dataset, title=project)
        except (OSError, ValueError) as exc:
            fail(f'cannot import {path}: {exc}', EXIT_USAGE)
    typer.echo(
        f'Imported {ids["data_units"]} images into project {ids["project"]} '
        f'(ground-truth dataset version {ids["ground_truth_dataset_version"]})',
        err=True,
    )
    print_result(ids)

"""``synapse data import FORMAT PATH``: load a dataset into the embedded store."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
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


def _reader_options(reader: Any, fmt: str, **options: Any) -> dict[str, Any]:
    """The options given on the command line, refused when the reader does not take them."""
    accepted = inspect.signature(reader).parameters
    given = {k: v for k, v in options.items() if v is not None}
    for key in given:
        if key not in accepted:
            fail(f'--{key} is not an option of the {fmt} importer', EXIT_USAGE)
    return given


@data_app.command('import')
def import_(
    fmt: Annotated[str, typer.Argument(metavar='FORMAT', help='coco, yolo, voc, csv or dm')],
    path: Annotated[Path, typer.Argument(help='Annotation file or dataset directory')],
    images: Annotated[
        Path | None, typer.Option('--images', help='Directory holding the image files')
    ] = None,
    title: Annotated[
        str | None,
        typer.Option(
            '--title', '--project', help='Title of the project to create (default: the dataset)'
        ),
    ] = None,
    classes: Annotated[
        str | None,
        typer.Option(
            '--classes',
            help='Class names in index order, "a,b,c" or a names file (yolo without data.yaml, '
            'voc); they replace the class list the dataset ships',
        ),
    ] = None,
    coordinates: Annotated[
        str | None,
        typer.Option(
            '--coordinates',
            help='voc: zero_based (default: Datumaro, CVAT, Ultralytics, MMDetection) or '
            "one_based (the VOC devkit's 1-based inclusive pixels, Detectron2)",
        ),
    ] = None,
    home: Annotated[
        Path | None,
        typer.Option('--home', help='Synapse home (default: $SYNAPSE_HOME or ~/.synapse)'),
    ] = None,
) -> None:
    """Create a project from a dataset: its classes, one task, assignment and ground-truth
    event per image, with the images copied into the store's media; a file_system storage
    to export to is registered. Prints what was read and what could not be, per reason."""
    from synapse_sdk.server.importer import import_dataset
    from synapse_sdk.server.store import Store

    reader = load_reader(fmt)
    options = _reader_options(reader, fmt, classes=classes, coordinates=coordinates)
    with reported_errors():
        try:
            dataset = reader(path, images=images, **options)
            with Store(home) as store:
                ids = import_dataset(store, dataset, title=title)
        except (OSError, ValueError) as exc:
            fail(f'cannot import {path}: {exc}', EXIT_USAGE)
    read = ids.get('read', {})
    tags = f' and {read["tags"]} image-level labels' if read.get('tags') else ''
    typer.echo(
        f'Imported {ids["data_units"]} images with {read.get("annotations", 0)} annotations'
        f'{tags} into project {ids["project"]} (ground-truth dataset version '
        f'{ids["ground_truth_dataset_version"]})',
        err=True,
    )
    for line in dataset.report.lines():
        typer.echo(f'  {line}', err=True)
    env = f'SYNAPSE_HOME={home} ' if home is not None else ''
    typer.echo(
        'Export it with, for example:\n'
        f'  {env}synapse export coco --target ground_truth '
        f'--gt-version {ids["ground_truth_dataset_version"]} --storage {ids["storage"]} '
        '--path exports --name imported --split category\n'
        f'  {env}synapse export yolo --target task --project {ids["project"]} '
        f'--storage {ids["storage"]} --path exports --name imported-yolo',
        err=True,
    )
    print_result(ids)

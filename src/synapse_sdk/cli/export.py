"""``synapse export FORMAT``: a shortcut that builds the params of a built-in export plugin."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
import typer

from synapse_sdk.cli.common import (
    EXIT_USAGE,
    JobIdOption,
    LogFileOption,
    QuietOption,
    fail,
    print_result,
)
from synapse_sdk.cli.plugin import run_plugin_action


def _pairs(values: list[str], option: str) -> dict[str, Any]:
    """``key=value`` pairs; values are JSON when they parse as JSON, else strings."""
    out: dict[str, Any] = {}
    for raw in values:
        key, sep, value = raw.partition('=')
        if not sep or not key.strip():
            fail(f'{option} takes key=value, got {raw!r}', EXIT_USAGE)
        try:
            out[key.strip()] = orjson.loads(value)
        except orjson.JSONDecodeError:
            out[key.strip()] = value
    return out


def export(
    fmt: Annotated[str, typer.Argument(metavar='FORMAT', help='coco, yolo, voc, csv or dm')],
    target: Annotated[
        str, typer.Option('--target', help='assignment, ground_truth or task')
    ] = 'task',
    project: Annotated[
        int | None, typer.Option('--project', help='Project id (assignment and task targets)')
    ] = None,
    gt_version: Annotated[
        int | None,
        typer.Option('--gt-version', help='Ground-truth dataset version id (ground_truth target)'),
    ] = None,
    storage: Annotated[int, typer.Option('--storage', help='Storage id to write to')] = 1,
    path: Annotated[str, typer.Option('--path', help='Directory inside the storage')] = 'exports',
    name: Annotated[str, typer.Option('--name', help='Export name (the output folder)')] = 'export',
    split: Annotated[
        str | None,
        typer.Option('--split', help='Split ratios like train=0.8,val=0.2, or "category"'),
    ] = None,
    no_originals: Annotated[
        bool, typer.Option('--no-originals', help='Do not copy the original images')
    ] = False,
    filters: Annotated[
        list[str] | None, typer.Option('--filter', help='Extra filter key=value (repeatable)')
    ] = None,
    options: Annotated[
        list[str] | None,
        typer.Option('--option', '-o', help='Format option key=value, e.g. task=segment'),
    ] = None,
    allow_empty: Annotated[
        bool,
        typer.Option('--allow-empty', help='Publish an empty dataset when nothing is selected'),
    ] = False,
    strict: Annotated[
        bool,
        typer.Option(
            '--strict',
            help='Fail, publishing nothing, on any skipped or clamped annotation, failed item or '
            'failed original',
        ),
    ] = False,
    sample_policy: Annotated[
        str | None,
        typer.Option(
            '--sample-policy',
            help='Which record of a re-annotated image is exported: latest_approved (default), '
            'latest, or all (each as its own sample)',
        ),
    ] = None,
    log_file: LogFileOption = None,
    quiet: QuietOption = False,
    job_id: JobIdOption = None,
) -> None:
    """Export with a built-in format; the same as `synapse plugin run --plugin FORMAT export`.

    Example: synapse export coco --project 1 --name demo --split train=0.8,val=0.2
    """
    from synapse_sdk.plugins.discovery import builtin_codes

    if fmt not in builtin_codes():
        fail(f'unknown format {fmt!r}; choose one of: {", ".join(builtin_codes())}', EXIT_USAGE)
    flt: dict[str, Any] = _pairs(filters or [], '--filter')
    if project is not None:
        flt['project'] = project
    if gt_version is not None:
        flt['ground_truth_dataset_version'] = gt_version
    extra = _pairs(options or [], '--option')
    if split is not None:
        extra['split'] = split
    params = {
        'name': name,
        'storage': storage,
        'path': path,
        'target': target,
        'save_original_file': not no_originals,
        'filter': flt,
        'extra_params': extra,
    }
    if allow_empty:
        params['allow_empty'] = True
    if strict:
        params['strict'] = True
    if sample_policy is not None:
        params['sample_policy'] = sample_policy
    print_result(run_plugin_action(fmt, 'export', params, log_file, quiet, job_id))

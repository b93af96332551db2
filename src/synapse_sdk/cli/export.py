"""``synapse export FORMAT``: export with a built-in format (or any registered export plugin).

Each format is a subcommand built on demand, so ``synapse export yolo --help`` shows the
shared options *and* that format's own, read from its writer's pydantic ``Options`` model
(name, type, default, allowed values, description); ``-o key=value`` sets any option too.
The run is ``synapse plugin run --plugin FORMAT export`` with params built from the flags.
"""

from __future__ import annotations

import functools
import inspect
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from typer.core import TyperGroup

from synapse_sdk.cli.common import (
    EXIT_USAGE,
    DebugOption,
    JobIdOption,
    LogFileOption,
    QuietOption,
    fail,
    print_result,
    reported_errors,
)
from synapse_sdk.cli.execution import (
    ModeOption,
    RayAddressOption,
    ResumeOption,
    WorkersOption,
    execution,
)
from synapse_sdk.cli.options import (
    OptionDoc,
    collect_values,
    describe_model,
    format_options_model,
    options_table,
    typer_parameters,
)
from synapse_sdk.cli.plugin import OutputOption, OverwriteOption, ZipOption, run_with_output
from synapse_sdk.plugins.actions.export.models import ExportParams

#: One line per built-in format, for ``synapse export --help``.
FORMAT_TITLES = {
    'coco': 'COCO JSON: boxes, polygons, RLE masks, keypoints; one file per split',
    'yolo': 'Ultralytics YOLO: detect, segment, pose or obb labels and data.yaml',
    'voc': 'Pascal VOC: one XML per image, ImageSets split lists',
    'csv': 'CSV: one row per annotation, with project.json',
    'dm': "The platform's own JSON, one file per item",
}

#: Where ``synapse export`` writes inside a storage by default: the same as the params model
#: (what ``synapse plugin run`` gets when params leave ``path`` out).
DEFAULT_PATH: str = ExportParams.model_fields['path'].default
DEFAULT_STORAGE = 1
DEFAULT_NAME = 'export'
#: Format options that a shared flag already sets (``--split``).
SHARED_KEYS = frozenset({'split'})


def _pairs(values: list[str], option: str) -> dict[str, Any]:
    """``key=value`` pairs; values are JSON when they parse as JSON, else strings."""
    out: dict[str, Any] = {}
    for raw in values:
        key, sep, value = raw.partition('=')
        if not sep or not key.strip():
            fail(f'{option} takes KEY=VALUE, got {raw!r}', EXIT_USAGE)
        try:
            out[key.strip()] = orjson.loads(value)
        except orjson.JSONDecodeError:
            out[key.strip()] = value
    return out


def _shared_options(
    target: Annotated[
        str,
        typer.Option(
            '--target', metavar='TARGET', help='What to export: task, assignment or ground_truth'
        ),
    ] = 'task',
    project: Annotated[
        int | None,
        typer.Option(
            '--project',
            metavar='ID',
            help='Project id (task and assignment targets); see synapse project list',
        ),
    ] = None,
    gt_version: Annotated[
        int | None,
        typer.Option(
            '--gt-version',
            metavar='ID',
            help='Ground-truth dataset version id (ground_truth target); see synapse gt list',
        ),
    ] = None,
    split: Annotated[
        str | None,
        typer.Option(
            '--split',
            metavar='SPEC',
            help='Split ratios like train=0.8,val=0.2, or "category" (the ground-truth split)',
        ),
    ] = None,
    no_originals: Annotated[
        bool, typer.Option('--no-originals', help='Do not copy the original images')
    ] = False,
    filters: Annotated[
        list[str] | None,
        typer.Option(
            '--filter',
            metavar='KEY=VALUE',
            help='Extra filter, repeatable, e.g. --filter status=approved',
        ),
    ] = None,
    options: Annotated[
        list[str] | None,
        typer.Option(
            '--option',
            '-o',
            metavar='KEY=VALUE',
            help='Format option, repeatable; values are read as JSON when they parse',
        ),
    ] = None,
    output: OutputOption = None,
    overwrite: OverwriteOption = False,
    zip_output: ZipOption = False,
    storage: Annotated[
        int | None,
        typer.Option(
            '--storage',
            metavar='ID',
            help=f'Storage to write to (default: {DEFAULT_STORAGE}); see synapse storage list',
            rich_help_panel='Output',
        ),
    ] = None,
    path: Annotated[
        str | None,
        typer.Option(
            '--path',
            metavar='PATH',
            help='Folder inside the storage (default: '
            + (repr(DEFAULT_PATH) if DEFAULT_PATH else 'the storage root')
            + ')',
            rich_help_panel='Output',
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            '--name',
            metavar='NAME',
            help=f'Export name: the folder created in the storage (default: {DEFAULT_NAME})',
            rich_help_panel='Output',
        ),
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
    mode: ModeOption = 'local',
    workers: WorkersOption = 1,
    ray_address: RayAddressOption = None,
    resume: ResumeOption = False,
    log_file: LogFileOption = None,
    quiet: QuietOption = False,
    job_id: JobIdOption = None,
    debug: DebugOption = False,
) -> dict[str, Any]:
    """The options every format shares (only its signature is used, by the typer commands)."""
    return dict(locals())  # pragma: no cover - never called


def _shared_flags() -> set[str]:
    probe = typer.Typer(add_completion=False)
    probe.command()(_shared_options)
    command = typer.main.get_command(probe)
    return {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}


def run_export(fmt: str, format_values: dict[str, Any], option_flags: dict[str, str], **o: Any):
    """Build the export params from the flags, run, print the result."""
    output: Path | None = o['output']
    given = [f for f, v in (('--storage', o['storage']), ('--path', o['path']),
                            ('--name', o['name'])) if v is not None]  # fmt: skip
    if output is not None and given:
        fail(
            f'--output writes to a local folder; it cannot be combined with {", ".join(given)}',
            EXIT_USAGE,
        )
    flt: dict[str, Any] = _pairs(o['filters'] or [], '--filter')
    for key, flag in (('project', '--project'), ('ground_truth_dataset_version', '--gt-version')):
        value = o[flag[2:].replace('-', '_')]
        if value is None:
            continue
        if key in flt and flt[key] != value:
            fail(f'{flag} {value} and --filter {key}={flt[key]} contradict each other; '
                 'give one of them', EXIT_USAGE)  # fmt: skip
        flt[key] = value
    extra = _pairs(o['options'] or [], '--option')
    extra.update(format_values)
    if o['split'] is not None:
        extra['split'] = o['split']
    params = {
        'name': o['name'] if o['name'] is not None else DEFAULT_NAME,
        'storage': o['storage'] if o['storage'] is not None else DEFAULT_STORAGE,
        'path': o['path'] if o['path'] is not None else DEFAULT_PATH,
        'target': o['target'],
        'save_original_file': not o['no_originals'],
        'filter': flt,
        'extra_params': extra,
    }
    if o['allow_empty']:
        params['allow_empty'] = True
    if o['strict']:
        params['strict'] = True
    if o['sample_policy'] is not None:
        params['sample_policy'] = o['sample_policy']
    whole_filter = '--gt-version' if o['target'] == 'ground_truth' else '--project'
    flags = {
        'format': 'FORMAT',
        'target': '--target',
        'save_original_file': '--no-originals',
        'filter.project': '--project',
        'filter.ground_truth_dataset_version': '--gt-version',
        'filter.ground_truth_dataset_versions': '--gt-version',
        'filter': '--filter' if o['filters'] else whole_filter,
        'filter.*': '--filter {key}=...',
        'extra_params': '--option',
        'extra_params.split': '--split',
        'extra_params.*': '-o {key}=...',
        # a format option is named the way it was given: --task, or -o task=...
        **{f'extra_params.{k}': f for k, f in option_flags.items() if k in format_values},
        'output': '--output',
        'allow_empty': '--allow-empty',
        'strict': '--strict',
        'sample_policy': '--sample-policy',
    }
    for field in ('storage', 'path', 'name'):
        flags[field] = '--output' if output is not None else f'--{field}'
    if output is None:
        flags['storage'] = (
            '--storage|list them with: synapse storage list; or write to a local folder with '
            '--output DIR'
        )
    with reported_errors():
        where = execution(o['mode'], o['workers'], o['ray_address'], o['resume'])
    result = run_with_output(
        fmt,
        'export',
        params,
        output=output,
        overwrite=o['overwrite'],
        zip_output=o['zip_output'],
        log_file=o['log_file'],
        quiet=o['quiet'],
        job_id=o['job_id'],
        debug=o['debug'],
        flags=flags,
        run=where,
    )
    print_result(result)


def _takes_split(fmt: str) -> bool:
    """Whether the format writes splits (dm refuses ``split``)."""
    from synapse_sdk.errors import ParamsError
    from synapse_sdk.formats import get_writer

    try:
        get_writer(fmt).validate_options({'split': 'train=0.8,val=0.2'})
    except (ParamsError, KeyError):
        return False
    return True


def _epilog(fmt: str, docs: list[OptionDoc], flagged: set[str]) -> str:
    split = ' --split train=0.8,val=0.2' if _takes_split(fmt) else ''
    lines = [f'Example: synapse export {fmt} --project 1 --output ./{fmt}-export{split}']
    rest = [(doc, row) for doc, row in zip(docs, options_table(docs), strict=True)
            if doc.key not in flagged and doc.key not in SHARED_KEYS]  # fmt: skip
    if rest:
        shown = []
        for doc, (_, type_name, default, allowed, description) in rest:
            extra = f' ({allowed})' if allowed else ''
            shown.append(f'-o {doc.key}=... {type_name}{extra}, default {default}: {description}')
        lines.append('More options, set with -o KEY=VALUE:\n' + '\n'.join(shown))
    elif not docs:
        from synapse_sdk.formats import WRITERS

        writer = WRITERS.get(fmt)
        text = (inspect.getdoc(writer) or '') if writer is not None else ''
        if text:
            lines.append(f'Format options, set with -o KEY=VALUE: {text.splitlines()[0]}')
    return '\n\n'.join(lines)


def format_command(fmt: str, docs: list[OptionDoc], title: str | None = None) -> Any:
    """The ``synapse export FMT`` command: shared options plus a flag per option in ``docs``."""
    shared = list(inspect.signature(_shared_options, eval_str=True).parameters.values())
    own, by_name = typer_parameters(docs, _shared_flags(), panel=f'{fmt} options')
    option_flags = {doc.key: doc.flag for doc in by_name.values()}

    def command(**kwargs: Any) -> None:
        values = collect_values(kwargs, by_name)
        run_export(fmt, values, option_flags, **kwargs)

    parameters = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in shared] + own
    command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in parameters}
    title = title or FORMAT_TITLES.get(fmt) or f'Export with the {fmt} plugin'
    help_text = f'{title}.\n\nProgress and a summary go to stderr, the result as JSON to stdout.'
    app = typer.Typer(add_completion=False)
    app.command(fmt, help=help_text, epilog=_epilog(fmt, docs, set(option_flags)))(command)
    return typer.main.get_command(app)


@functools.cache
def _command_for(fmt: str) -> Any:
    model = format_options_model(fmt)
    return format_command(fmt, describe_model(model) if model is not None else [])


class ExportGroup(TyperGroup):
    """Lists every registered export plugin as a subcommand; builds one only when asked."""

    def list_commands(self, ctx: Any) -> list[str]:
        from synapse_sdk.plugins.discovery import builtin_codes

        return builtin_codes()

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in self.list_commands(ctx):
            return None
        return _command_for(cmd_name)

    def resolve_command(self, ctx: Any, args: list[str]) -> tuple[str | None, Any, list[str]]:
        name = args[0]
        command = self.get_command(ctx, name)
        if command is None:
            if name.startswith('-'):
                self.parse_args(ctx, args)
            known = ', '.join(self.list_commands(ctx))
            fail(f'unknown format {name!r}; choose one of: {known}', EXIT_USAGE)
        return name, command, args[1:]


export_app = typer.Typer(
    cls=ExportGroup,
    help='Export annotations with a built-in format: synapse export FORMAT --help shows the '
    "format's own options.\n\nExample: synapse export coco --project 1 --output ./coco-export",
    no_args_is_help=True,
)

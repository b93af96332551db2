"""``synapse plugin run`` and ``synapse plugin create``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from synapse_sdk.cli.common import (
    EXIT_USAGE,
    JobIdOption,
    LogFileOption,
    QuietOption,
    default_client_factory,
    env_snapshot,
    fail,
    make_logger,
    print_result,
    read_params,
    reported_errors,
    warn_reporting_problems,
)
from synapse_sdk.cli.execution import (
    ModeOption,
    RayAddressOption,
    ResumeOption,
    WorkersOption,
    execution,
)
from synapse_sdk.plugins.context import RuntimeContext
from synapse_sdk.plugins.executors import Execution

plugin_app = typer.Typer(help='Run and scaffold plugins.', no_args_is_help=True)

MODES = ('local', 'ray', 'job')


def run_plugin_action(
    plugin: str | None,
    action: str,
    params: dict[str, Any],
    log_file: Path | None = None,
    quiet: bool = False,
    job_id: int | None = None,
    run: Execution | None = None,
) -> Any:
    """Load the plugin, build the runtime context and dispatch the action (CLI errors).

    With ``job_id`` the run also reports to that platform job: progress and metrics on the
    job, log rows in batches, and the result or error when it ends. ``run`` says where the
    action runs (``--mode``, ``--workers``, ``--resume``; default: here).
    """
    from synapse_sdk.loggers import BackendLogger
    from synapse_sdk.plugins.discovery import load_plugin

    with reported_errors():
        loaded = load_plugin(plugin)
        action_cls = loaded.get_action(action)
        action_cls.validate_params(params)  # bad params: exit 2 before any client is built
        if run is not None and run.mode == 'job':
            from synapse_sdk.plugins.executors.job import submit_job

            return submit_job(
                plugin,
                action,
                params,
                address=run.ray_address,
                workers=run.workers,
                resume=run.resume,
                echo=(lambda line: None) if quiet else None,
            )
        client = default_client_factory()()
        job = BackendLogger(client, job_id) if job_id is not None else None
        logger = make_logger(log_file, quiet, *([job] if job else []))
        ctx = RuntimeContext(
            logger=logger,
            client=client,
            env=env_snapshot(),
            job_id=str(job_id) if job_id is not None else None,
        )
        try:
            from synapse_sdk.plugins.executors import run_action

            result = run_action(action_cls, params, ctx, run, plugin=plugin, action=action)
        except BaseException as exc:
            logger.finish()
            if job is not None:
                job.set_result('failed', error=f'{type(exc).__name__}: {exc}')
            warn_reporting_problems(logger)
            raise
        logger.finish()
        if job is not None:
            job.set_result('succeeded', result=result)
        warn_reporting_problems(logger)
        return result


@plugin_app.command('run')
def run(
    action: Annotated[str, typer.Argument(help='Action name from config.yaml, e.g. export')],
    params: Annotated[
        str, typer.Option('--params', '-p', help='Params as a JSON object, or @file.json')
    ] = '{}',
    plugin: Annotated[
        str | None,
        typer.Option(
            '--plugin',
            help='Plugin folder (with config.yaml) or built-in code: coco, yolo, voc, csv, dm. '
            'Default: the current directory.',
        ),
    ] = None,
    mode: ModeOption = 'local',
    workers: WorkersOption = 1,
    ray_address: RayAddressOption = None,
    resume: ResumeOption = False,
    log_file: LogFileOption = None,
    quiet: QuietOption = False,
    job_id: JobIdOption = None,
) -> None:
    """Run a plugin action; progress goes to stderr, the result as JSON to stdout.

    Backend: SYNAPSE_HOST (+ SYNAPSE_ACCESS_TOKEN) when set, else the embedded store.

    The embedded store lives in SYNAPSE_HOME (default ~/.synapse); `synapse demo` fills it.

    Exit codes: 0 done, 1 the run failed, 2 bad params or plugin config.
    """
    if mode not in MODES:
        fail(f'--mode {mode!r} is not supported; choose one of: {", ".join(MODES)}', EXIT_USAGE)
    with reported_errors():
        where = execution(mode, workers, ray_address, resume)
    result = run_plugin_action(
        plugin, action, read_params(params), log_file, quiet, job_id, run=where
    )
    print_result(result)


@plugin_app.command('list')
def list_plugins() -> None:
    """List the plugins registered by code (built-in formats and installed packages)."""
    from synapse_sdk.plugins.discovery import load_plugin, registered_plugins

    rows = []
    with reported_errors():
        for code, root in sorted(registered_plugins().items()):
            config = load_plugin(code).config
            rows.append(
                {
                    'code': code,
                    'name': config.name,
                    'version': config.version,
                    'category': str(config.category),
                    'actions': sorted(config.actions),
                    'path': str(root),
                }
            )
    print_result(rows)


@plugin_app.command('create')
def create(
    name: Annotated[str, typer.Argument(help='Plugin name; also the folder created')],
    category: Annotated[str, typer.Option('--category', help='Plugin category')] = 'export',
    directory: Annotated[
        Path, typer.Option('--dir', help='Where to create the plugin folder')
    ] = Path('.'),
) -> None:
    """Scaffold a working plugin folder: config.yaml, plugin module and a test."""
    from synapse_sdk.plugins.templates import scaffold

    with reported_errors():
        target = scaffold(name, category, directory)
    typer.echo(f'Created {target}', err=True)
    typer.echo(
        f'Try it: cd {target} && synapse plugin run export --params @params.example.json', err=True
    )
    print_result({'path': str(target)})

"""``synapse plugin run``, ``synapse plugin list`` and ``synapse plugin create``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from synapse_sdk.cli.common import (
    EXIT_USAGE,
    DebugOption,
    Failure,
    FlagMap,
    JobIdOption,
    LogFileOption,
    QuietOption,
    TeeLogger,
    default_client_factory,
    env_snapshot,
    fail,
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

plugin_app = typer.Typer(help='Run, list and scaffold plugins.', no_args_is_help=True)

MODES = ('local', 'ray', 'job')

# The options that send a run's output to a local folder (``synapse export`` has them too).
OutputOption = Annotated[
    Path | None,
    typer.Option(
        '--output',
        metavar='DIR',
        help='Write the export to this local folder; no storage needed '
        '(replaces the storage, path and name params)',
        rich_help_panel='Output',
    ),
]
OverwriteOption = Annotated[
    bool,
    typer.Option(
        '--overwrite',
        help='Replace a non-empty --output folder, once the new export is complete',
        rich_help_panel='Output',
    ),
]
ZipOption = Annotated[
    bool,
    typer.Option('--zip', help='Write DIR.zip instead of the folder DIR', rich_help_panel='Output'),
]


def run_plugin_action(
    plugin: str | None,
    action: str,
    params: dict[str, Any],
    log_file: Path | None = None,
    quiet: bool = False,
    job_id: int | None = None,
    *,
    debug: bool = False,
    flags: FlagMap | None = None,
    wrap_client: Callable[[Any], Any] | None = None,
    on_result: Callable[[Any], Any] | None = None,
    run: Execution | None = None,
) -> Any:
    """Load the plugin, build the runtime context and dispatch the action (CLI errors).

    With ``job_id`` the run also reports to that platform job: progress and metrics on the
    job, log rows in batches, and the result or error when it ends. ``log_file`` receives
    every event and, when the run fails, the error with its traceback (``run_failed``).
    ``flags`` names params by the flags that set them, in error messages. ``wrap_client``
    wraps the backend client (``--output`` answers for its own storage); ``on_result`` turns
    the action's result into the command's (``--output`` moves the export into place).
    ``run`` says where the action runs (``--mode``, ``--workers``, ``--resume``; default:
    here, as ``dispatch`` runs it).
    """
    from synapse_sdk.loggers import BackendLogger, ConsoleLogger, JsonlLogger
    from synapse_sdk.plugins.discovery import load_plugin

    file_logger: JsonlLogger | None = None
    job: BackendLogger | None = None
    logger = TeeLogger()

    def record(exc: BaseException, failure: Failure) -> None:
        for other in logger.loggers:
            if other is not file_logger:
                other.finish()  # stop the progress bars before the error is printed
        if job is not None:
            job.set_result('failed', error=failure.message)
        warn_reporting_problems(*(other for other in logger.loggers if other is not file_logger))
        if file_logger is not None:
            file_logger.flush_progress()  # what happened before the failure comes first
            file_logger.log_message(failure.message, 'error')
            file_logger.log_event(
                'run_failed',
                {
                    'error': failure.message,
                    'exit_code': failure.code,
                    'exception': type(exc).__name__,
                    'traceback': failure.traceback,
                },
            )
            file_logger.finish()
            warn_reporting_problems(file_logger)

    with reported_errors(flags, debug, record):
        if log_file is not None:  # a log file that cannot be opened is bad input: exit 2
            file_logger = JsonlLogger(log_file)
        loaded = load_plugin(plugin)
        action_cls = loaded.get_action(action)
        action_cls.validate_params(params)  # bad params: exit 2 before any client is built
        if run is not None and run.mode == 'job':
            from synapse_sdk.plugins.executors.job import submit_job

            if wrap_client is not None:
                fail('--output writes on this machine; --mode job runs elsewhere', EXIT_USAGE)
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
        if wrap_client is not None:
            client = wrap_client(client)
        if job_id is not None:
            job = BackendLogger(client, job_id)
            logger.add(job)
        if not quiet:
            logger.add(ConsoleLogger())
        if file_logger is not None:
            logger.add(file_logger)
        ctx = RuntimeContext(
            logger=logger,
            client=client,
            env=env_snapshot(),
            job_id=str(job_id) if job_id is not None else None,
        )
        from synapse_sdk.plugins.executors import run_action

        result = run_action(action_cls, params, ctx, run, plugin=plugin, action=action)
        if on_result is not None:
            result = on_result(result)
        logger.finish()
        if job is not None:
            job.set_result('succeeded', result=result)
        warn_reporting_problems(logger)
        return result


def run_with_output(
    plugin: str | None,
    action: str,
    params: dict[str, Any],
    *,
    output: Path | None,
    overwrite: bool,
    zip_output: bool,
    log_file: Path | None,
    quiet: bool,
    job_id: int | None,
    debug: bool,
    flags: FlagMap | None,
    run: Execution | None = None,
) -> Any:
    """Run an export action, to ``--output`` when given; print the summary unless quiet."""
    from synapse_sdk.cli.output import LocalOutput
    from synapse_sdk.cli.summary import print_summary, read_local_report

    if (overwrite or zip_output) and output is None:
        fail(f'{"--zip" if zip_output else "--overwrite"} needs --output DIR', EXIT_USAGE)
    out = None
    if output is not None:
        out = LocalOutput(output, overwrite=overwrite, zip_output=zip_output)
        with reported_errors(flags, debug):
            out.check()
        params = {**params, **out.prepare()}

    def place(result: Any) -> Any:
        if out is not None and isinstance(result, dict) and result.get('output_path'):
            result = {**result, 'output_path': out.place(result['output_path'])}
        return result

    try:
        result = run_plugin_action(
            plugin,
            action,
            params,
            log_file,
            quiet,
            job_id,
            debug=debug,
            flags=flags,
            wrap_client=out.wrap_client if out is not None else None,
            on_result=place,
            run=run,
        )
    finally:
        if out is not None:
            out.cleanup()
    if not quiet:
        report = out.report if out is not None else None
        if report is None and isinstance(result, dict):
            report = read_local_report(result.get('output_path'))
        print_summary(result, report)
    return result


@plugin_app.command('run')
def run(
    action: Annotated[str, typer.Argument(help='Action name from config.yaml, e.g. export')],
    params: Annotated[
        str,
        typer.Option(
            '--params', '-p', metavar='JSON', help='Params as a JSON object, or @file.json'
        ),
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
    output: OutputOption = None,
    overwrite: OverwriteOption = False,
    zip_output: ZipOption = False,
    log_file: LogFileOption = None,
    quiet: QuietOption = False,
    job_id: JobIdOption = None,
    debug: DebugOption = False,
) -> None:
    """Run a plugin action; progress and a summary go to stderr, the result as JSON to stdout.

    Backend: SYNAPSE_HOST (+ SYNAPSE_ACCESS_TOKEN) when set, else the embedded store.

    The embedded store lives in SYNAPSE_HOME (default ~/.synapse); `synapse demo` fills it.

    Exit codes: 0 done, 1 the run failed, 2 bad params, plugin config or configuration.
    """
    if mode not in MODES:
        fail(f'--mode {mode!r} is not supported; choose one of: {", ".join(MODES)}', EXIT_USAGE)
    with reported_errors():
        where = execution(mode, workers, ray_address, resume)
    flags = {'output': '--output'}
    if output is not None:
        flags.update(storage='--output', path='--output', name='--output')
    result = run_with_output(
        plugin,
        action,
        read_params(params),
        output=output,
        overwrite=overwrite,
        zip_output=zip_output,
        log_file=log_file,
        quiet=quiet,
        job_id=job_id,
        debug=debug,
        flags=None if output is None else flags,
        run=where,
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

"""What every command shares: reading params, the runtime context, errors and exit codes."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import orjson
import typer

from synapse_sdk.errors import ParamsError, PluginError, StepError, SynapseError
from synapse_sdk.loggers import BaseLogger, ConsoleLogger, JsonlLogger

EXIT_FAILED = 1
EXIT_USAGE = 2

# Options shared by the commands that run an action.
LogFileOption = Annotated[
    Path | None, typer.Option('--log-file', help='Also write JSONL log events here')
]
QuietOption = Annotated[bool, typer.Option('--quiet', '-q', help='No progress on stderr')]
JobIdOption = Annotated[
    int | None, typer.Option('--job-id', help='Also report progress and logs to this job')
]


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    """One paragraph on stderr, then exit with ``code``."""
    typer.echo(f'Error: {message}', err=True)
    raise typer.Exit(code)


def read_params(value: str) -> dict[str, Any]:
    """``--params``: a JSON object, or ``@file.json``."""
    source = 'params'
    if value.startswith('@'):
        path = Path(value[1:])
        source = str(path)
        try:
            value = path.read_text(encoding='utf-8')
        except OSError as exc:
            fail(f'cannot read params file {path}: {exc.strerror}', EXIT_USAGE)
    try:
        params = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        fail(f'{source} is not valid JSON: {exc}', EXIT_USAGE)
    if not isinstance(params, dict):
        fail(f'{source} must be a JSON object, got {type(params).__name__}', EXIT_USAGE)
    return params


def print_result(result: Any) -> None:
    """The result as JSON on stdout (the only thing a command writes there)."""
    sys.stdout.write(
        orjson.dumps(
            result, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS, default=str
        ).decode()
        + '\n'
    )
    sys.stdout.flush()


class TeeLogger(BaseLogger):
    """Sends every record to several loggers (the console and a JSONL file)."""

    def __init__(self, *loggers: BaseLogger) -> None:
        super().__init__(min_interval=0.0)
        self.loggers = loggers

    def set_progress(self, current: float, total: float | None, category: str | None = None):
        for logger in self.loggers:
            logger.set_progress(current, total, category)

    def set_metrics(self, value: dict[str, Any], category: str) -> None:
        for logger in self.loggers:
            logger.set_metrics(value, category)

    def log_message(self, message: str, level: str = 'info') -> None:
        for logger in self.loggers:
            logger.log_message(message, level)

    def log_event(self, event: str, data: dict[str, Any]) -> None:
        for logger in self.loggers:
            logger.log_event(event, data)

    def flush_progress(self) -> None:
        for logger in self.loggers:
            logger.flush_progress()

    def finish(self) -> None:
        for logger in self.loggers:
            logger.finish()

    @property
    def problems(self) -> list[str]:
        return [line for logger in self.loggers for line in logger.problems]


def make_logger(log_file: Path | None, quiet: bool, *extra: BaseLogger) -> BaseLogger:
    loggers: list[BaseLogger] = list(extra)
    if not quiet:
        loggers.append(ConsoleLogger())
    if log_file is not None:
        loggers.append(JsonlLogger(log_file))
    return TeeLogger(*loggers)


@contextmanager
def reported_errors() -> Iterator[None]:
    """Turn SDK errors into a one-paragraph message and an exit code (2: bad input)."""
    try:
        yield
    except (ParamsError, PluginError) as exc:
        fail(str(exc), EXIT_USAGE)
    except StepError as exc:
        cause = exc.__cause__
        if isinstance(cause, ParamsError | PluginError):
            fail(str(cause), EXIT_USAGE)
        detail = (
            f' ({type(cause).__name__}: {cause})' if cause and str(cause) not in str(exc) else ''
        )
        fail(f'{exc}{detail}')
    except SynapseError as exc:
        fail(str(exc))
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP as steps.Interrupted
        fail(f'{exc or "interrupted"}; nothing was published', getattr(exc, 'exit_code', 130))


def warn_reporting_problems(*loggers: BaseLogger | None) -> None:
    """Tell the user what could not be reported (a full log disk, a job backend that failed);
    the run's outcome stands."""
    for logger in loggers:
        for line in logger.problems if logger is not None else ():
            with contextlib.suppress(OSError):
                typer.echo(f'Warning: {line}', err=True)


def default_client_factory() -> Callable[[], Any]:
    from synapse_sdk.clients import default_client

    return default_client


def env_snapshot() -> dict[str, Any]:
    keys = ('SYNAPSE_HOST', 'SYNAPSE_HOME')
    return {key: os.environ[key] for key in keys if key in os.environ}

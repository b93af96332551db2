"""What every command shares: reading params, the runtime context, errors and exit codes.

Errors reach a person in their own words: a bad field is named by the flag they typed
(``--project``, not ``filter.project``), never by a class (``CocoExportAction``) or a workflow
step (``initialize``); an exception raised in a plugin's code shows the plugin's file and line
(the whole traceback with ``--debug``). Exit codes: 0 done, 1 the run failed, 2 bad input or
configuration (``ParamsError``, ``ConfigError``, ``PluginError``), 130 interrupted.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import sysconfig
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn

import orjson
import typer
from typer.core import TyperOption

from synapse_sdk.errors import ItemExportError, ParamsError, PluginError, StepError, SynapseError
from synapse_sdk.loggers import BaseLogger, ConsoleLogger, JsonlLogger

DEBUG_HINT = '(run with --debug for the full traceback)'
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _flag_type(self: TyperOption, ctx: Any) -> str | None:
    """Help shows a flag as a flag: ``--no-originals``, not ``--no-originals <bool>``."""
    if self.is_flag or self.count:
        return None
    return _option_type(self, ctx)


_option_type = TyperOption.display_type_rich
TyperOption.display_type_rich = _flag_type  # type: ignore[method-assign]

# Options shared by the commands that run an action.
LogFileOption = Annotated[
    Path | None,
    typer.Option(
        '--log-file', metavar='FILE', help='Also write every event, and any failure, as JSON lines'
    ),
]
QuietOption = Annotated[
    bool, typer.Option('--quiet', '-q', help='No progress and no summary on stderr')
]
JobIdOption = Annotated[
    int | None,
    typer.Option('--job-id', metavar='ID', help='Also report progress and logs to this job'),
]
DebugOption = Annotated[
    bool,
    typer.Option('--debug', help='On failure, print the full traceback', envvar='SYNAPSE_DEBUG'),
]

#: What each workflow step does, in words (errors say "while publishing", not "finalize").
STEP_WORDS = {
    'initialize': 'checking the export settings',
    'fetch_results': 'fetching the records',
    'prepare': 'preparing the exporter',
    'convert_and_save': 'converting and saving the items',
    'finalize': 'publishing the export',
}

#: Param paths -> the flag a user typed. ``*`` in a key matches the rest of a path; ``{key}``
#: in the value is replaced by it (``extra_params.*`` -> ``-o {key}=...``). A value may end in
#: ``|`` and a hint, added after the message (``'--storage|list them with ...'``).
FlagMap = Mapping[str, str]


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


# -- errors in the user's words -------------------------------------------------------------


def flag_for(field: str, flags: FlagMap | None) -> str:
    """The flag a user typed for the param path ``field`` (the path itself if none maps)."""
    if not flags:
        return field
    if field in flags:
        return flags[field].split('|', 1)[0]
    best = ''
    for pattern in flags:
        if pattern.endswith('*') and field.startswith(pattern[:-1]) and len(pattern) > len(best):
            best = pattern
    if best:
        return flags[best].split('|', 1)[0].replace('{key}', field[len(best) - 1 :])
    return field


def _hint(field: str, flags: FlagMap | None) -> str:
    value = (flags or {}).get(field, '')
    return f' ({value.split("|", 1)[1]})' if '|' in value else ''


def _clean(message: str) -> str:
    message = re.sub(r'^(Value|Assertion) error, ', '', str(message))
    # a ParamsError raised inside a validator repeats its head and field: drop them
    message = re.sub(r'^Invalid [^:]{1,40}: [\w.\[\]-]{1,60}: ', '', message)
    return message.strip()


_PARAM = re.compile(r'[\w.\[\]*-]+|--?[\w-]+|[A-Z_]+')
_CLASS_NAME = re.compile(r' for [A-Z]\w*(?:Action|Exporter|Writer|Model|Params)\b')


def describe_params_error(exc: ParamsError, flags: FlagMap | None = None) -> str:
    """One paragraph naming every bad field by its flag (``flags``) or param path."""
    if not exc.errors or not all(_PARAM.fullmatch(field) for field, _ in exc.errors):
        return _CLASS_NAME.sub('', str(exc))  # not about params (a file path, ...): as said
    lines = [
        f'{flag_for(field, flags)}: {_clean(msg)}{_hint(field, flags)}' for field, msg in exc.errors
    ]
    if len(lines) == 1:
        return lines[0] if flags else f'invalid params: {lines[0]}'
    head = 'invalid options' if flags else 'invalid params'
    return head + ':\n  ' + '\n  '.join(lines)


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and its causes, outermost first."""
    out: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in out:
        out.append(current)
        if current.__cause__ is not None:
            current = current.__cause__
        elif not current.__suppress_context__:
            current = current.__context__
        else:
            current = None
    return out


_SDK_DIR = str(Path(__file__).resolve().parents[1]) + os.sep
_LIB_DIRS = tuple(
    str(Path(p).resolve()) + os.sep
    for p in {sysconfig.get_paths()[k] for k in ('stdlib', 'platstdlib', 'purelib', 'platlib')}
)


def plugin_frame(exc: BaseException) -> traceback.FrameSummary | None:
    """The frame in plugin code where the innermost foreign error of ``exc`` was raised.

    Prefers code that is neither the SDK nor installed libraries (a plugin folder), then any
    code that is not the SDK or the standard library (a plugin installed as a package).
    ``None`` when the error is the SDK's own.
    """
    foreign = [e for e in _chain(exc) if not isinstance(e, SynapseError)]
    for strict in (True, False):
        for error in reversed(foreign):
            for frame in reversed(traceback.extract_tb(error.__traceback__)):
                path = str(Path(frame.filename).resolve()) + ''
                if frame.filename.startswith('<') or path.startswith(_SDK_DIR):
                    continue
                if strict and path.startswith(_LIB_DIRS):
                    continue
                if not strict and 'site-packages' not in path and path.startswith(_LIB_DIRS):
                    continue
                return frame
    return None


def _display_path(filename: str) -> str:
    try:
        return os.path.relpath(filename)
    except ValueError:  # another drive (Windows)
        return filename


@dataclass
class Failure:
    """How a failure is shown: the message, the exit code and, with ``--debug``, the trace."""

    message: str
    code: int
    traceback: str

    def render(self, debug: bool) -> str:
        if debug and self.traceback:
            message = self.message.replace(f'\n  {DEBUG_HINT}', '')
            return f'{self.traceback.rstrip()}\n\nError: {message}'
        return f'Error: {self.message}'


def explain(exc: BaseException, flags: FlagMap | None = None) -> Failure:
    """The user-facing account of ``exc`` (see the module docstring)."""
    trace = ''.join(traceback.format_exception(exc))
    if isinstance(exc, KeyboardInterrupt):  # Ctrl-C, or SIGTERM/SIGHUP as steps.Interrupted
        code = getattr(exc, 'exit_code', EXIT_INTERRUPTED)
        return Failure(f'{exc or "interrupted"}; nothing was published', code, trace)
    cause = exc.__cause__ if isinstance(exc, StepError) else None
    if isinstance(cause, ParamsError | PluginError):
        exc = cause
    if isinstance(exc, ParamsError):
        return Failure(describe_params_error(exc, flags), EXIT_USAGE, trace)
    if isinstance(exc, PluginError):
        return Failure(str(exc), EXIT_USAGE, trace)
    if isinstance(exc, StepError):
        words = STEP_WORDS.get(exc.step, f'running "{exc.step.replace("_", " ")}"')
        detail = _describe(cause) if cause is not None else str(exc).split(': ', 1)[-1]
        message = f'the export failed while {words}: {detail}'
    elif isinstance(exc, SynapseError):
        message = str(exc)
        inner = [e for e in _chain(exc)[1:] if not isinstance(e, SynapseError)]
        if inner and str(inner[-1]) not in message:
            message += f' ({_describe(inner[-1])})'
    else:
        message = f'the plugin failed: {_describe(exc)}'
    frame = plugin_frame(exc)
    if frame is not None:
        where = f'{_display_path(frame.filename)}:{frame.lineno}'
        message += f'\n  at {where} in {frame.name}'
        if frame.line:
            message += f'\n    {frame.line.strip()}'
        message += f'\n  {DEBUG_HINT}'
    return Failure(message, EXIT_FAILED, trace)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    if (
        isinstance(exc, ItemExportError)
        and exc.item_id is not None
        and not text.startswith(f'item {exc.item_id}')
    ):
        where = f' ({exc.file})' if exc.file else ''
        return f'item {exc.item_id}{where}: {text}'
    if isinstance(exc, SynapseError):
        return _CLASS_NAME.sub('', text)
    return f'{type(exc).__name__}: {text}' if text else type(exc).__name__


@contextmanager
def reported_errors(
    flags: FlagMap | None = None,
    debug: bool = False,
    on_failure: Callable[[BaseException, Failure], None] | None = None,
) -> Iterator[None]:
    """Turn errors into one paragraph on stderr and an exit code (see :func:`explain`).

    ``on_failure`` sees the failure first (to record it in a log file or a job).
    """
    try:
        yield
    except (typer.Exit, typer.Abort, SystemExit):
        raise
    except BaseException as exc:
        if not isinstance(exc, Exception | KeyboardInterrupt):
            raise
        failure = explain(exc, flags)
        if on_failure is not None:
            with suppress(Exception):  # recording a failure must not hide it
                on_failure(exc, failure)
        typer.echo(failure.render(debug or _debug_env()), err=True)
        raise typer.Exit(failure.code) from None


def _debug_env() -> bool:
    return os.environ.get('SYNAPSE_DEBUG', '').strip().lower() in {'1', 'true', 'yes'}


# -- loggers --------------------------------------------------------------------------------


class TeeLogger(BaseLogger):
    """Sends every record to several loggers (the console and a JSONL file)."""

    def __init__(self, *loggers: BaseLogger) -> None:
        super().__init__(min_interval=0.0)
        self.loggers = list(loggers)

    def add(self, logger: BaseLogger) -> None:
        self.loggers.append(logger)

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


def make_logger(log_file: Path | None, quiet: bool, *extra: BaseLogger) -> TeeLogger:
    loggers: list[BaseLogger] = list(extra)
    if not quiet:
        loggers.append(ConsoleLogger())
    if log_file is not None:
        loggers.append(JsonlLogger(log_file))
    return TeeLogger(*loggers)


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

"""Running an action the way ``--mode`` / ``--workers`` / ``--resume`` ask.

:func:`run_action` is what ``synapse plugin run`` and ``synapse export`` call:

- ``local`` with one worker (the default): the action runs here, as ``dispatch`` does;
- ``local`` with ``--workers N``: N worker processes on this machine; ``ray``: Ray tasks on a
  local Ray instance or a cluster (``--ray-address`` / ``RAY_ADDRESS``);
- an export on ``ExportAction`` (every built-in format, every template plugin) runs sharded
  (:mod:`synapse_sdk.plugins.actions.export.shards`): the same files and result as one
  process; ``--resume`` continues an interrupted sharded export;
- any other action (simple mode, its own steps) runs whole, as one task on one worker, with
  the same result and errors, its progress and logs relayed here.

The run reports to the context's logger as one run, whatever the mode.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from synapse_sdk.errors import ParamsError
from synapse_sdk.plugins.action import BaseAction
from synapse_sdk.plugins.executors.backends import Backend, InlineBackend, ProcessBackend
from synapse_sdk.plugins.executors.tasks import ActionRef, ClientSpec, TaskCall

if TYPE_CHECKING:
    from synapse_sdk.plugins.actions.export.export_action import ExportAction

__all__ = ['MODES', 'Execution', 'WholePayload', 'make_backend', 'run_action', 'run_whole']

MODES = ('local', 'ray', 'job')
#: Modules a worker process imports as it starts (while the driver plans the run).
PRELOAD = (
    'synapse_sdk.plugins.actions.export.shards',
    'synapse_sdk.plugins.builtin.formats',
    'synapse_sdk.formats.coco.writer',
    'synapse_sdk.formats.yolo.writer',
    'synapse_sdk.formats.voc.writer',
    'synapse_sdk.formats.csv.writer',
    'synapse_sdk.formats.dm.writer',
)
#: Environment knobs: items per shard, and a test seam that fails shards (see shards.py).
SHARD_SIZE_ENV = 'SYNAPSE_SHARD_SIZE'
SHARD_FAULT_ENV = 'SYNAPSE_SHARD_FAULT'


def _env_int(name: str) -> int | None:
    value = os.environ.get(name, '').strip()
    if not value:
        return None
    try:
        number = int(value)
    except ValueError:
        raise ParamsError(f'{name} must be an integer, got {value!r}') from None
    return number if number > 0 else None


@dataclass
class Execution:
    """Where and how a run goes (the CLI's ``--mode``, ``--workers``, ``--ray-address``,
    ``--resume``). ``shard_size`` (items per shard) defaults to ``$SYNAPSE_SHARD_SIZE``, else
    about four shards per worker."""

    mode: str = 'local'
    workers: int = 1
    ray_address: str | None = None
    resume: bool = False
    shard_size: int | None = field(default_factory=lambda: _env_int(SHARD_SIZE_ENV))
    attempts: int = 3

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ParamsError(
                'Invalid mode', [('--mode', f'{self.mode!r}; allowed: {", ".join(MODES)}')]
            )
        if (
            isinstance(self.workers, bool)
            or not isinstance(self.workers, int)
            or (self.workers < 1)
        ):
            raise ParamsError('Invalid workers', [('--workers', f'{self.workers!r}; at least 1')])
        if self.ray_address is not None and self.mode == 'local':
            raise ParamsError('Invalid mode', [('--ray-address', 'needs --mode ray or --mode job')])

    @property
    def here(self) -> bool:
        """Whether the action simply runs in this process (no workers, nothing to resume)."""
        return self.mode == 'local' and self.workers <= 1 and not self.resume


def make_backend(execution: Execution, secrets: dict[str, str]) -> Backend:
    """The backend of ``execution`` (``job`` is submitted elsewhere, see job.py)."""
    if execution.mode == 'ray':
        from synapse_sdk.plugins.executors.ray_backend import RayBackend

        return RayBackend(
            execution.workers, address=execution.ray_address, env=secrets, preload=PRELOAD
        )
    if execution.workers <= 1:
        return InlineBackend()
    return ProcessBackend(execution.workers, env=secrets, preload=PRELOAD)


def _plugin_ref(plugin: str | Path | None) -> str | None:
    """A plugin reference a worker can load: a registered code, or an absolute folder."""
    path = Path.cwd() if plugin is None else Path(plugin)
    if (path / 'config.yaml').is_file():
        return str(path.resolve())
    return str(plugin) if plugin is not None else None


def run_action(
    action_cls: type[BaseAction[Any]],
    params: dict[str, Any],
    ctx: Any,
    execution: Execution | None = None,
    *,
    plugin: str | Path | None = None,
    action: str | None = None,
    backend: Backend | None = None,
) -> Any:
    """Run ``action_cls`` with ``params`` as ``execution`` says; returns the action's result.

    ``plugin`` / ``action`` are how the action was loaded (``synapse plugin run --plugin``),
    so workers load it the same way; without them workers import the class by name.
    ``backend`` runs the tasks on workers the caller keeps (and closes) across runs; by
    default the run starts its own from ``execution`` and closes them at the end.
    """
    execution = execution or Execution()
    if execution.here and backend is None:
        return action_cls.dispatch(params, ctx)
    if execution.mode == 'job':
        raise ParamsError('Invalid mode', [('--mode', 'job runs are submitted by the CLI')])
    validated = action_cls.validate_params(params)
    try:
        spec, secrets = ClientSpec.of(ctx.client)
    except TypeError as exc:
        raise ParamsError('Cannot run on workers', [('--workers', str(exc))]) from None
    ref = ActionRef.of(action_cls, _plugin_ref(plugin) if action is not None else None, action)
    from synapse_sdk.plugins.actions.export.shards import (
        ShardRun,
        exporter_not_shardable,
        not_shardable,
        register_sharded_steps,
    )

    reason = not_shardable(action_cls)
    instance: ExportAction | None = None
    if reason is None:
        instance = cast('ExportAction', action_cls(validated, ctx))
        reason = exporter_not_shardable(instance.entrypoint)
    if reason is not None and execution.resume:
        raise ParamsError(
            'Cannot resume', [('--resume', f'only sharded exports resume, and {reason}')]
        )
    own = backend is None
    if backend is None:
        release = getattr(ctx.client, 'release_connections', None)
        if execution.mode == 'local' and callable(release):
            release()  # the embedded store reopens on use; its workers may then be forked
        if execution.mode == 'ray':
            from synapse_sdk.plugins.executors.ray_backend import start_message

            message = start_message(execution.workers, execution.ray_address)
            if message is not None:
                ctx.logger.log_message(message, 'info')
        backend = make_backend(execution, secrets)
    try:
        if instance is None or reason is not None:
            ctx.logger.log_message(f'Running as one task ({reason})', 'info')
            return _run_whole(backend, ref, params, spec, ctx)
        sharded = instance
        sharded._shard_run = ShardRun(  # type: ignore[attr-defined]
            backend=backend,
            action_ref=ref,
            client=spec,
            resume=execution.resume,
            shard_size=execution.shard_size,
            attempts=execution.attempts,
            fault=os.environ.get(SHARD_FAULT_ENV) or None,
        )
        sharded.setup_steps = (  # type: ignore[method-assign]
            lambda registry: register_sharded_steps(sharded, registry)
        )
        return sharded.run()
    finally:
        if own:
            backend.close()


# -- actions that run whole -------------------------------------------------------------------
@dataclass
class WholePayload:
    """An action run as one task: how to load it, its params, its backend and context."""

    action: ActionRef
    params: dict[str, Any]
    client: ClientSpec
    env: dict[str, Any]
    job_id: str | None
    events: bool


def run_whole(payload: WholePayload, emit: Any) -> Any:
    """Run an action in a worker, reporting through ``emit``; return its result."""
    from synapse_sdk.plugins.context import RuntimeContext
    from synapse_sdk.plugins.executors.events import forwarding_logger

    logger = forwarding_logger(emit, payload.events)
    client = payload.client.build()
    try:
        ctx = RuntimeContext(
            logger=logger, client=client, env=dict(payload.env), job_id=payload.job_id
        )
        return payload.action.load().dispatch(payload.params, ctx)
    finally:
        logger.finish()
        client.close()


def _run_whole(
    backend: Backend, ref: ActionRef, params: dict[str, Any], spec: ClientSpec, ctx: Any
) -> Any:
    from synapse_sdk.plugins.executors.events import RunReporter, wants_events
    from synapse_sdk.plugins.executors.scheduler import TaskFailed, run_tasks

    reporter = RunReporter(ctx.logger)
    payload = WholePayload(ref, dict(params), spec, dict(ctx.env), ctx.job_id,
                           wants_events(ctx.logger))  # fmt: skip
    task = TaskCall('synapse_sdk.plugins.executors.run:run_whole', payload)
    try:
        results = run_tasks(
            backend,
            {0: task},
            on_events=reporter.feed,
            attempts=1,
            describe=lambda _: f'{ref.qualname} on a {backend.name} worker',
        )
    except TaskFailed as exc:
        cause = exc.failure.exception
        if cause is not None and not exc.failure.crash:
            raise cause from None  # the action's own error, as a local run raises it
        raise
    return results[0]

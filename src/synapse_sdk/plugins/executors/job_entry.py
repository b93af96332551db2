"""The entrypoint of a ``--mode job`` run on the Ray cluster (see :mod:`.job`).

Reads the run's spec from ``$SYNAPSE_JOB_SPEC``, runs the action with ``--mode ray`` on the
job's cluster, logs progress on stderr (the job's log) and prints the result, or the error with
its exit code, on one marked stdout line for the submitting CLI.
"""

from __future__ import annotations

import os
import sys
import traceback

import orjson

from synapse_sdk.errors import ParamsError, PluginError, StepError
from synapse_sdk.plugins.executors.job import ERROR_MARKER, RESULT_MARKER, SPEC_ENV


def main() -> int:
    from synapse_sdk.cli.common import env_snapshot
    from synapse_sdk.clients import default_client
    from synapse_sdk.loggers import ConsoleLogger
    from synapse_sdk.plugins.context import RuntimeContext
    from synapse_sdk.plugins.discovery import load_plugin
    from synapse_sdk.plugins.executors.run import Execution, run_action

    try:
        spec = orjson.loads(os.environ[SPEC_ENV])
        plugin, action = spec['plugin'], spec['action']
        action_cls = load_plugin(plugin).get_action(action)
        logger = ConsoleLogger(min_interval=2.0)
        client = default_client()
        ctx = RuntimeContext(logger=logger, client=client, env=env_snapshot())
        execution = Execution(mode='ray', workers=int(spec.get('workers') or 1),
                              resume=bool(spec.get('resume')))  # fmt: skip
        try:
            result = run_action(
                action_cls, spec['params'], ctx, execution, plugin=plugin, action=action
            )
        finally:
            logger.finish()
            client.close()
    except BaseException as exc:
        code = 2 if _bad_input(exc) else 1
        traceback.print_exc(file=sys.stderr)
        message = f'{type(exc).__name__}: {exc}' if code == 1 else str(_cause(exc))
        print(ERROR_MARKER + orjson.dumps({'code': code, 'message': message}).decode(), flush=True)
        return code
    print(RESULT_MARKER + orjson.dumps(result, default=str).decode(), flush=True)
    return 0


def _cause(exc: BaseException) -> BaseException:
    if isinstance(exc, StepError) and isinstance(exc.__cause__, ParamsError | PluginError):
        return exc.__cause__
    return exc


def _bad_input(exc: BaseException) -> bool:
    return isinstance(_cause(exc), ParamsError | PluginError)


if __name__ == '__main__':
    sys.exit(main())

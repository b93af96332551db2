"""``--mode job``: the run submitted to a Ray cluster through the Ray Jobs API.

The CLI checks the params here first (bad params exit 2 before anything is submitted), then
submits ``python -m synapse_sdk.plugins.executors.job_entry`` with the run's spec and backend
settings in the job's runtime environment (``env_vars``; the token is never in the entrypoint,
the spec or a line of ours), streams the job's log lines to stderr as they come, and returns the
result the job printed, so the command prints the same JSON a local run prints. Inside the job
the run itself uses Ray (``--mode ray`` on the job's cluster) with ``--workers`` tasks.

The Jobs API has no channel for secrets: Ray keeps a job's runtime environment, values and all,
in the job's record (the job list shows it: on a cluster with token authentication only to
holders of the cluster's token) and its runtime-env agent writes it to the session logs on the
head's disk. Whoever can list the cluster's jobs or read those logs can read a token sent this
way (``--mode ray`` does not send it so; see ray_backend.py).

A plugin folder is shipped as the job's ``working_dir``; built-in plugins and installed ones
are loaded by code. ``SYNAPSE_JOB_PYTHON`` names the cluster's interpreter (default ``python``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from synapse_sdk.errors import ExportError, ParamsError
from synapse_sdk.plugins.executors.ray_backend import require_ray, use_ray_token

__all__ = ['ERROR_MARKER', 'RESULT_MARKER', 'SPEC_ENV', 'submit_job']

#: The job prints its result (or error) on one stdout line starting with these.
RESULT_MARKER = '@@synapse-result@@ '
ERROR_MARKER = '@@synapse-error@@ '
#: The run's spec (plugin, action, params, workers), as JSON in the job's environment.
SPEC_ENV = 'SYNAPSE_JOB_SPEC'
#: Environment passed on to the job: backend settings (secrets included) and run knobs.
PASSED_ENV = (
    'SYNAPSE_HOST',
    'SYNAPSE_ACCESS_TOKEN',
    'SYNAPSE_TENANT',
    'SYNAPSE_HOME',
    'SYNAPSE_SHARD_SIZE',
)
TERMINAL = ('SUCCEEDED', 'FAILED', 'STOPPED')


def submit_job(
    plugin: str | None,
    action: str,
    params: dict[str, Any],
    *,
    address: str | None,
    workers: int,
    resume: bool = False,
    echo: Any = None,
    timeout: float | None = None,
) -> Any:
    """Submit the run as a Ray job, relay its logs to ``echo`` (a callable taking a line; None:
    stderr), and return its result; raise what the run raised (``ParamsError`` for exit 2)."""
    require_ray('job')
    from ray.job_submission import JobSubmissionClient

    address = address or os.environ.get('RAY_ADDRESS')
    if not address or not address.startswith(('http://', 'https://')):
        raise ParamsError(
            'Invalid Ray address',
            [('--ray-address', f'{address!r}: --mode job needs the Ray dashboard address, e.g. '
              'http://127.0.0.1:8265')],
        )  # fmt: skip
    env = {key: os.environ[key] for key in PASSED_ENV if os.environ.get(key)}
    runtime_env: dict[str, Any] = {}
    ref = plugin
    if plugin is not None and (Path(plugin) / 'config.yaml').is_file():
        runtime_env['working_dir'] = str(Path(plugin).resolve())
        ref = '.'
    elif plugin is None and (Path.cwd() / 'config.yaml').is_file():
        runtime_env['working_dir'] = str(Path.cwd())
        ref = '.'
    spec = {'plugin': ref, 'action': action, 'params': params, 'workers': workers,
            'resume': resume}  # fmt: skip
    env[SPEC_ENV] = orjson.dumps(spec).decode()
    runtime_env['env_vars'] = env
    python = os.environ.get('SYNAPSE_JOB_PYTHON', 'python')
    logging.getLogger('ray.dashboard.modules.job.sdk').setLevel(logging.WARNING)
    use_ray_token()
    try:
        client = JobSubmissionClient(address)
        # A head that has just started answers "No available agent" until its job agent is up:
        # that is asked again for a bounded while; every other error is final.
        deadline = time.monotonic() + float(os.environ.get('SYNAPSE_JOB_AGENT_WAIT', '60'))
        while True:
            try:
                job_id = client.submit_job(
                    entrypoint=f'{python} -m synapse_sdk.plugins.executors.job_entry',
                    runtime_env=runtime_env,
                    metadata={'synapse_action': action, 'synapse_plugin': str(plugin or '.')},
                )
                break
            except RuntimeError as exc:
                if 'No available agent' not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(1.0)
    except Exception as exc:
        raise ParamsError(
            'Could not submit the job', [('--ray-address', f'{address}: {exc}')]
        ) from exc
    write = echo or (lambda line: print(line, file=sys.stderr, flush=True))
    write(f'Submitted Ray job {job_id} to {address}')
    markers: dict[str, str] = {}
    try:
        asyncio.run(_relay(client, job_id, write, markers))
        status = _wait(client, job_id, timeout)
    except BaseException:
        with _quiet():
            client.stop_job(job_id)
        raise
    return _outcome(job_id, status, markers, client)


async def _relay(client: Any, job_id: str, write: Any, markers: dict[str, str]) -> None:
    """Relay the job's log lines as they come (result and error lines are kept, not shown)."""
    pending = ''
    async for chunk in client.tail_job_logs(job_id):
        pending += chunk
        *lines, pending = pending.split('\n')
        for line in lines:
            _line(line, write, markers)
    if pending:
        _line(pending, write, markers)


def _line(line: str, write: Any, markers: dict[str, str]) -> None:
    for marker in (RESULT_MARKER, ERROR_MARKER):
        at = line.find(marker)
        if at >= 0:
            markers[marker] = line[at + len(marker) :]
            return
    if line.strip():
        write(line)


def _wait(client: Any, job_id: str, timeout: float | None) -> str:
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        status = str(client.get_job_status(job_id))
        status = status.rsplit('.', 1)[-1]
        if status in TERMINAL:
            return status
        if deadline is not None and time.monotonic() > deadline:
            raise ExportError(f'Ray job {job_id} did not finish in {timeout:g} s')
        time.sleep(0.5)


def _outcome(job_id: str, status: str, markers: dict[str, str], client: Any) -> Any:
    if status == 'SUCCEEDED' and RESULT_MARKER in markers:
        return orjson.loads(markers[RESULT_MARKER])
    if ERROR_MARKER in markers:
        error = orjson.loads(markers[ERROR_MARKER])
        message = f'{error.get("message")} (Ray job {job_id})'
        if error.get('code') == 2:
            raise ParamsError(message)
        raise ExportError(message)
    detail = ''
    with _quiet():
        detail = str(client.get_job_info(job_id).message or '')
    raise ExportError(
        f'Ray job {job_id} ended {status} without a result{": " + detail if detail else ""}'
    )


class _quiet:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return True

"""``--mode job``: the export submitted to a real Ray head (``ray start --head`` on 127.0.0.1,
dashboard and Jobs API included) through the Jobs API; the CLI streams the job's logs and prints
the same result as a local run, and the files are the local run's. Bad input found inside the
job exits 2 like a local run.

``--mode ray`` from the command line as a user runs it: joining that head at ``--ray-address``
(or ``RAY_ADDRESS``), or, without an address, starting a local Ray of its own and stopping it
at the end; each says so before it waits, and writes the local run's files."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import httpx
import orjson
import pytest

from synapse_sdk.server.app import serve_in_thread

from .helpers import IMAGES, ray_daemons, seed_home
from .test_failures import SYNAPSE, assert_same_tree, cli_env, run_cli

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group('ray')]  # see test_ray.py

BIN = Path(sys.executable).parent


def free_ports(n: int) -> list[int]:
    """``n`` distinct free ports on 127.0.0.1 (all held open while choosing, so none repeats)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for sock in socks:
            sock.bind(('127.0.0.1', 0))
        return [int(sock.getsockname()[1]) for sock in socks]


#: The test head's auth token: the CLI finds it in RAY_AUTH_TOKEN, as a user would give it.
TOKEN = secrets.token_hex(32)


class RayHead(NamedTuple):
    dashboard: str  # http://127.0.0.1:PORT (the Jobs API)
    gcs: str  # 127.0.0.1:PORT (what a driver joins)


@pytest.fixture(scope='module')
def ray_head() -> Iterator[RayHead]:
    """A Ray head of our own (its own temp dir and ports), stopped by its process group."""
    temp = tempfile.mkdtemp(prefix='rayh-', dir='/tmp')
    # Every port of our own: Ray's fixed defaults (the job agent's 52365, the client server's
    # 10001) may be taken by another Ray on this machine, and the head then has no job agent.
    names = ('dashboard-agent-listen-port', 'dashboard-agent-grpc-port', 'ray-client-server-port',
             'runtime-env-agent-port', 'metrics-export-port', 'node-manager-port',
             'object-manager-port')  # fmt: skip
    gcs, dashboard, *others = free_ports(2 + len(names))
    ports = dict(zip(names, others, strict=True))
    log = (Path(temp) / 'head.log').open('wb')  # why the head exited, if it does
    env = {**os.environ, 'PATH': f'{BIN}{os.pathsep}{os.environ.get("PATH", "")}',
           'RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER': '0'}  # fmt: skip
    env.pop('RAY_ADDRESS', None)
    # Token authentication on, with a token of its own (Ray's default for `ray start --head`
    # when ~/.ray/auth_token exists, which it may or may not on a given machine).
    env.update(RAY_AUTH_MODE='token', RAY_AUTH_TOKEN=TOKEN)
    head = subprocess.Popen(
        [str(BIN / 'ray'), 'start', '--head', '--block', f'--port={gcs}', '--num-cpus=2',
         '--include-dashboard=true', '--dashboard-host=127.0.0.1',
         f'--dashboard-port={dashboard}', f'--temp-dir={temp}', '--disable-usage-stats',
         *(f'--{name}={port}' for name, port in ports.items())],
        env=env, start_new_session=True, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f'http://127.0.0.1:{dashboard}'
    try:
        deadline = time.monotonic() + 120
        while True:
            if head.poll() is not None:
                tail = (Path(temp) / 'head.log').read_text(errors='replace')[-3000:]
                pytest.fail(f'ray start --head exited with {head.returncode}:\n{tail}')
            try:
                if httpx.get(f'{url}/api/version', timeout=2).status_code < 500:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, 'the Ray dashboard did not come up'
            time.sleep(0.5)
        yield RayHead(url, f'127.0.0.1:{gcs}')
    finally:
        # SIGTERM to the group stops the head's servers, but `ray start --block` itself (and
        # the autoscaler monitor) outlive it by far more than the grace we give them here.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            head.wait(timeout=2)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGKILL)  # whatever of the head's group is left
        head.wait(timeout=10)
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / 'home'
    seed_home(home)
    return home


def job_env(home: Path, **extra: str) -> dict[str, str]:
    """The CLI's environment: the head's token at hand, ``RAY_AUTH_MODE`` not set (the CLI
    sends the token to the address it is given)."""
    return cli_env(home, PATH=f'{BIN}{os.pathsep}{os.environ.get("PATH", "")}',
                   RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER='0', RAY_AUTH_TOKEN=TOKEN,
                   **extra)  # fmt: skip


EXPORT = ('export', 'coco', '--project', '1', '--split', 'train=0.7,val=0.3')


def test_a_job_submitted_to_a_ray_head_prints_the_local_result(ray_head, home):
    env = job_env(home)
    job = run_cli(*EXPORT, '--name', 'via-job', '--mode', 'job',
                  '--ray-address', ray_head.dashboard, '--workers', '2', env=env,
                  timeout=300)  # fmt: skip
    assert job.returncode == 0, job.stderr
    assert 'Submitted Ray job ' in job.stderr
    assert f'{IMAGES} task record(s) to export' in job.stderr  # the job's own log
    local = run_cli(*EXPORT, '--name', 'local', env=env)
    assert local.returncode == 0, local.stderr
    a, b = orjson.loads(local.stdout), orjson.loads(job.stdout)
    assert {k: v for k, v in a.items() if k != 'output_path'} == {
        k: v for k, v in b.items() if k != 'output_path'
    }
    assert_same_tree(Path(a['output_path']), Path(b['output_path']))


def test_bad_input_found_in_the_job_exits_2(ray_head, home):
    job = run_cli(*EXPORT, '--name', 'bad', '--filter', 'stauts=approved', '--mode', 'job',
                  '--ray-address', ray_head.dashboard, env=job_env(home), timeout=300)  # fmt: skip
    assert job.returncode == 2, job.stderr
    assert 'stauts' in job.stderr and job.stdout == ''


def test_job_mode_needs_a_dashboard_address(home):
    bad = run_cli(*EXPORT, '--name', 'x', '--mode', 'job', '--ray-address', '127.0.0.1:6379',
                  env=job_env(home))  # fmt: skip
    assert bad.returncode == 2
    assert 'http://' in bad.stderr


def test_ray_modes_without_ray_say_how_to_install_it(home, tmp_path):
    """A Python without Ray: ``ray`` made unimportable for the CLI process."""
    blocker = tmp_path / 'noray'
    blocker.mkdir()
    (blocker / 'ray.py').write_text("raise ImportError('No module named ray')\n")
    env = {**cli_env(home), 'PYTHONPATH': str(blocker)}
    for mode in ('ray', 'job'):
        args = ['--ray-address', 'http://127.0.0.1:1'] if mode == 'job' else []
        out = subprocess.run([SYNAPSE, *EXPORT, '--name', 'x', '--mode', mode, *args],
                             env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
        assert out.returncode == 2, out.stderr
        assert "pip install 'synapse-sdk[ray]'" in out.stderr
        assert f'--mode {mode}' in out.stderr


def assert_same_result(local: subprocess.CompletedProcess, other: subprocess.CompletedProcess):
    a, b = orjson.loads(local.stdout), orjson.loads(other.stdout)
    assert {k: v for k, v in a.items() if k != 'output_path'} == {
        k: v for k, v in b.items() if k != 'output_path'
    }
    assert_same_tree(Path(a['output_path']), Path(b['output_path']))


@pytest.mark.parametrize('given', ['flag', 'env'])
def test_mode_ray_joins_the_cluster_at_its_address(ray_head, home, given):
    """The driver joins the head: it is listed among the head's jobs (without the token the
    head refuses it)."""
    env = job_env(home)
    args = ['--ray-address', ray_head.gcs] if given == 'flag' else []
    if given == 'env':
        env['RAY_ADDRESS'] = ray_head.gcs
    ray = run_cli(*EXPORT, '--name', f'via-ray-{given}', '--mode', 'ray', '--workers', '2',
                  *args, env=env, timeout=300)  # fmt: skip
    assert ray.returncode == 0, ray.stderr
    assert f'Joining the Ray cluster at {ray_head.gcs}' in ray.stderr
    assert 'Token authentication is enabled' not in ray.stderr  # Ray's notice, not shown
    auth = {'Authorization': f'Bearer {TOKEN}'}
    listed = httpx.get(f'{ray_head.dashboard}/api/jobs/', headers=auth, timeout=30)
    assert listed.status_code == 200, listed.text
    jobs = listed.json()
    drivers = [
        j for j in jobs if j.get('type') == 'DRIVER' and 'synapse' in j.get('entrypoint', '')
    ]
    assert drivers, jobs
    local = run_cli(*EXPORT, '--name', f'local-{given}', env=job_env(home))
    assert local.returncode == 0, local.stderr
    assert_same_result(local, ray)


@pytest.mark.parametrize('scheme', ['', 'ray://user:secret@'])
def test_mode_ray_at_an_address_where_nothing_answers_exits_2_at_once(home, scheme):
    """Ray alone would try for minutes; credentials in the address are not shown."""
    port = free_ports(1)[0]
    bad = run_cli(*EXPORT, '--name', 'nowhere', '--mode', 'ray', '--ray-address',
                  f'{scheme}127.0.0.1:{port}', env=job_env(home))  # fmt: skip
    assert bad.returncode == 2, bad.stderr
    shown = f'{scheme.split("user")[0]}127.0.0.1:{port}'
    assert f'Joining the Ray cluster at {shown}' in bad.stderr
    assert f'--ray-address: {shown}: nothing answers at 127.0.0.1:{port}' in bad.stderr
    assert 'ray start --head' in bad.stderr and bad.stdout == ''
    assert 'secret' not in bad.stderr


def test_mode_ray_with_a_malformed_address_exits_2_naming_it(home):
    bad = run_cli(*EXPORT, '--name', 'nowhere', '--mode', 'ray', '--ray-address', 'headnode',
                  env=job_env(home))  # fmt: skip
    assert bad.returncode == 2, bad.stderr
    assert '--ray-address: headnode: ' in bad.stderr and bad.stdout == ''
    assert 'token' not in bad.stderr  # nothing answered: no token to blame


def test_mode_ray_without_an_address_starts_its_own_ray_and_keeps_the_token_to_the_workers(
    home,
):
    """No address: the run says it starts a local Ray, starts it, and shuts it down at the end.
    Its shards fetch over HTTP from a server with a token: the workers get it, and it is
    neither on screen nor in anything the Ray session wrote (its logs, the runtime
    environments it recorded)."""
    token = f'sekret-{secrets.token_hex(8)}'
    started = time.time()
    before = ray_daemons()
    with serve_in_thread(home, token=token) as url:
        env = job_env(home, SYNAPSE_HOST=url, SYNAPSE_ACCESS_TOKEN=token)
        ray = run_cli(*EXPORT, '--name', 'http-ray', '--mode', 'ray', '--workers', '2', env=env,
                      timeout=300)  # fmt: skip
        deadline = time.monotonic() + 30  # its processes end as the run shuts Ray down
        while (left := ray_daemons() - before) and time.monotonic() < deadline:
            time.sleep(0.2)
        local = run_cli(*EXPORT, '--name', 'http-local', env=env)
    assert ray.returncode == 0, ray.stderr
    assert 'Starting a local Ray instance with 2 CPU(s)' in ray.stderr
    assert 'Token authentication is enabled' not in ray.stderr
    assert not left, f'Ray processes left running: {left}'
    assert local.returncode == 0, local.stderr
    assert_same_result(local, ray)
    assert token not in ray.stdout + ray.stderr
    sessions = [p for p in Path(tempfile.gettempdir(), 'ray').glob('session_2*')
                if p.stat().st_mtime >= started]  # fmt: skip
    assert sessions, 'the run started no Ray session of its own'
    needle = token.encode()
    for session in sessions:
        for path in session.rglob('*'):
            if path.is_file() and not path.is_symlink() and path.stat().st_size < 50_000_000:
                assert needle not in path.read_bytes(), path

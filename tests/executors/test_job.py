"""``--mode job``: the export submitted to a real Ray head (``ray start --head`` on 127.0.0.1,
dashboard and Jobs API included) through the Jobs API; the CLI streams the job's logs and prints
the same result as a local run, and the files are the local run's. Bad input found inside the
job exits 2 like a local run."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from .helpers import IMAGES, seed_home
from .test_failures import SYNAPSE, assert_same_tree, cli_env, run_cli

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent


def free_ports(n: int) -> list[int]:
    """``n`` distinct free ports on 127.0.0.1 (all held open while choosing, so none repeats)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for sock in socks:
            sock.bind(('127.0.0.1', 0))
        return [int(sock.getsockname()[1]) for sock in socks]


@pytest.fixture(scope='module')
def ray_head() -> Iterator[str]:
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
        yield url
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


def job_env(home: Path) -> dict[str, str]:
    return cli_env(home, PATH=f'{BIN}{os.pathsep}{os.environ.get("PATH", "")}',
                   RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER='0')  # fmt: skip


EXPORT = ('export', 'coco', '--project', '1', '--split', 'train=0.7,val=0.3')


def test_a_job_submitted_to_a_ray_head_prints_the_local_result(ray_head, home):
    env = job_env(home)
    job = run_cli(*EXPORT, '--name', 'via-job', '--mode', 'job', '--ray-address', ray_head,
                  '--workers', '2', env=env, timeout=300)  # fmt: skip
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
                  '--ray-address', ray_head, env=job_env(home), timeout=300)  # fmt: skip
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

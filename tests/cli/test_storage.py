"""``synapse storage add | list | clean`` as a user runs them: real processes, real files,
a real S3 server (moto) on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from click.testing import Result
from typer.testing import CliRunner

from synapse_sdk.cli.main import app
from synapse_sdk.server.store import Store

SYNAPSE = [sys.executable, '-m', 'synapse_sdk.cli.main']


def invoke(*args: str) -> Result:
    """In process, for the many bad-input cases (the end-to-end ones run a real process)."""
    try:
        runner = CliRunner(mix_stderr=False)  # type: ignore[call-arg]
    except TypeError:  # click >= 8.2 keeps stderr apart already
        runner = CliRunner()
    return runner.invoke(app, list(args))


def synapse(*args: str, home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, 'SYNAPSE_HOME': str(home), **env}
    full.pop('SYNAPSE_HOST', None)
    return subprocess.run([*SYNAPSE, *args], env=full, capture_output=True, text=True, timeout=300)


def test_add_a_folder_then_export_to_it(synapse_home: Path, tmp_path: Path) -> None:
    target = tmp_path / 'my exports'
    target.mkdir()
    added = synapse('storage', 'add', 'team share', '--path', str(target), home=synapse_home)
    assert added.returncode == 0, added.stderr
    row = orjson.loads(added.stdout)
    assert row == {
        'id': row['id'],
        'name': 'team share',
        'provider': 'file_system',
        'location': str(target),
    }
    assert f'--storage {row["id"]}' in added.stderr

    done = synapse('export', 'yolo', '--project', '1', '--storage', str(row['id']),
                   '--path', 'runs', '--name', 'first', '-q', home=synapse_home)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert orjson.loads(done.stdout)['output_path'] == str(target / 'runs' / 'first')

    listed = synapse('storage', 'list', home=synapse_home)
    assert listed.returncode == 0, listed.stderr
    rows = orjson.loads(listed.stdout)
    assert [r['name'] for r in rows] == ['local storage', 'team share']
    assert rows[1] == row
    assert 'team share' in listed.stderr  # the human table


@pytest.mark.parametrize(
    ('args', 'needle'),
    [
        (['x', '--path', 'relative/dir'], '--path must be an absolute path'),
        (['x', '--path', '/no/such/dir/here'], 'does not exist; create it first'),
        (['x', '--path', '/etc/hostname'], 'is not a directory'),
        (['x'], 'give exactly one of --path DIR'),
        (['x', '--path', '/tmp', '--s3-bucket', 'b'], 'give exactly one of --path DIR'),
        (['x', '--path', '/tmp', '--endpoint', 'http://h'], '--endpoint only apply to'),
        (['  ', '--path', '/tmp'], 'NAME must not be empty'),
        (['local storage', '--path', '/tmp'], "a storage named 'local storage' already exists"),
        (['LOCAL STORAGE', '--path', '/tmp'], 'already exists (id 1)'),
        (['x', '--s3-bucket', 'b', '--provider', 'gcs'], '--provider must be s3 or minio'),
        (
            [
                'x',
                '--s3-bucket',
                'b',
                '--endpoint',
                'ftp://h',
                '--no-check',
                '--access-key',
                'k',
                '--secret-key',
                's',
            ],
            'must start with http:// or https://',
        ),
        (['x', '--s3-bucket', 'b', '--provider', 'minio', '--no-check'], 'is missing'),
    ],
)
def test_add_refuses_bad_input_with_exit_2(
    synapse_home: Path, args: list[str], needle: str
) -> None:
    done = invoke('storage', 'add', *args)
    assert done.exit_code == 2, done.stderr
    assert needle in done.stderr
    with Store(synapse_home) as store:
        assert len(store.list_storages()) == 1  # nothing was added


HOLD = r"""
import sys, time
from synapse_sdk.storage import open_storage
loc = open_storage({"id": 1, "provider": "file_system", "configuration": {"location": sys.argv[1]}})
staging = loc.staging_dir(sys.argv[2], sys.argv[3])
(staging / "part.json").write_text("[")
print(staging, flush=True)
time.sleep(600)
"""


def hold(root: Path, rel: str, name: str) -> tuple[subprocess.Popen[str], Path]:
    proc = subprocess.Popen(
        [sys.executable, '-c', HOLD, str(root), rel, name], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    return proc, Path(proc.stdout.readline().strip())


def test_clean_removes_dead_runs_and_keeps_live_ones(synapse_home: Path) -> None:
    root = synapse_home / 'storage'
    live, live_dir = hold(root, 'exports', 'running')
    dead, dead_dir = hold(root, 'exports', 'killed')
    elsewhere, elsewhere_dir = hold(root, 'exports/2024', 'killed-too')
    try:
        for proc in (dead, elsewhere):
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        old = root / '.synapse-staging-legacy'  # no marker (an older SDK)
        old.mkdir(parents=True)
        stamp = time.time() - 3 * 86400
        os.utime(old, (stamp, stamp))

        dry = synapse('storage', 'clean', '--dry-run', home=synapse_home)
        assert dry.returncode == 0, dry.stderr
        report = orjson.loads(dry.stdout)
        assert report['dry_run'] is True
        assert [r['where'] for r in report['removed']] == [str(dead_dir)]
        assert f'Would remove {dead_dir} (dead, pid {dead.pid}' in dry.stderr
        assert dead_dir.is_dir()

        done = synapse('storage', 'clean', '--storage', '1', home=synapse_home)
        assert done.returncode == 0, done.stderr
        report = orjson.loads(done.stdout)
        assert [(r['where'], r['action']) for r in report['removed']] == [
            (str(dead_dir), 'removed')
        ]
        assert sorted((r['where'], r['state']) for r in report['kept']) == sorted(
            [(str(live_dir), 'alive'), (str(old), 'unknown')]
        )
        assert 'kept 2 (1 of a running export, the others: use --older-than)' in done.stderr
        assert not dead_dir.exists() and live_dir.is_dir() and old.is_dir()

        aged = synapse('storage', 'clean', '--older-than', '1d', home=synapse_home)
        assert aged.returncode == 0, aged.stderr
        assert [r['where'] for r in orjson.loads(aged.stdout)['removed']] == [str(old)]
        assert not old.exists() and live_dir.is_dir()  # a running export is never touched

        # an export folder other than the default one is looked in when named
        assert elsewhere_dir.is_dir()
        named = synapse('storage', 'clean', '--path', 'exports/2024', home=synapse_home)
        assert named.returncode == 0, named.stderr
        assert [r['where'] for r in orjson.loads(named.stdout)['removed']] == [str(elsewhere_dir)]
        assert not elsewhere_dir.exists()
    finally:
        live.kill()
        live.wait(timeout=30)


@pytest.mark.parametrize(
    ('args', 'needle'),
    [
        (['--older-than', 'soon'], '--older-than takes a duration like 30m'),
        (['--storage', '99'], '--storage: no storage with id 99'),
        (['--path', '../up'], "'..' segments are not allowed"),
    ],
)
def test_clean_refuses_bad_input_with_exit_2(
    synapse_home: Path, args: list[str], needle: str
) -> None:
    done = invoke('storage', 'clean', *args)
    assert done.exit_code == 2, done.stderr
    assert needle in done.stderr

"""Object storages: racing exports never share a name; killed publishes are cleaned up.

Against a real S3-compatible server (moto) on 127.0.0.1, with real processes racing and a real
``kill -9`` in the middle of the server-side copy.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest

from synapse_sdk.storage import ObjectStorage, open_storage
from synapse_sdk.storage.staging import CLAIM_PREFIX, Owner

from .conftest import SECRET_KEY

pytest.importorskip('s3fs')

RACE = r"""
import json, sys
from synapse_sdk.storage import open_storage
record, who = json.loads(sys.argv[1]), sys.argv[2]
loc = open_storage(record)
staging = loc.staging_dir("race", "same")
for i in range(12):
    (staging / f"part-{i:02d}.txt").write_text(who)
print("ready", flush=True)
sys.stdin.readline()  # the parent's go, once every writer is ready
print(loc.publish(staging, "race", "same"), flush=True)
"""

KILLED = r"""
import json, os, signal, sys
from synapse_sdk.storage import open_storage
loc = open_storage(json.loads(sys.argv[1]))
staging = loc.staging_dir("out", "demo")
for i in range(10):
    (staging / f"f{i}.txt").write_text("old" * i)
real_copy = loc.fs.copy
def copy_half_then_die(src, dst, **kwargs):
    real_copy(src[:5], dst[:5])
    os.kill(os.getpid(), signal.SIGKILL)  # kill -9 in the middle of the copy
loc.fs.copy = copy_half_then_die
loc.publish(staging, "out", "demo")
"""


def keys(location: ObjectStorage, rel: str = '') -> list[str]:
    location.fs.invalidate_cache()
    base = location.root + (f'/{rel}' if rel else '')
    return sorted(k[len(location.root) + 1 :] for k in location.fs.find(base))


def read(location: ObjectStorage, key: str) -> str:
    return location.read_bytes(key).decode()


def storage(record: dict[str, Any]) -> ObjectStorage:
    location = open_storage(record)
    assert isinstance(location, ObjectStorage)
    return location


@pytest.mark.slow
def test_racing_processes_never_share_a_name(s3_record: dict[str, Any]) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, '-c', RACE, json.dumps(s3_record), f'writer-{i}'],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(3)
    ]
    for proc in procs:  # all three have started and staged...
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != 'ready':
            proc.kill()
            pytest.fail(f'a writer failed before publishing: {proc.communicate()[1]}')
    for proc in procs:  # ...then all publish at once
        assert proc.stdin is not None
        proc.stdin.write('go\n')
        proc.stdin.flush()
    finals = {}
    for i, proc in enumerate(procs):
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        finals[f'writer-{i}'] = out.strip()
    location = storage(s3_record)
    prefix = f's3://{location.root}/race/'
    assert sorted(u.removeprefix(prefix) for u in finals.values()) == [
        'same',
        'same(1)',
        'same(2)',
    ]
    for who, url in finals.items():
        name = url.removeprefix(prefix)
        files = keys(location, f'race/{name}')
        assert len(files) == 12  # nobody merged into another's prefix
        assert {read(location, f) for f in files} == {who}
    assert not [k for k in keys(location) if '.synapse-staging-' in k]


def test_racing_threads_never_share_a_name(s3_record: dict[str, Any]) -> None:
    writers = 6
    stagings = []
    for i in range(writers):
        location = storage(s3_record)  # one client each, as separate exports have
        staging = location.staging_dir('race', 'same')
        for j in range(4):
            (staging / f'p{j}.txt').write_text(str(i))
        stagings.append((location, staging))
    barrier = threading.Barrier(writers)
    results: dict[int, str] = {}

    def publish(i: int) -> None:
        location, staging = stagings[i]
        barrier.wait()
        results[i] = location.publish(staging, 'race', 'same')

    threads = [threading.Thread(target=publish, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results.values())) == writers
    location = stagings[0][0]
    for i, url in results.items():
        name = url.rsplit('/', 1)[1]
        files = keys(location, f'race/{name}')
        assert len(files) == 4 and {read(location, f) for f in files} == {str(i)}


def test_a_held_claim_sends_the_next_export_to_name_1(s3_record: dict[str, Any]) -> None:
    """Deterministic form of the race: ``demo`` has no objects yet, but another publisher has
    claimed it (it is about to copy there), so this one must not write into it."""
    location = storage(s3_record)
    parent = f'{location.root}/out'
    body = orjson.dumps({'export': {'final': f's3://{parent}/demo'}, 'token': 'theirs'})
    assert location._claim(f'{parent}/{CLAIM_PREFIX}demo', body, 'theirs')
    assert not location._claim(f'{parent}/{CLAIM_PREFIX}demo', body, 'mine')  # conditional
    staging = location.staging_dir('out', 'demo')
    (staging / 'a.txt').write_text('mine')
    assert location.publish(staging, 'out', 'demo').endswith('/out/demo(1)')
    assert keys(location, 'out') == [f'out/{CLAIM_PREFIX}demo', 'out/demo(1)/a.txt']


@pytest.mark.slow
def test_kill_9_during_the_copy_is_cleaned_by_the_next_export(s3_record: dict[str, Any]) -> None:
    proc = subprocess.run(
        [sys.executable, '-c', KILLED, json.dumps(s3_record)], capture_output=True, timeout=120
    )
    assert proc.returncode == -9, proc.stderr.decode()
    location = storage(s3_record)
    left = keys(location, 'out')
    assert f'out/{CLAIM_PREFIX}demo' in left
    assert [k for k in left if k.startswith('out/demo/')] == [
        f'out/demo/f{i}.txt' for i in range(5)
    ]
    found = {i.kind: i for i in location.list_staging()}
    assert sorted(found) == ['claim', 'directory', 'prefix']
    assert {i.state() for i in found.values()} == {'dead'}
    assert SECRET_KEY not in json.dumps([i.to_json() for i in found.values()])

    staging = location.staging_dir('out', 'demo')  # removes the dead local staging
    assert [i.where for i in location.removed_stale] == [found['directory'].where]
    (staging / 'new.txt').write_text('new')
    # publishing removes the dead claim, the half copy and the dead upload; takes the name
    assert location.publish(staging, 'out', 'demo').endswith('/out/demo')
    assert keys(location, 'out') == ['out/demo/new.txt']
    assert location.list_staging() == []


@pytest.mark.slow
def test_storage_clean_removes_a_killed_publish(s3_record: dict[str, Any]) -> None:
    proc = subprocess.run(
        [sys.executable, '-c', KILLED, json.dumps(s3_record)], capture_output=True, timeout=120
    )
    assert proc.returncode == -9
    location = storage(s3_record)
    before = keys(location)
    dry = location.clean_staging(dry_run=True)
    assert sorted((i.kind, a) for i, a in dry) == [
        ('claim', 'would remove'),
        ('directory', 'would remove'),
        ('prefix', 'would remove'),
    ]
    assert keys(location) == before
    done = location.clean_staging()
    assert sorted(a for _, a in done) == ['removed'] * 3
    assert keys(location) == []
    assert os.listdir(location.staging_root) == []


def test_a_dead_claim_of_a_complete_copy_keeps_the_export(s3_record: dict[str, Any]) -> None:
    """The copy finished but deleting the claim failed: the export stays, the claim goes."""
    location = storage(s3_record)
    staging = location.staging_dir('out', 'demo')
    (staging / 'a.txt').write_text('complete')
    final = location.publish(staging, 'out', 'demo')
    exited = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'], text=True,
                            capture_output=True).stdout.strip()  # fmt: skip
    owner = {**Owner.current().to_json(), 'pid': int(exited)}
    claim = {
        'version': 1,
        'owner': owner,
        'export': {'final': final, 'requested': final, 'name': 'demo'},
        'token': 'x',
        'files': 1,
        'bytes': len('complete'),
    }
    location.fs.pipe_file(f'{location.root}/out/{CLAIM_PREFIX}demo', orjson.dumps(claim))
    report = location.clean_staging()
    assert [(i.kind, i.state(), a) for i, a in report] == [('claim', 'dead', 'removed')]
    assert keys(location, 'out') == ['out/demo/a.txt']


def test_marker_and_journal_folder_are_not_uploaded(s3_record: dict[str, Any]) -> None:
    location = storage(s3_record)
    staging = location.staging_dir('', 'demo')
    assert (staging / '.synapse-export' / 'owner.json').is_file()
    (staging / 'sub').mkdir()
    (staging / 'sub' / '.synapse-export').write_text('a file of the export, kept')
    location.publish(staging, '', 'demo')
    assert keys(location) == ['demo/sub/.synapse-export']
    assert Path(location.staging_root).is_dir() and not staging.exists()

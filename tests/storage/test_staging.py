"""Staging ownership: live runs are left alone, dead runs' leftovers go, resume can find them.

Owners are real processes: a helper process that creates a staging directory and then sleeps
(alive), is killed with SIGKILL (dead), or exits without cleaning up.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from synapse_sdk.errors import StorageError
from synapse_sdk.storage import StorageLocation
from synapse_sdk.storage.staging import META_DIR, OWNER_FILE, Owner, staging_name

HOLD = r"""
import sys, time
from synapse_sdk.storage import open_storage
loc = open_storage({"id": 1, "provider": "file_system", "configuration": {"location": sys.argv[1]}})
staging = loc.staging_dir(sys.argv[2], sys.argv[3])
(staging / "annotations.json").write_text('{"images": [')
print(staging, flush=True)
if sys.argv[4] == "exit":
    sys.exit(0)  # finishes without publishing or discarding: a dead owner
time.sleep(600)
"""


class Holder:
    """A real process owning a staging directory."""

    def __init__(self, root: Path, rel: str, name: str, mode: str = 'sleep') -> None:
        self.proc = subprocess.Popen(
            [sys.executable, '-c', HOLD, str(root), rel, name, mode],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        assert line, self.proc.stderr.read() if self.proc.stderr else ''
        self.staging = Path(line)
        if mode == 'exit':
            self.proc.wait(timeout=30)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)


@pytest.fixture
def holders() -> Iterator[list[Holder]]:
    started: list[Holder] = []
    yield started
    for holder in started:
        holder.kill()


def stagings(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith('.synapse-staging-'))


def set_owner(staging: Path, **changes: object) -> None:
    path = staging / META_DIR / OWNER_FILE
    marker = orjson.loads(path.read_bytes())
    marker['owner'].update(changes)
    path.write_bytes(orjson.dumps(marker))


def test_staging_name_is_stable_per_export(location: StorageLocation, root: Path) -> None:
    first = location.staging_dir('exports', 'demo')
    assert first.name == staging_name(str(root / 'exports' / 'demo'))
    location.discard(first)
    assert location.staging_dir('exports', 'demo') == first
    other = location.staging_dir('exports', 'other')
    assert other.name != first.name


def test_live_owner_is_left_alone_and_dead_one_removed(
    location: StorageLocation, root: Path, holders: list[Holder]
) -> None:
    holder = Holder(root, 'exports', 'demo')
    holders.append(holder)
    exports = root / 'exports'
    assert holder.staging.name == staging_name(str(exports / 'demo'))

    # alive: a second export of the same name gets its own directory beside it
    mine = location.staging_dir('exports', 'demo')
    assert mine != holder.staging and mine.name.startswith(holder.staging.name + '-')
    assert (holder.staging / 'annotations.json').exists()
    assert location.removed_stale == []
    info = location.find_staging('exports', 'demo')
    assert info is not None and Path(info.where) == holder.staging
    assert info.state() == 'alive' and info.owner is not None
    assert info.owner.pid == holder.proc.pid
    with pytest.raises(StorageError, match='in use by a running export'):
        location.adopt_staging('exports', 'demo')
    location.discard(mine)

    # dead (kill -9): the next export of the name removes it and takes the stable name
    holder.kill()
    assert location.find_staging('exports', 'demo').state() == 'dead'  # type: ignore[union-attr]
    fresh = location.staging_dir('exports', 'demo')
    assert fresh == holder.staging  # the same stable name, now a fresh empty directory
    assert sorted(p.name for p in fresh.iterdir()) == [META_DIR]
    assert [Path(i.where) for i in location.removed_stale] == [holder.staging]
    assert stagings(exports) == [fresh.name]
    assert Path(location.publish(fresh, 'exports', 'demo')).name == 'demo'
    assert sorted(p.name for p in exports.iterdir()) == ['demo']


def test_only_the_same_exports_leftovers_are_removed(
    location: StorageLocation, root: Path, holders: list[Holder]
) -> None:
    other = Holder(root, 'exports', 'other', mode='exit')
    assert other.proc.returncode == 0 and other.staging.is_dir()
    staging = location.staging_dir('exports', 'demo')
    assert other.staging.is_dir()  # another export's leftover: not this export's business
    location.discard(staging)
    location.staging_dir('exports', 'other')
    assert location.removed_stale and Path(location.removed_stale[0].where) == other.staging


def test_reused_pid_and_reboot_count_as_dead(location: StorageLocation, root: Path) -> None:
    me = Owner.current()
    staging = location.staging_dir('x', 'demo')
    set_owner(staging, pid=os.getpid(), started=me.started - 1000)  # same pid, older process
    assert location.find_staging('x', 'demo').state() == 'dead'  # type: ignore[union-attr]
    set_owner(staging, started=me.started, boot=me.boot - 3600)  # before the last reboot
    assert location.find_staging('x', 'demo').state() == 'dead'  # type: ignore[union-attr]
    set_owner(staging, boot=me.boot)
    assert location.find_staging('x', 'demo').state() == 'alive'  # type: ignore[union-attr]


def test_other_host_is_unknown_and_kept_until_old(location: StorageLocation, root: Path) -> None:
    staging = location.staging_dir('x', 'demo')
    (staging / 'part.json').write_text('[')
    set_owner(staging, host=f'not-{socket.gethostname()}', pid=1)
    location._forget(staging)
    info = location.find_staging('x', 'demo')
    assert info is not None and info.state() == 'unknown'
    again = location.staging_dir('x', 'demo')  # cannot tell: left alone
    assert again != staging and staging.is_dir()
    location.discard(again)
    with pytest.raises(StorageError, match='Cannot tell whether'):
        location.adopt_staging('x', 'demo')

    report = location.clean_staging(older_than=3600, rel_path='x')
    assert [(Path(i.where), a) for i, a in report] == [(staging, 'kept')]
    old = time.time() - 7200
    for path in (staging, staging / META_DIR):
        os.utime(path, (old, old))
    report = location.clean_staging(older_than=3600, dry_run=True, rel_path='x')
    assert [a for _, a in report] == ['would remove'] and staging.is_dir()
    report = location.clean_staging(older_than=3600, rel_path='x')
    assert [a for _, a in report] == ['removed'] and not staging.exists()
    assert list((root / 'x').iterdir()) == []


def test_adopt_a_dead_runs_staging_for_resume(
    location: StorageLocation, root: Path, holders: list[Holder]
) -> None:
    holder = Holder(root, 'exports', 'demo')
    holders.append(holder)
    holder.kill()
    info = location.find_staging('exports', 'demo')
    assert info is not None and info.state() == 'dead'
    assert info.marker is not None and info.marker['export']['name'] == 'demo'
    staging = location.adopt_staging('exports', 'demo')
    assert staging == holder.staging
    assert (staging / 'annotations.json').read_text() == '{"images": ['  # content kept
    assert location.find_staging('exports', 'demo').owner == Owner.current()  # type: ignore[union-attr]
    (staging / 'annotations.json').write_text('{"images": []}')
    final = Path(location.publish(staging, 'exports', 'demo'))
    assert sorted(p.name for p in final.iterdir()) == ['annotations.json']
    assert location.find_staging('exports', 'demo') is None
    with pytest.raises(StorageError, match='No staging directory'):
        location.adopt_staging('exports', 'demo')


def test_clean_looks_beside_the_exports_only_and_spares_live_runs(
    location: StorageLocation, root: Path, holders: list[Holder]
) -> None:
    """Staging directories sit beside their export (``<root>/<path>/``): clean looks in the
    folder it is given and nowhere below it. It walked the whole storage, which on a storage
    rooted at ``/`` meant the whole file system."""
    live = Holder(root, 'a/b', 'live')
    holders.append(live)
    dead = Holder(root, 'deep/er/path', 'dead')
    holders.append(dead)
    dead.kill()
    exited = Holder(root, '', 'exited', mode='exit')
    legacy = root / 'a' / '.synapse-staging-0123456789abcdef'  # an older SDK: no marker
    legacy.mkdir()
    (root / 'published').mkdir()
    (root / 'published' / 'keep.txt').write_text('x')

    report = {Path(i.where): (i.state(), a) for i, a in location.clean_staging()}
    assert report == {exited.staging: ('dead', 'removed')}  # the root only: nothing below
    assert dead.staging.is_dir() and live.staging.is_dir() and legacy.is_dir()
    report = {Path(i.where): (i.state(), a) for i, a in location.clean_staging(rel_path='deep')}
    assert report == {} and dead.staging.is_dir()
    report = {
        Path(i.where): (i.state(), a)
        for place in ('deep/er/path', 'a/b', 'a')
        for i, a in location.clean_staging(rel_path=place)
    }
    assert report == {
        live.staging: ('alive', 'kept'),
        dead.staging: ('dead', 'removed'),
        legacy: ('unknown', 'kept'),
    }
    assert live.staging.is_dir() and legacy.is_dir()
    assert not dead.staging.exists() and not exited.staging.exists()
    assert (root / 'published' / 'keep.txt').exists()
    # --older-than 0 takes the unmarked one too, never the live one
    report = {
        Path(i.where): a
        for place in ('a', 'a/b')
        for i, a in location.clean_staging(older_than=0, rel_path=place)
    }
    assert report == {live.staging: 'kept', legacy: 'removed'}
    assert [Path(i.where) for i in location.list_staging('a/b')] == [live.staging]
    assert location.list_staging('missing/folder') == []


def test_marker_is_never_published(location: StorageLocation, root: Path) -> None:
    staging = location.staging_dir('', 'demo')
    (staging / 'data.json').write_text('{}')
    final = Path(location.publish(staging, '', 'demo'))
    assert sorted(p.name for p in final.iterdir()) == ['data.json']

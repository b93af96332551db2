"""The journal of a sharded export, kept in its staging directory, and what ``--resume`` does.

Layout (``.synapse-export/`` is the staging directory's own folder, never published)::

    <staging>/.synapse-export/journal/manifest.json    the run: export, owner, fingerprint, shards
    <staging>/.synapse-export/journal/shard-0003.json  shard 3 is done: its part result, merge
                                                       state, and a digest of every file it wrote
    <staging>/.synapse-export/parts/0003/              what shard 3 wrote

A shard writes its record (atomically) only once its part is complete, so after a crash, a
``kill -9`` or a failed shard, the records say exactly which parts can be kept. ``--resume``
adopts the staging directory of the interrupted run, checks that the params and the selection
(samples, splits, file names) are unchanged (the manifest's fingerprint), keeps each recorded
part whose files still match their digests, and runs only the other shards. The merge and the
reports then run as in an uninterrupted export, so the result is byte-identical.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

from synapse_sdk.storage.paths import STAGING_PREFIX

try:  # the staging folder's shared name, once staging markers exist (storage/staging.py)
    from synapse_sdk.storage.staging import META_DIR  # type: ignore[import-not-found,unused-ignore]
except ImportError:  # pragma: no cover - depends on the storage package's version
    META_DIR = '.synapse-export'

__all__ = [
    'META_DIR',
    'Journal',
    'find_resumable',
    'owner_alive',
    'this_owner',
    'tree_digest',
]

JOURNAL_VERSION = 1


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'.{path.name}.{uuid.uuid4().hex[:8]}')
    with tmp.open('wb') as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _proc_start(pid: int) -> str | None:
    """The start time of ``pid`` in clock ticks since boot (Linux), to tell a reused pid."""
    try:
        stat = Path(f'/proc/{pid}/stat').read_text()
    except OSError:
        return None
    return stat.rpartition(')')[2].split()[19]


def this_owner() -> dict[str, Any]:
    """This process as the owner of a staging directory."""
    pid = os.getpid()
    return {'pid': pid, 'host': socket.gethostname(), 'start': _proc_start(pid)}


def owner_alive(owner: dict[str, Any] | None) -> bool | None:
    """``True``/``False`` for an owner on this host; ``None`` when it cannot be told here."""
    if not isinstance(owner, dict) or owner.get('host') != socket.gethostname():
        return None
    pid = owner.get('pid')
    if not isinstance(pid, int):
        return None
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    start = owner.get('start')
    return not (start is not None and _proc_start(pid) not in (None, start))


def tree_digest(root: Path) -> dict[str, Any]:
    """``{"files", "bytes", "digest"}`` of every file under ``root`` (paths and contents)."""
    total = hashlib.blake2b(digest_size=20)
    files = size = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        base = Path(dirpath)
        rel_dir = base.relative_to(root).as_posix()
        total.update(b'd\0' + rel_dir.encode('utf-8', 'surrogateescape') + b'\0')
        for name in sorted(filenames):
            path = base / name
            digest = hashlib.blake2b(digest_size=20)
            with path.open('rb') as fh:
                while chunk := fh.read(1 << 20):
                    digest.update(chunk)
                    size += len(chunk)
            rel = f'{rel_dir}/{name}' if rel_dir != '.' else name
            total.update(b'f\0' + rel.encode('utf-8', 'surrogateescape') + b'\0')
            total.update(digest.digest())
            files += 1
    return {'files': files, 'bytes': size, 'digest': total.hexdigest()}


class Journal:
    """The journal and part directories inside one staging directory."""

    def __init__(self, staging: Path) -> None:
        self.staging = Path(staging)
        self.meta = self.staging / META_DIR
        self.dir = self.meta / 'journal'
        self.parts = self.meta / 'parts'

    def part_dir(self, index: int) -> Path:
        return self.parts / f'{index:04d}'

    def record_path(self, index: int) -> Path:
        return self.dir / f'shard-{index:04d}.json'

    # -- manifest ----------------------------------------------------------------------------
    def write_manifest(self, manifest: dict[str, Any]) -> None:
        data = {'version': JOURNAL_VERSION, 'owner': this_owner(), **manifest}
        _write_atomic(self.dir / 'manifest.json', orjson.dumps(data, option=orjson.OPT_INDENT_2))

    def read_manifest(self) -> dict[str, Any] | None:
        try:
            data = orjson.loads((self.dir / 'manifest.json').read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return None
        if not isinstance(data, dict) or data.get('version') != JOURNAL_VERSION:
            return None
        return data

    def take_over(self) -> None:
        """Record this process as the owner (a resumed run)."""
        manifest = self.read_manifest()
        if manifest is not None:
            manifest.pop('version', None)
            manifest.pop('owner', None)
            self.write_manifest(manifest)

    # -- shard records -----------------------------------------------------------------------
    def record_done(self, index: int, record: dict[str, Any]) -> None:
        """Shard ``index`` is done (called by the shard itself, after its part is complete)."""
        _write_atomic(self.record_path(index), orjson.dumps(record))

    def done_record(self, index: int) -> dict[str, Any] | None:
        try:
            record = orjson.loads(self.record_path(index).read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return None
        return record if isinstance(record, dict) else None

    def verify(self, index: int, record: dict[str, Any]) -> bool:
        """Whether shard ``index``'s part still holds exactly what its record says."""
        part = self.part_dir(index)
        if not part.is_dir():
            return False
        expected = record.get('tree')
        return isinstance(expected, dict) and tree_digest(part) == expected

    def forget(self, index: int) -> None:
        """Drop shard ``index``'s record and part (it runs again)."""
        self.record_path(index).unlink(missing_ok=True)
        _rmtree(self.part_dir(index))

    # -- the staging directory ---------------------------------------------------------------
    def clear_outputs(self) -> None:
        """Remove everything of the staging directory but its own folder (a merge that was
        interrupted left files there; the parts are merged again)."""
        if not self.staging.is_dir():
            return
        for entry in os.scandir(self.staging):
            if entry.name == META_DIR:
                continue
            path = Path(entry.path)
            if entry.is_dir(follow_symlinks=False):
                _rmtree(path)
            else:
                path.unlink(missing_ok=True)

    def clear(self) -> None:
        """Start over: outputs, parts and journal gone (an owner marker stays)."""
        self.clear_outputs()
        _rmtree(self.parts)
        _rmtree(self.dir)

    def remove(self) -> None:
        """The export is merged: the parts and the journal go, so nothing of them is published;
        the staging folder goes too unless something else (an owner marker) is in it."""
        _rmtree(self.parts)
        _rmtree(self.dir)
        with contextlib.suppress(OSError):
            self.meta.rmdir()


def _rmtree(path: Path) -> None:
    import shutil

    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


def _staging_parent(location: Any, rel_path: str) -> Path:
    parent = getattr(location, '_staging_parent', None)
    if callable(parent):
        return Path(parent(rel_path))
    if getattr(location, 'is_local', False):
        return Path(location.url(rel_path))
    return Path(tempfile.gettempdir())


def find_resumable(location: Any, rel_path: str, name: str, final: str) -> Path | None:
    """The staging directory an interrupted run of this export left, adopted by this process.

    Uses the storage's own staging registry when it has one (``find_staging`` /
    ``adopt_staging``), else looks for a staging directory whose journal names ``final`` and
    whose owner is gone. ``None`` when there is nothing to resume. Raises ``StorageError`` when
    the run that owns it is still going.
    """
    from synapse_sdk.errors import StorageError

    if hasattr(location, 'find_staging') and hasattr(location, 'adopt_staging'):
        info = location.find_staging(rel_path, name)
        if info is not None:
            staging = Path(location.adopt_staging(rel_path, name))
            Journal(staging).take_over()
            return staging
    parent = _staging_parent(location, rel_path)
    if not parent.is_dir():
        return None
    candidates = []
    for entry in os.scandir(parent):
        if not entry.name.startswith(STAGING_PREFIX) or not entry.is_dir(follow_symlinks=False):
            continue
        journal = Journal(Path(entry.path))
        manifest = journal.read_manifest()
        if manifest is None or manifest.get('final') != final:
            continue
        alive = owner_alive(manifest.get('owner'))
        if alive:
            owner = manifest.get('owner') or {}
            raise StorageError(
                f'The export {final} is still being written by process {owner.get("pid")} '
                f'({entry.path}); wait for it or stop it before resuming'
            )
        candidates.append((entry.stat().st_mtime, Path(entry.path)))
    if not candidates:
        return None
    staging = max(candidates)[1]
    Journal(staging).take_over()
    return staging


def now() -> float:
    return time.time()

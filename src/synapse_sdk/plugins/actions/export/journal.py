"""The journal of a sharded export, kept in its staging directory, and what ``--resume`` does.

Layout (``.synapse-export/`` is the staging directory's own folder, never published)::

    <staging>/.synapse-export/journal/manifest.json    the run: export, owner, fingerprint, shards
    <staging>/.synapse-export/journal/shard-0003.json  shard 3 is done: its part result, merge
                                                       state, every file and directory it wrote
    <staging>/.synapse-export/parts/0003/              what shard 3 wrote (its per-item files
                                                       move into the export as it ends)

A shard writes its record (atomically) only once its part is complete, so after a crash, a
``kill -9`` or a failed shard, the records say exactly which parts can be kept. ``--resume``
adopts the staging directory of the interrupted run, checks that the params and the selection
(samples, splits, file names) are unchanged (the manifest's fingerprint), keeps each recorded
part whose files are still as recorded (size and time of each, a checksum of its index
files, see :class:`PartListing`), and runs only the other shards. The merge and the
reports then run as in an uninterrupted export, so the result is byte-identical.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import tempfile
import uuid
from pathlib import Path
from typing import Any

import orjson

from synapse_sdk.plugins.actions.export.merge import Listing
from synapse_sdk.storage.paths import STAGING_PREFIX

try:  # the staging folder's shared name, once staging markers exist (storage/staging.py)
    from synapse_sdk.storage.staging import META_DIR  # type: ignore[import-not-found,unused-ignore]
except ImportError:  # pragma: no cover - depends on the storage package's version
    META_DIR = '.synapse-export'

__all__ = [
    'META_DIR',
    'Journal',
    'PartListing',
    'file_digest',
    'find_resumable',
    'owner_alive',
    'this_owner',
]

JOURNAL_VERSION = 1


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all (a temporary name, then a rename).

    No ``fsync``: what the journal survives is a process that dies (``kill -9``, a crash), and
    the page cache outlives the process. A power loss would leave the part files it vouches
    for unsynced too (they are never synced), and :meth:`Journal.verify` checks their sizes and
    times before a resumed run keeps them. On a busy disk one ``fsync`` per shard cost seconds.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'.{path.name}.{uuid.uuid4().hex[:8]}')
    with tmp.open('wb') as fh:
        fh.write(data)
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


def file_digest(path: Path) -> str:
    digest = hashlib.blake2b(digest_size=16)
    with path.open('rb') as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class PartListing(Listing):
    """What a finished part holds, recorded as its files move into the export (see
    :func:`~.merge.move_tree`): ``{"files": {relative path: [size, mtime_ns(, digest)]},
    "dirs": [relative directories]}`` (directories too: an empty one is part of the export).

    Files that stay in the part for the merge, and files at the top of the part, get a content
    digest too: the shard's index files (merged into the export's COCO JSON, CSV ...), which a
    damaged byte would spoil for every item, and the files every part writes alike
    (``project.json``, ``labels.txt``: the export keeps one of them). Per-item files (a label,
    an image, always in a folder) are vouched for by size and modification time, which costs
    a ``stat`` instead of reading every file again.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files: dict[str, list[Any]] = {}
        self.dirs: list[str] = []

    def file(self, rel: str, dir_fd: int, name: str, skipped: bool) -> None:
        st = os.stat(name, dir_fd=dir_fd)
        entry: list[Any] = [st.st_size, st.st_mtime_ns]
        if skipped or '/' not in rel:
            entry.append(file_digest(self.root / rel))
        self.files[rel] = entry

    def dir(self, rel: str) -> None:
        self.dirs.append(rel)

    def to_dict(self) -> dict[str, Any]:
        return {'files': self.files, 'dirs': self.dirs}


def _fingerprint(path: str | Path, checksum: bool) -> list[Any]:
    st = os.stat(path)
    entry: list[Any] = [st.st_size, st.st_mtime_ns]
    if checksum:
        entry.append(file_digest(Path(path)))
    return entry


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
        """Whether every file shard ``index`` wrote is still as its record says (size, time,
        content digest where one was taken), in its part or, once moved, in the export."""
        part = self.part_dir(index)
        files = record.get('files')
        if not isinstance(files, dict):
            return False
        for rel, expected in files.items():
            path = part / rel
            if not path.is_file():
                path = self.staging / rel
            try:
                got = _fingerprint(path, len(expected) > 2)
            except OSError:
                return False
            if len(expected) > 2:  # by content: a file every part writes alike is kept once,
                got[1] = expected[1]  # with the time of the part that moved it first
            if got != expected:
                return False
        return True

    def forget(self, index: int) -> None:
        """Drop shard ``index``'s record and part (it runs again)."""
        self.record_path(index).unlink(missing_ok=True)
        _rmtree(self.part_dir(index))

    # -- the staging directory ---------------------------------------------------------------
    def clear_outputs(self, keep: dict[str, Any] | None = None) -> None:
        """Remove what the staging directory holds outside its own folder, but the files and
        directories in ``keep`` (those of parts already moved there): an interrupted run left
        the rest (moves or a merge half done); it is written again."""
        if not self.staging.is_dir():
            return
        files = set((keep or {}).get('files') or ())
        dirs = set((keep or {}).get('dirs') or ())
        found: list[tuple[Path, str]] = []
        for dirpath, dirnames, filenames in os.walk(self.staging):
            base = Path(dirpath)
            rel_dir = base.relative_to(self.staging).as_posix()
            if rel_dir == '.':
                dirnames[:] = [d for d in dirnames if d != META_DIR]
            prefix = '' if rel_dir == '.' else f'{rel_dir}/'
            for name in filenames:
                if f'{prefix}{name}' not in files:
                    (base / name).unlink(missing_ok=True)
            if prefix:
                found.append((base, rel_dir))
        for base, rel_dir in reversed(found):
            if rel_dir not in dirs:
                with contextlib.suppress(OSError):
                    base.rmdir()  # only when empty: what is kept stays

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

"""Staging directories: who owns one, whether that process still runs, which ones are stale.

Every staging directory an export writes into carries a small marker,
``<staging>/.synapse-export/owner.json``::

    {"version": 1,
     "owner": {"pid": 4242, "host": "build-7", "boot": 1760000000.0, "started": 1760001234.5},
     "export": {"final": "/data/exports/coco-2024", "path": "exports", "name": "coco-2024"},
     "created": "2026-01-02T03:04:05Z"}

``.synapse-export/`` is never published (publish strips it), so it is also where a resume
journal can live. From the marker a later process can tell a staging directory whose owner
died (``kill -9``, a crash, a reboot) from one that is still being written:

- ``alive``: same host, same boot, the pid runs and started when the marker says;
- ``dead``: same host and the pid is gone, was reused by another process, or the host rebooted;
- ``unknown``: another host, or no readable marker (an older SDK, a crash before the marker
  was written); only an age limit (``synapse storage clean --older-than``) removes those.

The staging directory of an export has a stable name, ``.synapse-staging-<digest of the final
location>``, so a later run of the same export (``--resume``) finds it with
:meth:`StorageLocation.find_staging`; a second live export of the same name gets a unique
``-<hex>`` suffix instead of sharing it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import orjson
import psutil

from synapse_sdk.storage.paths import STAGING_PREFIX

__all__ = [
    'CLAIM_PREFIX',
    'META_DIR',
    'OWNER_FILE',
    'TRASH_INFIX',
    'Owner',
    'StagingInfo',
    'last_modified',
    'locked_dir',
    'make_marker',
    'read_marker',
    'remove_meta',
    'staging_name',
    'write_marker',
]

logger = logging.getLogger(__name__)

#: Folder inside a staging directory for the SDK's own files; never published.
META_DIR = '.synapse-export'
OWNER_FILE = 'owner.json'
#: Object-store claim of a final name while an export is copied there (see ``s3.py``).
CLAIM_PREFIX = f'{STAGING_PREFIX}claim-'
#: A stale staging directory renamed out of the way before it is deleted.
TRASH_INFIX = 'trash-'
MARKER_VERSION = 1

State = Literal['alive', 'dead', 'unknown']


def staging_name(final: str) -> str:
    """The stable staging-directory name of the export whose final location is ``final``."""
    digest = hashlib.blake2b(final.encode('utf-8', 'surrogatepass'), digest_size=10).hexdigest()
    return f'{STAGING_PREFIX}{digest}'


def _boot_time() -> float:
    try:
        return float(psutil.boot_time())
    except Exception:  # some sandboxes hide /proc/stat
        return 0.0


@dataclass(frozen=True)
class Owner:
    """The process that owns a staging directory."""

    pid: int
    host: str
    boot: float
    started: float

    @classmethod
    def current(cls) -> Owner:
        """This process (computed per call: a forked child is another owner)."""
        pid = os.getpid()
        try:
            started = float(psutil.Process(pid).create_time())
        except Exception:
            started = 0.0
        return cls(pid=pid, host=socket.gethostname(), boot=_boot_time(), started=started)

    @classmethod
    def from_json(cls, data: Any) -> Owner | None:
        try:
            return cls(
                pid=int(data['pid']),
                host=str(data['host']),
                boot=float(data.get('boot') or 0.0),
                started=float(data.get('started') or 0.0),
            )
        except (KeyError, TypeError, ValueError):
            return None

    def to_json(self) -> dict[str, Any]:
        return {'pid': self.pid, 'host': self.host, 'boot': self.boot, 'started': self.started}

    def state(self) -> State:
        """``alive``, ``dead`` or ``unknown`` (another host: nothing can be checked from here)."""
        if self.host != socket.gethostname():
            return 'unknown'
        boot = _boot_time()
        if self.boot and boot and abs(self.boot - boot) > 5:
            return 'dead'  # the machine rebooted since
        try:
            proc = psutil.Process(self.pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                return 'dead'
            started = proc.create_time()
        except psutil.NoSuchProcess:
            return 'dead'
        except psutil.AccessDenied:
            return 'alive'  # it exists; another user's process
        except Exception:
            return 'unknown'
        if self.started and abs(started - self.started) > 1.0:
            return 'dead'  # the pid was reused by a newer process
        return 'alive'

    def describe(self) -> str:
        return f'pid {self.pid} on {self.host}'


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec='seconds').replace('+00:00', 'Z')


def make_marker(final: str, rel_path: str, name: str, owner: Owner | None = None) -> bytes:
    """The marker document for an export staged for ``final``."""
    return orjson.dumps(
        {
            'version': MARKER_VERSION,
            'owner': (owner or Owner.current()).to_json(),
            'export': {'final': final, 'path': rel_path, 'name': name},
            'created': now_iso(),
        },
        option=orjson.OPT_INDENT_2,
    )


def write_marker(staging: Path, marker: bytes) -> None:
    """Write ``marker`` to ``<staging>/.synapse-export/owner.json`` (atomically replaced)."""
    meta = staging / META_DIR
    meta.mkdir(exist_ok=True)
    tmp = meta / f'.{OWNER_FILE}.{uuid.uuid4().hex}'
    tmp.write_bytes(marker)
    os.replace(tmp, meta / OWNER_FILE)


def parse_marker(data: bytes | None) -> dict[str, Any] | None:
    if not data:
        return None
    try:
        marker = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(marker, dict) or not isinstance(marker.get('export'), dict):
        return None
    return marker


def read_marker(staging: Path) -> dict[str, Any] | None:
    """The marker of ``staging``, or ``None`` when it has none (or not a readable one)."""
    try:
        return parse_marker((staging / META_DIR / OWNER_FILE).read_bytes())
    except OSError:
        return None


def remove_meta(staging: Path) -> None:
    """Remove ``<staging>/.synapse-export`` (before the directory is published)."""
    meta = staging / META_DIR
    if meta.is_dir() and not meta.is_symlink():
        for child in meta.iterdir():
            child.unlink(missing_ok=True)
        meta.rmdir()


def last_modified(path: Path, depth: int = 2) -> float:
    """The newest mtime of ``path`` and its subdirectories down to ``depth`` levels.

    Files land in ``images/``, ``annotations/`` ...; the directories' mtimes move with them, so
    this tells a directory still being written from an abandoned one without reading every file.
    """
    try:
        newest = path.lstat().st_mtime
    except OSError:
        return 0.0
    if depth <= 0:
        return newest
    try:
        with os.scandir(path) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    newest = max(newest, last_modified(Path(entry.path), depth - 1))
    except OSError:
        pass
    return newest


@dataclass
class StagingInfo:
    """One leftover (or live) staging location of a storage.

    ``kind``: ``directory`` (a local staging directory), ``prefix`` (an object-store upload
    prefix) or ``claim`` (an object-store claim on a final name; a dead one means the copy to
    that name never finished). ``where`` is a local path or an ``s3://`` URL.
    """

    kind: Literal['directory', 'prefix', 'claim']
    where: str
    marker: dict[str, Any] | None
    modified: float
    trash: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def owner(self) -> Owner | None:
        return Owner.from_json(self.marker.get('owner')) if self.marker else None

    @property
    def final(self) -> str | None:
        """The final location the export was headed for, if the marker says."""
        if not self.marker:
            return None
        final = self.marker['export'].get('final')
        return str(final) if final else None

    def state(self) -> State:
        if self.trash:
            return 'dead'
        owner = self.owner
        return owner.state() if owner is not None else 'unknown'

    def age(self, now: float | None = None) -> float:
        return max(0.0, (now if now is not None else time.time()) - self.modified)

    def is_stale(self, older_than: float | None, now: float | None = None) -> bool:
        """Dead for sure, or not known to be alive and untouched for ``older_than`` seconds."""
        state = self.state()
        if state == 'dead':
            return True
        if state == 'alive' or older_than is None:
            return False
        return self.age(now) >= older_than

    def to_json(self, now: float | None = None) -> dict[str, Any]:
        owner = self.owner
        return {
            'kind': self.kind,
            'where': self.where,
            'export': self.final,
            'owner': owner.describe() if owner else None,
            'state': self.state(),
            'age_seconds': round(self.age(now)),
        }


def local_info(path: Path) -> StagingInfo:
    """A :class:`StagingInfo` for the local staging directory ``path``."""
    trash = path.name.startswith(f'{STAGING_PREFIX}{TRASH_INFIX}')
    return StagingInfo(
        kind='directory',
        where=str(path),
        marker=None if trash else read_marker(path),
        modified=last_modified(path),
        trash=trash,
    )


def scan_dir(parent: Path) -> Iterator[StagingInfo]:
    """Staging directories directly inside ``parent`` (not following symbolic links)."""
    try:
        with os.scandir(parent) as entries:
            found = [
                Path(e.path)
                for e in entries
                if e.name.startswith(STAGING_PREFIX) and e.is_dir(follow_symlinks=False)
            ]
    except OSError:
        return
    for path in sorted(found):
        yield local_info(path)


@contextlib.contextmanager
def locked_dir(directory: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``directory`` (best effort: no-op where unsupported).

    Serialises "remove the stale staging directory, create a fresh one" between processes so
    one never deletes the directory another has just created.
    """
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, 'O_DIRECTORY', 0))
    except OSError:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as exc:
            if exc.errno not in (errno.ENOLCK, errno.EINVAL, errno.EOPNOTSUPP, errno.EBADF):
                raise
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def trash_name() -> str:
    return f'{STAGING_PREFIX}{TRASH_INFIX}{uuid.uuid4().hex}'

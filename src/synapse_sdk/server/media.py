"""Media files of the embedded store: checksummed entries, and staging for imports.

An import copies its images into a staging folder ``$SYNAPSE_HOME/.staging/import-<id>/``
(the same layout as ``media/``), commits its rows, then moves the files into ``media/``. A
killed import (``kill -9``) leaves either nothing in ``media/`` (rows rolled back) or rows whose
files wait in staging; :func:`recover_staged_media`, run when a store opens, moves those into
place and deletes the rest. Each live import holds an exclusive lock on its staging folder, so
recovery never touches an import that is still running.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

try:  # POSIX; elsewhere a staging folder counts as live while its owner's pid exists
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ['MediaStage', 'file_entry', 'recover_staged_media', 'staging_root']

_CHUNK = 1 << 20
_LOCK = '.lock'


def staging_root(home: Path) -> Path:
    return home / '.staging'


def _entry(relative: str, name: str, size: int, digest: Any) -> dict[str, Any]:
    return {
        'path': relative,
        'file_name_original': name,
        'is_primary': True,
        'size': size,
        'checksum': f'sha256:{digest.hexdigest()}',
    }


def file_entry(path: Path, relative: str, file_name_original: str) -> dict[str, Any]:
    """The stored description of one media file: size and sha256 checksum."""
    digest = hashlib.sha256()
    with path.open('rb') as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b''):
            digest.update(chunk)
    return _entry(relative, file_name_original, path.stat().st_size, digest)


def _copy_hashed(source: IO[bytes], target: Path) -> tuple[int, Any]:
    digest = hashlib.sha256()
    size = 0
    with target.open('wb') as out:
        for chunk in iter(lambda: source.read(_CHUNK), b''):
            digest.update(chunk)
            out.write(chunk)
            size += len(chunk)
    return size, digest


class MediaStage:
    """The staging folder of one import. ``add`` copies, ``publish`` moves into ``media/``
    (after the rows committed), ``discard`` removes everything (after a rollback)."""

    def __init__(self, home: Path, media_dir: Path) -> None:
        self.media_dir = media_dir
        self.root = staging_root(home) / f'import-{os.getpid()}-{uuid.uuid4().hex[:12]}'
        self.root.mkdir(parents=True)
        self._lock = (self.root / _LOCK).open('w')
        if fcntl is not None:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX)

    def add(self, source: Path, relative: str, file_name_original: str) -> dict[str, Any] | None:
        """Copy ``source`` to ``<stage>/relative``; its file entry, or None when ``source`` is
        not a regular file (a FIFO or device named like an image is never read)."""
        flags = os.O_RDONLY | getattr(os, 'O_NOFOLLOW', 0) | getattr(os, 'O_NONBLOCK', 0)
        try:
            fd = os.open(source, flags)
        except OSError:
            return None
        with os.fdopen(fd, 'rb') as fh:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            os.set_blocking(fd, True)
            target = self.root / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            size, digest = _copy_hashed(fh, target)
        return _entry(relative, file_name_original, size, digest)

    def publish(self) -> int:
        """Move every staged file into ``media/`` and remove the staging folder."""
        moved = _move_all(self.root, self.media_dir, lambda paths: set(paths))
        self.close()
        return moved

    def discard(self) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._lock.close()
        shutil.rmtree(self.root, ignore_errors=True)


def _files(root: Path) -> list[str]:
    out = []
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            if path.parent == root and name == _LOCK:
                continue
            out.append(path.relative_to(root).as_posix())
    return out


def _move_all(root: Path, media_dir: Path, committed: Callable[[list[str]], set[str]]) -> int:
    relatives = _files(root)
    keep = committed(relatives) if relatives else set()
    moved = 0
    for relative in relatives:
        source = root / relative
        if relative in keep:
            target = media_dir / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
            moved += 1
        else:
            source.unlink(missing_ok=True)
    return moved


def _is_stale(folder: Path) -> bool:
    """No live import holds the folder's lock."""
    lock = folder / _LOCK
    if fcntl is None:  # pragma: no cover - Windows
        pid = folder.name.split('-')[1] if folder.name.count('-') >= 2 else ''
        try:
            os.kill(int(pid), 0)
        except (OSError, ValueError):
            return True
        return False
    try:
        fh = lock.open('a')
    except OSError:
        return True
    with fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        return True


def recover_staged_media(
    home: Path, media_dir: Path, committed: Callable[[Iterable[str]], set[str]]
) -> int:
    """Finish or undo imports that died: staged files whose rows committed move into
    ``media/``, the others are deleted; returns how many files moved."""
    root = staging_root(home)
    if not root.is_dir():
        return 0
    moved = 0
    for folder in sorted(root.glob('import-*')):
        if folder.is_dir() and _is_stale(folder):
            moved += _move_all(folder, media_dir, committed)
            shutil.rmtree(folder, ignore_errors=True)
    return moved

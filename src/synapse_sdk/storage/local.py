"""``file_system`` storages: a directory on this machine.

Staging directories are hidden siblings of the target (``<root>/<path>/.synapse-staging-*``), so
publishing is one ``rename`` on the same filesystem: atomic, and never a half-copied result. The
rename refuses to replace an existing entry (``renameat2(RENAME_NOREPLACE)`` on Linux,
``renamex_np(RENAME_EXCL)`` on macOS), so two exports racing for ``name`` end up as ``name`` and
``name(1)`` instead of one overwriting the other.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synapse_sdk.errors import StorageError
from synapse_sdk.storage.base import StorageLocation, name_candidates
from synapse_sdk.storage.paths import STAGING_PREFIX, validate_name, validate_rel_path
from synapse_sdk.storage.staging import StagingInfo, remove_meta, scan_dir

if TYPE_CHECKING:
    import fsspec

__all__ = ['LocalStorage']

logger = logging.getLogger(__name__)


def _load_noreplace_rename() -> Any:
    """The libc call that renames without replacing, or ``None`` where there is none."""
    try:
        if sys.platform.startswith('linux') or sys.platform == 'darwin':
            # the process's own symbols include libc: no library search (ctypes.util runs
            # ldconfig for it) on every start
            libc = ctypes.CDLL(None, use_errno=True)
        else:
            from ctypes.util import find_library

            libc = ctypes.CDLL(find_library('c') or None, use_errno=True)
    except OSError:
        return None
    if sys.platform.startswith('linux') and hasattr(libc, 'renameat2'):
        at_fdcwd, rename_noreplace = -100, 1
        fn = libc.renameat2
        fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]

        def call(src: bytes, dst: bytes) -> int:
            return int(fn(at_fdcwd, src, at_fdcwd, dst, rename_noreplace))

        return call
    if sys.platform == 'darwin' and hasattr(libc, 'renamex_np'):
        rename_excl = 0x4
        fn = libc.renamex_np
        fn.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_uint]

        def call_darwin(src: bytes, dst: bytes) -> int:
            return int(fn(src, dst, rename_excl))

        return call_darwin
    return None


_noreplace = _load_noreplace_rename()
_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, getattr(errno, 'ENOTSUP', -1)}


def rename_noreplace(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst``; ``FileExistsError`` if ``dst`` exists (file, dir or link)."""
    if _noreplace is not None:
        if _noreplace(os.fsencode(src), os.fsencode(dst)) == 0:
            return
        err = ctypes.get_errno()
        if err not in _UNSUPPORTED:  # e.g. some network filesystems: fall back below
            raise OSError(err, os.strerror(err), str(src), None, str(dst))
    # Fallback: a tiny check-then-rename window. os.rename would replace an *empty* directory.
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(dst))
    os.rename(src, dst)


class LocalStorage(StorageLocation):
    """A ``file_system`` storage rooted at an absolute local directory."""

    is_local = True

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        provider: str = 'file_system',
        storage_id: Any = None,
        storage_name: str | None = None,
    ) -> None:
        root_path = Path(os.path.abspath(root))
        self._fs: fsspec.AbstractFileSystem | None = None
        super().__init__(
            provider,
            None,
            str(root_path),
            storage_id=storage_id,
            storage_name=storage_name,
        )
        self._root_path = root_path

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        """fsspec's local filesystem, made on first use: staging and publishing here are plain
        ``os`` calls, so an export never pays for importing fsspec."""
        if self._fs is None:
            from fsspec.implementations.local import LocalFileSystem

            self._fs = LocalFileSystem()
        return self._fs

    @fs.setter
    def fs(self, value: fsspec.AbstractFileSystem) -> None:
        self._fs = value

    def _resolve(self, rel: str, field: str) -> Path:
        rel = validate_rel_path(rel, field)
        return self._root_path / rel if rel else self._root_path

    def url(self, rel: str) -> str:
        """The absolute local path of ``rel``."""
        return str(self._resolve(rel, 'rel'))

    def exists(self, rel: str) -> bool:
        """Whether ``rel`` exists under the root."""
        return self._resolve(rel, 'rel').exists()

    def read_bytes(self, rel: str) -> bytes:
        """The bytes of the file ``rel`` under the root."""
        try:
            return self._resolve(rel, 'rel').read_bytes()
        except OSError as exc:
            raise StorageError(f'Could not read {self.url(rel)}: {exc.strerror or exc}') from exc

    def _parent(self, rel_path: str, created: list[Path] | None = None) -> Path:
        """``<root>/<rel_path>``, created if missing, checked to really be inside the root."""
        parent = self._resolve(rel_path, 'path')
        if not self._root_path.is_dir():
            raise StorageError(f'Storage root {self.root} does not exist or is not a directory')
        missing = []
        probe = parent
        while not probe.exists() and probe != self._root_path:
            missing.append(probe)
            probe = probe.parent
        try:
            for directory in reversed(missing):
                try:
                    directory.mkdir()
                    if created is not None:
                        created.append(directory)
                except FileExistsError:
                    pass
        except OSError as exc:
            raise StorageError(
                f'Could not create export directory {parent}: {exc.strerror or exc}'
            ) from exc
        # A symlink inside the root must not let an export land outside of it.
        real_root, real_parent = self._root_path.resolve(), parent.resolve()
        if real_parent != real_root and real_root not in real_parent.parents:
            raise StorageError(
                f'Export directory {parent} resolves outside the storage root {self.root} '
                '(through a symbolic link); refusing to write there'
            )
        if not real_parent.is_dir():
            raise StorageError(f'Export directory {parent} exists and is not a directory')
        return parent

    def _staging_parent(self, rel_path: str) -> Path:
        """Staging directories are hidden siblings of the target: one rename publishes."""
        return self._resolve(rel_path, 'path')

    def _make_staging_parent(self, rel_path: str, created: list[Path]) -> Path:
        return self._parent(rel_path, created)

    def _iter_staging(self, rel: str) -> Iterator[StagingInfo]:
        """The staging directories of exports to ``rel``: those directly in ``<root>/<rel>``,
        where :meth:`staging_dir` puts them. Nothing below is listed: the storage is never
        walked (its root may be a whole filesystem)."""
        folder = self._resolve(rel, 'path')
        try:
            real, real_root = folder.resolve(strict=True), self._root_path.resolve()
        except (OSError, RuntimeError):
            return
        if real.is_dir() and (real == real_root or real.is_relative_to(real_root)):
            yield from scan_dir(folder)

    def publish(self, staging: Path, rel_path: str, name: str) -> str:
        """Rename ``staging`` onto the first free name of ``name``, ``name(1)``, ... ."""
        name = validate_name(name)
        staging = Path(staging)
        if not staging.is_dir():
            raise StorageError(f'Staging directory {staging} does not exist')
        parent = self._parent(rel_path)
        try:
            remove_meta(staging)  # the owner marker and journal are not part of the export
        except OSError as exc:
            raise StorageError(
                f'Could not prepare {staging} for publishing: {exc.strerror or exc}'
            ) from exc
        candidates = name_candidates(name)
        final = parent / next(candidates)
        source = staging
        try:
            while True:
                try:
                    rename_noreplace(source, final)
                    break
                except OSError as exc:
                    # ENOTEMPTY: the fallback's plain rename raced onto a non-empty directory
                    if isinstance(exc, FileExistsError) or exc.errno == errno.ENOTEMPTY:
                        candidate = next(candidates, None)
                        if candidate is None:
                            raise StorageError(
                                f'Could not publish export: {parent / name} and all its '
                                'numbered variants exist'
                            ) from None
                        final = parent / candidate
                    elif exc.errno == errno.EXDEV and source is staging:
                        # staged on another filesystem: copy beside the target, then rename
                        source = parent / f'{STAGING_PREFIX}{uuid.uuid4().hex}'
                        shutil.copytree(staging, source)
                    else:
                        raise
        except OSError as exc:
            if source is not staging:
                shutil.rmtree(source, ignore_errors=True)
            raise StorageError(
                f'Could not publish export to {final}: {exc.strerror or exc}'
            ) from exc
        if source is not staging:
            shutil.rmtree(staging, ignore_errors=True)
        self._forget(staging)
        logger.debug('Published export to %s', final)
        return str(final)

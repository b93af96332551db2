"""The interface every storage provider implements: where an export is staged and published."""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synapse_sdk.errors import StorageError
from synapse_sdk.storage.paths import STAGING_PREFIX, validate_name, validate_rel_path
from synapse_sdk.storage.staging import (
    Owner,
    StagingInfo,
    local_info,
    locked_dir,
    make_marker,
    read_marker,
    scan_dir,
    staging_name,
    trash_name,
    write_marker,
)

if TYPE_CHECKING:
    import fsspec

__all__ = ['MAX_SUFFIX', 'StorageLocation', 'name_candidates']

logger = logging.getLogger(__name__)

#: ``name(1)`` ... ``name(MAX_SUFFIX)`` are tried before publishing gives up.
MAX_SUFFIX = 9999


def name_candidates(name: str) -> Iterator[str]:
    """``name``, ``name(1)``, ``name(2)``, ... ``name(MAX_SUFFIX)``."""
    yield name
    for n in range(1, MAX_SUFFIX + 1):
        yield f'{name}({n})'


class StorageLocation(ABC):
    """A storage resolved to a filesystem, with the atomic-export protocol on top.

    An export is written into :meth:`staging_dir` (always a local directory), then either
    :meth:`publish`-ed to ``<root>/<rel_path>/<name>`` (or ``name(1)``, ``name(2)`` ... when
    taken) or :meth:`discard`-ed. Until ``publish`` succeeds nothing exists at the final path::

        location = open_storage(storage_record)
        staging = location.staging_dir('exports', 'my-export')
        try:
            write_everything_into(staging)
            final_url = location.publish(staging, 'exports', 'my-export')
        except BaseException:
            location.discard(staging)
            raise

    Staging directories record their owner (see :mod:`synapse_sdk.storage.staging`), so the
    leftovers of a killed run are recognised: :meth:`staging_dir` removes dead ones of the same
    export, :meth:`clean_staging` (``synapse storage clean``) removes them all, and
    :meth:`find_staging` / :meth:`adopt_staging` let a resumed run continue in one.

    Attributes:
        provider: the storage record's provider (``file_system``, ``s3``, ``minio``).
        fs: the fsspec filesystem behind it (credentials live here; never log its options).
        root: the root path inside ``fs`` (``/abs/root`` or ``bucket/prefix``).
        is_local: ``True`` when ``root`` is on this machine's filesystem.
        removed_stale: what the last :meth:`staging_dir` call removed (dead runs' leftovers).
    """

    provider: str
    fs: fsspec.AbstractFileSystem
    root: str
    is_local: bool

    def __init__(
        self,
        provider: str,
        fs: fsspec.AbstractFileSystem | None,
        root: str,
        *,
        storage_id: Any = None,
        storage_name: str | None = None,
    ) -> None:
        self.provider = provider
        if fs is not None:  # None: the subclass makes its filesystem when first used
            self.fs = fs
        self.root = root
        self.storage_id = storage_id
        self.storage_name = storage_name
        self.removed_stale: list[StagingInfo] = []
        self._lock = threading.Lock()
        # staging dir -> directories staging_dir() created for it (removed again on discard)
        self._created: dict[Path, list[Path]] = {}

    def __repr__(self) -> str:
        return (
            f'<{type(self).__name__} provider={self.provider!r} id={self.storage_id!r} '
            f'name={self.storage_name!r} root={self.url("")!r}>'
        )

    # -- provider hooks ----------------------------------------------------------------------

    @abstractmethod
    def url(self, rel: str) -> str:
        """The final location of ``rel`` (a safe relative path): an absolute path or URL."""

    @abstractmethod
    def _staging_parent(self, rel_path: str) -> Path:
        """The local directory that holds the staging directories of exports to ``rel_path``
        (``rel_path`` is already validated). Need not exist."""

    @abstractmethod
    def _make_staging_parent(self, rel_path: str, created: list[Path]) -> Path:
        """Create :meth:`_staging_parent` if needed (appending what it created to ``created``)
        and check it is safe to write in; raises ``StorageError``."""

    @abstractmethod
    def publish(self, staging: Path, rel_path: str, name: str) -> str:
        """Move ``staging`` to ``<root>/<rel_path>/<name>`` (``name(1)`` ... when taken).

        Returns the final URL (see :meth:`url`). On failure raises ``StorageError``, leaves
        nothing at the final path, and leaves ``staging`` for :meth:`discard`. The staging
        directory's ``.synapse-export/`` folder (owner marker, journal) is never published.
        """

    @abstractmethod
    def exists(self, rel: str) -> bool:
        """Whether ``rel`` (relative to the root) exists."""

    @abstractmethod
    def read_bytes(self, rel: str) -> bytes:
        """The content of the file ``rel`` (relative to the root); meant for small files."""

    def check(self) -> None:
        """Raise ``StorageError`` unless the storage can be written to (root reachable)."""
        root = Path(self.root)
        if not root.is_dir():
            raise StorageError(f'Storage root {self.root} does not exist or is not a directory')
        if not os.access(root, os.W_OK | os.X_OK):
            raise StorageError(f'Storage root {self.root} is not writable by this user')

    # -- staging -----------------------------------------------------------------------------

    def final_url(self, rel_path: str, name: str) -> str:
        """Where ``name`` under ``rel_path`` is published (before any ``(n)`` suffix)."""
        rel = validate_rel_path(rel_path, 'path')
        name = validate_name(name)
        return self.url(f'{rel}/{name}' if rel else name)

    def staging_dir(self, rel_path: str, name: str) -> Path:
        """Create and return a fresh, empty local directory to write an export into.

        ``rel_path`` and ``name`` are validated here (``ParamsError``) so a bad export is
        rejected before any work is done. Staging directories of the same export left by dead
        runs are removed first (listed in :attr:`removed_stale`). The directory has the
        export's stable staging name (see :meth:`find_staging`) unless a live run uses it;
        then it gets a unique suffix.
        """
        rel = validate_rel_path(rel_path, 'path')
        name = validate_name(name)
        final = self.url(f'{rel}/{name}' if rel else name)
        created: list[Path] = []
        parent = self._make_staging_parent(rel, created)
        marker = make_marker(final, rel, name)
        stable = parent / staging_name(final)
        with locked_dir(parent):
            trash = self._set_aside_dead(parent, final)
            staging = None
            for candidate in (stable, parent / f'{stable.name}-{uuid.uuid4().hex[:12]}'):
                try:
                    candidate.mkdir()  # not mkdtemp: its 0700 mode would stick to the export
                except FileExistsError:
                    continue
                except OSError as exc:
                    raise StorageError(
                        f'Could not create staging directory in {parent}: {exc.strerror or exc}'
                    ) from exc
                staging = candidate
                break
            if staging is None:  # pragma: no cover - a uuid collision
                raise StorageError(f'Could not create a staging directory in {parent}')
            try:
                write_marker(staging, marker)
            except OSError as exc:
                shutil.rmtree(staging, ignore_errors=True)
                raise StorageError(
                    f'Could not write to staging directory {staging}: {exc.strerror or exc}'
                ) from exc
        for path in trash:
            shutil.rmtree(path, ignore_errors=True)
        with self._lock:
            self._created[staging] = created
        return staging

    def _set_aside_dead(self, parent: Path, final: str) -> list[Path]:
        """Rename dead runs' staging directories of ``final`` to trash names (caller holds the
        parent's lock); returns the trash paths to delete once the lock is released."""
        self.removed_stale = []
        trash = []
        for info in scan_dir(parent):
            if info.trash or info.final != final or info.state() != 'dead':
                continue
            target = parent / trash_name()
            try:
                os.rename(info.where, target)
            except OSError:
                logger.warning('Could not remove stale staging directory %s', info.where)
                continue
            owner = info.owner
            logger.info(
                'Removing the staging directory %s of a dead run (%s)',
                info.where,
                owner.describe() if owner else 'unknown owner',
            )
            self.removed_stale.append(info)
            trash.append(target)
        return trash

    def find_staging(self, rel_path: str, name: str) -> StagingInfo | None:
        """The stable staging directory of this export, if one exists (for ``--resume``).

        ``info.where`` is its path, ``info.state()`` says whether its owner is ``alive``,
        ``dead`` or ``unknown``, ``info.marker`` is its marker. Use :meth:`adopt_staging` to
        take it over.
        """
        rel = validate_rel_path(rel_path, 'path')
        final = self.final_url(rel, name)
        stable = self._staging_parent(rel) / staging_name(final)
        if not stable.is_dir() or stable.is_symlink():
            return None
        info = local_info(stable)
        if info.final not in (None, final):  # pragma: no cover - a digest collision
            return None
        return info

    def adopt_staging(self, rel_path: str, name: str, *, force: bool = False) -> Path:
        """Take over the stable staging directory of this export and return it.

        Raises ``StorageError`` when there is none, when its owner is still running, or (unless
        ``force``) when its owner cannot be checked from here (another host, no marker). The
        marker is rewritten with this process as the owner; the content is left as it is.
        """
        rel = validate_rel_path(rel_path, 'path')
        name = validate_name(name)
        final = self.final_url(rel, name)
        parent = self._staging_parent(rel)
        if not parent.is_dir():
            raise StorageError(f'No staging directory of {final} to resume')
        with locked_dir(parent):
            info = self.find_staging(rel, name)
            if info is None:
                raise StorageError(f'No staging directory of {final} to resume')
            owner = info.owner
            state = info.state()
            mine = owner is not None and owner == Owner.current()
            if state == 'alive' and not mine:
                raise StorageError(
                    f'The staging directory {info.where} of {final} is in use by a running '
                    f'export ({owner.describe() if owner else "unknown owner"})'
                )
            if state == 'unknown' and not force:
                who = owner.describe() if owner else 'no owner recorded'
                raise StorageError(
                    f'Cannot tell whether the export writing {info.where} ({who}) still runs; '
                    'stop it and resume with force'
                )
            staging = Path(info.where)
            try:
                write_marker(staging, make_marker(final, rel, name))
            except OSError as exc:
                raise StorageError(
                    f'Could not write to staging directory {staging}: {exc.strerror or exc}'
                ) from exc
        with self._lock:
            self._created.setdefault(staging, [])
        return staging

    def list_staging(self, rel_path: str | None = None) -> list[StagingInfo]:
        """The staging leftovers of exports to ``rel_path`` (the storage root when ``None``),
        live ones included: local staging directories directly in that folder (a
        ``file_system`` storage is never walked) and, on object stores, upload prefixes and
        claims under it.
        """
        rel = validate_rel_path(rel_path, 'path')
        return list(self._iter_staging(rel))

    def _iter_staging(self, rel: str) -> Iterator[StagingInfo]:
        raise NotImplementedError

    def clean_staging(
        self,
        older_than: float | None = None,
        *,
        dry_run: bool = False,
        rel_path: str | None = None,
    ) -> list[tuple[StagingInfo, str]]:
        """Remove stale staging leftovers; return ``(info, action)`` for each one found.

        Removed: those whose owner is dead for sure (same host, process gone or rebooted) and,
        with ``older_than`` (seconds), those not known to be alive and untouched for that long.
        Never removed: a staging directory whose owner still runs. ``action`` is ``removed``,
        ``would remove`` (``dry_run``), ``kept`` or ``failed: <reason>``.
        """
        now = time.time()
        report = []
        for info in self.list_staging(rel_path):
            if not info.is_stale(older_than, now):
                report.append((info, 'kept'))
                continue
            if dry_run:
                report.append((info, 'would remove'))
                continue
            try:
                self._remove_staging(info, older_than)
            except Exception as exc:  # keep going: one stubborn entry must not stop the rest
                report.append((info, f'failed: {type(exc).__name__}: {exc}'))
            else:
                report.append((info, 'removed'))
        return report

    def _remove_staging(self, info: StagingInfo, older_than: float | None) -> None:
        """Remove one stale leftover; re-checks under the parent's lock that it still is."""
        path = Path(info.where)
        with locked_dir(path.parent):
            if not path.is_dir() or path.is_symlink():
                return
            fresh = local_info(path)
            if not fresh.is_stale(older_than) or fresh.final != info.final:
                raise StorageError('it is in use again')
            target = path.parent / trash_name()
            os.rename(path, target)
        shutil.rmtree(target, ignore_errors=True)

    def staging_owner(self, staging: Path) -> dict[str, Any] | None:
        """The marker of a staging directory (``None`` when it has none)."""
        return read_marker(Path(staging))

    # -- discard -----------------------------------------------------------------------------

    def discard(self, staging: Path) -> None:
        """Delete a staging directory made by :meth:`staging_dir`. Never raises.

        Refuses (and logs) anything that is not a staging directory, so a wrong argument can
        never wipe real data.
        """
        try:
            staging = Path(staging)
            if not staging.name.startswith(STAGING_PREFIX):
                logger.warning('Not discarding %s: not a staging directory', staging)
                return
            shutil.rmtree(staging, ignore_errors=True)
            self._after_discard(staging)
        except Exception:  # discard runs on error paths; it must not mask the real error
            logger.warning('Could not discard staging directory %s', staging, exc_info=True)

    def _forget(self, staging: Path) -> list[Path]:
        with self._lock:
            return self._created.pop(Path(staging), [])

    def _after_discard(self, staging: Path) -> None:
        # Remove the (now empty) directories staging_dir() created, deepest first.
        for directory in reversed(self._forget(staging)):
            try:
                directory.rmdir()
            except OSError:
                break

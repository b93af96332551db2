"""The interface every storage provider implements: where an export is staged and published."""

from __future__ import annotations

import logging
import shutil
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec

from synapse_sdk.storage.paths import STAGING_PREFIX

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

    Attributes:
        provider: the storage record's provider (``file_system``, ``s3``, ``minio``).
        fs: the fsspec filesystem behind it (credentials live here; never log its options).
        root: the root path inside ``fs`` (``/abs/root`` or ``bucket/prefix``).
        is_local: ``True`` when ``root`` is on this machine's filesystem.
    """

    provider: str
    fs: fsspec.AbstractFileSystem
    root: str
    is_local: bool

    def __init__(
        self,
        provider: str,
        fs: fsspec.AbstractFileSystem,
        root: str,
        *,
        storage_id: Any = None,
        storage_name: str | None = None,
    ) -> None:
        self.provider = provider
        self.fs = fs
        self.root = root
        self.storage_id = storage_id
        self.storage_name = storage_name

    def __repr__(self) -> str:
        return (
            f'<{type(self).__name__} provider={self.provider!r} id={self.storage_id!r} '
            f'name={self.storage_name!r} root={self.url("")!r}>'
        )

    @abstractmethod
    def url(self, rel: str) -> str:
        """The final location of ``rel`` (a safe relative path): an absolute path or URL."""

    @abstractmethod
    def staging_dir(self, rel_path: str, name: str) -> Path:
        """Create and return a fresh, empty local directory to write an export into.

        ``rel_path`` and ``name`` are validated here (``ParamsError``) so a bad export is
        rejected before any work is done.
        """

    @abstractmethod
    def publish(self, staging: Path, rel_path: str, name: str) -> str:
        """Move ``staging`` to ``<root>/<rel_path>/<name>`` (``name(1)`` ... when taken).

        Returns the final URL (see :meth:`url`). On failure raises ``StorageError``, leaves
        nothing at the final path, and leaves ``staging`` for :meth:`discard`.
        """

    @abstractmethod
    def exists(self, rel: str) -> bool:
        """Whether ``rel`` (relative to the root) exists."""

    @abstractmethod
    def read_bytes(self, rel: str) -> bytes:
        """The content of the file ``rel`` (relative to the root); meant for small files."""

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

    def _after_discard(self, staging: Path) -> None:
        """Hook for provider-specific cleanup after the staging directory is gone."""
        return None

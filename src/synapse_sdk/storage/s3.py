"""``s3`` and ``minio`` storages: a bucket (and optional key prefix) on an S3-compatible store.

An export is written to a local staging directory, uploaded under a hidden temporary prefix
beside the target (``<root>/<path>/.synapse-staging-<hex>/``), copied server-side to the final
prefix and the temporary prefix deleted. Readers of the final prefix therefore never see a
half-uploaded export, only (for the short copy) an incomplete one; a failed publish deletes
what it copied.

Object stores have no atomic "create if absent" for a prefix, so picking ``name(1)`` when
``name`` is taken is check-then-write: two exports racing for the same name at the same
moment may merge. Give concurrent exports distinct names.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import fsspec

from synapse_sdk.errors import StorageError
from synapse_sdk.storage.base import StorageLocation, name_candidates
from synapse_sdk.storage.paths import STAGING_PREFIX, sanitize_url, validate_name, validate_rel_path

__all__ = ['ObjectStorage']

logger = logging.getLogger(__name__)


class ObjectStorage(StorageLocation):
    """An S3-compatible storage; ``root`` is ``bucket`` or ``bucket/prefix`` inside ``fs``."""

    is_local = False

    def __init__(
        self,
        provider: str,
        fs: fsspec.AbstractFileSystem,
        root: str,
        *,
        endpoint_url: str | None = None,
        secrets: tuple[str, ...] = (),
        storage_id: Any = None,
        storage_name: str | None = None,
    ) -> None:
        super().__init__(
            provider, fs, root.strip('/'), storage_id=storage_id, storage_name=storage_name
        )
        self.endpoint_url = sanitize_url(endpoint_url) if endpoint_url else None
        self._secrets = tuple(s for s in secrets if s)

    def __repr__(self) -> str:
        return f'{super().__repr__()[:-1]} endpoint={self.endpoint_url!r}>'

    def _key(self, rel: str, field: str = 'rel') -> str:
        rel = validate_rel_path(rel, field)
        return f'{self.root}/{rel}' if rel else self.root

    def _error(self, action: str, exc: BaseException) -> StorageError:
        text = f'{type(exc).__name__}: {exc}'
        for secret in self._secrets:  # belt and braces: botocore should never echo them
            text = text.replace(secret, '***')
        return StorageError(f'{self.provider} storage: could not {action}: {text}')

    def url(self, rel: str) -> str:
        """``s3://bucket/prefix/rel``."""
        return f's3://{self._key(rel)}'

    def exists(self, rel: str) -> bool:
        """Whether an object or a non-empty prefix ``rel`` exists under the root."""
        key = self._key(rel)
        try:
            self.fs.invalidate_cache(key)
            return bool(self.fs.exists(key))
        except Exception as exc:
            raise self._error(f'check {self.url(rel)}', exc) from exc

    def read_bytes(self, rel: str) -> bytes:
        """The bytes of the object ``rel`` under the root."""
        try:
            return bytes(self.fs.cat_file(self._key(rel)))
        except Exception as exc:
            raise self._error(f'read {self.url(rel)}', exc) from exc

    def staging_dir(self, rel_path: str, name: str) -> Path:
        """A fresh local temporary directory; uploaded by :meth:`publish`."""
        validate_rel_path(rel_path, 'path')
        validate_name(name)
        return Path(tempfile.mkdtemp(prefix=STAGING_PREFIX))

    def publish(self, staging: Path, rel_path: str, name: str) -> str:
        """Upload to a temporary prefix, copy to the first free ``name``/``name(n)``, clean up."""
        name = validate_name(name)
        parent = self._key(rel_path, 'path')
        staging = Path(staging)
        if not staging.is_dir():
            raise StorageError(f'Staging directory {staging} does not exist')
        files = sorted(
            Path(dirpath, f).relative_to(staging).as_posix()
            for dirpath, _dirs, filenames in os.walk(staging)
            for f in filenames
        )
        tmp_prefix = f'{parent}/{STAGING_PREFIX}{uuid.uuid4().hex}'
        try:
            if files:
                self.fs.put([str(staging / f) for f in files], [f'{tmp_prefix}/{f}' for f in files])
        except Exception as exc:
            self._remove(tmp_prefix)
            raise self._error(f'upload export to s3://{tmp_prefix}', exc) from exc

        final = self._free_name(parent, name)
        try:
            if files:
                self.fs.copy([f'{tmp_prefix}/{f}' for f in files], [f'{final}/{f}' for f in files])
        except Exception as exc:
            self._remove(final)  # nothing half-copied may stay at the final path
            raise self._error(f'publish export to s3://{final}', exc) from exc
        finally:
            self._remove(tmp_prefix)
        shutil.rmtree(staging, ignore_errors=True)
        logger.debug('Published export to s3://%s (%d files)', final, len(files))
        return f's3://{final}'

    def _free_name(self, parent: str, name: str) -> str:
        try:
            self.fs.invalidate_cache(parent)
            for candidate in name_candidates(name):
                key = f'{parent}/{candidate}'
                if not self.fs.exists(key):
                    return key
        except Exception as exc:
            raise self._error(f'list s3://{parent}', exc) from exc
        raise StorageError(
            f'Could not publish export: s3://{parent}/{name} and all its variants exist'
        )

    def _remove(self, prefix: str) -> None:
        try:
            self.fs.invalidate_cache(prefix)
            if self.fs.exists(prefix):
                self.fs.rm(prefix, recursive=True)
        except Exception:
            logger.warning('Could not delete s3://%s', prefix, exc_info=True)
        finally:
            self.fs.invalidate_cache(prefix)

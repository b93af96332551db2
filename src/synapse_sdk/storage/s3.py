"""``s3`` and ``minio`` storages: a bucket (and optional key prefix) on an S3-compatible store.

An export is staged in a local directory (under ``$SYNAPSE_STAGING_DIR``, default
``<tmp>/synapse-staging-<uid>``), uploaded under a hidden temporary prefix beside the target
(``<root>/<path>/.synapse-staging-<hex>/``), copied server-side to the final prefix and the
temporary prefix deleted. Readers of the final prefix never see a half-uploaded export, only
(for the short copy) an incomplete one; a failed or interrupted publish deletes what it copied.

Choosing the final name is race-free: before copying to ``name`` (or ``name(n)``) a publisher
*claims* it by creating the object ``<root>/<path>/.synapse-staging-claim-<name>`` with a
conditional write (``If-None-Match: *``, which S3, MinIO and moto honour), so of two exports
racing for the same name exactly one gets it and the other moves on to ``name(1)``. The claim
holds its owner and how many files and bytes the copy will write, and is deleted once the copy
is complete: a claim whose owner died marks a copy that never finished, which the next export
of that name (or ``synapse storage clean``) deletes together with the claim.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import stat
import tempfile
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import fsspec
import orjson

from synapse_sdk.errors import StorageError
from synapse_sdk.storage.base import StorageLocation, name_candidates
from synapse_sdk.storage.paths import STAGING_PREFIX, sanitize_url, validate_name, validate_rel_path
from synapse_sdk.storage.staging import (
    CLAIM_PREFIX,
    META_DIR,
    OWNER_FILE,
    Owner,
    StagingInfo,
    make_marker,
    now_iso,
    parse_marker,
    read_marker,
    scan_dir,
)

__all__ = ['ObjectStorage', 'default_staging_root']

logger = logging.getLogger(__name__)


def default_staging_root() -> Path:
    """``$SYNAPSE_STAGING_DIR``, else ``<tmp>/synapse-staging-<uid>`` (private to the user)."""
    configured = os.environ.get('SYNAPSE_STAGING_DIR', '').strip()
    if configured:
        return Path(configured).expanduser()
    user = os.getuid() if hasattr(os, 'getuid') else os.environ.get('USERNAME', 'user')
    return Path(tempfile.gettempdir()) / f'synapse-staging-{user}'


def _error_code(exc: BaseException) -> str:
    """The S3 error code behind an s3fs error (``PreconditionFailed`` ...), or ``''``."""
    cause = exc.__cause__ or exc
    response = getattr(cause, 'response', None)
    if isinstance(response, dict):
        return str(response.get('Error', {}).get('Code', ''))
    return ''


def _staged_files(staging: Path) -> list[str]:
    """The files of an export in ``staging`` (relative POSIX paths), without ``META_DIR``."""
    files: list[str] = []
    for dirpath, dirs, filenames in os.walk(staging):
        if Path(dirpath) == staging and META_DIR in dirs:
            dirs.remove(META_DIR)
        files.extend(Path(dirpath, f).relative_to(staging).as_posix() for f in filenames)
    return sorted(files)


def _timestamp(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


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
        staging_root: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__(
            provider, fs, root.strip('/'), storage_id=storage_id, storage_name=storage_name
        )
        self.endpoint_url = sanitize_url(endpoint_url) if endpoint_url else None
        self._secrets = tuple(s for s in secrets if s)
        self.staging_root = Path(staging_root) if staging_root else default_staging_root()

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
            return self._taken(key)
        except Exception as exc:
            raise self._error(f'check {self.url(rel)}', exc) from exc

    def read_bytes(self, rel: str) -> bytes:
        """The bytes of the object ``rel`` under the root."""
        try:
            return bytes(self.fs.cat_file(self._key(rel)))
        except Exception as exc:
            raise self._error(f'read {self.url(rel)}', exc) from exc

    def check(self) -> None:
        """Raise ``StorageError`` unless the bucket answers with these credentials."""
        bucket = self.root.split('/', 1)[0]
        s3: Any = self.fs
        try:
            s3.call_s3('head_bucket', Bucket=bucket)
        except Exception as exc:
            raise self._error(f'reach bucket {bucket!r}', exc) from exc

    # -- staging (local) ---------------------------------------------------------------------

    def _staging_parent(self, rel_path: str) -> Path:
        return self.staging_root

    def _make_staging_parent(self, rel_path: str, created: list[Path]) -> Path:
        root = self.staging_root
        try:
            root.mkdir(mode=0o700, parents=True, exist_ok=True)
            info = root.lstat()
        except OSError as exc:
            raise StorageError(
                f'Could not create the staging directory {root}: {exc.strerror or exc} '
                '(set SYNAPSE_STAGING_DIR to a writable directory)'
            ) from exc
        if not stat.S_ISDIR(info.st_mode):
            raise StorageError(f'Staging directory {root} is not a directory (or is a link)')
        if hasattr(os, 'getuid') and info.st_uid != os.getuid():
            raise StorageError(
                f'Staging directory {root} belongs to another user; '
                'set SYNAPSE_STAGING_DIR to a directory of your own'
            )
        return root

    def _iter_staging(self, rel: str) -> Iterator[StagingInfo]:
        base = self.url(rel)
        for info in scan_dir(self.staging_root):
            final = info.final
            if final is None or final == base or final.startswith(base.rstrip('/') + '/'):
                yield info
        yield from self._remote_staging(self._key(rel, 'path'))

    # -- publish -----------------------------------------------------------------------------

    def publish(self, staging: Path, rel_path: str, name: str) -> str:
        """Upload to a temporary prefix, claim the first free ``name``/``name(n)``, copy there,
        release the claim and delete the temporary prefix."""
        name = validate_name(name)
        rel = validate_rel_path(rel_path, 'path')
        parent = self._key(rel, 'path')
        staging = Path(staging)
        if not staging.is_dir():
            raise StorageError(f'Staging directory {staging} does not exist')
        files = _staged_files(staging)
        total = sum((staging / f).stat().st_size for f in files)
        final_url = self.url(f'{rel}/{name}' if rel else name)
        marker = read_marker(staging)
        marker_bytes = (
            orjson.dumps(marker) if marker is not None else make_marker(final_url, rel, name)
        )
        self._remove_dead_remote(parent, final_url)

        tmp_prefix = f'{parent}/{STAGING_PREFIX}{uuid.uuid4().hex}'
        try:
            self.fs.pipe_file(f'{tmp_prefix}/{META_DIR}/{OWNER_FILE}', marker_bytes)
            if files:
                self.fs.put([str(staging / f) for f in files], [f'{tmp_prefix}/{f}' for f in files])
        except BaseException as exc:
            self._remove(tmp_prefix)
            if isinstance(exc, Exception):
                raise self._error(f'upload export to s3://{tmp_prefix}', exc) from exc
            raise

        try:
            final, claim = self._claim_free_name(parent, name, final_url, len(files), total)
            try:
                if files:
                    self.fs.copy(
                        [f'{tmp_prefix}/{f}' for f in files], [f'{final}/{f}' for f in files]
                    )
            except BaseException as exc:  # interrupted too: nothing half-copied may stay
                self._remove_keys(final, files)
                self._release(claim)
                if isinstance(exc, Exception):
                    raise self._error(f'publish export to s3://{final}', exc) from exc
                raise
            self._release(claim)
        finally:
            self._remove(tmp_prefix)
        shutil.rmtree(staging, ignore_errors=True)
        self._forget(staging)
        logger.debug('Published export to s3://%s (%d files)', final, len(files))
        return f's3://{final}'

    def _taken(self, key: str) -> bool:
        self.fs.invalidate_cache(key)
        return bool(self.fs.exists(key))

    def _claim_free_name(
        self, parent: str, name: str, final_url: str, files: int, total: int
    ) -> tuple[str, str]:
        """Claim the first free candidate name; returns ``(final key, claim key)``."""
        token = uuid.uuid4().hex
        owner = Owner.current().to_json()
        try:
            for candidate in name_candidates(name):
                key = f'{parent}/{candidate}'
                if self._taken(key):
                    continue
                claim = f'{parent}/{CLAIM_PREFIX}{candidate}'
                body = orjson.dumps(
                    {
                        'version': 1,
                        'owner': owner,
                        'export': {'final': f's3://{key}', 'requested': final_url, 'name': name},
                        'token': token,
                        'files': files,
                        'bytes': total,
                        'created': now_iso(),
                    }
                )
                if not self._claim(claim, body, token):
                    continue
                if self._taken(key):  # a publisher that held the claim finished there first
                    self._release(claim)
                    continue
                return key, claim
        except StorageError:
            raise
        except Exception as exc:
            raise self._error(f'claim a name under s3://{parent}', exc) from exc
        raise StorageError(
            f'Could not publish export: s3://{parent}/{name} and all its variants exist'
        )

    def _claim(self, claim: str, body: bytes, token: str) -> bool:
        """Create ``claim`` only if it does not exist; ``False`` when another publisher has it."""
        bucket, _, key = claim.partition('/')
        s3: Any = self.fs
        try:
            s3.call_s3('put_object', Bucket=bucket, Key=key, Body=body, IfNoneMatch='*')
        except FileExistsError:
            return False
        except OSError as exc:
            code = _error_code(exc)
            if code in ('PreconditionFailed', 'ConditionalRequestConflict'):
                return False
            if code != 'NotImplemented' and exc.errno != errno.ENOSYS:
                raise
            # A store without conditional writes: claim plainly, the read-back below decides.
            logger.warning('s3://%s does not support conditional writes', bucket)
            s3.call_s3('put_object', Bucket=bucket, Key=key, Body=body)
        # Read back: with a store that ignored the condition the last writer wins, and only
        # that one may go on.
        self.fs.invalidate_cache(claim)
        got = parse_marker(bytes(self.fs.cat_file(claim)))
        return got is not None and got.get('token') == token

    def _release(self, claim: str) -> None:
        for _ in range(3):
            try:
                self.fs.rm_file(claim)
                return
            except FileNotFoundError:
                return
            except Exception:
                logger.warning('Could not delete the claim s3://%s', claim, exc_info=True)
        self.fs.invalidate_cache(claim)

    def _remove_keys(self, prefix: str, files: list[str]) -> None:
        try:
            if files:
                self.fs.rm([f'{prefix}/{f}' for f in files])
        except Exception:
            logger.warning('Could not delete s3://%s', prefix, exc_info=True)
        self._remove(prefix)

    def _remove(self, prefix: str) -> None:
        try:
            self.fs.invalidate_cache(prefix)
            if self.fs.exists(prefix):
                self.fs.rm(prefix, recursive=True)
        except Exception:
            logger.warning('Could not delete s3://%s', prefix, exc_info=True)
        finally:
            self.fs.invalidate_cache(prefix)

    # -- leftovers on the store --------------------------------------------------------------

    def _read_json(self, key: str) -> dict[str, Any] | None:
        try:
            return parse_marker(bytes(self.fs.cat_file(key)))
        except Exception:
            return None

    def _remote_staging(self, base: str) -> Iterator[StagingInfo]:
        """Upload prefixes and claims anywhere under ``base`` (a full listing of it)."""
        try:
            self.fs.invalidate_cache(base)
            found = self.fs.find(base, detail=True)
        except FileNotFoundError:
            return
        except Exception as exc:
            raise self._error(f'list s3://{base}', exc) from exc
        prefixes: dict[str, float] = {}
        claims: dict[str, float] = {}
        for key, info in sorted(found.items()):
            parts = key.split('/')
            for i, part in enumerate(parts):
                if not part.startswith(STAGING_PREFIX):
                    continue
                modified = _timestamp(info.get('LastModified'))
                if part.startswith(CLAIM_PREFIX) and i == len(parts) - 1:
                    claims[key] = modified
                else:
                    prefix = '/'.join(parts[: i + 1])
                    prefixes[prefix] = max(prefixes.get(prefix, 0.0), modified)
                break
        for prefix, modified in prefixes.items():
            marker = self._read_json(f'{prefix}/{META_DIR}/{OWNER_FILE}')
            yield StagingInfo('prefix', f's3://{prefix}', marker, modified)
        for claim, modified in claims.items():
            yield StagingInfo('claim', f's3://{claim}', self._read_json(claim), modified)

    def _remove_dead_remote(self, parent: str, final_url: str) -> None:
        """Delete this export's upload prefixes and claims left by dead runs (best effort)."""
        try:
            self.fs.invalidate_cache(parent)
            entries = self.fs.ls(parent, detail=True)
        except FileNotFoundError:
            return
        except Exception:
            logger.warning('Could not list s3://%s for stale uploads', parent, exc_info=True)
            return
        for entry in entries:
            key = str(entry.get('name', '')).rstrip('/')
            base = key.rsplit('/', 1)[-1]
            if not base.startswith(STAGING_PREFIX):
                continue
            try:
                if base.startswith(CLAIM_PREFIX) and entry.get('type') != 'directory':
                    info = StagingInfo('claim', f's3://{key}', self._read_json(key), 0.0)
                    requested = (info.marker or {}).get('export', {}).get('requested')
                    if requested == final_url and info.state() == 'dead':
                        logger.info('Removing an unfinished copy left by a dead run: %s', key)
                        self._clear_claim(info)
                elif entry.get('type') == 'directory':
                    marker = self._read_json(f'{key}/{META_DIR}/{OWNER_FILE}')
                    info = StagingInfo('prefix', f's3://{key}', marker, 0.0)
                    if info.final == final_url and info.state() == 'dead':
                        logger.info('Removing the upload of a dead run: s3://%s', key)
                        self._remove(key)
            except Exception:
                logger.warning('Could not remove stale s3://%s', key, exc_info=True)

    def _clear_claim(self, info: StagingInfo) -> None:
        """Delete a dead claim and, unless its copy completed, what it copied."""
        claim = info.where.removeprefix('s3://')
        marker = info.marker or {}
        final = str(marker.get('export', {}).get('final') or '').removeprefix('s3://')
        parent, _, base = claim.rpartition('/')
        # only ever the name this claim is for, beside it (a forged claim deletes nothing else)
        if final and final == f'{parent}/{base.removeprefix(CLAIM_PREFIX)}':
            self.fs.invalidate_cache(final)
            try:
                found = self.fs.find(final, detail=True)
            except FileNotFoundError:
                found = {}
            count = len(found)
            size = sum(int(v.get('size') or 0) for v in found.values())
            if found and (count, size) != (marker.get('files'), marker.get('bytes')):
                self.fs.rm(sorted(found))
                self.fs.invalidate_cache(final)
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(claim)
        self.fs.invalidate_cache(claim)

    def _remove_staging(self, info: StagingInfo, older_than: float | None) -> None:
        if info.kind == 'directory':
            super()._remove_staging(info, older_than)
        elif info.kind == 'claim':
            self._clear_claim(info)
        else:
            self._remove(info.where.removeprefix('s3://'))

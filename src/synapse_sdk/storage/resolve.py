"""Storage record -> :class:`StorageLocation`.

A storage record is what the backend returns for ``GET storages/{id}/``::

    {"id": 1, "name": "local exports", "provider": "file_system",
     "configuration": {"location": "/abs/root"}}

    {"id": 2, "name": "lake", "provider": "minio",
     "configuration": {"bucket": "exports", "endpoint_url": "http://minio:9000",
                       "access_key": "...", "secret_key": "...", "region": "us-east-1",
                       "prefix": "team-a"}}

``aws_access_key_id`` / ``aws_secret_access_key`` are accepted for the credentials,
``endpoint`` for ``endpoint_url``, ``region_name`` for ``region``. An ``s3`` storage without
credentials uses the standard AWS chain (environment, profile, instance role); ``minio``
requires them and an endpoint.

Secrets over HTTP: the backend's ``GET storages/{id}/`` never returns a secret key (the
embedded server leaves out every secret, password and token). A storage record without its
secret takes the credentials from this machine's environment instead:
``AWS_SECRET_ACCESS_KEY`` (with ``AWS_ACCESS_KEY_ID`` when set, else the record's
``access_key``) and ``AWS_SESSION_TOKEN``, the variables every S3 tool reads. An ``s3``
storage with neither falls back to the standard AWS chain (profile, instance role).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from synapse_sdk.errors import ParamsError, StorageError
from synapse_sdk.storage.base import StorageLocation
from synapse_sdk.storage.local import LocalStorage
from synapse_sdk.storage.paths import sanitize_url, validate_rel_path

if TYPE_CHECKING:
    from synapse_sdk.storage.s3 import ObjectStorage

__all__ = ['SUPPORTED_PROVIDERS', 'open_storage']

SUPPORTED_PROVIDERS = ('file_system', 'minio', 's3')


def _label(storage: Mapping[str, Any]) -> str:
    label = f'storage {storage.get("id")!r}'
    if storage.get('name'):
        label += f' ({storage["name"]!r})'
    return label


def _pick(config: Mapping[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = config.get(key)
        if value not in (None, ''):
            return str(value)
    return None


def open_storage(storage: Mapping[str, Any] | StorageLocation) -> StorageLocation:
    """Resolve a storage record ``{"id", "name", "provider", "configuration"}``.

    Raises :class:`~synapse_sdk.errors.StorageError` for an unknown provider (naming the
    supported ones) or a missing/invalid configuration key. An already open
    :class:`StorageLocation` is returned as is. Credentials never appear in the
    error text or in the returned object's ``repr``.
    """
    if isinstance(storage, StorageLocation):
        return storage
    if not isinstance(storage, Mapping):
        raise StorageError(
            'A storage must be a record {"id", "name", "provider", "configuration"}, '
            f'not {type(storage).__name__}'
        )
    label = _label(storage)
    provider = str(storage.get('provider') or '').strip().lower()
    config = storage.get('configuration')
    if provider not in SUPPORTED_PROVIDERS:
        raise StorageError(
            f'{label}: unknown provider {storage.get("provider")!r}; '
            f'supported providers: {", ".join(SUPPORTED_PROVIDERS)}'
        )
    if not isinstance(config, Mapping):
        raise StorageError(
            f'{label}: "configuration" must be an object, not {type(config).__name__}'
        )
    ident = {'storage_id': storage.get('id'), 'storage_name': storage.get('name')}
    if provider == 'file_system':
        return _open_local(label, config, ident)
    return _open_s3(label, provider, config, ident)


def _open_local(label: str, config: Mapping[str, Any], ident: dict[str, Any]) -> LocalStorage:
    location = _pick(config, 'location', 'path', 'root')
    if location is None:
        raise StorageError(
            f'{label}: file_system configuration needs "location" (an absolute path)'
        )
    if location.startswith('file://'):
        location = location[len('file://') :]
    location = os.path.expanduser(location)
    if not os.path.isabs(location):
        raise StorageError(f'{label}: "location" must be an absolute path, got {location!r}')
    if not os.path.isdir(location):
        raise StorageError(f'{label}: "location" {location!r} does not exist or is not a directory')
    return LocalStorage(location, **ident)


def _open_s3(
    label: str, provider: str, config: Mapping[str, Any], ident: dict[str, Any]
) -> ObjectStorage:
    bucket = _pick(config, 'bucket', 'bucket_name')
    endpoint = _pick(config, 'endpoint_url', 'endpoint')
    key = _pick(config, 'access_key', 'aws_access_key_id')
    secret = _pick(config, 'secret_key', 'aws_secret_access_key')
    token = _pick(config, 'session_token', 'aws_session_token')
    region = _pick(config, 'region', 'region_name')
    from_env = False
    if secret is None:  # a record served without its secret: this machine's credentials
        env_secret = os.environ.get('AWS_SECRET_ACCESS_KEY') or None
        if env_secret is not None:
            key = os.environ.get('AWS_ACCESS_KEY_ID') or key
            secret, token = env_secret, os.environ.get('AWS_SESSION_TOKEN') or None
            from_env = True
        elif provider == 's3':
            key = None  # the standard AWS chain finds the pair (profile, instance role)
    missing = []
    if bucket is None:
        missing.append('"bucket"')
    if provider == 'minio' and endpoint is None:
        missing.append('"endpoint_url"')
    if (provider == 'minio' or secret is not None) and key is None:
        missing.append('"access_key" (or "aws_access_key_id")')
    if (provider == 'minio' or key is not None) and secret is None:
        missing.append('"secret_key" (or "aws_secret_access_key")')
    if missing:
        hint = ''
        if secret is None:
            hint = (
                '; a backend never sends secrets, so set AWS_ACCESS_KEY_ID and '
                'AWS_SECRET_ACCESS_KEY in the environment'
            )
        elif from_env and key is None:
            hint = '; AWS_SECRET_ACCESS_KEY is set, set AWS_ACCESS_KEY_ID too'
        raise StorageError(
            f'{label}: {provider} configuration is missing {", ".join(missing)}{hint}'
        )
    assert bucket is not None
    if '/' in bucket or not bucket.strip():
        raise StorageError(f'{label}: "bucket" must be a bucket name, got {bucket!r}')
    if endpoint is not None and not endpoint.startswith(('http://', 'https://')):
        raise StorageError(
            f'{label}: "endpoint_url" must start with http:// or https://, '
            f'got {sanitize_url(endpoint)!r}'
        )
    try:
        prefix = validate_rel_path(_pick(config, 'prefix', 'base_path'), 'prefix')
    except ParamsError as exc:
        raise StorageError(f'{label}: {exc}') from None
    try:
        import s3fs
    except ImportError as exc:
        raise StorageError(
            f'{label}: the {provider} provider needs s3fs (pip install "synapse-sdk[s3]")'
        ) from exc

    options: dict[str, Any] = {'skip_instance_cache': True}
    if key is not None:
        options.update(key=key, secret=secret, token=token)
    if region is not None:
        options['client_kwargs'] = {'region_name': region}
    if endpoint is not None:
        options['endpoint_url'] = endpoint
        # MinIO and most self-hosted stores only speak path-style addressing
        options['config_kwargs'] = {'s3': {'addressing_style': 'path'}}
    try:
        fs = s3fs.S3FileSystem(**options)
    except Exception as exc:
        raise StorageError(
            f'{label}: could not set up the {provider} client: {type(exc).__name__}'
        ) from None
    root = f'{bucket}/{prefix}' if prefix else bucket
    from synapse_sdk.storage.s3 import ObjectStorage  # fsspec: only for object storages

    return ObjectStorage(
        provider,
        fs,
        root,
        endpoint_url=endpoint,
        secrets=tuple(s for s in (key, secret, token) if s),
        **ident,
    )

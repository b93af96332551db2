"""Where exports go and where original files come from.

- :func:`open_storage` resolves a storage record (``file_system``, ``s3``, ``minio``) to a
  :class:`StorageLocation`, which stages an export in a temporary directory and publishes it
  atomically to ``<root>/<path>/<name>`` (``name(1)``, ``name(2)`` ... when taken).
- :func:`validate_rel_path` and :func:`validate_name` keep params from escaping the root.
- :class:`Downloader` fetches original files in parallel with retries.

The names are imported when first used (object storages bring fsspec, downloads httpx), so
importing this package costs nothing an export to a local directory does not need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from synapse_sdk._lazy import lazy_exports

if TYPE_CHECKING:
    from synapse_sdk.storage.base import StorageLocation
    from synapse_sdk.storage.download import Downloader, DownloadError
    from synapse_sdk.storage.local import LocalStorage
    from synapse_sdk.storage.paths import sanitize_url, validate_name, validate_rel_path
    from synapse_sdk.storage.resolve import SUPPORTED_PROVIDERS, open_storage
    from synapse_sdk.storage.s3 import ObjectStorage

__all__ = [
    'SUPPORTED_PROVIDERS',
    'DownloadError',
    'Downloader',
    'LocalStorage',
    'ObjectStorage',
    'StorageLocation',
    'open_storage',
    'sanitize_url',
    'validate_name',
    'validate_rel_path',
]

_MODULES = {
    'SUPPORTED_PROVIDERS': 'resolve',
    'DownloadError': 'download',
    'Downloader': 'download',
    'LocalStorage': 'local',
    'ObjectStorage': 's3',
    'StorageLocation': 'base',
    'open_storage': 'resolve',
    'sanitize_url': 'paths',
    'validate_name': 'paths',
    'validate_rel_path': 'paths',
}


__getattr__ = lazy_exports(__name__, _MODULES)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

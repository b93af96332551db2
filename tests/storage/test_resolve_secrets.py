"""A storage read over HTTP has no secret (the server leaves it out); the exporting machine's
AWS_* environment supplies the credentials. Real server on 127.0.0.1, real S3 (moto)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from synapse_sdk.clients import BackendClient
from synapse_sdk.errors import StorageError
from synapse_sdk.server.app import serve_in_thread
from synapse_sdk.server.store import Store
from synapse_sdk.storage import open_storage

from .conftest import ACCESS_KEY, SECRET_KEY


def served_record(home: Path, config: dict[str, Any]) -> dict[str, Any]:
    with Store(home) as store:
        storage = store.create_storage('lake', 'minio', config)
    with serve_in_thread(home) as url, BackendClient(url) as client:
        return client.get_storage(storage['id'])


def test_credentials_come_from_the_environment(
    synapse_home: Path, s3_record: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    record = served_record(synapse_home, dict(s3_record['configuration']))
    assert 'secret_key' not in record['configuration']
    assert SECRET_KEY not in repr(record)
    monkeypatch.setenv('AWS_ACCESS_KEY_ID', ACCESS_KEY)
    monkeypatch.setenv('AWS_SECRET_ACCESS_KEY', SECRET_KEY)
    monkeypatch.delenv('AWS_SESSION_TOKEN', raising=False)
    location = open_storage(record)
    bucket = s3_record['configuration']['bucket']
    location.fs.pipe(f'{bucket}/probe.txt', b'written with env credentials')
    assert location.fs.cat(f'{bucket}/probe.txt') == b'written with env credentials'


def test_missing_credentials_name_the_variables(
    synapse_home: Path, s3_record: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    record = served_record(synapse_home, dict(s3_record['configuration']))
    monkeypatch.delenv('AWS_SECRET_ACCESS_KEY', raising=False)
    with pytest.raises(StorageError) as info:
        open_storage(record)
    assert 'AWS_SECRET_ACCESS_KEY' in str(info.value) and 'AWS_ACCESS_KEY_ID' in str(info.value)

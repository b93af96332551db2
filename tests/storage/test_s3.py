"""s3/minio storages against a real S3-compatible server (moto) on 127.0.0.1."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from synapse_sdk.errors import ParamsError, StorageError
from synapse_sdk.storage import (
    Downloader,
    DownloadError,
    ObjectStorage,
    StorageLocation,
    open_storage,
)

from .conftest import ACCESS_KEY, SECRET_KEY

pytest.importorskip('s3fs')


def _keys(location: StorageLocation, rel: str = '') -> list[str]:
    base = location.root + (f'/{rel}' if rel else '')
    location.fs.invalidate_cache()
    return sorted(k[len(location.root) + 1 :] for k in location.fs.find(base))


def _write_export(staging: Path) -> None:
    (staging / 'images').mkdir()
    (staging / 'images' / 'a b.jpg').write_bytes(b'\xff\xd8' + bytes(range(256)) * 100)
    (staging / 'annotations.json').write_text('{"images": []}')


def test_open_minio_storage(s3_record: dict[str, Any], moto_endpoint: str) -> None:
    location = open_storage(s3_record)
    assert isinstance(location, ObjectStorage)
    assert location.provider == 'minio'
    assert location.is_local is False
    bucket = s3_record['configuration']['bucket']
    assert location.root == f'{bucket}/team-a'
    assert location.url('exports/x') == f's3://{bucket}/team-a/exports/x'
    # every request of this fs goes to the loopback server, never to AWS
    assert location.fs.client_kwargs == {'region_name': 'us-east-1'}
    assert location.fs.endpoint_url == moto_endpoint
    assert moto_endpoint.startswith('http://127.0.0.1:')


def test_round_trip_publish(s3_record: dict[str, Any]) -> None:
    location = open_storage(s3_record)
    assert isinstance(location, ObjectStorage)
    staging = location.staging_dir('exports/2024', 'demo')
    assert staging.is_dir() and staging.name.startswith('.synapse-staging-')
    _write_export(staging)

    url = location.publish(staging, 'exports/2024', 'demo')

    bucket = s3_record['configuration']['bucket']
    assert url == f's3://{bucket}/team-a/exports/2024/demo'
    assert not staging.exists()
    assert _keys(location) == [
        'exports/2024/demo/annotations.json',
        'exports/2024/demo/images/a b.jpg',
    ]
    assert location.read_bytes('exports/2024/demo/images/a b.jpg') == (
        b'\xff\xd8' + bytes(range(256)) * 100
    )
    assert location.exists('exports/2024/demo')
    assert not location.exists('exports/2024/other')


def test_taken_names_get_suffixes(s3_record: dict[str, Any]) -> None:
    location = open_storage(s3_record)
    urls = []
    for i in range(3):
        staging = location.staging_dir('out', 'demo')
        (staging / 'n.txt').write_text(str(i))
        urls.append(location.publish(staging, 'out', 'demo'))
    assert [u.rsplit('/', 1)[1] for u in urls] == ['demo', 'demo(1)', 'demo(2)']
    assert location.read_bytes('out/demo(2)/n.txt') == b'2'
    assert not any('.synapse-staging-' in k for k in _keys(location))


def test_failed_copy_leaves_nothing_at_final_path(
    s3_record: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    location = open_storage(s3_record)
    staging = location.staging_dir('out', 'demo')
    _write_export(staging)
    real_copy = location.fs.copy

    def copy_one_then_fail(src: list[str], dst: list[str], **kwargs: Any) -> None:
        real_copy(src[:1], dst[:1])
        raise ConnectionError(f'lost connection using {SECRET_KEY}')

    monkeypatch.setattr(location.fs, 'copy', copy_one_then_fail)
    with pytest.raises(StorageError) as info:
        location.publish(staging, 'out', 'demo')
    assert 'could not publish export' in str(info.value)
    assert SECRET_KEY not in str(info.value)
    assert _keys(location) == []
    assert staging.exists()
    location.discard(staging)
    assert not staging.exists()


def test_discard_removes_local_staging(s3_record: dict[str, Any]) -> None:
    location = open_storage(s3_record)
    staging = location.staging_dir('out', 'demo')
    _write_export(staging)
    location.discard(staging)
    assert not staging.exists()
    assert _keys(location) == []


def test_missing_bucket_is_a_clean_error(s3_record: dict[str, Any]) -> None:
    record = {**s3_record, 'configuration': {**s3_record['configuration'], 'bucket': 'nope-404'}}
    location = open_storage(record)
    staging = location.staging_dir('', 'demo')
    _write_export(staging)
    with pytest.raises(StorageError) as info:
        location.publish(staging, '', 'demo')
    text = str(info.value)
    assert 'minio storage: could not upload export' in text
    assert SECRET_KEY not in text and ACCESS_KEY not in text
    location.discard(staging)


def test_aws_style_keys_and_s3_provider(s3_record: dict[str, Any]) -> None:
    config = dict(s3_record['configuration'])
    config['aws_access_key_id'] = config.pop('access_key')
    config['aws_secret_access_key'] = config.pop('secret_key')
    del config['prefix']
    location = open_storage({'id': 3, 'provider': 's3', 'configuration': config})
    staging = location.staging_dir('', 'x')
    (staging / 'f').write_bytes(b'1')
    assert location.publish(staging, '', 'x') == f's3://{config["bucket"]}/x'


@pytest.mark.parametrize(
    ('drop', 'extra', 'message'),
    [
        (('bucket',), {}, 'missing "bucket"'),
        (('endpoint_url',), {}, 'missing "endpoint_url"'),
        (('secret_key',), {}, 'missing "secret_key" (or "aws_secret_access_key")'),
        (('access_key',), {}, 'missing "access_key" (or "aws_access_key_id")'),
        ((), {'endpoint_url': 'minio:9000'}, 'must start with http:// or https://'),
        ((), {'bucket': 'a/b'}, '"bucket" must be a bucket name'),
        ((), {'prefix': '../up'}, "'..' segments are not allowed"),
    ],
)
def test_bad_s3_configuration(
    s3_record: dict[str, Any],
    drop: tuple[str, ...],
    extra: dict[str, str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv('AWS_SECRET_ACCESS_KEY', raising=False)  # else a missing secret is taken
    config = {k: v for k, v in s3_record['configuration'].items() if k not in drop}
    config.update(extra)
    with pytest.raises(StorageError) as info:
        open_storage({**s3_record, 'configuration': config})
    text = str(info.value)
    assert message in text
    assert "storage 7 ('lake')" in text
    assert SECRET_KEY not in text and ACCESS_KEY not in text


def test_s3_without_credentials_uses_the_default_chain(moto_endpoint: str) -> None:
    location = open_storage(
        {'provider': 's3', 'configuration': {'bucket': 'b', 'endpoint_url': moto_endpoint}}
    )
    assert location.url('') == 's3://b'


def test_secrets_never_in_repr(s3_record: dict[str, Any]) -> None:
    config = s3_record['configuration']
    config['endpoint_url'] = config['endpoint_url'].replace('http://', 'http://u:pw@')
    location = open_storage(s3_record)
    text = repr(location) + str(location)
    assert SECRET_KEY not in text and ACCESS_KEY not in text and 'pw@' not in text
    assert 'minio' in text and 'team-a' in text


def test_unsafe_names_rejected_before_upload(s3_record: dict[str, Any]) -> None:
    location = open_storage(s3_record)
    for rel_path, name in [('../x', 'ok'), ('ok', 'a/b'), ('/abs', 'ok')]:
        with pytest.raises(ParamsError):
            location.staging_dir(rel_path, name)
    staging = location.staging_dir('', 'ok')
    with pytest.raises(ParamsError):
        location.publish(staging, '../escape', 'ok')
    location.discard(staging)
    assert _keys(location) == []


def test_download_from_storage_fs(
    s3_record: dict[str, Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    location = open_storage(s3_record)
    bucket = s3_record['configuration']['bucket']
    location.fs.pipe(f'{bucket}/media/1.jpg', b'jpeg-bytes' * 1000)
    caplog.set_level(logging.DEBUG)
    with Downloader(storage_fs=location.fs, backoff=0.01, retries=1) as downloader:
        got = downloader.submit(f's3://{bucket}/media/1.jpg', tmp_path / 'o' / '1.jpg').result()
        assert got.read_bytes() == b'jpeg-bytes' * 1000
        with pytest.raises(DownloadError) as info:
            downloader.download(f's3://{bucket}/media/missing.jpg', tmp_path / 'm.jpg')
    assert info.value.attempts == 1
    assert 'FileNotFoundError' in info.value.reason
    assert not (tmp_path / 'm.jpg').exists()
    assert SECRET_KEY not in caplog.text

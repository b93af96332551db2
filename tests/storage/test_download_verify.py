"""Local copies refuse what is not a regular file; downloads check the record's size and
checksum and resume with HTTP Range after a dropped connection (the real embedded server and
its fault plan on 127.0.0.1, real files)."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from synapse_sdk.retry import RetryPolicy
from synapse_sdk.server.faults import Fault, FaultPlan
from synapse_sdk.storage import Downloader, DownloadError
from synapse_sdk.storage.download import SourcePolicy, parse_checksum

BIG = 300_000  # several 64 KiB response chunks


def sha(data: bytes) -> str:
    return f'sha256:{hashlib.sha256(data).hexdigest()}'


@pytest.fixture
def media(synapse_home: Path) -> tuple[Path, bytes]:
    data = os.urandom(BIG)
    path = synapse_home / 'media' / 'big' / 'photo.jpg'
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    return path, data


def fast(**kwargs: object) -> Downloader:
    slept: list[float] = []
    options: dict = {'retry': RetryPolicy(retries=3, sleep=slept.append), 'timeout': 10}
    options.update(kwargs)
    return Downloader(**options)


def test_a_fifo_in_place_of_an_image_is_refused_not_waited_on(tmp_path: Path) -> None:
    fifo = tmp_path / 'media' / 'image.jpg'
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    started = time.monotonic()
    with (
        fast(policy=SourcePolicy(local_roots=(tmp_path / 'media',))) as downloader,
        pytest.raises(DownloadError, match='FIFO') as info,
    ):
        downloader.download(fifo.as_uri(), tmp_path / 'out.jpg')
    assert time.monotonic() - started < 5
    assert info.value.reason.startswith('refused:')
    assert not (tmp_path / 'out.jpg').exists()


def test_a_directory_or_device_is_refused(tmp_path: Path) -> None:
    (tmp_path / 'dir.jpg').mkdir()
    with fast(policy=SourcePolicy.unrestricted()) as downloader:
        with pytest.raises(DownloadError, match=r'directory|Is a directory'):
            downloader.download(str(tmp_path / 'dir.jpg'), tmp_path / 'a.jpg')
        with pytest.raises(DownloadError, match='character device'):
            downloader.download('/dev/zero', tmp_path / 'b.jpg')  # would never end


def test_local_size_and_checksum_are_checked(media: tuple[Path, bytes], tmp_path: Path) -> None:
    path, data = media
    policy = SourcePolicy(local_roots=(path.parent,))
    with fast(policy=policy) as downloader:
        downloader.download(path, tmp_path / 'ok.jpg', size=BIG, checksum=sha(data))
        with pytest.raises(DownloadError, match='size mismatch: the record says 400000'):
            downloader.download(path, tmp_path / 'short.jpg', size=400_000)
        with pytest.raises(DownloadError, match='checksum mismatch') as info:
            downloader.download(path, tmp_path / 'bad.jpg', checksum=sha(b'other'))
    assert info.value.attempts == 1  # a local file does not change by retrying
    assert (tmp_path / 'ok.jpg').read_bytes() == data
    assert not (tmp_path / 'short.jpg').exists() and not (tmp_path / 'bad.jpg').exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith('.part')]


def test_truncated_http_image_fails_its_checksum(
    faulty_server: str, media: tuple[Path, bytes], tmp_path: Path
) -> None:
    _, data = media
    url = f'{faulty_server}media/big/photo.jpg'
    with fast() as downloader:
        with pytest.raises(DownloadError, match='checksum mismatch') as info:
            downloader.download(url, tmp_path / 'x.jpg', checksum=sha(data[:-1] + b'!'))
        assert info.value.attempts == 4  # retried from byte 0, then reported
        with pytest.raises(DownloadError, match='size mismatch'):
            downloader.download(url, tmp_path / 'y.jpg', size=BIG + 1)
        downloader.download(url, tmp_path / 'z.jpg', size=BIG, checksum=sha(data))
    assert (tmp_path / 'z.jpg').read_bytes() == data
    assert not (tmp_path / 'x.jpg').exists() and not (tmp_path / 'y.jpg').exists()


def test_dropped_connection_resumes_with_a_range_request(
    faulty_server: str, fault_plan: FaultPlan, media: tuple[Path, bytes], tmp_path: Path
) -> None:
    _, data = media
    fault_plan.add(Fault('drop', path='/media/', times=1))
    with fast() as downloader:
        downloader.download(
            f'{faulty_server}media/big/photo.jpg', tmp_path / 'p.jpg', size=BIG, checksum=sha(data)
        )
    assert (tmp_path / 'p.jpg').read_bytes() == data
    assert fault_plan.fired == [('drop', '/media/big/photo.jpg')]
    ranges = [rng for method, path, rng in fault_plan.requests if path == '/media/big/photo.jpg']
    assert len(ranges) == 2 and ranges[0] is None
    start = int(ranges[1].removeprefix('bytes=').rstrip('-'))  # type: ignore[union-attr]
    assert 0 < start < BIG  # resumed where the cut happened, not from byte 0


def test_a_changed_file_restarts_instead_of_mixing_versions(
    faulty_server: str, fault_plan: FaultPlan, media: tuple[Path, bytes], tmp_path: Path
) -> None:
    """If-Range: when the file changed between the cut and the resume, start over."""
    path, _ = media
    new = os.urandom(BIG)

    def change_the_file(_seconds: float) -> None:  # runs in the retry wait, after the cut
        path.write_bytes(new)
        later = time.time() + 10
        os.utime(path, (later, later))

    fault_plan.add(Fault('drop', path='/media/', times=1))
    retry = RetryPolicy(retries=2, sleep=change_the_file)
    with fast(retry=retry) as downloader:
        downloader.download(f'{faulty_server}media/big/photo.jpg', tmp_path / 'c.jpg')
    assert (tmp_path / 'c.jpg').read_bytes() == new
    ranges = [rng for _m, p, rng in fault_plan.requests if p == '/media/big/photo.jpg']
    assert ranges[1] is not None  # it asked to resume; the server said the file changed


@pytest.mark.parametrize(
    ('value', 'expected'),
    [
        ('sha256:' + 'a' * 64, ('sha256', 'a' * 64)),
        ('SHA256:' + 'A' * 64, ('sha256', 'a' * 64)),
        ('md5:' + '0' * 32, ('md5', '0' * 32)),
        ('sha256:9f2c...', None),  # illustrative, not a digest: cannot be checked
        ('crc32:1234', None),
        ('', None),
        (None, None),
        (42, None),
    ],
)
def test_parse_checksum(value: object, expected: tuple[str, str] | None) -> None:
    assert parse_checksum(value) == expected

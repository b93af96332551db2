"""file_system storages: staging beside the target, atomic publish, name(n) suffixes."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import orjson
import pytest

from synapse_sdk.errors import ParamsError, StorageError
from synapse_sdk.storage import LocalStorage, StorageLocation, open_storage
from synapse_sdk.storage import local as local_mod


def _visible(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


def test_open_file_system_storage(location: StorageLocation, root: Path) -> None:
    assert isinstance(location, LocalStorage)
    assert location.provider == 'file_system'
    assert location.is_local is True
    assert location.root == str(root)
    assert location.url('') == str(root)
    assert location.url('exports/a') == str(root / 'exports' / 'a')
    assert 'id=1' in repr(location) and str(root) in repr(location)
    assert open_storage(location) is location


@pytest.mark.parametrize(
    ('storage', 'message'),
    [
        ({'provider': 'gcs', 'configuration': {}}, 'supported providers: file_system, minio, s3'),
        ({'configuration': {}}, 'unknown provider None'),
        ({'provider': 'file_system'}, '"configuration" must be an object'),
        ({'provider': 'file_system', 'configuration': {}}, 'needs "location"'),
        (
            {'provider': 'file_system', 'configuration': {'location': 'relative/dir'}},
            'must be an absolute path',
        ),
        (
            {'provider': 'file_system', 'configuration': {'location': '/no/such/dir/anywhere'}},
            'does not exist',
        ),
    ],
)
def test_bad_storage_records(storage: dict, message: str) -> None:
    with pytest.raises(StorageError, match='storage') as info:
        open_storage({'id': 9, 'name': 'mine', **storage})
    assert message in str(info.value)
    assert "storage 9 ('mine')" in str(info.value)


def test_storage_must_be_a_record() -> None:
    with pytest.raises(StorageError, match='must be a record'):
        open_storage(['file_system'])  # type: ignore[arg-type]


def test_staging_is_a_hidden_sibling_on_the_same_filesystem(
    location: StorageLocation, root: Path
) -> None:
    staging = location.staging_dir('exports/2024', 'demo')
    assert staging.parent == root / 'exports' / '2024'
    assert staging.name.startswith('.synapse-staging-')
    assert staging.is_dir() and _visible(staging) == ['.synapse-export']  # the owner marker
    marker = orjson.loads((staging / '.synapse-export' / 'owner.json').read_bytes())
    assert marker['owner']['pid'] == os.getpid()
    assert marker['export'] == {
        'final': str(root / 'exports' / '2024' / 'demo'),
        'path': 'exports/2024',
        'name': 'demo',
    }
    assert staging.stat().st_dev == root.stat().st_dev
    assert not (root / 'exports' / '2024' / 'demo').exists()


def test_publish_renames_atomically(location: StorageLocation, root: Path) -> None:
    staging = location.staging_dir('exports', 'demo')
    (staging / 'images').mkdir()
    (staging / 'images' / 'a.jpg').write_bytes(b'\xff\xd8jpeg')
    (staging / 'annotations.json').write_text('{}')
    inode = staging.stat().st_ino

    final = location.publish(staging, 'exports', 'demo')

    assert final == str(root / 'exports' / 'demo')
    assert Path(final).stat().st_ino == inode  # a rename, not a copy
    assert not staging.exists()
    assert _visible(root / 'exports') == ['demo']
    assert location.read_bytes('exports/demo/images/a.jpg') == b'\xff\xd8jpeg'
    assert location.exists('exports/demo/annotations.json')
    assert not location.exists('exports/demo/missing.json')


def test_published_directory_is_not_private(location: StorageLocation) -> None:
    umask = os.umask(0o022)
    os.umask(umask)
    staging = location.staging_dir('', 'perm')
    final = Path(location.publish(staging, '', 'perm'))
    assert stat.S_IMODE(final.stat().st_mode) == 0o777 & ~umask


def test_taken_names_get_numbered_suffixes(location: StorageLocation, root: Path) -> None:
    urls = []
    for i in range(3):
        staging = location.staging_dir('out', 'My Export')
        (staging / 'n.txt').write_text(str(i))
        urls.append(location.publish(staging, 'out', 'My Export'))
    assert [Path(u).name for u in urls] == ['My Export', 'My Export(1)', 'My Export(2)']
    assert [location.read_bytes(f'out/{Path(u).name}/n.txt') for u in urls] == [b'0', b'1', b'2']


@pytest.mark.parametrize('kind', ['file', 'empty dir', 'symlink'])
def test_any_existing_entry_counts_as_taken(
    location: StorageLocation, root: Path, kind: str
) -> None:
    taken = root / 'x'
    if kind == 'file':
        taken.write_text('keep me')
    elif kind == 'empty dir':
        taken.mkdir()  # a plain os.rename would silently replace this one
    else:
        taken.symlink_to(root / 'nowhere')
    staging = location.staging_dir('', 'x')
    assert Path(location.publish(staging, '', 'x')).name == 'x(1)'
    assert taken.is_symlink() or taken.exists()


def test_fallback_rename_without_renameat2(
    location: StorageLocation, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local_mod, '_noreplace', None)
    (root / 'x').mkdir()
    staging = location.staging_dir('', 'x')
    assert Path(location.publish(staging, '', 'x')).name == 'x(1)'


def test_concurrent_publishers_never_overwrite_each_other(
    location: StorageLocation, root: Path
) -> None:
    stagings = []
    for i in range(12):
        staging = location.staging_dir('race', 'same')
        (staging / 'who.txt').write_text(str(i))
        stagings.append(staging)
    barrier = threading.Barrier(len(stagings))
    results: list[str] = []

    def publish(staging: Path) -> None:
        barrier.wait()
        results.append(location.publish(staging, 'race', 'same'))

    threads = [threading.Thread(target=publish, args=(s,)) for s in stagings]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 12
    contents = sorted(int(location.read_bytes(f'race/{Path(r).name}/who.txt')) for r in results)
    assert contents == list(range(12))
    assert sorted(_visible(root / 'race')) == sorted(Path(r).name for r in results)


def test_publish_across_filesystems_copies_beside_target_first(
    location: StorageLocation, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = local_mod.rename_noreplace
    staging = location.staging_dir('', 'far')
    (staging / 'f.txt').write_text('data')
    original = staging

    def exdev_for_original(src: Path, dst: Path) -> None:
        if Path(src) == original:
            raise OSError(errno.EXDEV, 'Invalid cross-device link')
        real(src, dst)

    monkeypatch.setattr(local_mod, 'rename_noreplace', exdev_for_original)
    (root / 'far').mkdir()
    final = location.publish(staging, '', 'far')
    assert Path(final).name == 'far(1)'
    assert location.read_bytes('far(1)/f.txt') == b'data'
    assert not original.exists()
    assert _visible(root) == ['far', 'far(1)']


def test_publish_failure_is_a_storage_error_and_leaves_nothing(
    location: StorageLocation, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def denied(src: Path, dst: Path) -> None:
        raise PermissionError(errno.EACCES, 'Permission denied')

    staging = location.staging_dir('out', 'demo')
    monkeypatch.setattr(local_mod, 'rename_noreplace', denied)
    with pytest.raises(StorageError, match=r'Could not publish .*demo: Permission denied'):
        location.publish(staging, 'out', 'demo')
    assert staging.exists()
    location.discard(staging)
    assert not (root / 'out').exists()


def test_discard_removes_staging_and_the_directories_it_created(
    location: StorageLocation, root: Path
) -> None:
    (root / 'existing').mkdir()
    staging = location.staging_dir('existing/new/deeper', 'demo')
    (staging / 'half.json').write_text('[')
    location.discard(staging)
    assert not staging.exists()
    assert _visible(root) == ['existing']
    assert _visible(root / 'existing') == []


def test_discard_keeps_parents_other_exports_use(location: StorageLocation, root: Path) -> None:
    first = location.staging_dir('shared', 'a')
    second = location.staging_dir('shared', 'b')
    location.discard(first)
    assert second.is_dir()
    location.publish(second, 'shared', 'b')
    assert _visible(root / 'shared') == ['b']


def test_discard_never_raises_and_refuses_non_staging_paths(
    location: StorageLocation, root: Path
) -> None:
    location.discard(root / '.synapse-staging-gone')
    (root / 'precious').mkdir()
    (root / 'precious' / 'data').write_text('x')
    location.discard(root / 'precious')
    location.discard(root)
    assert (root / 'precious' / 'data').exists()


@pytest.mark.parametrize(
    ('rel_path', 'name', 'field'),
    [
        ('../../x', 'ok', 'path'),
        ('/abs', 'ok', 'path'),
        ('a/../../b', 'ok', 'path'),
        ('ok', '../x', 'name'),
        ('ok', '', 'name'),
        ('ok', 'a\x00', 'name'),
    ],
)
def test_unsafe_params_are_rejected_before_anything_is_created(
    location: StorageLocation, root: Path, rel_path: str, name: str, field: str
) -> None:
    with pytest.raises(ParamsError) as info:
        location.staging_dir(rel_path, name)
    assert info.value.errors[0][0] == field
    assert _visible(root) == []
    if field == 'path':
        with pytest.raises(ParamsError):
            location.url(rel_path)


def test_symlink_inside_root_cannot_escape(
    location: StorageLocation, root: Path, tmp_path: Path
) -> None:
    outside = tmp_path / 'outside'
    outside.mkdir()
    (root / 'link').symlink_to(outside)
    with pytest.raises(StorageError, match='resolves outside the storage root'):
        location.staging_dir('link', 'x')
    assert list(outside.iterdir()) == []


def test_path_through_a_file_is_a_storage_error(location: StorageLocation, root: Path) -> None:
    (root / 'file').write_text('x')
    with pytest.raises(StorageError):
        location.staging_dir('file/sub', 'x')


def test_publish_of_missing_staging(location: StorageLocation, root: Path) -> None:
    with pytest.raises(StorageError, match='does not exist'):
        location.publish(root / '.synapse-staging-nope', '', 'x')


CRASH = r"""
import os, sys
from synapse_sdk.storage import open_storage
loc = open_storage({"id": 1, "provider": "file_system", "configuration": {"location": sys.argv[1]}})
staging = loc.staging_dir("exports", "crashed")
(staging / "annotations.json").write_text('{"images": [')
os._exit(3)  # killed before publish: no cleanup runs
"""


def test_crash_before_publish_leaves_nothing_at_the_final_path(
    location: StorageLocation, root: Path
) -> None:
    proc = subprocess.run([sys.executable, '-c', CRASH, str(root)], capture_output=True)
    assert proc.returncode == 3, proc.stderr.decode()
    assert not location.exists('exports/crashed')
    leftovers = _visible(root / 'exports')
    assert len(leftovers) == 1 and leftovers[0].startswith('.synapse-staging-')
    # the next export of the same name removes the dead run's staging and takes the plain name
    staging = location.staging_dir('exports', 'crashed')
    assert [Path(i.where).name for i in location.removed_stale] == leftovers
    assert Path(location.publish(staging, 'exports', 'crashed')).name == 'crashed'
    assert _visible(root / 'exports') == ['crashed']

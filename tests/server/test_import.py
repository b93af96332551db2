"""``synapse data import`` as a user runs it: real processes, SIGKILL mid-import, the storage
left to export to, counts on stderr and in the JSON result, and flat memory on big files."""

from __future__ import annotations

import hashlib
import os
import resource
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from tests.cli.helpers import SYNAPSE, synapse

from synapse_sdk.formats.dataset import ImportedDataset, ImportedImage
from synapse_sdk.server.importer import import_dataset
from synapse_sdk.server.media import staging_root
from synapse_sdk.server.store import Store

ROOT = Path(__file__).resolve().parents[2]


def coco_dataset(root: Path, n: int, image_bytes: int = 2048) -> Path:
    """``root/annotations/instances_train.json`` + ``root/images/train/*.jpg`` (n images; the
    bytes need not decode: the json gives the sizes)."""
    images = root / 'images' / 'train'
    images.mkdir(parents=True)
    payload = os.urandom(image_bytes)
    for i in range(n):
        (images / f'im{i:05d}.jpg').write_bytes(payload + i.to_bytes(4, 'big'))
    data = {
        'categories': [{'id': 1, 'name': 'car'}, {'id': 2, 'name': 'unused'}],
        'images': [{'id': i + 1, 'file_name': f'im{i:05d}.jpg', 'width': 64, 'height': 48}
                   for i in range(n)],
        'annotations': [{'id': i + 1, 'image_id': i + 1, 'category_id': 1,
                         'bbox': [1, 2, 10, 5], 'area': 50, 'iscrowd': 0} for i in range(n)],
    }  # fmt: skip
    path = root / 'annotations' / 'instances_train.json'
    path.parent.mkdir(parents=True)
    path.write_bytes(orjson.dumps(data))
    return path


def media_files(home: Path) -> list[Path]:
    return sorted(p for p in (home / 'media').rglob('*') if p.is_file())


def count(home: Path, table: str) -> int:
    with Store(home) as store:
        return int(store.conn.execute(f'SELECT COUNT(*) FROM {table}').fetchone()[0])


# --- kill -9 -------------------------------------------------------------------------------


def run_killed_at(home: Path, dataset: Path, where: str, nth: int = 1) -> int:
    """Run an import in a child process that SIGKILLs itself at the ``nth`` call of
    ``MediaStage.<where>`` (``add``: while copying, before the commit; ``publish``: right after
    the commit, before any file moved). Returns the child's exit status."""
    script = textwrap.dedent(f"""
        import os, signal
        from synapse_sdk.server import media
        original = getattr(media.MediaStage, {where!r})
        calls = [0]
        def dying(self, *args, **kwargs):
            calls[0] += 1
            if calls[0] >= {nth}:
                os.kill(os.getpid(), signal.SIGKILL)
            return original(self, *args, **kwargs)
        setattr(media.MediaStage, {where!r}, dying)
        from synapse_sdk.cli.main import main
        import sys
        sys.argv = ['synapse', 'data', 'import', 'coco', {str(dataset)!r}, '--home', {str(home)!r}]
        main()
    """)
    done = subprocess.run([sys.executable, '-c', script], capture_output=True, timeout=120)
    return done.returncode


def test_kill_9_while_copying_leaves_no_media_and_no_rows(tmp_path: Path) -> None:
    home = tmp_path / 'home'
    dataset = coco_dataset(tmp_path / 'src', 30)
    assert run_killed_at(home, dataset, 'add', nth=20) == -signal.SIGKILL
    assert media_files(home) == []  # copies wait in staging until the rows commit
    assert list(staging_root(home).glob('import-*/*'))  # ...which is where the dead one left them
    assert count(home, 'projects') == 0  # opening the store rolled the transaction back...
    assert list(staging_root(home).glob('import-*')) == []  # ...and removed the staged copies
    assert media_files(home) == []


def test_kill_9_after_the_commit_finishes_the_move_on_next_start(tmp_path: Path) -> None:
    home = tmp_path / 'home'
    dataset = coco_dataset(tmp_path / 'src', 12)
    assert run_killed_at(home, dataset, 'publish') == -signal.SIGKILL
    assert media_files(home) == []  # committed rows, files still staged
    with Store(home) as store:  # next start: the staged files move into place
        rows = store.conn.execute('SELECT path, checksum FROM files ORDER BY id').fetchall()
        assert len(rows) == 12
        for path, checksum in rows:
            digest = hashlib.sha256((store.media_dir / path).read_bytes()).hexdigest()
            assert checksum == f'sha256:{digest}'
    assert len(media_files(home)) == 12
    assert list(staging_root(home).glob('import-*')) == []


def test_kill_9_of_the_real_cli_mid_import(tmp_path: Path) -> None:
    """No patching: the CLI copies 1500 images; we SIGKILL it as soon as copies appear."""
    home = tmp_path / 'home'
    dataset = coco_dataset(tmp_path / 'src', 1500, image_bytes=64 * 1024)
    env = {**os.environ, 'SYNAPSE_HOME': str(home)}
    proc = subprocess.Popen([*SYNAPSE, 'data', 'import', 'coco', str(dataset)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if any(p.is_file() for p in staging_root(home).glob('import-*/*/*')):
            break
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    if proc.returncode != -signal.SIGKILL:
        pytest.fail('the import finished before it could be killed; make the dataset larger')
    with Store(home) as store:
        paths = {r[0] for r in store.conn.execute('SELECT path FROM files')}
    on_disk = {p.relative_to(home / 'media').as_posix() for p in media_files(home)}
    assert on_disk <= paths  # every media file belongs to a committed row: no orphans
    assert list(staging_root(home).glob('import-*')) == []


def test_a_live_import_staging_folder_is_not_recovered_by_another_store(tmp_path: Path) -> None:
    src = tmp_path / 'a.jpg'
    src.write_bytes(b'x' * 100)
    home = tmp_path / 'home'
    seen: list[int] = []
    took: list[float] = []

    def images() -> Any:
        yield ImportedImage('a.jpg', src, 4, 4)
        started = time.monotonic()
        with Store(home):  # another process opening the store meanwhile
            seen.append(len(list(staging_root(home).glob('import-*/*/a.jpg'))))
        took.append(time.monotonic() - started)
        yield ImportedImage('b.jpg', src, 4, 4)

    with Store(home) as store:
        out = import_dataset(store, ImportedDataset({'classes': []}, images()))
    assert seen == [1]
    assert took[0] < 10, 'closing the other store waited for the import (busy timeout)'
    assert out['data_units'] == 2 and len(media_files(home)) == 2


# --- the CLI end to end --------------------------------------------------------------------


def test_import_then_export_with_the_printed_ids(tmp_path: Path) -> None:
    home = tmp_path / 'home'
    dataset = coco_dataset(tmp_path / 'src', 3)
    done = synapse('data', 'import', 'coco', str(dataset.parent.parent), '--title', 'Cars',
                   home=home)  # fmt: skip
    assert done.returncode == 0, done.stderr
    ids = orjson.loads(done.stdout)
    assert ids['storage'] == 1 and ids['data_units'] == 3
    assert ids['read'] == {'annotations': 3, 'image files': 3, 'images': 3, 'shapes': 3}
    assert ids['skipped'] == {}
    assert f'--storage {ids["storage"]}' in done.stderr
    with Store(home) as store:
        assert store.get_project(ids['project'])['title'] == 'Cars'
    out = synapse('export', 'coco', '--target', 'ground_truth', '--gt-version',
                  str(ids['ground_truth_dataset_version']), '--storage', str(ids['storage']),
                  '--name', 'back', '--no-originals', home=home)  # fmt: skip
    assert out.returncode == 0, out.stderr
    result = orjson.loads(out.stdout)
    exported = Path(result['output_path']) / 'annotations' / 'instances_train.json'
    coco = orjson.loads(exported.read_bytes())
    assert len(coco['images']) == 3
    # a second import reuses the storage rather than adding another
    again = synapse('data', 'import', 'coco', str(dataset), '--project', 'Again', home=home)
    assert orjson.loads(again.stdout)['storage'] == 1


def test_counts_of_what_could_not_be_read_are_printed(tmp_path: Path) -> None:
    home = tmp_path / 'home'
    root = tmp_path / 'src'
    (root / 'images').mkdir(parents=True)
    (root / 'secret.jpg').write_bytes(b'secret')
    data = {
        'categories': [{'id': 1, 'name': 'car'}],
        'images': [
            {'id': 1, 'file_name': '../secret.jpg', 'width': 4, 'height': 4},
            {'id': 2, 'file_name': '/etc/passwd', 'width': 4, 'height': 4},
        ],
        'annotations': [{'id': 1, 'image_id': 1, 'category_id': 9, 'bbox': [1, 1, 2, 2]}],
    }
    (root / 'a.json').write_bytes(orjson.dumps(data))  # fmt: skip
    done = synapse('data', 'import', 'coco', str(root / 'a.json'), '--images',
                   str(root / 'images'), home=home)  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = orjson.loads(done.stdout)
    assert result['skipped'] == {
        'annotation: category_id not among the categories': 1,
        'image file: absolute path': 1,
        'image file: path outside the images folder': 1,
    }
    assert '1 image file not imported: absolute path' in done.stderr
    assert '1 annotation not imported: category_id not among the categories' in done.stderr
    assert media_files(home) == []  # nothing from outside was copied


@pytest.mark.parametrize('name', ['panoptic_val2017.json', 'captions_train2017.json'])
def test_panoptic_and_captions_exit_2_without_a_traceback(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(orjson.dumps({'images': [], 'annotations': [], 'categories': []}))
    done = synapse('data', 'import', 'coco', str(path), home=tmp_path / 'home')
    assert done.returncode == 2
    assert 'Traceback' not in done.stderr and name.split('_')[0] in done.stderr


def test_yolo_without_data_yaml_takes_classes(tmp_path: Path) -> None:
    from PIL import Image

    (tmp_path / 'ds' / 'images').mkdir(parents=True)
    (tmp_path / 'ds' / 'labels').mkdir(parents=True)
    Image.new('RGB', (20, 10)).save(tmp_path / 'ds' / 'images' / 'x.png')
    (tmp_path / 'ds' / 'labels' / 'x.txt').write_text('1 0.5 0.5 0.5 0.5\n', encoding='utf-8')
    home = tmp_path / 'home'
    missing = synapse('data', 'import', 'yolo', str(tmp_path / 'ds'), home=home)
    assert missing.returncode == 2 and '--classes' in missing.stderr
    done = synapse('data', 'import', 'yolo', str(tmp_path / 'ds'), '--classes', 'a,b', home=home)
    assert done.returncode == 0, done.stderr
    with Store(home) as store:
        config = store.get_project(orjson.loads(done.stdout)['project'])['configuration']
    assert [c['name'] for c in config['classes']] == ['a', 'b']
    csv = synapse('data', 'import', 'csv', str(tmp_path), '--classes', 'a', home=home)
    assert csv.returncode == 2 and '--classes is not an option of the csv importer' in csv.stderr


# --- memory --------------------------------------------------------------------------------


def peak_rss_mb(json_path: Path, home: Path) -> float:
    code = (
        'import resource, sys\n'
        'from synapse_sdk.cli.main import main\n'
        f'sys.argv = ["synapse", "data", "import", "coco", {str(json_path)!r}, "--home", '
        f'{str(home)!r}]\n'
        'try:\n    main()\nexcept SystemExit:\n    pass\n'
        'print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n'
    )
    done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          timeout=300, check=True)  # fmt: skip
    return int(done.stdout.strip().splitlines()[-1]) / 1024


@pytest.mark.slow
def test_import_memory_does_not_grow_with_the_json(tmp_path: Path) -> None:
    """Peak RSS of importing 1k vs 8k images (~80k annotations, ~14 MB of json, a few
    hundred MB as Python objects): the streamed import grows by far less than the json."""
    sys.path.insert(0, str(ROOT / 'benchmarks'))
    from import_coco import generate  # type: ignore[import-not-found]

    small, big = tmp_path / 'small.json', tmp_path / 'big.json'
    generate(small, 1000)
    generate(big, 8000)
    before = peak_rss_mb(small, tmp_path / 'h1')
    after = peak_rss_mb(big, tmp_path / 'h2')
    json_mb = big.stat().st_size / 2**20
    print(f'peak RSS {before:.0f} MB -> {after:.0f} MB, json {json_mb:.0f} MB')
    assert after - before < json_mb, (before, after, json_mb)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # the parent stayed small too


def test_source_ids_reach_the_export_items(tmp_path: Path) -> None:
    """COCO image ids survive the store and the target handlers (CONTRACTS #1)."""
    from synapse_sdk.clients import LocalClient
    from synapse_sdk.plugins.actions.export.handlers import TaskExportTargetHandler

    home = tmp_path / 'home'
    root = tmp_path / 'src'
    data = {
        'categories': [{'id': 7, 'name': 'car'}],
        'images': [{'id': 42, 'file_name': 'a.jpg', 'width': 4, 'height': 4}],
        'annotations': [{'id': 1, 'image_id': 42, 'category_id': 7, 'bbox': [1, 1, 2, 2]}],
    }
    root.mkdir()
    (root / 'instances_train.json').write_bytes(orjson.dumps(data))  # fmt: skip
    done = synapse('data', 'import', 'coco', str(root), home=home)
    assert done.returncode == 0, done.stderr
    project = orjson.loads(done.stdout)['project']
    client = LocalClient(home)
    try:
        records, _ = client.get_tasks({'project': project})
        (item,) = TaskExportTargetHandler().get_export_item(records)
        assert item['data_unit']['source_id'] == 42
        classes = client.get_project(project)['configuration']['classes']
        assert classes == [{'name': 'car', 'tool': 'bounding_box', 'attributes': [],
                            'source_id': 7}]  # fmt: skip
    finally:
        client.close()

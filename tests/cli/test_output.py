"""``--output DIR``: a local folder with no storage set up, as atomic as any export."""

from __future__ import annotations

import zipfile
from pathlib import Path

import orjson
import pytest

from .helpers import drop_storages, params, synapse, write_plugin


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith('.'))


def test_output_writes_a_folder_without_any_storage(synapse_home, tmp_path):
    drop_storages(synapse_home)
    target = tmp_path / 'out' / 'nested' / 'coco'  # parents are created
    done = synapse('export', 'coco', '--project', '1', '--output', str(target),
                   '--split', 'train=0.5,val=0.5', home=synapse_home)  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = orjson.loads(done.stdout)
    assert result['output_path'] == str(target)
    written = {p.name for p in (target / 'annotations').iterdir()}
    assert {'instances_train.json', 'instances_val.json'} <= written
    images = list((target / 'images').rglob('*.*'))
    assert len(images) == result['exported_count'] > 0
    assert (target / 'export_report.json').is_file()
    assert _leftovers(target.parent) == []  # no staging or work folder left behind
    # without --output the same home has no storage to write to: the error says what to do
    done = synapse('export', 'coco', '--project', '1', home=synapse_home)
    assert done.returncode == 2
    assert '--storage: no storage with id 1' in done.stderr and '--output' in done.stderr


def test_a_non_empty_folder_is_refused_unless_overwrite(synapse_home, tmp_path):
    target = tmp_path / 'out'
    target.mkdir()
    (target / 'keep.txt').write_text('mine')
    done = synapse('export', 'csv', '--project', '1', '--output', str(target), home=synapse_home)
    assert done.returncode == 2 and done.stdout == ''
    assert '--output' in done.stderr and '--overwrite' in done.stderr
    assert sorted(p.name for p in target.iterdir()) == ['keep.txt']
    assert _leftovers(tmp_path) == []

    done = synapse('export', 'csv', '--project', '1', '--output', str(target), '--overwrite',
                   home=synapse_home)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert not (target / 'keep.txt').exists() and (target / 'annotations.csv').is_file()
    assert _leftovers(tmp_path) == []


def test_an_empty_folder_is_filled(synapse_home, tmp_path):
    target = tmp_path / 'empty'
    target.mkdir()
    done = synapse('export', 'dm', '--project', '1', '--output', str(target), '-q',
                   home=synapse_home)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert orjson.loads(done.stdout)['output_path'] == str(target)
    assert (target / 'json').is_dir()


def test_overwrite_keeps_the_old_export_when_the_new_one_fails(synapse_home, tmp_path):
    target = tmp_path / 'out'
    target.mkdir()
    (target / 'old.txt').write_text('previous export')
    plugin = write_plugin(
        tmp_path / 'broken',
        '    def convert_data(self, data):\n        raise RuntimeError("broken on purpose")\n',
    )
    done = synapse('plugin', 'run', 'export', '--params', params(), '--output', str(target),
                   '--overwrite', home=synapse_home, cwd=plugin)  # fmt: skip
    assert done.returncode == 1
    assert 'broken on purpose' in done.stderr
    assert sorted(p.name for p in target.iterdir()) == ['old.txt']
    assert _leftovers(tmp_path) == []


def test_zip_writes_dir_zip_reproducibly(synapse_home, tmp_path):
    target = tmp_path / 'yolo'
    done = synapse('export', 'yolo', '--project', '1', '--output', str(target), '--zip', '-q',
                   home=synapse_home)  # fmt: skip
    assert done.returncode == 0, done.stderr
    archive = tmp_path / 'yolo.zip'
    assert orjson.loads(done.stdout)['output_path'] == str(archive)
    assert not target.exists() and _leftovers(tmp_path) == []
    with zipfile.ZipFile(archive) as zf:
        assert zf.testzip() is None
        names = zf.namelist()
        assert 'data.yaml' in names and 'export_report.json' in names
        assert any(n.startswith('labels/') for n in names)
        assert any(n.startswith('images/') and n.endswith(('.jpg', '.png')) for n in names)
    first = archive.read_bytes()
    again = synapse('export', 'yolo', '--project', '1', '--output', str(target), '--zip', '-q',
                    home=synapse_home)  # fmt: skip
    assert again.returncode == 2 and '--overwrite' in again.stderr
    again = synapse('export', 'yolo', '--project', '1', '--output', str(target), '--zip',
                    '--overwrite', '-q', home=synapse_home)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert archive.read_bytes() == first  # same data, same bytes


@pytest.mark.parametrize(
    ('args', 'needle'),
    [
        (['--zip'], '--zip needs --output'),
        (['--overwrite'], '--overwrite needs --output'),
        (['--output', 'x', '--name', 'y'], 'cannot be combined with --name'),
        (['--output', 'x', '--storage', '1', '--path', 'p'], '--storage, --path'),
    ],
)
def test_output_flags_that_do_not_go_together(synapse_home, tmp_path, args, needle):
    done = synapse('export', 'coco', '--project', '1', *args, home=synapse_home, cwd=tmp_path)
    assert done.returncode == 2 and needle in done.stderr and done.stdout == ''


@pytest.mark.parametrize('fmt', ['coco', 'yolo', 'voc', 'csv'])
def test_no_originals_leaves_no_empty_image_folders(synapse_home, tmp_path, fmt):
    target = tmp_path / fmt
    done = synapse('export', fmt, '--project', '1', '--output', str(target), '--no-originals',
                   '--split', 'train=0.5,val=0.3,test=0.2', '-q', home=synapse_home)  # fmt: skip
    assert done.returncode == 0, done.stderr
    empty = [str(p.relative_to(target)) for p in target.rglob('*') if p.is_dir()
             and not any(p.iterdir())]  # fmt: skip
    assert empty == []
    assert not (target / 'images').exists() and not (target / 'JPEGImages').exists()


def test_export_and_plugin_run_use_the_same_default_path(synapse_home):
    a = synapse('export', 'csv', '--project', '1', '--name', 'via-export', '-q',
                home=synapse_home)  # fmt: skip
    b = synapse('plugin', 'run', '--plugin', 'csv', 'export', '-q', '--params',
                params(name='via-plugin-run'), home=synapse_home)  # fmt: skip
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    out_a = Path(orjson.loads(a.stdout)['output_path'])
    out_b = Path(orjson.loads(b.stdout)['output_path'])
    assert out_a.parent == out_b.parent
    assert (out_a.name, out_b.name) == ('via-export', 'via-plugin-run')

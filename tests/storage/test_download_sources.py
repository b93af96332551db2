"""Originals come only from the backend's media. Hostile records (file:///etc/passwd, plain
paths, ../ escapes, symlinks out of the media root, another host) are refused per item with a
reason, in real exports: the CLI on the embedded store, and over HTTP from the real server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.cli.helpers import synapse

from synapse_sdk.clients import BackendClient, LocalClient
from synapse_sdk.loggers import MemoryLogger
from synapse_sdk.plugins.context import RuntimeContext
from synapse_sdk.plugins.discovery import load_plugin
from synapse_sdk.server.app import serve_in_thread
from synapse_sdk.server.faults import Fault, FaultPlan
from synapse_sdk.server.store import Store
from synapse_sdk.storage import Downloader, DownloadError
from synapse_sdk.storage.download import SourcePolicy

PASSWD = Path('/etc/passwd')


def forbidden_contents(home: Path) -> list[bytes]:
    return [PASSWD.read_bytes(), (home / 'local.db').read_bytes()[:4096]]


def assert_nothing_leaked(output: Path, home: Path) -> None:
    secret, db_head = forbidden_contents(home)
    files = [p for p in output.rglob('*') if p.is_file()]
    assert files, 'the export wrote nothing'
    for path in files:
        data = path.read_bytes()
        assert data != secret and secret[:64] not in data, f'{path} holds /etc/passwd'
        assert not data.startswith(db_head[:100]), f'{path} holds the database'


def refused(output: Path) -> dict[str, str]:
    errors = orjson.loads((output / 'error_file_list.json').read_bytes())
    return {
        str(e['id']): e['reason']
        for e in errors
        if e['kind'] == 'original_file' and 'refused' in e['reason']
    }


def test_local_policy_checks(synapse_home: Path, tmp_path: Path) -> None:
    client = LocalClient(synapse_home)
    media = synapse_home / 'media'
    good = next(p for p in media.rglob('*') if p.is_file())
    (media / 'link.jpg').symlink_to(PASSWD)
    cases = {
        PASSWD.as_uri(): 'outside',
        str(PASSWD): 'outside',
        (media / '..' / '..' / '..' / '..' / '..' / '..' / 'etc' / 'passwd').as_uri(): 'outside',
        str(media / 'link.jpg'): 'outside',
        str(synapse_home / 'local.db'): 'outside',
        'http://127.0.0.1:1/media/x.jpg': 'not the backend',
    }
    with Downloader(policy=client.source_policy(), retries=0) as downloader:
        for source, needle in cases.items():
            with pytest.raises(DownloadError) as info:
                downloader.download(source, tmp_path / 'x')
            assert info.value.reason.startswith('refused:') and needle in info.value.reason
        downloader.download(good.as_uri(), tmp_path / 'good')
    assert (tmp_path / 'good').read_bytes() == good.read_bytes()
    assert not (tmp_path / 'x').exists()
    client.close()


def test_default_policy_reads_no_local_file(tmp_path: Path) -> None:
    with Downloader(retries=0) as downloader, pytest.raises(DownloadError, match='refused'):
        downloader.download(str(PASSWD), tmp_path / 'x')
    assert SourcePolicy().describe() == 'HTTP(S) URLs'


def _hostile_store(home: Path) -> dict[int, str]:
    """Point four tasks' files at things outside the media root; returns task id -> case."""
    media = home / 'media'
    (media / 'evil.jpg').symlink_to(PASSWD)
    paths = {
        'dotdot': '../../../../../../../../../../etc/passwd',
        'absolute': str(PASSWD),
        'symlink': 'evil.jpg',
        'database': '../local.db',
    }
    cases: dict[int, str] = {}
    with Store(home) as store:
        tasks = list(LocalClient(store=store).get_tasks({'project': 1})[0])
        with store.transaction() as conn:
            for task, (case, path) in zip(tasks, paths.items(), strict=False):
                conn.execute(
                    'UPDATE files SET path = ? WHERE data_unit = ?', [path, task['data_unit']['id']]
                )
                cases[task['id']] = case
    return cases


def test_cli_export_refuses_hostile_store_rows(synapse_home: Path) -> None:
    cases = _hostile_store(synapse_home)
    done = synapse(
        'export', 'coco', '--project', '1', '--name', 'hostile', '--quiet', home=synapse_home
    )
    output = synapse_home / 'storage' / 'exports' / 'hostile'
    assert output.is_dir(), done.stderr
    assert_nothing_leaked(output, synapse_home)
    reasons = refused(output)
    assert set(reasons) == {str(t) for t in cases}, reasons
    assert 'Traceback' not in done.stderr
    result = orjson.loads(done.stdout)
    assert result['original_file_metrics']['failed'] >= len(cases)


def _hostile_urls(base: str) -> Any:
    urls = iter(
        [PASSWD.as_uri(), str(PASSWD), 'http://127.0.0.2:9/media/1/x.jpg', '../../etc/passwd']
    )

    def rewrite(body: bytes) -> bytes:
        page = orjson.loads(body)
        # Light listings (``fields=...``, the selection's planning pass) carry no documents.
        # and a count probe (one record) is not the page the export reads.
        records = [r for r in page['results'] if isinstance(r.get('data_unit'), dict)]
        if len(records) < 4:
            return body
        for record in records[:4]:
            url = next(urls, None)
            if url is not None:
                record['data_unit']['files']['image_1']['url'] = url
        return orjson.dumps(page)

    return rewrite


def test_http_export_refuses_urls_outside_the_backend(synapse_home: Path) -> None:
    plan = FaultPlan()
    with serve_in_thread(synapse_home, faults=plan) as url:
        plan.add(Fault('rewrite', path='/sdk/tasks/', times=100, rewrite=_hostile_urls(url)))
        client = BackendClient(url, retries=1, backoff=0.01)
        action = load_plugin('yolo').get_action('export')
        params = {
            'name': 'hostile-http',
            'storage': 1,
            'path': 'exports',
            'target': 'task',
            'filter': {'project': 1},
            'sample_policy': 'all',  # every rewritten record is exported, none superseded
        }
        result = action.dispatch(params, RuntimeContext(MemoryLogger(), client))
        client.close()
    assert ('rewrite', '/sdk/tasks/') in plan.fired
    output = Path(result['output_path'])
    assert_nothing_leaked(output, synapse_home)
    reasons = refused(output)
    assert len(reasons) == 4, reasons
    assert sum('not the backend' in r for r in reasons.values()) == 1
    assert sum('local files are not an allowed source' in r for r in reasons.values()) == 3
    assert result['original_file_metrics']['failed'] == 4


_SEGMENTS = st.sampled_from(['..', '.', 'media', 'etc', 'passwd', 'a b', 'é', '', '...', '%2e'])


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(_SEGMENTS, min_size=1, max_size=8), absolute=st.booleans())
def test_no_path_resolves_outside_the_root(
    parts: list[str], absolute: bool, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Whatever a record's path is made of, a file outside the media root is never read."""
    root = _hypothesis_root(tmp_path_factory)
    policy = SourcePolicy(local_roots=(root / 'media',))
    raw = ('/' if absolute else str(root / 'media') + '/') + '/'.join(parts)
    try:
        resolved = policy.check_local(raw)
    except Exception as exc:  # refused
        assert 'refused' in str(exc)
        return
    assert Path(resolved).is_relative_to((root / 'media').resolve())


_ROOTS: dict[str, Path] = {}


def _hypothesis_root(factory: pytest.TempPathFactory) -> Path:
    if 'root' not in _ROOTS:
        root = factory.mktemp('policy')
        (root / 'media' / 'etc').mkdir(parents=True)
        (root / 'media' / 'etc' / 'passwd').write_text('inside')
        (root / 'etc').mkdir()
        (root / 'etc' / 'passwd').write_text('outside')
        _ROOTS['root'] = root
    return _ROOTS['root']

"""``synapse project list`` and ``synapse gt list``: ids, titles and counts, as a table on a
terminal, tab-separated when piped, JSON with ``--json``; on the embedded store and over HTTP."""

from __future__ import annotations

import re

import orjson
import pytest

from synapse_sdk.clients import LocalClient
from synapse_sdk.server.store import Store

from .helpers import synapse


def _expected_projects(home):
    with LocalClient(home) as client:
        out = []
        for project in client.store.list_projects():
            pid = project['id']
            out.append(
                {
                    'id': pid,
                    'title': project['title'],
                    'classes': len(project['configuration']['classes']),
                    'tasks': client.count_tasks({'project': pid}),
                    'assignments': client.count_assignments({'project': pid}),
                }
            )
        return out


@pytest.fixture
def two_projects(synapse_home):
    with Store(synapse_home) as store:
        store.create_project('Empty 2', {'classes': [{'name': 'dog', 'tool': 'bounding_box'}]})
    return synapse_home


@pytest.mark.parametrize('over_http', [False, True], ids=['embedded', 'http'])
def test_project_list_json(two_projects, request, over_http):
    env = {'SYNAPSE_HOST': request.getfixturevalue('live_server')} if over_http else {}
    done = synapse('project', 'list', '--json', home=two_projects, **env)
    assert done.returncode == 0, done.stderr
    rows = orjson.loads(done.stdout)
    expected = _expected_projects(two_projects)
    assert [{k: r[k] for k in expected[0]} for r in rows] == expected
    with Store(two_projects) as store:
        versions = len(store.list_ground_truth_versions(1))
    assert rows[0]['tasks'] == 12 and rows[0]['gt_versions'] == versions >= 1
    assert rows[1] == {**rows[1], 'title': 'Empty 2', 'tasks': 0, 'gt_versions': 0}
    assert rows[1]['class_names'] == ['dog']


def test_project_list_piped_is_tab_separated(two_projects):
    done = synapse('project', 'list', home=two_projects)
    assert done.returncode == 0, done.stderr
    header, first, second = done.stdout.splitlines()
    assert header.split('\t') == ['id', 'title', 'classes', 'tasks', 'assignments', 'gt_versions']
    assert first.split('\t')[0] == '1' and second.split('\t')[:2] == ['2', 'Empty 2']


def test_gt_list_counts_events_per_split(synapse_home, demo_ids):
    version = demo_ids['ground_truth_dataset_version']
    done = synapse('gt', 'list', '--project', '1', '--json', home=synapse_home)
    assert done.returncode == 0, done.stderr
    rows = orjson.loads(done.stdout)
    with Store(synapse_home) as store:
        assert [r['id'] for r in rows] == [v['id'] for v in store.list_ground_truth_versions(1)]
    (row,) = [r for r in rows if r['id'] == version]
    with LocalClient(synapse_home) as client:
        key = {'ground_truth_dataset_version': version}
        assert row['events'] == client.count_ground_truth_events(key) > 0
        for split in ('train', 'validation', 'test'):
            assert row[split] == client.count_ground_truth_events({**key, 'category': split})
    assert row['id'] == version and row['project'] == 1
    assert row['train'] + row['validation'] + row['test'] == row['events']
    piped = synapse('gt', 'list', home=synapse_home)
    assert piped.stdout.splitlines()[0].startswith('id\tversion\tdataset\tproject')
    missing = synapse('gt', 'list', '--project', '42', home=synapse_home)
    assert missing.returncode == 2 and '--project: no project with id 42' in missing.stderr


def test_lists_render_a_table_when_stdout_is_a_terminal(synapse_home):
    import os
    import pty
    import subprocess

    from .helpers import SYNAPSE, env_for

    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [*SYNAPSE, 'project', 'list'],
        env=env_for(synapse_home, COLUMNS='120'),
        stdout=slave,
        stderr=subprocess.PIPE,
        close_fds=True,
    )
    os.close(slave)
    shown = b''
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
    assert proc.wait(timeout=60) == 0
    text = re.sub(r'\x1b\[[0-9;]*m', '', shown.decode())
    assert 'Projects' in text and re.search(r'┃\s+ID\s+┃', text)
    assert re.search(r'│\s+1\s+│', text) and '\t' not in text

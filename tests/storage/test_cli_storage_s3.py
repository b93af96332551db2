"""``synapse storage add --s3-bucket`` against a real S3 server (moto) on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from tests.cli.helpers import synapse

from .conftest import ACCESS_KEY, SECRET_KEY

pytest.importorskip('s3fs')


@pytest.mark.slow
def test_add_s3_checks_the_bucket_and_never_prints_secrets(
    synapse_home: Path, moto_endpoint: str
) -> None:
    import s3fs

    fs = s3fs.S3FileSystem(key=ACCESS_KEY, secret=SECRET_KEY, endpoint_url=moto_endpoint)
    fs.mkdir('cli-bucket')
    creds = {'AWS_ACCESS_KEY_ID': ACCESS_KEY, 'AWS_SECRET_ACCESS_KEY': SECRET_KEY}
    missing = synapse('storage', 'add', 'lake', '--s3-bucket', 'no-such-bucket',
                      '--endpoint', moto_endpoint, home=synapse_home, **creds)  # fmt: skip
    assert missing.returncode == 2, missing.stderr
    assert "could not reach bucket 'no-such-bucket'" in missing.stderr
    assert '--no-check' in missing.stderr and SECRET_KEY not in missing.stderr

    added = synapse('storage', 'add', 'lake', '--s3-bucket', 'cli-bucket', '--prefix', 'team',
                    '--endpoint', moto_endpoint, home=synapse_home, **creds)  # fmt: skip
    assert added.returncode == 0, added.stderr
    row = orjson.loads(added.stdout)
    assert row['provider'] == 'minio' and row['location'] == 's3://cli-bucket/team'
    assert row['endpoint'] == moto_endpoint
    listed = synapse('storage', 'list', home=synapse_home)
    for text in (added.stdout, added.stderr, listed.stdout, listed.stderr):
        assert SECRET_KEY not in text and ACCESS_KEY not in text

    # the stored record works for an export (credentials came from the environment)
    done = synapse('export', 'csv', '--project', '1', '--storage', str(row['id']),
                   '--name', 'rows', '-q', home=synapse_home)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert orjson.loads(done.stdout)['output_path'] == 's3://cli-bucket/team/exports/rows'

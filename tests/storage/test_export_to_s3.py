"""A whole export published to an S3-compatible store (moto on 127.0.0.1), and read back."""

from __future__ import annotations

import s3fs

from synapse_sdk.loggers import MemoryLogger
from synapse_sdk.plugins.context import RuntimeContext
from synapse_sdk.plugins.discovery import load_plugin


def test_coco_export_round_trips_through_s3(local_client, s3_record):
    config = s3_record['configuration']
    storage = local_client.create_storage('lake', 'minio', config)
    action = load_plugin('coco').get_action('export')
    params = {
        'name': 'street',
        'storage': storage['id'],
        'path': 'exports/coco',
        'target': 'task',
        'filter': {'project': 1},
    }
    result = action.dispatch(params, RuntimeContext(MemoryLogger(), local_client))
    bucket = config['bucket']
    assert result['output_path'] == f's3://{bucket}/team-a/exports/coco/street'

    fs = s3fs.S3FileSystem(
        key=config['access_key'],
        secret=config['secret_key'],
        endpoint_url=config['endpoint_url'],
        skip_instance_cache=True,
    )
    keys = [k.split('/team-a/exports/coco/', 1)[1] for k in fs.find(f'{bucket}/team-a')]
    tasks = list(local_client.get_tasks({'project': 1})[0])
    assert 'street/annotations/instances_train.json' in keys
    assert sum(k.startswith('street/images/train/') for k in keys) == len(tasks)
    assert all(k.startswith('street/') for k in keys), 'temp prefix left behind'
    import json

    coco = json.loads(
        fs.cat(f'{bucket}/team-a/exports/coco/street/annotations/instances_train.json')
    )
    assert len(coco['images']) == len(tasks)
    # the secret never reaches the result
    assert config['secret_key'] not in repr(result)

    again = action.dispatch(params, RuntimeContext(MemoryLogger(), local_client))
    assert again['output_path'].endswith('/street(1)')

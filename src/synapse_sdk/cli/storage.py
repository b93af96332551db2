"""``synapse storage``: add and list the storages exports go to; clean their leftovers.

Storages live in the embedded store (``$SYNAPSE_HOME``); ``clean --storage N`` also works
against a platform (``SYNAPSE_HOST``), which resolves the storage the way an export does.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any

import typer

from synapse_sdk.cli.common import EXIT_USAGE, fail, print_result, reported_errors

storage_app = typer.Typer(
    help='Storages exports are written to: add, list, clean leftovers.', no_args_is_help=True
)

HomeOption = Annotated[
    Path | None,
    typer.Option('--home', help='Synapse home (default: $SYNAPSE_HOME or ~/.synapse)'),
]

_DURATION = re.compile(r'^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$', re.IGNORECASE)
_UNITS = {'': 1, 's': 1, 'm': 60, 'h': 3600, 'd': 86400, 'w': 604800}
_CONTROL = re.compile(r'[\x00-\x1f\x7f]')


def parse_duration(text: str, option: str = '--older-than') -> float:
    """``90``, ``45s``, ``30m``, ``12h``, ``1d``, ``2w`` -> seconds (exit 2 otherwise)."""
    match = _DURATION.match(text)
    if not match:
        fail(
            f'{option} takes a duration like 30m, 12h, 1d or 2w (or seconds), got {text!r}',
            EXIT_USAGE,
        )
    return float(match.group(1)) * _UNITS[match.group(2).lower()]


def describe_storage(record: dict[str, Any]) -> dict[str, Any]:
    """``{id, name, provider, location[, endpoint]}`` of a storage record; never credentials."""
    from synapse_sdk.storage import sanitize_url

    config = record.get('configuration')
    config = config if isinstance(config, dict) else {}
    provider = str(record.get('provider') or '')
    row: dict[str, Any] = {'id': record.get('id'), 'name': record.get('name'), 'provider': provider}
    if provider == 'file_system':
        row['location'] = config.get('location') or config.get('path') or config.get('root')
    else:
        bucket = config.get('bucket') or config.get('bucket_name') or '?'
        prefix = str(config.get('prefix') or config.get('base_path') or '').strip('/')
        row['location'] = f's3://{bucket}/{prefix}' if prefix else f's3://{bucket}'
        endpoint = config.get('endpoint_url') or config.get('endpoint')
        if endpoint:
            row['endpoint'] = sanitize_url(endpoint)
    return row


def _check_name(name: str) -> str:
    stripped = name.strip()
    if not stripped:
        fail('NAME must not be empty', EXIT_USAGE)
    if _CONTROL.search(stripped):
        fail(f'NAME must not contain control characters, got {name!r}', EXIT_USAGE)
    if len(stripped) > 200:
        fail(f'NAME is longer than 200 characters ({len(stripped)})', EXIT_USAGE)
    return stripped


def _file_system_config(path: Path) -> dict[str, Any]:
    text = os.path.expanduser(str(path))
    if not os.path.isabs(text):
        fail(
            f'--path must be an absolute path, got {str(path)!r} '
            f'(for this directory: --path {os.path.abspath(text)})',
            EXIT_USAGE,
        )
    if not os.path.exists(text):
        fail(f'--path {text} does not exist; create it first (mkdir -p {text})', EXIT_USAGE)
    if not os.path.isdir(text):
        fail(f'--path {text} is not a directory', EXIT_USAGE)
    if not os.access(text, os.W_OK | os.X_OK):
        fail(f'--path {text} is not writable by this user', EXIT_USAGE)
    return {'location': os.path.normpath(text)}


@storage_app.command('add')
def add(
    name: Annotated[str, typer.Argument(help='A name for the storage (unique)')],
    path: Annotated[
        Path | None,
        typer.Option('--path', help='file_system storage: an existing absolute directory'),
    ] = None,
    s3_bucket: Annotated[
        str | None, typer.Option('--s3-bucket', help='S3 storage: the bucket name')
    ] = None,
    endpoint: Annotated[
        str | None,
        typer.Option('--endpoint', help='S3-compatible endpoint URL (MinIO, ...); default AWS'),
    ] = None,
    prefix: Annotated[
        str | None, typer.Option('--prefix', help='Key prefix inside the bucket')
    ] = None,
    region: Annotated[str | None, typer.Option('--region', help='S3 region')] = None,
    access_key: Annotated[
        str | None,
        typer.Option(
            '--access-key', envvar='AWS_ACCESS_KEY_ID', help='Access key (or AWS_ACCESS_KEY_ID)'
        ),
    ] = None,
    secret_key: Annotated[
        str | None,
        typer.Option(
            '--secret-key',
            envvar='AWS_SECRET_ACCESS_KEY',
            help='Secret key; prefer AWS_SECRET_ACCESS_KEY (options show in `ps`)',
            show_default=False,
        ),
    ] = None,
    provider: Annotated[
        str | None,
        typer.Option('--provider', help='s3 or minio (default: minio with --endpoint, else s3)'),
    ] = None,
    check: Annotated[
        bool,
        typer.Option('--check/--no-check', help='Check that the location can be reached'),
    ] = True,
    home: HomeOption = None,
) -> None:
    """Register a storage: a local directory (--path) or an S3 bucket (--s3-bucket).

    Credentials are stored in SYNAPSE_HOME and never printed. Examples:
    synapse storage add local --path /data/exports;
    synapse storage add lake --s3-bucket exports --endpoint http://127.0.0.1:9000
    """
    from synapse_sdk.errors import StorageError
    from synapse_sdk.server.store import Store
    from synapse_sdk.storage import open_storage

    name = _check_name(name)
    if (path is None) == (s3_bucket is None):
        fail('give exactly one of --path DIR (a local directory) or --s3-bucket BUCKET', EXIT_USAGE)
    config: dict[str, Any]
    if path is not None:
        s3_only = {
            '--endpoint': endpoint,
            '--prefix': prefix,
            '--region': region,
            '--provider': provider,
        }
        given = [flag for flag, value in s3_only.items() if value is not None]
        if given:
            fail(f'{", ".join(given)} only apply to --s3-bucket storages', EXIT_USAGE)
        kind = 'file_system'
        config = _file_system_config(path)
    else:
        kind = (provider or ('minio' if endpoint else 's3')).strip().lower()
        if kind not in ('s3', 'minio'):
            fail(f'--provider must be s3 or minio, got {provider!r}', EXIT_USAGE)
        config = {'bucket': s3_bucket}
        for key, value in (
            ('endpoint_url', endpoint),
            ('prefix', prefix),
            ('region', region),
            ('access_key', access_key),
            ('secret_key', secret_key),
        ):
            if value:
                config[key] = value
    record = {'id': None, 'name': name, 'provider': kind, 'configuration': config}
    try:
        location = open_storage(record)
        if check:
            location.check()
    except StorageError as exc:
        fail(f'{exc}' + ('' if not check else ' (--no-check skips the check)'), EXIT_USAGE)
    with reported_errors():
        try:
            with Store(home) as store:
                saved = store.add_storage(name, kind, config)
        except ValueError as exc:
            fail(f'{exc}; pick another NAME', EXIT_USAGE)
    row = describe_storage(saved)
    typer.echo(f'Added storage {row["id"]} {name!r} ({kind}) -> {row["location"]}', err=True)
    typer.echo(f'Export to it with: synapse export FORMAT ... --storage {row["id"]}', err=True)
    print_result(row)


@storage_app.command('list')
def list_storages(home: HomeOption = None) -> None:
    """List the storages of SYNAPSE_HOME: id, name, provider, location (no credentials)."""
    from synapse_sdk.server.store import Store

    with reported_errors(), Store(home) as store:
        rows = [describe_storage(record) for record in store.list_storages()]
    for row in rows:
        typer.echo(f'{row["id"]:>4}  {row["name"]}  {row["provider"]}  {row["location"]}', err=True)
    if not rows:
        typer.echo('No storages yet: synapse storage add NAME --path DIR', err=True)
    print_result(rows)


def _records(storage: int | None, home: Path | None) -> list[dict[str, Any]]:
    from synapse_sdk.errors import NotFoundError

    if os.environ.get('SYNAPSE_HOST', '').strip():
        if storage is None:
            fail('with SYNAPSE_HOST set, name the storage to clean with --storage N', EXIT_USAGE)
        from synapse_sdk.clients import default_client

        with reported_errors():
            try:
                return [default_client().get_storage(storage)]
            except NotFoundError:
                fail(f'--storage: no storage with id {storage}', EXIT_USAGE)
    from synapse_sdk.server.store import Store

    with reported_errors(), Store(home) as store:
        if storage is None:
            return store.list_storages()
        try:
            return [store.get_storage(storage)]
        except NotFoundError:
            fail(f'--storage: no storage with id {storage}', EXIT_USAGE)


@storage_app.command('clean')
def clean(
    storage: Annotated[
        int | None, typer.Option('--storage', help='Only this storage id (default: all)')
    ] = None,
    older_than: Annotated[
        str | None,
        typer.Option(
            '--older-than',
            help='Also remove leftovers whose owner cannot be checked (another host, no '
            'marker) untouched for this long: 30m, 12h, 1d, 2w',
        ),
    ] = None,
    path: Annotated[
        list[str] | None,
        typer.Option(
            '--path',
            help='An export folder to look in, as given to `synapse export --path` '
            '(repeatable; default: the storage root and the default export folder). '
            'Staging directories sit beside the exports; nothing else is listed',
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option('--dry-run', help='Show what would be removed; remove nothing')
    ] = False,
    home: HomeOption = None,
) -> None:
    """Remove what killed exports left behind (staging directories, S3 uploads and claims).

    Only the SDK's own leftovers (named .synapse-staging-*) are looked for, and only where
    exports put them: beside the exports, in the storage root and the default export folder
    unless --path names others. The storage is never walked. Leftovers of a process that
    still runs are never touched; those of a dead one on this machine always go; others
    (another host, no owner recorded) only with --older-than.
    """
    from synapse_sdk.cli.export import DEFAULT_PATH
    from synapse_sdk.errors import ParamsError, SynapseError
    from synapse_sdk.storage import open_storage, validate_rel_path

    limit = parse_duration(older_than) if older_than is not None else None
    try:
        given = path or ['', DEFAULT_PATH]
        places = list(dict.fromkeys(validate_rel_path(p, '--path') for p in given))
    except ParamsError as exc:
        fail(str(exc), EXIT_USAGE)
    results: dict[str, list[dict[str, Any]]] = {'removed': [], 'kept': [], 'failed': []}
    for record in _records(storage, home):
        label = f'storage {record.get("id")} ({record.get("name")})'
        try:
            location = open_storage(record)
            if location.is_local and os.path.dirname(location.root) == location.root:
                looked = ', '.join(location.url(place) for place in places)
                typer.echo(
                    f'Warning: {label} is rooted at {location.root}, the whole file system; '
                    f'only {looked} are looked in, nothing is walked. Give exports a folder '
                    'of their own: synapse storage add NAME --path /data/exports',
                    err=True,
                )
            report = []
            for place in places:
                report += location.clean_staging(limit, dry_run=dry_run, rel_path=place)
        except SynapseError as exc:
            if storage is not None:
                fail(str(exc))
            typer.echo(f'Skipped {label}: {exc}', err=True)
            continue
        seen: set[str] = set()  # an object store's listing of the root covers its folders
        for info, action in report:
            if info.where in seen:
                continue
            seen.add(info.where)
            row = {'storage': record.get('id'), **info.to_json(), 'action': action}
            if action in ('removed', 'would remove'):
                results['removed'].append(row)
                verb = 'Would remove' if dry_run else 'Removed'
                owner = f', {row["owner"]}' if row['owner'] else ''
                typer.echo(f'{verb} {row["where"]} ({row["state"]}{owner})', err=True)
            elif action == 'kept':
                results['kept'].append(row)
            else:
                results['failed'].append(row)
                typer.echo(f'Could not remove {row["where"]}: {action}', err=True)
    kept = results['kept']
    alive = sum(1 for row in kept if row['state'] == 'alive')
    summary = f'{"Would remove" if dry_run else "Removed"} {len(results["removed"])} leftover(s)'
    if not path:
        looked = ' and '.join(['the storage root', *(f'{p}/' for p in places if p)])
        summary += f' (looked in {looked}; other export folders: --path FOLDER)'
    if kept:
        summary += f'; kept {len(kept)} ({alive} of a running export'
        summary += ', the others: use --older-than)' if len(kept) > alive else ')'
    typer.echo(summary, err=True)
    print_result({'dry_run': dry_run, **results})
    if results['failed']:
        raise typer.Exit(1)

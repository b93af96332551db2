"""``synapse server start``: serve ``$SYNAPSE_HOME`` over the Synapse REST API."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from synapse_sdk.cli.common import EXIT_USAGE, fail

server_app = typer.Typer(
    help='Run the embedded Synapse backend as an HTTP server.', no_args_is_help=True
)


@server_app.command('start')
def start(
    host: Annotated[str, typer.Option('--host', help='Interface to bind')] = '127.0.0.1',
    port: Annotated[int, typer.Option('--port', help='Port to listen on')] = 8000,
    token: Annotated[
        str | None,
        typer.Option(
            '--token',
            envvar='SYNAPSE_SERVER_TOKEN',
            help='Require this access token (Synapse-Access-Token: Token <token>). '
            'Needed to bind beyond loopback. Prefer the SYNAPSE_SERVER_TOKEN environment '
            'variable: a command-line argument is visible to every user in `ps`.',
            show_default=False,
        ),
    ] = None,
    home: Annotated[
        Path | None,
        typer.Option('--home', help='Synapse home (default: $SYNAPSE_HOME or ~/.synapse)'),
    ] = None,
    log_level: Annotated[str, typer.Option('--log-level', help='uvicorn log level')] = 'info',
    max_body: Annotated[
        int, typer.Option('--max-body', min=1, help='Largest request body accepted, in bytes')
    ] = 8 * 1024 * 1024,
    media_ttl: Annotated[
        int,
        typer.Option('--media-ttl', min=1, help='Seconds a signed media URL stays valid'),
    ] = 6 * 3600,
) -> None:
    """Serve the store (projects, tasks, assignments, ground truth, storages, jobs, media)."""
    import uvicorn

    from synapse_sdk.errors import ParamsError
    from synapse_sdk.server.app import check_bind, create_app
    from synapse_sdk.server.store import Store

    try:
        check_bind(host, token)
    except ParamsError as exc:
        fail(str(exc), EXIT_USAGE)
    store = Store(home)
    shown = f'[{host}]' if ':' in host else host
    auth = 'token required' if token else 'no token, loopback only'
    typer.echo(f'Serving {store.home} at http://{shown}:{port}/ ({auth})', err=True)
    if token and any(a == '--token' or a.startswith('--token=') for a in sys.argv[1:]):
        typer.echo(
            'Note: --token on the command line is visible to other users in `ps`; '
            'set SYNAPSE_SERVER_TOKEN instead.',
            err=True,
        )
    app = create_app(store=store, token=token, max_body=max_body, media_ttl=media_ttl)
    try:
        uvicorn.run(app, host=host, port=port, log_level=log_level)
    finally:
        store.close()

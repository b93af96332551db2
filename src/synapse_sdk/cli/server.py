"""``synapse server start``: serve ``$SYNAPSE_HOME`` over the Synapse REST API."""

from __future__ import annotations

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
            'Needed to bind beyond loopback.',
            show_default=False,
        ),
    ] = None,
    home: Annotated[
        Path | None,
        typer.Option('--home', help='Synapse home (default: $SYNAPSE_HOME or ~/.synapse)'),
    ] = None,
    log_level: Annotated[str, typer.Option('--log-level', help='uvicorn log level')] = 'info',
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
    try:
        uvicorn.run(create_app(store=store, token=token), host=host, port=port, log_level=log_level)
    finally:
        store.close()

"""The ``synapse`` command. Thin: parse, call the library, render."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

import typer

from synapse_sdk.cli.data import data_app
from synapse_sdk.cli.demo import demo
from synapse_sdk.cli.export import export_app
from synapse_sdk.cli.listing import gt_app, project_app
from synapse_sdk.cli.plugin import plugin_app
from synapse_sdk.cli.preview import preview
from synapse_sdk.cli.server import server_app
from synapse_sdk.cli.storage import storage_app


def package_version() -> str:
    try:
        return version('synapse-sdk')
    except PackageNotFoundError:  # running from a source tree that is not installed
        return 'unknown'


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f'synapse-sdk {package_version()}')
        raise typer.Exit()


app = typer.Typer(
    name='synapse',
    help='Synapse export SDK: export annotations to COCO, YOLO, VOC, CSV or JSON, look at what '
    'you exported, run and scaffold plugins, and run an embedded Synapse backend.',
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={'help_option_names': ['-h', '--help']},
)


@app.callback()
def _root(
    show_version: Annotated[
        bool,
        typer.Option(
            '--version',
            '-V',
            help='Print the version and exit',
            is_eager=True,
            callback=_show_version,
        ),
    ] = False,
) -> None:
    """Synapse export SDK: export annotations to COCO, YOLO, VOC, CSV or JSON, look at what
    you exported, run and scaffold plugins, and run an embedded Synapse backend.

    Backend: SYNAPSE_HOST (+ SYNAPSE_ACCESS_TOKEN) when set, else the embedded store in
    SYNAPSE_HOME (default ~/.synapse). Start with: synapse demo
    """


app.add_typer(export_app, name='export')
app.command('preview')(preview)
app.add_typer(project_app, name='project')
app.add_typer(gt_app, name='gt')
app.add_typer(plugin_app, name='plugin')
app.add_typer(data_app, name='data')
app.add_typer(server_app, name='server')
app.add_typer(storage_app, name='storage')
app.command('demo')(demo)


def main() -> None:
    app()


if __name__ == '__main__':
    main()

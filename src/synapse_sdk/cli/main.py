"""The ``synapse`` command. Thin: parse, call the library, render."""

from __future__ import annotations

import typer

from synapse_sdk.cli.data import data_app
from synapse_sdk.cli.demo import demo
from synapse_sdk.cli.export import export
from synapse_sdk.cli.plugin import plugin_app
from synapse_sdk.cli.server import server_app
from synapse_sdk.cli.storage import storage_app

app = typer.Typer(
    name='synapse',
    help='Synapse export SDK: export annotations to COCO, YOLO, VOC, CSV or JSON, run and '
    'scaffold plugins, and run an embedded Synapse backend.',
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(plugin_app, name='plugin')
app.add_typer(data_app, name='data')
app.add_typer(server_app, name='server')
app.add_typer(storage_app, name='storage')
app.command('demo')(demo)
app.command('export')(export)


def main() -> None:
    app()


if __name__ == '__main__':
    main()

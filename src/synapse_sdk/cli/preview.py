"""``synapse preview EXPORT_DIR --output OUT``: draw an export's labels and chart its numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from synapse_sdk.cli.common import DebugOption, print_result, reported_errors


def preview(
    export_dir: Annotated[
        Path, typer.Argument(metavar='EXPORT_DIR', help='An export folder (COCO, YOLO, VOC, ...)')
    ],
    output: Annotated[
        Path, typer.Option('--output', '-O', metavar='OUT', help='Folder to write the preview to')
    ],
    fmt: Annotated[
        str | None,
        typer.Option('--format', help='coco, yolo, voc, csv or dm (default: detected)'),
    ] = None,
    per_split: Annotated[
        int, typer.Option('--per-split', help='Sample images drawn per split', min=1, max=64)
    ] = 4,
    tile: Annotated[
        int, typer.Option('--tile', help='Size of one sample on the sheet, in pixels')
    ] = 320,
    debug: DebugOption = False,
) -> None:
    """Read an export back with the SDK's readers and draw what it holds.

    Writes OUT/contact_sheet.png (samples of each split, labels drawn, one colour per class),
    OUT/report.html (class counts per split, annotations per image, box sizes and the export's
    warnings as charts; opens offline) and OUT/preview.json. Because it reads the written
    files, not the source records, it shows mistakes in the export itself.
    """
    from synapse_sdk.preview import preview_export

    flags = {'EXPORT_DIR': 'EXPORT_DIR', '--output': '--output'}
    with reported_errors(flags, debug):
        summary = preview_export(export_dir, output, fmt=fmt, per_split=per_split, tile=tile)
    typer.echo(
        f'Previewed {summary["images"]:,} images and {summary["annotations"]:,} annotations '
        f'({summary["format"]}); {len(summary["warnings"])} warning(s)',
        err=True,
    )
    if summary['contact_sheet']:
        typer.echo(f'  Contact sheet: {summary["contact_sheet"]}', err=True)
    typer.echo(f'  Report: {summary["report"]}', err=True)
    print_result(summary)

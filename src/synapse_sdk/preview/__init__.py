"""See what an export holds: its labels drawn on its images, and its numbers as charts.

:func:`preview_export` reads an export folder back with the SDK's own readers (COCO, YOLO,
VOC, CSV, DM), so it shows the written files, mistakes included, and writes:

- ``contact_sheet.png``: a sample of each split with boxes, polygons, masks, keypoints and
  class names drawn, one colour per class;
- ``report.html``: class counts per split, images per split, annotations per image, box sizes
  and tools as inline SVG charts, with the export report's warnings (no network needed);
- ``preview.json``: the same numbers and where each sample sits on the sheet.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

from synapse_sdk.errors import ParamsError
from synapse_sdk.formats.dataset import ImportedImage
from synapse_sdk.preview.draw import SheetTile, class_colors, contact_sheet
from synapse_sdk.preview.load import detect_format, load_export, split_of
from synapse_sdk.preview.report import render_report, warnings_of
from synapse_sdk.preview.stats import Stats

__all__ = ['detect_format', 'load_export', 'preview_export']

SHEET = 'contact_sheet.png'
REPORT = 'report.html'
SUMMARY = 'preview.json'


def _count(n: int, word: str) -> str:
    return f'{n:,} {word}' + ('' if n == 1 else 's')


def preview_export(
    export_dir: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    fmt: str | None = None,
    per_split: int = 4,
    tile: int = 320,
) -> dict[str, Any]:
    """Write the contact sheet, the report and ``preview.json`` into ``output``; return the
    summary (paths, counts, warnings, sheet tiles)."""
    if per_split < 1:
        raise ParamsError('Invalid preview', [('--per-split', 'must be at least 1')])
    if not 64 <= tile <= 2048:
        raise ParamsError('Invalid preview', [('--tile', 'must be from 64 to 2048 pixels')])
    root = Path(export_dir)
    out = Path(output)
    if out.resolve() == root.resolve() or root.resolve() in out.resolve().parents:
        raise ParamsError(
            'Invalid preview', [('--output', 'must not be inside the export it previews')]
        )
    export = load_export(root, fmt)
    stats = Stats(export.class_names)
    samples: dict[str, list[ImportedImage]] = {}
    spare: dict[str, list[ImportedImage]] = {}
    for image in export.images:
        split = split_of(image)
        stats.add(image, split)
        chosen = samples.setdefault(split, [])
        if image.annotations and len(chosen) < per_split:
            chosen.append(image)
        elif not image.annotations and len(spare.setdefault(split, [])) < per_split:
            spare[split].append(image)
    for split, chosen in samples.items():  # fill with unlabelled images when labels are few
        chosen.extend(spare.get(split, [])[: per_split - len(chosen)])
    ordered = {split: samples[split] for split in stats.splits if samples.get(split)}
    colors = class_colors(stats.classes)
    per_class = {name: sum(stats.class_split[(name, s)] for s in stats.splits)
                 for name in stats.classes}  # fmt: skip
    notes = {
        s: f'{_count(stats.images_per_split[s], "image")}, '
        f'{_count(stats.annotations_per_split[s], "annotation")} (showing {len(ordered[s])})'
        for s in ordered
    }
    skeletons = {
        str(name): spec.get('skeleton') or []
        for name, spec in (export.configuration.get('keypoints') or {}).items()
        if isinstance(spec, dict)
    }
    title = f'{export.format.upper()} export: {root.resolve().name}'
    out.mkdir(parents=True, exist_ok=True)
    tiles: list[SheetTile] = []
    if ordered:
        sheet, tiles = contact_sheet(
            ordered,
            colors,
            title=f'{title}: {_count(stats.images, "image")}, '
            f'{_count(stats.annotations, "annotation")}',
            split_notes=notes,
            class_counts=per_class,
            skeletons=skeletons,
            columns=per_split,
            tile=tile,
        )
        sheet.save(out / SHEET, optimize=True)
    else:
        (out / SHEET).unlink(missing_ok=True)
    html = render_report(
        title=title,
        source=str(root.resolve()),
        fmt=export.format,
        stats=stats,
        class_colors=colors,
        report=export.report,
        errors=export.errors,
        sheet=SHEET if ordered else None,
    )
    (out / REPORT).write_text(html, encoding='utf-8')
    warnings = [text for _, text in warnings_of(export.report, export.errors, stats)]
    summary = {
        'format': export.format,
        'export': str(root.resolve()),
        'contact_sheet': str((out / SHEET).resolve()) if ordered else None,
        'report': str((out / REPORT).resolve()),
        'images': stats.images,
        'annotations': stats.annotations,
        'images_per_split': dict(stats.images_per_split),
        'classes': per_class,
        'warnings': warnings,
        'tiles': [t.to_dict() for t in tiles],
    }
    (out / SUMMARY).write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    return summary

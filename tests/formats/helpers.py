"""Test helpers: the shared fixture, items as the pipeline makes them, a minimal export loop."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any

import orjson
from PIL import Image

from synapse_sdk.errors import ItemExportError
from synapse_sdk.formats import get_writer
from synapse_sdk.formats.base import FormatItem, FormatWriter
from synapse_sdk.formats.classmap import ClassMap
from synapse_sdk.formats.names import StemAllocator
from synapse_sdk.formats.report import ExportReport
from synapse_sdk.formats.split import parse_split
from synapse_sdk.plugins.discovery import load_plugin
from synapse_sdk.testing import run_export

DATA = Path(__file__).resolve().parent.parent / 'data' / 'formats'


def fixture() -> dict[str, Any]:
    return orjson.loads((DATA / 'items.json').read_bytes())


def configuration() -> dict[str, Any]:
    return fixture()['configuration']


def class_map(conf: dict[str, Any] | None = None) -> ClassMap:
    return ClassMap.from_configuration(conf or configuration())


def make_items(
    records: list[dict[str, Any]] | None = None, split: Any = None, seed: int = 0
) -> list[FormatItem]:
    """FormatItems the way the pipeline builds them: id order, allocated stems, splits."""
    records = copy.deepcopy(records if records is not None else fixture()['records'])
    spec = parse_split(split)
    alloc = StemAllocator()
    items = []
    for rec in sorted(records, key=lambda r: r['id']):
        stem, ext, _ = alloc.allocate(rec['files']['file_name_original'])
        items.append(
            FormatItem(
                id=rec['id'],
                stem=stem,
                ext=ext,
                split=spec.assign(rec['id'], rec.get('category'), seed),
                width=rec.get('width'),
                height=rec.get('height'),
                annotations=rec['data']['annotations'],
                classifications=rec['data'].get('classifications') or {},
                source={'id': rec['id'], 'data': rec['data'], 'files': rec['files']},
            )
        )
    return items


def save_image(path: Path, width: int, height: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = 'JPEG' if path.suffix.lower() in ('.jpg', '.jpeg') else 'PNG'
    Image.new('RGB', (width, height), (90, 120, 150)).save(path, format=fmt)


def export(
    fmt: str,
    root: Path,
    items: list[FormatItem],
    options: dict[str, Any] | None = None,
    cmap: ClassMap | None = None,
    images: bool = True,
    project: dict[str, Any] | None = None,
) -> tuple[ExportReport, FormatWriter]:
    """A minimal pipeline: start, per item place the image and write, finish."""
    report = ExportReport()
    writer = get_writer(fmt)(root, cmap or class_map(), options or {}, report, project=project)
    writer.start()
    for item in items:
        report.items_total += 1
        rel = writer.image_relpath(item)
        if rel and images and item.width and item.height:
            save_image(root / rel, item.width, item.height)
        try:
            writer.write_item(item)
        except ItemExportError as exc:
            report.fail_item(item.id, item.file_name, str(exc))
            continue
        report.count_item(item.split)
    writer.finish()
    return report, writer


def tree(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``root``."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob('*'))
        if p.is_file()
    }


def plugin_export(client: Any, fmt: str, name: str, split: str) -> tuple[dict[str, Any], Path]:
    """The built-in ``fmt`` plugin exporting project 1's tasks split by ``split``, every item
    written (else the test fails with the errors); the result and the published folder."""
    action = load_plugin(fmt).get_action('export')
    result = run_export(action, client, name=name, extra_params={'split': split})
    assert result['failed_count'] == 0, result['errors']
    return result, Path(result['output_path'])

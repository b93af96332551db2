"""The human summary printed on stderr when an export ends (the JSON result stays on stdout).

Built from the run's result: items exported and failed, annotations written, converted,
clamped and skipped with the most frequent reasons, original files that failed, warnings,
where the output is and where its report is. Counts the result does not carry (runs of older
engines, or annotation totals) are read from the export's ``export_report.json`` when it is at
hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.markup import escape

__all__ = ['export_summary', 'print_summary', 'read_local_report']

TOP_REASONS = 3


def read_local_report(output_path: Any) -> dict[str, Any] | None:
    """``export_report.json`` of an export folder on this machine, if there is one."""
    if not isinstance(output_path, str) or '://' in output_path:
        return None
    try:
        data = orjson.loads((Path(output_path) / 'export_report.json').read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _dict(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def _counts(value: Any) -> dict[str, int]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): n for k, v in value.items() if (n := _int(v)) is not None and n > 0}


def _top(counts: Mapping[str, int]) -> str:
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    parts = [f'{escape(reason)} ({n:,})' for reason, n in ranked[:TOP_REASONS]]
    rest = len(ranked) - TOP_REASONS
    if rest > 0:
        parts.append(f'and {rest} more reason{"s" if rest > 1 else ""} in the report')
    return '; '.join(parts)


def _plural(n: int, word: str) -> str:
    return f'{n:,} {word}{"" if n == 1 else "s"}'


def export_summary(result: Any, report: Mapping[str, Any] | None = None) -> list[str]:
    """The summary as rich-markup lines; ``[]`` when ``result`` is not an export result."""
    if not isinstance(result, Mapping) or not (
        'output_path' in result or 'exported_count' in result
    ):
        return []
    report = report or {}
    annotations = _dict(report.get('annotations'))
    items = _dict(report.get('items'))
    exported = _int(result.get('exported_count'))
    if exported is None:
        exported = _int(items.get('exported')) or 0
    total = _int(result.get('total_count'))
    if total is None:
        total = _int(items.get('total'))
    failed = _int(result.get('failed_count'))
    if failed is None:
        failed = _int(items.get('failed')) or 0
    output = result.get('output_path')

    lines = []
    head = f'Exported {exported:,}' + (f' of {total:,}' if total is not None else '') + ' items'
    if failed:
        head += f', [bold red]{failed:,} failed[/]'
    lines.append(f'[bold]{head}[/]' if not failed else head)

    written = _int(result.get('annotations_exported'))
    if written is None:
        written = _int(annotations.get('exported'))
    skipped = _counts(result.get('skipped')) or _counts(report.get('skipped_reasons'))
    converted = _counts(result.get('converted')) or _counts(report.get('converted_reasons'))
    clamped = _int(result.get('clamped'))
    if clamped is None:
        clamped = _int(annotations.get('clamped')) or 0
    parts = []
    if written is not None:
        parts.append(f'{written:,} written')
    if converted:
        parts.append(f'{sum(converted.values()):,} converted')
    if clamped:
        parts.append(f'{clamped:,} clamped to the image')
    if skipped:
        parts.append(f'[yellow]{sum(skipped.values()):,} skipped[/]')
    if parts:
        lines.append('  Annotations: ' + ', '.join(parts))
    if skipped:
        lines.append('    skipped: ' + _top(skipped))
    if converted:
        lines.append('    converted: ' + _top(converted))

    originals = result.get('original_file_metrics')
    failed_originals = _int(result.get('failed_original_count'))
    if failed_originals is None and isinstance(originals, Mapping):
        failed_originals = _int(originals.get('failed'))
    if isinstance(originals, Mapping) and (_int(originals.get('success')) or failed_originals):
        copied = _int(originals.get('success')) or 0
        text = f'  Original files: {copied:,} copied'
        if failed_originals:
            text += f', [bold red]{failed_originals:,} failed[/]'
        lines.append(text)
    elif failed_originals:
        lines.append(f'  Original files: [bold red]{failed_originals:,} failed[/]')

    errors = [e for e in result.get('errors') or [] if isinstance(e, str)]
    for error in errors[:TOP_REASONS]:
        lines.append(f'  [red]failed:[/] {escape(error)}')
    if failed > len(errors[:TOP_REASONS]) and errors:
        lines.append(f'  ... {_plural(failed - len(errors[:TOP_REASONS]), "more failure")}')
    for warning in result.get('warnings') or []:
        lines.append(f'  [yellow]warning:[/] {escape(str(warning))}')

    if isinstance(output, str) and output:
        lines.append(f'  Output: {escape(output)}')
        if output.endswith('.zip'):
            lines.append('  Report: export_report.json and error_file_list.json inside the zip')
        else:
            sep = '/' if '://' in output else None
            report_path = f'{output.rstrip("/")}/export_report.json' if sep else None
            if report_path is None:
                report_path = str(Path(output) / 'export_report.json')
            line = f'  Report: {escape(report_path)}'
            if failed or failed_originals:
                line += ' (failed files: error_file_list.json beside it)'
            lines.append(line)
    return lines


def print_summary(
    result: Any, report: Mapping[str, Any] | None = None, console: Console | None = None
) -> None:
    """Print :func:`export_summary` on stderr (colours only on a terminal)."""
    lines = export_summary(result, report)
    if not lines:
        return
    console = console or Console(stderr=True)
    for line in lines:
        console.print(line, highlight=False, soft_wrap=True)

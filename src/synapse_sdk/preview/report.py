"""``report.html``: an export's numbers as charts, in one file that needs no network.

Charts are inline SVG written here (no script, no web font, no stylesheet from elsewhere):
annotations per class and split, images per split, annotations per image, box sizes (a scatter
of width and height relative to the image, and COCO's small/medium/large buckets), tools. The
warnings come from the export's own ``export_report.json`` and ``error_file_list.json`` and
from what the preview itself found in the files. Each chart has its numbers in a table beside
it, for screen readers and for copying.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from synapse_sdk.preview.stats import SIZE_BUCKETS, Stats

__all__ = ['SPLIT_COLORS', 'render_report', 'warnings_of']

RGB = tuple[int, int, int]
SPLIT_COLORS: dict[str, str] = {
    'train': '#0072b2',
    'val': '#e69f00',
    'validation': '#e69f00',
    'test': '#009e73',
    'all': '#6c757d',
}
_EXTRA_SPLIT_COLORS = ('#cc79a7', '#d55e00', '#56b4e9', '#f0e442', '#8c564b')
HISTOGRAM_BINS = 20


def _hex(color: RGB) -> str:
    return '#{:02x}{:02x}{:02x}'.format(*color)


def split_colors(splits: Sequence[str]) -> dict[str, str]:
    out, extra = {}, iter(_EXTRA_SPLIT_COLORS * 4)
    for split in splits:
        out[split] = SPLIT_COLORS.get(split) or next(extra, '#6c757d')
    return out


def _num(n: float) -> str:
    return f'{n:,.0f}' if float(n).is_integer() else f'{n:,.2f}'


def stacked_bars(
    rows: Sequence[tuple[str, Sequence[tuple[str, int]]]],
    colors: dict[str, str],
    *,
    label: str,
    chip: dict[str, str] | None = None,
    left: int = 170,
    width: int = 720,
) -> str:
    """Horizontal bars, one per row, stacked by series: ``[(row, [(series, value)])]``."""
    bar, gap, right = 18, 8, 70
    height = max(1, len(rows)) * (bar + gap) + 30
    top = max([sum(v for _, v in parts) for _, parts in rows] or [0]) or 1
    out = [
        f'<svg class="chart" role="img" aria-label="{escape(label)}" '
        f'viewBox="0 0 {left + width + right} {height}" width="100%">'
    ]
    for i, (name, parts) in enumerate(rows):
        y = 10 + i * (bar + gap)
        shown = name if len(name) <= 24 else name[:23] + '…'
        if chip and name in chip:
            out.append(
                f'<rect x="{left - 14}" y="{y + 4}" width="10" height="10" fill="{chip[name]}"/>'
            )
        out.append(
            f'<text x="{left - 20}" y="{y + bar - 5}" text-anchor="end" class="axis">'
            f'{escape(shown)}<title>{escape(name)}</title></text>'
        )
        x = float(left)
        total = 0
        for series, value in parts:
            if value <= 0:
                continue
            w = width * value / top
            out.append(
                f'<rect x="{x:.1f}" y="{y}" width="{max(w, 0.5):.1f}" height="{bar}" '
                f'fill="{colors.get(series, "#6c757d")}" data-series="{escape(series)}" '
                f'data-value="{value}"><title>{escape(name)} · {escape(series)}: '
                f'{value:,}</title></rect>'
            )
            x += w
            total += value
        out.append(f'<text x="{x + 6:.1f}" y="{y + bar - 5}" class="value">{total:,}</text>')
    out.append('</svg>')
    return ''.join(out)


def column_chart(bins: Sequence[tuple[str, int]], color: str, *, label: str, x_title: str) -> str:
    """Vertical bars with their labels under them."""
    left, bottom, height, width = 50, 40, 200, 820
    n = max(1, len(bins))
    step = (width - left - 10) / n
    top = max([v for _, v in bins] or [0]) or 1
    out = [
        f'<svg class="chart" role="img" aria-label="{escape(label)}" '
        f'viewBox="0 0 {width} {height + bottom}" width="100%">',
        f'<line x1="{left}" y1="{height}" x2="{width - 10}" y2="{height}" class="grid"/>',
        f'<text x="{left - 6}" y="16" text-anchor="end" class="axis">{top:,}</text>',
        f'<text x="{left - 6}" y="{height}" text-anchor="end" class="axis">0</text>',
    ]
    for i, (name, value) in enumerate(bins):
        h = (height - 20) * value / top
        x = left + i * step + step * 0.1
        out.append(
            f'<rect x="{x:.1f}" y="{height - h:.1f}" width="{step * 0.8:.1f}" height="{h:.1f}" '
            f'fill="{color}" data-value="{value}"><title>{escape(name)}: {value:,}</title></rect>'
        )
        if n <= 25 or i % max(1, n // 12) == 0:
            out.append(
                f'<text x="{x + step * 0.4:.1f}" y="{height + 14}" text-anchor="middle" '
                f'class="axis">{escape(name)}</text>'
            )
    out.append(
        f'<text x="{(left + width) / 2:.0f}" y="{height + 34}" text-anchor="middle" '
        f'class="axis">{escape(x_title)}</text></svg>'
    )
    return ''.join(out)


def scatter(
    points: Sequence[tuple[float, float, str]], colors: dict[str, str], *, label: str
) -> str:
    """Box width against height, both as a fraction of the image."""
    size, pad = 320, 40
    out = [
        f'<svg class="chart square" role="img" aria-label="{escape(label)}" '
        f'viewBox="0 0 {size + pad + 10} {size + pad + 10}" width="100%">',
        f'<rect x="{pad}" y="10" width="{size}" height="{size}" class="frame"/>',
    ]
    for t in (0.25, 0.5, 0.75):
        out.append(
            f'<line x1="{pad + t * size}" y1="10" x2="{pad + t * size}" y2="{size + 10}" '
            f'class="grid"/><line x1="{pad}" y1="{10 + (1 - t) * size}" x2="{pad + size}" '
            f'y2="{10 + (1 - t) * size}" class="grid"/>'
        )
    for w, h, name in points:
        cx = pad + min(max(w, 0.0), 1.05) * size
        cy = 10 + (1 - min(max(h, 0.0), 1.05)) * size
        out.append(
            f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="2.5" fill="{colors.get(name, "#6c757d")}" '
            f'fill-opacity="0.7"/>'
        )
    out.append(
        f'<text x="{pad + size / 2}" y="{size + 40}" text-anchor="middle" class="axis">'
        'box width / image width</text>'
        f'<text x="12" y="{10 + size / 2}" text-anchor="middle" class="axis" '
        f'transform="rotate(-90 12 {10 + size / 2})">box height / image height</text>'
        f'<text x="{pad}" y="{size + 24}" class="axis">0</text>'
        f'<text x="{pad + size}" y="{size + 24}" text-anchor="end" class="axis">1</text></svg>'
    )
    return ''.join(out)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], caption: str) -> str:
    head = ''.join(f'<th>{escape(str(h))}</th>' for h in headers)
    body = ''.join(
        '<tr>'
        + ''.join(
            f'<td class="num">{v:,}</td>' if isinstance(v, int) else f'<td>{escape(str(v))}</td>'
            for v in row
        )
        + '</tr>'
        for row in rows
    )
    return (
        f'<details><summary>{escape(caption)}</summary><table><thead><tr>{head}</tr></thead>'
        f'<tbody>{body}</tbody></table></details>'
    )


def _dict(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


def warnings_of(
    report: dict[str, Any], errors: Sequence[dict[str, Any]], stats: Stats
) -> list[tuple[str, str]]:
    """``(severity, text)`` lines: the export's own report first, then the preview's findings."""
    out: list[tuple[str, str]] = []
    items = _dict(report.get('items'))
    if items.get('failed'):
        out.append(('error', f'{items["failed"]:,} item(s) failed to export'))
    for failure in (report.get('failed_items') or [])[:10]:
        if isinstance(failure, dict):
            out.append(
                ('error', f'item {failure.get("id")} ({failure.get("file")}): '
                          f'{failure.get("reason")}')
            )  # fmt: skip
    for key, verb in (('skipped_reasons', 'skipped'), ('converted_reasons', 'converted')):
        reasons = _dict(report.get(key))
        for reason, count in sorted(reasons.items(), key=lambda kv: (-int(kv[1]), kv[0])):
            out.append(('warning', f'{int(count):,} annotation(s) {verb}: {reason}'))
    annotations = _dict(report.get('annotations'))
    if annotations.get('clamped'):
        out.append(
            ('warning', f'{annotations["clamped"]:,} annotation(s) clamped to the image bounds')
        )
    for text in report.get('warnings') or []:
        out.append(('warning', str(text)))
    originals = [e for e in errors if isinstance(e, dict) and e.get('kind') == 'original_file']
    if originals:
        out.append(('error', f'{len(originals):,} original file(s) could not be copied'))
    renamed = report.get('renamed_files') or []
    if renamed:
        out.append(('info', f'{len(renamed):,} file(s) renamed to keep names unique'))
    for what, count in sorted(stats.findings.items(), key=lambda kv: (-kv[1], kv[0])):
        examples = ', '.join(stats.examples.get(what, []))
        out.append(('warning', f'{what}: {count:,} (found by the preview), e.g. {examples}'))
    return out


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;
margin:0;background:#f5f6f8;color:#212529}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 10px}
.muted{color:#6c757d}.cards{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}
.card{background:#fff;border:1px solid #dee2e6;border-radius:8px;padding:10px 16px;min-width:110px}
.card b{display:block;font-size:22px}
section{background:#fff;border:1px solid #dee2e6;border-radius:8px;padding:4px 20px 16px;
margin-bottom:16px}
.chart{display:block;max-width:100%;height:auto}.chart.square{max-width:380px}
.axis{font-size:12px;fill:#495057}.value{font-size:12px;fill:#212529}
.grid{stroke:#dee2e6;stroke-width:1}.frame{fill:none;stroke:#adb5bd}
.legend{display:flex;flex-wrap:wrap;gap:10px 18px;margin:8px 0}
.legend span{display:inline-flex;align-items:center;gap:6px}
.legend i{width:12px;height:12px;display:inline-block;border-radius:2px}
ul.warnings{padding-left:0;list-style:none}ul.warnings li{padding:6px 10px;margin:4px 0;
border-left:4px solid #ffc107;background:#fff8e1}
ul.warnings li.error{border-color:#dc3545;background:#fdecee}
ul.warnings li.info{border-color:#0d6efd;background:#e7f1ff}
table{border-collapse:collapse;margin-top:8px}td,th{padding:3px 10px;border-bottom:1px solid
#e9ecef;text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}
img.sheet{max-width:100%;border:1px solid #dee2e6;border-radius:4px}
.row{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}.row>div{flex:1 1 300px}
"""


def _legend(colors: dict[str, str]) -> str:
    return (
        '<div class="legend">'
        + ''.join(
            f'<span><i style="background:{c}"></i>{escape(name)}</span>'
            for name, c in colors.items()
        )
        + '</div>'
    )


def render_report(
    *,
    title: str,
    source: str,
    fmt: str,
    stats: Stats,
    class_colors: dict[str, RGB],
    report: dict[str, Any],
    errors: Sequence[dict[str, Any]],
    sheet: str | None,
) -> str:
    """The whole page as a string."""
    splits = stats.splits
    scolors = split_colors(splits)
    ccolors = {name: _hex(class_colors.get(name, (108, 117, 125))) for name in stats.classes}
    class_rows = [
        (name, [(split, stats.class_split[(name, split)]) for split in splits])
        for name in stats.classes
    ]
    per_image = sorted(stats.per_image.items())
    bins: list[tuple[str, int]] = []
    overflow = 0
    for n, count in per_image:
        if n < HISTOGRAM_BINS:
            bins.append((str(n), count))
        else:
            overflow += count
    present = dict(bins)
    bins = [(str(n), present.get(str(n), 0)) for n in range(0, min(HISTOGRAM_BINS,
            (max(stats.per_image) + 1) if stats.per_image else 1))]  # fmt: skip
    if overflow:
        bins.append((f'≥{HISTOGRAM_BINS}', overflow))
    warnings = warnings_of(report, errors, stats)
    cards = [
        ('Format', fmt.upper()),
        ('Images', f'{stats.images:,}'),
        ('Annotations', f'{stats.annotations:,}'),
        ('Classes', f'{len(stats.classes):,}'),
        ('Splits', ', '.join(splits) or '-'),
        ('Warnings', f'{len(warnings):,}'),
    ]
    parts = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<title>{escape(title)}</title><style>{_CSS}</style></head><body><main>',
        f'<h1>{escape(title)}</h1><div class="muted">{escape(source)}</div>',
        '<div class="cards">'
        + ''.join(
            f'<div class="card"><span class="muted">{escape(k)}</span><b>{escape(v)}</b></div>'
            for k, v in cards
        )
        + '</div>',
        '<section id="warnings"><h2>Warnings</h2>',
    ]
    if warnings:
        parts.append(
            '<ul class="warnings">'
            + ''.join(f'<li class="{sev}">{escape(text)}</li>' for sev, text in warnings)
            + '</ul>'
        )
    else:
        parts.append(
            '<p>None: nothing skipped, converted, clamped or failed, every image is present and '
            'every box lies inside its image.</p>'
        )
    parts += [
        '</section><section id="classes"><h2>Annotations per class and split</h2>',
        _legend(scolors),
        stacked_bars(class_rows, scolors, label='Annotations per class and split', chip=ccolors),
        _table(
            ['class', *splits, 'total'],
            [[n, *(v for _, v in p), sum(v for _, v in p)] for n, p in class_rows],
            'Numbers',
        ),
        '</section><section id="splits"><h2>Images per split</h2>',
        stacked_bars(
            [(s, [(s, stats.images_per_split[s])]) for s in splits],
            scolors,
            label='Images per split',
        ),
        _table(
            ['split', 'images', 'annotations'],
            [[s, stats.images_per_split[s], stats.annotations_per_split[s]] for s in splits],
            'Numbers',
        ),
        '</section><section id="per-image"><h2>Annotations per image</h2>',
        column_chart(bins, '#0072b2', label='Annotations per image', x_title='annotations'),
        _table(['annotations in an image', 'images'], bins, 'Numbers'),
        '</section><section id="box-sizes"><h2>Box sizes</h2><div class="row"><div>',
        scatter(stats.boxes, ccolors, label='Box width and height relative to the image'),
        f'<p class="muted">{len(stats.boxes):,} boxes shown'
        + (' (a random sample)' if len(stats.boxes) < sum(stats.size_buckets.values()) else '')
        + '</p></div><div>',
        stacked_bars(
            [(name, [(name, stats.size_buckets[name])]) for name, _ in SIZE_BUCKETS],
            {'small': '#56b4e9', 'medium': '#0072b2', 'large': '#003f63'},
            label='Boxes by COCO size bucket',
            left=70,
            width=260,
        ),
        '<p class="muted">COCO buckets by area: small &lt; 32², medium &lt; 96², large above.</p>',
        '</div></div></section><section id="tools"><h2>Tools</h2>',
        stacked_bars(
            [(t, [('tool', n)]) for t, n in sorted(stats.tools.items(), key=lambda kv: -kv[1])],
            {'tool': '#009e73'},
            label='Annotations per tool',
        ),
        '</section>',
    ]
    if sheet:
        parts.append(
            f'<section id="samples"><h2>Samples</h2>{_legend(ccolors)}'
            f'<img class="sheet" src="{escape(sheet)}" alt="Samples of each split with their '
            'labels drawn"></section>'
        )
    parts.append('</main></body></html>\n')
    return '\n'.join(parts)

"""Draw an export's labels on its images (Pillow) and lay samples out on one contact sheet.

Every class gets one colour (its position in the class list picks it, so the same export draws
the same way every time). Boxes (rotated too), polygons, polylines, masks and keypoints with
their skeleton are drawn with the class name on a chip of the class colour. Outlines are
opaque, fills translucent, so a box edge is exactly its class colour in the PNG.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from synapse_sdk.formats.dataset import ImportedImage
from synapse_sdk.formats.geometry import rle_to_mask, rotated_corners

__all__ = ['PALETTE', 'SheetTile', 'class_colors', 'contact_sheet', 'draw_labels']

RGB = tuple[int, int, int]

#: Distinct, colour-blind-friendlier colours first (Okabe-Ito, then Tableau); more are generated.
PALETTE: tuple[RGB, ...] = (
    (230, 159, 0),
    (86, 180, 233),
    (0, 158, 115),
    (240, 228, 66),
    (0, 114, 178),
    (213, 94, 0),
    (204, 121, 167),
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (188, 189, 34),
    (23, 190, 207),
)
LINE = 3
FILL_ALPHA = 80
MASK_ALPHA = 110
BACKGROUND: RGB = (245, 246, 248)
INK: RGB = (33, 37, 41)
MUTED: RGB = (108, 117, 125)


def class_colors(names: Sequence[str]) -> dict[str, RGB]:
    """One colour per class, by position; past the palette, evenly spaced hues."""
    colors: dict[str, RGB] = {}
    for i, name in enumerate(dict.fromkeys(names)):
        if i < len(PALETTE):
            colors[name] = PALETTE[i]
        else:
            hue = (i * 0.618033988749895) % 1.0
            r, g, b = colorsys.hsv_to_rgb(hue, 0.75, 0.9)
            colors[name] = (int(r * 255), int(g * 255), int(b * 255))
    return colors


@cache
def font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans when installed (it has the glyphs of accented names), else Pillow's own."""
    for name in ('DejaVuSans-Bold.ttf' if bold else 'DejaVuSans.ttf', 'Arial.ttf'):
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default(size=size)


def _text_color(color: RGB) -> RGB:
    r, g, b = color
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 150 else (255, 255, 255)


def _label(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, color: RGB) -> None:
    f = font(11)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=f)
    w, h = right - left + 6, bottom - top + 4
    x, y = xy
    y = y - h if y - h >= 0 else y
    x = max(0.0, x)
    draw.rectangle([x, y, x + w, y + h], fill=(*color, 255))
    draw.text((x + 3 - left, y + 2 - top), text, font=f, fill=(*_text_color(color), 255))


def _points(values: Any, scale: float) -> list[tuple[float, float]]:
    return [(float(p[0]) * scale, float(p[1]) * scale) for p in values or []]


def draw_labels(
    image: Image.Image,
    annotations: Sequence[dict[str, Any]],
    colors: dict[str, RGB],
    scale: float = 1.0,
    keypoint_skeletons: dict[str, Sequence[Sequence[int]]] | None = None,
) -> Image.Image:
    """``image`` (already scaled by ``scale``) with ``annotations`` drawn on it."""
    base = image.convert('RGBA')
    fills = Image.new('RGBA', base.size, (0, 0, 0, 0))
    strokes = Image.new('RGBA', base.size, (0, 0, 0, 0))
    fill_draw = ImageDraw.Draw(fills)
    draw = ImageDraw.Draw(strokes)
    labels: list[tuple[tuple[float, float], str, RGB]] = []
    skeletons = keypoint_skeletons or {}
    for ann in annotations:
        category = str(ann.get('category'))
        color = colors.get(category, (255, 0, 255))
        tool = ann.get('tool')
        try:
            anchor = _draw_one(ann, tool, color, scale, draw, fill_draw, fills, skeletons)
        except (KeyError, TypeError, ValueError, IndexError):
            continue  # malformed geometry: the report counts it; nothing to draw
        if isinstance(anchor, Image.Image):
            fills = anchor
            fill_draw = ImageDraw.Draw(fills)
            anchor = _mask_anchor(ann, scale)
        if anchor is not None:
            labels.append((anchor, category, color))
    for anchor, text, color in labels:
        _label(draw, anchor, text, color)
    out = Image.alpha_composite(Image.alpha_composite(base, fills), strokes)
    return out.convert('RGB')


def _mask_anchor(ann: dict[str, Any], scale: float) -> tuple[float, float] | None:
    box = ann.get('bbox')
    if not box:
        return None
    return float(box[0]) * scale, float(box[1]) * scale


def _draw_one(
    ann: dict[str, Any],
    tool: Any,
    color: RGB,
    scale: float,
    draw: ImageDraw.ImageDraw,
    fill_draw: ImageDraw.ImageDraw,
    fills: Image.Image,
    skeletons: dict[str, Sequence[Sequence[int]]],
) -> tuple[float, float] | Image.Image | None:
    """Draw one annotation; return where its label goes (or, for a mask, the new fill layer)."""
    solid = (*color, 255)
    if tool == 'bounding_box':
        x, y, w, h = (float(v) * scale for v in ann['bbox'][:4])
        rotation = float(ann.get('rotation') or 0.0)
        if rotation:
            corners = rotated_corners([x, y, w, h], rotation)
            draw.line([*corners, corners[0]], fill=solid, width=LINE, joint='curve')
            return min(corners, key=lambda p: (p[1], p[0]))
        draw.rectangle([x, y, x + w - 1, y + h - 1], outline=solid, width=LINE)
        return x, y
    if tool == 'polygon':
        points = _points(ann['points'], scale)
        if len(points) < 3:
            raise ValueError('polygon with fewer than 3 points')
        fill_draw.polygon(points, fill=(*color, FILL_ALPHA))
        draw.line([*points, points[0]], fill=solid, width=2, joint='curve')
        return min(points, key=lambda p: (p[1], p[0]))
    if tool == 'polyline':
        points = _points(ann['points'], scale)
        draw.line(points, fill=solid, width=LINE, joint='curve')
        return points[0] if points else None
    if tool == 'keypoint':
        kps = [(float(k[0]) * scale, float(k[1]) * scale, int(k[2]) if len(k) > 2 else 2)
               for k in ann['keypoints']]  # fmt: skip
        for pair in skeletons.get(str(ann.get('category')), ()):
            a, b = int(pair[0]), int(pair[1])
            if a < len(kps) and b < len(kps) and kps[a][2] and kps[b][2]:
                draw.line([kps[a][:2], kps[b][:2]], fill=solid, width=2)
        shown = [k for k in kps if k[2]]
        for x, y, v in shown:
            r = 4
            if v == 2:
                draw.ellipse([x - r, y - r, x + r, y + r], fill=solid, outline=(255, 255, 255, 255))
            else:
                draw.ellipse([x - r, y - r, x + r, y + r], outline=solid, width=2)
        if not shown:
            return None
        return min((k[:2] for k in shown), key=lambda p: (p[1], p[0]))
    if tool == 'segmentation':
        mask = rle_to_mask(ann['mask'])
        layer = Image.fromarray((mask * 255).astype(np.uint8), 'L')
        if layer.size != fills.size:
            layer = layer.resize(fills.size, Image.Resampling.NEAREST)
        tint = Image.new('RGBA', fills.size, (*color, MASK_ALPHA))
        return Image.composite(tint, fills, layer)
    return None


@dataclass
class SheetTile:
    """Where one sample image landed on the contact sheet (its top-left pixel and scale)."""

    file: str
    split: str
    x: int
    y: int
    scale: float
    width: int
    height: int
    annotations: int

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _open(image: ImportedImage) -> Image.Image | None:
    if image.path is None:
        return None
    try:
        with Image.open(image.path) as opened:
            return opened.convert('RGB')
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def _fit(text: str, width: int, f: Any, draw: ImageDraw.ImageDraw) -> str:
    if draw.textlength(text, font=f) <= width:
        return text
    while text and draw.textlength(text + '…', font=f) > width:
        text = text[:-1]
    return text + '…'


def _tile_image(
    image: ImportedImage,
    colors: dict[str, RGB],
    tile: int,
    skeletons: dict[str, Sequence[Sequence[int]]],
) -> tuple[Image.Image, float]:
    picture = _open(image)
    width = image.width or (picture.width if picture else tile)
    height = image.height or (picture.height if picture else tile)
    scale = min(tile / width, tile / height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if picture is None:
        canvas = Image.new('RGB', size, (206, 212, 218))
        ImageDraw.Draw(canvas).text((8, 8), 'image not in the export', font=font(12), fill=INK)
    else:
        canvas = picture.resize(size, Image.Resampling.LANCZOS)
    return draw_labels(canvas, image.annotations, colors, scale, skeletons), scale


def contact_sheet(
    samples: dict[str, list[ImportedImage]],
    colors: dict[str, RGB],
    *,
    title: str,
    split_notes: dict[str, str] | None = None,
    class_counts: dict[str, int] | None = None,
    skeletons: dict[str, Sequence[Sequence[int]]] | None = None,
    columns: int = 4,
    tile: int = 320,
) -> tuple[Image.Image, list[SheetTile]]:
    """The sheet: a title, a legend of class colours, then one row of samples per split."""
    margin, gap, caption, header = 16, 12, 34, 34
    columns = max(1, min(columns, max((len(v) for v in samples.values()), default=1)))
    width = max(560, 2 * margin + columns * tile + (columns - 1) * gap)
    probe = ImageDraw.Draw(Image.new('RGB', (1, 1)))
    chips = []
    x = margin
    rows = 1
    for name, color in colors.items():
        count = (class_counts or {}).get(name)
        text = f'{name} ({count:,})' if count is not None else name
        w = 18 + int(probe.textlength(text, font=font(13))) + 16
        if x + w > width - margin and x > margin:
            x, rows = margin, rows + 1
        chips.append((x, rows, text, color))
        x += w
    legend_h = rows * 22 if colors else 0
    top = margin + 30 + legend_h + 8
    split_rows = {s: max(1, -(-len(v) // columns)) for s, v in samples.items()}
    height = top + sum(header + n * (tile + caption + gap) for n in split_rows.values()) + margin
    sheet = Image.new('RGB', (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    draw.text((margin, margin), _fit(title, width - 2 * margin, font(16, True), draw),
              font=font(16, True), fill=INK)  # fmt: skip
    for cx, row, text, color in chips:
        cy = margin + 30 + (row - 1) * 22
        draw.rectangle([cx, cy + 2, cx + 12, cy + 14], fill=color)
        draw.text((cx + 18, cy), text, font=font(13), fill=INK)
    tiles: list[SheetTile] = []
    y = top
    for split, images in samples.items():
        note = (split_notes or {}).get(split, '')
        draw.text((margin, y + 8), f'{split}  {note}'.rstrip(), font=font(14, True), fill=INK)
        y += header
        for i, image in enumerate(images):
            col, row = i % columns, i // columns
            tx = margin + col * (tile + gap)
            ty = y + row * (tile + caption + gap)
            draw.rectangle([tx, ty, tx + tile - 1, ty + tile - 1], fill=(233, 236, 239))
            picture, scale = _tile_image(image, colors, tile, skeletons or {})
            px, py = tx + (tile - picture.width) // 2, ty + (tile - picture.height) // 2
            sheet.paste(picture, (px, py))
            n = len(image.annotations)
            name = _fit(image.file_name, tile, font(12), draw)
            draw.text((tx, ty + tile + 3), name, font=font(12), fill=INK)
            draw.text((tx, ty + tile + 18), f'{n} annotation{"" if n == 1 else "s"}',
                      font=font(11), fill=MUTED)  # fmt: skip
            tiles.append(
                SheetTile(image.file_name, split, px, py, scale, picture.width, picture.height, n)
            )
        y += split_rows[split] * (tile + caption + gap)
    return sheet, tiles

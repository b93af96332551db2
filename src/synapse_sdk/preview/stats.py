"""What a preview counts in one pass over an export: classes per split, annotations per image,
box sizes, and mistakes visible in the written files (boxes outside the image, empty boxes,
classes the export does not declare, images that are missing)."""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from synapse_sdk.formats.base import ItemLog
from synapse_sdk.formats.dataset import ImportedImage
from synapse_sdk.formats.geometry import annotation_box, enclosing_box

__all__ = ['SIZE_BUCKETS', 'Stats', 'annotation_extent']

#: COCO's object size buckets, by area in pixels.
SIZE_BUCKETS = (('small', 32**2), ('medium', 96**2), ('large', math.inf))
#: At most this many boxes are kept (a seeded reservoir sample) for the size scatter plot.
BOX_SAMPLE = 2000
#: Tolerance, in pixels, before a box counts as outside its image.
OUTSIDE_TOLERANCE = 1.0


def annotation_extent(ann: dict[str, Any]) -> list[float] | None:
    """The axis-aligned ``[x, y, w, h]`` an annotation covers; ``None`` when unreadable."""
    try:
        if ann.get('tool') == 'polyline':
            box = enclosing_box(ann['points'])
        else:
            box = annotation_box(ann, ItemLog(), 'preview', report=False)
        return [float(v) for v in box[:4]]
    except Exception:  # a malformed annotation: counted as a finding, not a crash
        return None


@dataclass
class Stats:
    """Counts of one export, filled by :meth:`add` image by image."""

    class_names: list[str]
    images_per_split: Counter[str] = field(default_factory=Counter)
    annotations_per_split: Counter[str] = field(default_factory=Counter)
    class_split: Counter[tuple[str, str]] = field(default_factory=Counter)
    tools: Counter[str] = field(default_factory=Counter)
    per_image: Counter[int] = field(default_factory=Counter)  # annotations in an image -> images
    size_buckets: Counter[str] = field(default_factory=Counter)
    boxes: list[tuple[float, float, str]] = field(default_factory=list)  # (w/W, h/H, class)
    findings: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    images: int = 0
    annotations: int = 0
    _seen_boxes: int = 0
    _random: random.Random = field(default_factory=lambda: random.Random(0))

    def _finding(self, what: str, example: str) -> None:
        self.findings[what] += 1
        listed = self.examples.setdefault(what, [])
        if len(listed) < 3:
            listed.append(example)

    def add(self, image: ImportedImage, split: str) -> None:
        self.images += 1
        self.images_per_split[split] += 1
        anns = [a for a in image.annotations if isinstance(a, dict)]
        self.per_image[len(anns)] += 1
        self.annotations += len(anns)
        self.annotations_per_split[split] += len(anns)
        if image.path is None or not image.path.is_file():
            self._finding('image file missing from the export', image.file_name)
        w, h = image.width, image.height
        known = set(self.class_names)
        for ann in anns:
            category = str(ann.get('category'))
            self.class_split[(category, split)] += 1
            self.tools[str(ann.get('tool') or 'unknown')] += 1
            if known and category not in known:
                where = f'{category} in {image.file_name}'
                self._finding('class not declared by the export', where)
            if ann.get('tool') == 'classification':
                continue
            box = annotation_extent(ann)
            if box is None:
                self._finding('annotation without readable geometry', image.file_name)
                continue
            bx, by, bw, bh = box
            if bw <= 0 or bh <= 0:
                self._finding('empty box (zero width or height)', image.file_name)
                continue
            area = bw * bh
            self.size_buckets[next(n for n, limit in SIZE_BUCKETS if area < limit)] += 1
            if w and h:
                tol = OUTSIDE_TOLERANCE
                if bx < -tol or by < -tol or bx + bw > w + tol or by + bh > h + tol:
                    self._finding('box outside its image', image.file_name)
                self._sample((bw / w, bh / h, category))

    def _sample(self, box: tuple[float, float, str]) -> None:
        self._seen_boxes += 1
        if len(self.boxes) < BOX_SAMPLE:
            self.boxes.append(box)
            return
        slot = self._random.randrange(self._seen_boxes)
        if slot < BOX_SAMPLE:
            self.boxes[slot] = box

    @property
    def splits(self) -> list[str]:
        order = {'train': 0, 'val': 1, 'validation': 1, 'test': 2}
        return sorted(self.images_per_split, key=lambda s: (order.get(s, 3), s))

    @property
    def classes(self) -> list[str]:
        """Declared classes first (in their order), then any others found."""
        seen = [c for c in self.class_names]
        seen += sorted({c for c, _ in self.class_split} - set(seen))
        return seen

"""What a format reader hands the store when a dataset is imported (``synapse data import``).

Readers in ``formats/<fmt>/reader.py`` parse files into these; ``server.importer`` loads them.
Annotations are documents of DESIGN section 3 (``id``, ``category``, ``tool``, ``bbox`` ...).

Every reader counts what it read and what it could not, per reason, in the dataset's
:class:`ImportReport`: nothing a dataset holds is dropped without a count.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class ImportedImage:
    file_name: str  # becomes the data unit name and file_name_original
    path: Path | None  # the image file on disk, when the dataset ships it (inside its folder)
    width: int | None
    height: int | None
    annotations: list[dict[str, Any]] = field(default_factory=list)
    classifications: dict[str, Any] = field(default_factory=dict)
    split: str | None = None  # 'train' | 'validation' | 'test' when the source says
    source_id: int | None = None  # the source's own image id (COCO), kept for round trips


class ImportReport:
    """Counts of what a reader read (``read``) and could not (``skipped``, by reason).

    ``skipped`` keys are ``(what, reason)``: ``what`` names the thing not imported (``image``,
    ``image file``, ``annotation``, ``file``), ``reason`` says why, in a few words.
    """

    def __init__(self) -> None:
        self.read: Counter[str] = Counter()
        self.skipped: Counter[tuple[str, str]] = Counter()

    def count(self, what: str, n: int = 1) -> None:
        if n:
            self.read[what] += n

    def skip(self, what: str, reason: str, n: int = 1) -> None:
        if n:
            self.skipped[(what, reason)] += n

    def update(self, other: ImportReport) -> None:
        """Add ``other``'s counts (what a reader found before its images were iterated)."""
        self.read.update(other.read)
        self.skipped.update(other.skipped)

    def clear(self) -> None:
        self.read.clear()
        self.skipped.clear()

    def as_dict(self) -> dict[str, Any]:
        """``{"read": {what: n}, "skipped": {"what: reason": n}}`` (sorted, JSON-ready)."""
        return {
            'read': dict(sorted(self.read.items())),
            'skipped': {f'{w}: {r}': n for (w, r), n in sorted(self.skipped.items())},
        }

    def lines(self) -> list[str]:
        """Short human lines, e.g. ``"2 image files not imported: outside the images folder"``."""
        out = []
        for (what, reason), n in sorted(self.skipped.items()):
            noun = what if n == 1 else _plural(what)
            out.append(f'{n} {noun} not imported: {reason}')
        return out


def _plural(word: str) -> str:
    return word[:-1] + 'ies' if word.endswith('y') else word + 's'


@dataclass
class ImportedDataset:
    # Project configuration in DESIGN form: {"classes": [...], "keypoints": {...}, ...}
    configuration: dict[str, Any]
    images: Iterable[ImportedImage]
    title: str = 'Imported dataset'
    report: ImportReport = field(default_factory=ImportReport)

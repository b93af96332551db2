"""What a format reader hands the store when a dataset is imported (``synapse data import``).

Readers in ``formats/<fmt>/reader.py`` parse files into these; ``server.store`` loads them.
Annotations are documents of DESIGN section 3 (``id``, ``category``, ``tool``, ``bbox`` ...).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class ImportedImage:
    file_name: str  # becomes the data unit name and file_name_original
    path: Path | None  # the image file on disk, when the dataset ships it
    width: int | None
    height: int | None
    annotations: list[dict[str, Any]] = field(default_factory=list)
    classifications: dict[str, Any] = field(default_factory=dict)
    split: str | None = None  # 'train' | 'validation' | 'test' when the source says


@dataclass
class ImportedDataset:
    # Project configuration in DESIGN form: {"classes": [...], "keypoints": {...}, ...}
    configuration: dict[str, Any]
    images: Iterable[ImportedImage]
    title: str = 'Imported dataset'

"""The export report: what was written, what was skipped or changed, and why.

Every export writes ``export_report.json``. Nothing is dropped silently: each skipped, clamped or
converted annotation and each failed item is counted here with a reason.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

# Failed items / notes kept verbatim in the report; beyond this only the counts grow.
MAX_LISTED = 1000


class ExportReport:
    """Thread-safe tally of an export. Everything in it is deterministic for the same data."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.items_total = 0
        self.items_exported = 0
        self.items_failed = 0
        self.annotations_exported = 0
        self.per_class: Counter[str] = Counter()
        self.per_split: Counter[str] = Counter()
        self.per_tool: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()  # reason -> count
        self.converted: Counter[str] = Counter()  # e.g. 'rotated box -> enclosing box'
        self.clamped = 0
        self.failed_items: list[dict[str, Any]] = []
        self.notes: list[dict[str, Any]] = []  # per-annotation details, capped
        self.renamed: list[dict[str, str]] = []  # duplicate file names and what they became
        self.params: dict[str, Any] = {}
        self.extra: dict[str, Any] = {}

    def count_item(self, split: str | None = None) -> None:
        with self._lock:
            self.items_exported += 1
            if split is not None:
                self.per_split[split] += 1

    def count_annotations(self, counts: dict[tuple[str, str], int]) -> None:
        """Many exported annotations at once: ``{(category, tool): count}``."""
        with self._lock:
            for (category, tool), n in counts.items():
                self.annotations_exported += n
                self.per_class[category] += n
                self.per_tool[tool] += n

    def skip(self, reason: str, item_id: Any = None, annotation_id: Any = None) -> None:
        """An annotation (or part of one) that could not be written."""
        with self._lock:
            self.skipped[reason] += 1
            self._note('skipped', reason, item_id, annotation_id)

    def convert(self, what: str, item_id: Any = None, annotation_id: Any = None) -> None:
        """An annotation written in a changed form (rotated box as enclosing box, ...)."""
        with self._lock:
            self.converted[what] += 1
            self._note('converted', what, item_id, annotation_id)

    def clamp(self, item_id: Any = None, annotation_id: Any = None) -> None:
        """Geometry outside the image was clamped to it."""
        with self._lock:
            self.clamped += 1
            self._note(
                'clamped', 'geometry outside the image clamped to it', item_id, annotation_id
            )

    def fail_item(self, item_id: Any, file: str | None, reason: str) -> None:
        with self._lock:
            self.items_failed += 1
            if len(self.failed_items) < MAX_LISTED:
                self.failed_items.append({'id': item_id, 'file': file, 'reason': reason})

    def rename(self, original: str, new: str) -> None:
        with self._lock:
            if len(self.renamed) < MAX_LISTED:
                self.renamed.append({'original': original, 'written_as': new})

    def _note(self, kind: str, reason: str, item_id: Any, annotation_id: Any) -> None:
        if len(self.notes) < MAX_LISTED:
            self.notes.append(
                {'kind': kind, 'reason': reason, 'item_id': item_id, 'annotation_id': annotation_id}
            )

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                'items': {
                    'total': self.items_total,
                    'exported': self.items_exported,
                    'failed': self.items_failed,
                },
                'annotations': {
                    'exported': self.annotations_exported,
                    'skipped': sum(self.skipped.values()),
                    'converted': sum(self.converted.values()),
                    'clamped': self.clamped,
                },
                'per_class': dict(sorted(self.per_class.items())),
                'per_split': dict(sorted(self.per_split.items())),
                'per_tool': dict(sorted(self.per_tool.items())),
                'skipped_reasons': dict(sorted(self.skipped.items())),
                'converted_reasons': dict(sorted(self.converted.items())),
                'failed_items': list(self.failed_items),
                'annotation_notes': list(self.notes),
                'renamed_files': list(self.renamed),
                'params': self.params,
                **self.extra,
            }

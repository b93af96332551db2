"""The contract every format writer passes; each format's tests subclass :class:`WriterContract`.

Subclasses set ``fmt`` (and ``options`` if they want non-default ones).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest

from synapse_sdk.errors import ItemExportError, ParamsError
from synapse_sdk.formats import get_writer
from synapse_sdk.formats.report import ExportReport

from .helpers import class_map, export, make_items, tree


class WriterContract:
    fmt: ClassVar[str]
    options: ClassVar[dict[str, Any]] = {}

    def test_deterministic_byte_identical(self, tmp_path: Path) -> None:
        export(self.fmt, tmp_path / 'a', make_items(split='category'), self.options)
        export(self.fmt, tmp_path / 'b', make_items(split='category'), self.options)
        a, b = tree(tmp_path / 'a'), tree(tmp_path / 'b')
        assert a and a == b

    def test_no_temporary_files_left(self, tmp_path: Path) -> None:
        export(self.fmt, tmp_path, make_items(), self.options)
        assert not [p for p in tmp_path.rglob('*') if p.name.startswith('.')]

    def test_unknown_class_reported_not_appended(self, tmp_path: Path) -> None:
        report, _ = export(self.fmt, tmp_path, make_items(), self.options)
        reasons = report.to_dict()['skipped_reasons']
        assert reasons.get("class 'bicycle' not in the project configuration") == 1
        assert 'bicycle' not in report.per_class
        assert not any('bicycle' in p.read_text('utf-8', 'replace') for p in _texts(tmp_path))

    def test_every_image_kept_and_names_unique(self, tmp_path: Path) -> None:
        items = make_items()
        report, writer = export(self.fmt, tmp_path, items, self.options)
        assert report.items_exported == len(items) and report.items_failed == 0
        stems = [item.stem for item in items]
        assert stems == ['crossing 0007', 'crossing 0007_1', '東京 駅', 'CROSSING 0007_2']
        relpaths = [writer.image_relpath(item) for item in items]
        assert len(set(relpaths)) == len(relpaths)
        for item in items:
            written = [p for p in tmp_path.rglob('*') if p.is_file() and item.stem in p.name]
            assert written, item.stem

    def test_nothing_dropped_silently(self, tmp_path: Path) -> None:
        items = make_items()
        report, _ = export(self.fmt, tmp_path, items, self.options)
        total = sum(len(i.annotations) for i in items)
        assert report.annotations_exported + sum(report.skipped.values()) == total

    def test_missing_size(self, tmp_path: Path) -> None:
        items = make_items()
        item = items[0]
        item.width = item.height = None
        report = ExportReport()
        writer = get_writer(self.fmt)(tmp_path, class_map(), dict(self.options), report)
        writer.start()
        before = tree(tmp_path)
        if writer.needs_size:
            with pytest.raises(ItemExportError) as info:
                writer.write_item(item)
            assert info.value.item_id == item.id
            assert tree(tmp_path) == before
            assert report.annotations_exported == 0 and not report.skipped
        else:
            writer.write_item(item)
        writer.abort()

    def test_abort_closes_and_is_idempotent(self, tmp_path: Path) -> None:
        writer = get_writer(self.fmt)(tmp_path, class_map(), dict(self.options), ExportReport())
        writer.abort()  # before start
        writer.start()
        writer.write_item(make_items()[0])
        writer.abort()
        writer.abort()

    def test_bad_split_option(self) -> None:
        with pytest.raises(ParamsError, match='split'):
            get_writer(self.fmt).validate_options({**self.options, 'split': {'train': -1}})

    def test_partial_exports_share_the_layout(self, tmp_path: Path) -> None:
        """A partial export (one item) has the same class map and split files."""
        export(self.fmt, tmp_path / 'all', make_items(split='category'), self.options)
        export(self.fmt, tmp_path / 'one', make_items(split='category')[:1], self.options)
        common = {p for p in tree(tmp_path / 'one') if not p.startswith(('images', 'JPEG'))}
        assert common <= set(tree(tmp_path / 'all'))


def _texts(root: Path) -> list[Path]:
    exts = ('.json', '.txt', '.yaml', '.xml', '.csv')
    return [p for p in root.rglob('*') if p.suffix in exts]

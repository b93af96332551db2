"""CSV writer: ``annotations.csv`` (RFC 4180: comma, double-quote quoting, CRLF rows, UTF-8
without BOM) with a header row; images go to ``images/<stem><ext>``. See ``convert`` for the
columns."""

from __future__ import annotations

import csv
from typing import IO, Any

from synapse_sdk.formats.base import FormatItem, FormatWriter, ItemLog
from synapse_sdk.formats.csv.convert import COLUMNS, annotation_to_row, empty_row

__all__ = ['CsvWriter']


class CsvWriter(FormatWriter):
    """No options of its own. Image size is not required."""

    name = 'csv'
    needs_size = False

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._fh: IO[str] = (self.root / 'annotations.csv').open('w', encoding='utf-8', newline='')
        self._csv = csv.writer(self._fh, lineterminator='\r\n', quoting=csv.QUOTE_MINIMAL)
        self._csv.writerow(COLUMNS)

    def image_relpath(self, item: FormatItem) -> str:
        return f'images/{item.file_name}'

    def write_item(self, item: FormatItem) -> None:
        files = item.source.get('files') or {}
        info: dict[str, Any] = {
            'item_id': item.id,
            'file': self.image_relpath(item),
            'file_name_original': files.get('file_name_original') or '',
            'split': item.split,
            'classifications': item.classifications,
        }
        log = ItemLog(item.id)
        rows = self.convert_annotations(item, log, lambda ann, _: annotation_to_row(ann, info))
        self._csv.writerows(rows or [empty_row(info)])
        log.apply(self.report)

    def finish(self) -> None:
        self.abort()

    def abort(self) -> None:
        fh = getattr(self, '_fh', None)
        if fh is not None and not fh.closed:
            fh.close()

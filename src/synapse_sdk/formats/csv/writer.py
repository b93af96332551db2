"""CSV writer: ``annotations.csv`` (RFC 4180: comma, double-quote quoting, CRLF rows, UTF-8
without BOM) with a header row; images go to ``images/<stem><ext>``; ``project.json`` keeps the
project schema (CONTRACTS #2). See ``convert`` for the columns.

An item's rows are written as one unit: when the write fails part way (a full disk) the file is
truncated back to where the item began, so no item is ever half in the file.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from synapse_sdk.formats.base import (
    AppendStream,
    FormatItem,
    FormatWriter,
    ItemLog,
    _pixels,
    write_error,
)
from synapse_sdk.formats.csv.convert import COLUMNS, annotation_to_row, empty_row

__all__ = ['CsvWriter', 'csv_text']


def _field(cell: str) -> str:
    """One cell as ``csv.writer`` writes it (``QUOTE_MINIMAL``, doubled quotes)."""
    if '"' in cell:
        return '"' + cell.replace('"', '""') + '"'
    if ',' in cell or '\n' in cell or '\r' in cell:
        return '"' + cell + '"'
    return cell


def csv_text(rows: list[list[str]]) -> str:
    """Rows of :data:`~.convert.COLUMNS` cells as ``csv.writer`` writes them (RFC 4180,
    ``QUOTE_MINIMAL``, CRLF), without its per-cell cost: the cells that are numbers, names
    and ids are joined at once and quoted one by one only when one of them needs it; the JSON
    cells (points ... classifications) are quoted each. ``tests/formats/test_csv.py`` holds
    it to ``csv.writer`` on hostile text."""
    lines = []
    for row in rows:
        head = ','.join(row[:_PLAIN])
        if (
            '"' in head
            or '\n' in head
            or '\r' in head
            or head.count(',') != _PLAIN - 1
            or len(row) != len(COLUMNS)
        ):
            # (a row of one empty cell is written as "" so that it reads back as a row)
            lines.append(','.join([_field(c) for c in row]) if row != [''] else '""')
        else:
            lines.append(head + ',' + ','.join([_field(c) for c in row[_PLAIN:]]))
    lines.append('')
    return '\r\n'.join(lines)


#: Leading cells that are ids, names and numbers (the JSON cells follow them).
_PLAIN = COLUMNS.index('points')


class CsvWriter(FormatWriter):
    """No options of its own. Image size is not required (empty cells when unknown)."""

    name = 'csv'
    needs_size = False

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._out = AppendStream(self.root / 'annotations.csv')
        self._buffer = io.StringIO()
        self._csv = csv.writer(self._buffer, lineterminator='\r\n', quoting=csv.QUOTE_MINIMAL)
        self._out.write(self._encode([COLUMNS]))

    def _encode(self, rows: list[Any]) -> bytes:
        self._buffer.seek(0)
        self._buffer.truncate()
        self._csv.writerows(rows)
        return self._buffer.getvalue().encode('utf-8')

    def image_relpath(self, item: FormatItem) -> str:
        return f'images/{item.file_name}'

    def write_item(self, item: FormatItem) -> None:
        files = item.source.get('files') or {}
        info: dict[str, Any] = {
            'item_id': item.id,
            'file': self.image_relpath(item),
            'file_name_original': files.get('file_name_original') or '',
            'split': item.split,
            'width': _pixels(item.width),
            'height': _pixels(item.height),
            'classifications': item.classifications,
        }
        log = ItemLog(item.id)
        rows = self.convert_annotations(item, log, lambda ann, _: annotation_to_row(ann, info))
        data = csv_text(rows or [empty_row(info)]).encode('utf-8')
        try:
            self._out.write(data)
        except OSError as exc:
            raise write_error(exc, 'annotations.csv', item) from exc
        log.apply(self.report)

    def finish(self) -> None:
        if self._out.broken:
            raise OSError(5, 'annotations.csv: a failed write could not be rolled back')
        self._out.close()
        self.write_project_json()

    def abort(self) -> None:
        out = getattr(self, '_out', None)
        if out is not None:
            out.close()

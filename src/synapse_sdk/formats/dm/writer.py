"""DM writer: ``json/<stem>.json`` per item (the annotation document, or its DM v1 form with
``extra_params.dm_version: 1``), originals in ``origin_files/<stem><ext>``.

Annotations whose class is not in the project configuration are left out and reported, as in
every format; everything else is written as stored. JSON is indented, keys sorted.
"""

from __future__ import annotations

from typing import Any

import orjson

from synapse_sdk.errors import ItemExportError
from synapse_sdk.formats.base import FormatItem, FormatWriter, ItemLog, option_choice
from synapse_sdk.formats.dm.convert import to_dm_v1

__all__ = ['DmWriter']


class DmWriter(FormatWriter):
    """Options: ``dm_version`` (2, the document as stored, default; or 1, the DM v1 form)."""

    name = 'dm'
    needs_size = False

    @classmethod
    def validate_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        out = super().validate_options(options)
        out['dm_version'] = option_choice(out, 'dm_version', 2, (1, 2))
        return out

    def start(self) -> None:
        (self.root / 'json').mkdir(parents=True, exist_ok=True)

    def image_relpath(self, item: FormatItem) -> str:
        return f'origin_files/{item.file_name}'

    def write_item(self, item: FormatItem) -> None:
        log = ItemLog(item.id)
        kept = self.convert_annotations(item, log, lambda ann, _: ann)
        document: dict[str, Any] = {'annotations': kept, 'classifications': item.classifications}
        try:
            if self.options['dm_version'] == 1:
                document = to_dm_v1(document)
            data = orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
        except (TypeError, ValueError, KeyError) as exc:
            raise ItemExportError(f'dm: cannot write the document: {exc}', item.id) from exc
        (self.root / 'json' / f'{item.stem}.json').write_bytes(data + b'\n')
        log.apply(self.report)

    def finish(self) -> None:
        pass

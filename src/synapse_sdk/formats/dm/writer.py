"""DM writer: ``json/<stem>.json`` per item (the annotation document, or its DM v1 form with
``extra_params.dm_version: 1``), originals in ``origin_files/<stem><ext>``, and
``project.json`` with the project schema (CONTRACTS #2).

DM has no splits: ``split`` and ``split_mode`` are refused rather than ignored.

Annotations whose class is not in the project configuration are left out and reported, as in
every format, and so are annotations with a number that is not valid (NaN, inf, a string, an
invalid mask: see :func:`~synapse_sdk.formats.geometry.check_numbers`); everything else is
written as stored. JSON is indented, keys sorted. Each file is written through a temporary name,
so a failed write (a full disk) leaves no partial file.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import Field, ValidationInfo, field_validator

from synapse_sdk.errors import ItemExportError, ParamsError
from synapse_sdk.formats.base import (
    CommonOptions,
    FormatItem,
    FormatWriter,
    ItemLog,
    _pixels,
    write_file,
)
from synapse_sdk.formats.dm.convert import to_dm_v1
from synapse_sdk.formats.geometry import check_numbers

__all__ = ['DmWriter']


class DmOptions(CommonOptions):
    dm_version: Literal[1, 2] = Field(
        2, description='2: the annotation document as stored (default); 1: the DM v1 form'
    )

    @field_validator('dm_version', mode='before')
    @classmethod
    def _not_bool(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError('a boolean is not a version')
        return value

    @field_validator('split', 'split_mode')
    @classmethod
    def _no_splits(cls, value: Any, info: ValidationInfo) -> Any:
        # Every item goes to json/: a split would be reported (per_split) but written nowhere.
        if value is not None:
            raise ParamsError(
                'Invalid extra_params',
                [
                    (
                        f'extra_params.{info.field_name}',
                        'dm has no splits (every item is written to json/); export without '
                        'one, or use a format with splits (csv keeps a split column)',
                    )
                ],
            )
        return value


class DmWriter(FormatWriter):
    """Options: ``dm_version`` (2, the document as stored, default; or 1, the DM v1 form)."""

    name = 'dm'
    needs_size = False
    Options = DmOptions

    def start(self) -> None:
        (self.root / 'json').mkdir(parents=True, exist_ok=True)

    def image_relpath(self, item: FormatItem) -> str:
        return f'origin_files/{item.file_name}'

    def write_item(self, item: FormatItem) -> None:
        log = ItemLog(item.id)
        w, h = _pixels(item.width), _pixels(item.height)
        size = (w, h) if w and h else None

        def keep(ann: dict[str, Any], _: int) -> dict[str, Any]:
            check_numbers(ann, size)
            return ann

        kept = self.convert_annotations(item, log, keep)
        document: dict[str, Any] = {'annotations': kept, 'classifications': item.classifications}
        try:
            if self.options['dm_version'] == 1:
                document = to_dm_v1(document)
            data = orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
        except (TypeError, ValueError, KeyError) as exc:
            raise ItemExportError(f'dm: cannot write the document: {exc}', item.id) from exc
        write_file(self.root / 'json' / f'{item.stem}.json', data + b'\n', item)
        log.apply(self.report)

    def finish(self) -> None:
        self.write_project_json()

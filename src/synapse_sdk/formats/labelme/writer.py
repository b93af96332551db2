"""LabelMe writer: one labelme JSON per image, beside the image, as the labelme tool saves it::

    <split>/<stem>.json          version, flags, shapes, imagePath, imageData, imageHeight,
                                 imageWidth (the tool's keys, in its order, indent 2)
    <split>/<stem><ext>          the original, when saved (``imagePath`` is its bare name)
    labels.txt                   the class map, one name per line (``labelme --labels``)
    project.json                 {"title", "configuration"}: the class list with tools,
                                 attributes and keypoint names, read back by the importer

Each split folder (one per split with items) opens as is in labelme. ``imageData`` is
``null`` unless the option ``embed_images`` is set: then :meth:`LabelmeWriter.finish`, which
runs after every original is in place, rewrites each JSON with its image as base64 (one file
at a time; an image that was not saved keeps ``null`` and is counted in the report as
``labelme.images_not_embedded``).

Classification annotations become image ``flags`` (``{class: true}``); the item's
classifications are kept in a top-level ``classifications`` object, which labelme preserves.
"""

from __future__ import annotations

import base64
import json
import tempfile
from typing import IO, Any

from pydantic import Field

from synapse_sdk.errors import ItemExportError
from synapse_sdk.formats.base import (
    CommonOptions,
    FormatItem,
    FormatWriter,
    ItemLog,
    write_file,
)
from synapse_sdk.formats.labelme.convert import annotation_to_shapes

__all__ = ['LABELME_VERSION', 'LabelmeWriter', 'dump_json']

LABELME_VERSION = '5.5.0'


def dump_json(data: dict[str, Any]) -> str:
    """JSON as labelme writes it (``json.dump(indent=2, ensure_ascii=False)``)."""
    return json.dumps(data, ensure_ascii=False, indent=2, allow_nan=False) + '\n'


class LabelmeOptions(CommonOptions):
    """Options of the ``labelme`` format."""

    embed_images: bool = Field(
        False, description='Embed each image in its JSON as base64 imageData (default: null)'
    )
    version: str = Field(
        LABELME_VERSION, description='The labelme version written in each file', min_length=1
    )


class LabelmeWriter(FormatWriter):
    """Options: ``embed_images`` (bool, default false), ``version`` (default 5.5.0)."""

    name = 'labelme'
    Options = LabelmeOptions

    def start(self) -> None:
        self._splits: list[str] = []  # made as items arrive: no folder for an empty split
        self.root.mkdir(parents=True, exist_ok=True)
        # Written JSON files still to embed an image in (only with embed_images): a plain
        # text file of relative paths, so memory stays flat.
        self._pending: IO[str] | None = None
        if self.options['embed_images']:
            self._pending = tempfile.TemporaryFile(  # noqa: SIM115 - closed by finish/abort
                'w+', dir=self.root, prefix='.labelme-pending-', encoding='utf-8'
            )

    def _make(self, split: str) -> None:
        if split not in self._splits:
            (self.root / split).mkdir(parents=True, exist_ok=True)
            self._splits.append(split)

    def image_relpath(self, item: FormatItem) -> str:
        return f'{item.split}/{item.file_name}'

    def write_item(self, item: FormatItem) -> None:
        width, height = self.require_size(item)
        log = ItemLog(item.id)
        flags: dict[str, bool] = {}
        groups = [0]

        def convert(ann: dict[str, Any], _: int) -> list[dict[str, Any]]:
            if ann.get('tool') == 'classification':
                flags[ann['category']] = True
                return []
            names = (self.class_map.keypoints(ann['category']) or {}).get('names')
            group = None
            if ann.get('tool') == 'keypoint':
                groups[0] += 1
                group = groups[0]
            return annotation_to_shapes(
                ann, image_size=(width, height), keypoint_names=names, group_id=group, log=log
            )

        shapes = [s for group in self.convert_annotations(item, log, convert) for s in group]
        data: dict[str, Any] = {
            'version': self.options['version'],
            'flags': dict(sorted(flags.items())),
            'shapes': shapes,
            'imagePath': item.file_name,
            'imageData': None,
            'imageHeight': height,
            'imageWidth': width,
        }
        if item.classifications:
            data['classifications'] = item.classifications
        try:
            text = dump_json(data)
        except (TypeError, ValueError) as exc:
            raise ItemExportError(f'labelme: not serialisable as JSON: {exc}', item.id) from exc
        self._make(item.split)
        rel = f'{item.split}/{item.stem}.json'
        # all or nothing: a failed write (a full disk) leaves no partial file and fails the item
        write_file(self.root / rel, text.encode('utf-8'), item)
        if self._pending is not None:
            self._pending.write(rel + '\n')
        log.apply(self.report)

    def finish(self) -> None:
        labels = ''.join(f'{name}\n' for name in self.class_map.names)
        (self.root / 'labels.txt').write_text(labels, encoding='utf-8', newline='\n')
        project = getattr(self, 'project', None) or {}
        schema = {
            'title': project.get('title'),
            'configuration': project.get('configuration') or self.class_map.to_configuration(),
        }
        (self.root / 'project.json').write_text(dump_json(schema), encoding='utf-8', newline='\n')
        if self._pending is None:
            return
        self._pending.seek(0)
        missing = 0
        for line in self._pending:
            missing += not self._embed(line.rstrip('\n'))
        self._pending.close()
        if missing:
            self.report.extra.setdefault('labelme', {})['images_not_embedded'] = missing

    def _embed(self, rel: str) -> bool:
        """Put the image beside ``rel`` into its ``imageData``; ``False`` if it is missing."""
        path = self.root / rel
        data = json.loads(path.read_text(encoding='utf-8'))
        image = path.parent / data['imagePath']
        if not image.is_file():
            return False
        data['imageData'] = base64.b64encode(image.read_bytes()).decode('ascii')
        write_file(path, dump_json(data).encode('utf-8'))  # a failure fails the export
        return True

    def abort(self) -> None:
        pending = getattr(self, '_pending', None)
        if pending is not None and not pending.closed:
            pending.close()

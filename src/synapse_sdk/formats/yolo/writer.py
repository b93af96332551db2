"""YOLO writer, Ultralytics layout::

    data.yaml                 train/val/test dirs, nc, names (class-map order), kpt_shape (pose)
    images/<split>/<stem><ext>
    labels/<split>/<stem>.txt one line per annotation; an image without labels gets an empty file

``data.yaml`` has no ``path`` key unless ``extra_params.path`` gives one: without it Ultralytics
resolves the split dirs against the yaml's own directory, which stays right wherever the export
is moved (an absolute path written at export time would point into the temporary directory).
Ultralytics requires a ``val`` entry; when no split is named ``val`` / ``validation`` it points
at the train images. ``task`` and (pose) ``kpt_names`` are written too, so imports are exact.
"""

from __future__ import annotations

from typing import Any

import yaml

from synapse_sdk.errors import ParamsError
from synapse_sdk.formats.base import (
    FormatItem,
    FormatWriter,
    ItemLog,
    option_choice,
    option_int,
)
from synapse_sdk.formats.yolo.convert import TASKS, annotation_to_yolo

__all__ = ['YoloWriter', 'yaml_key']


def yaml_key(split: str) -> str:
    """``data.yaml`` key of a split: ``validation`` is Ultralytics' ``val``."""
    return 'val' if split == 'validation' else split


class YoloWriter(FormatWriter):
    """Options: ``task`` (detect|segment|pose|obb, default detect), ``precision`` (decimals,
    1-12, default 6), ``path`` (written as data.yaml ``path``; default: omitted)."""

    name = 'yolo'

    @classmethod
    def validate_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        out = super().validate_options(options)
        out['task'] = option_choice(out, 'task', 'detect', TASKS)
        out['precision'] = option_int(out, 'precision', 6, 'an integer from 1 to 12', 1, 12)
        path = out.get('path')
        if path is not None and not isinstance(path, str):
            raise ParamsError('Invalid extra_params', [('extra_params.path', 'must be a string')])
        return out

    def start(self) -> None:
        self.task: str = self.options['task']
        self.precision: int = self.options['precision']
        self.kpt_count = max(
            (len(c.keypoints['names']) for c in self.class_map if c.keypoints), default=0
        )
        if self.task == 'pose' and not self.kpt_count:
            raise ParamsError(
                'Invalid extra_params',
                [('extra_params.task', 'pose needs a class with keypoints in the configuration')],
            )
        self._splits: list[str] = []
        for split in self.split_spec.names:
            self._make(split)

    def _make(self, split: str) -> None:
        if split not in self._splits:
            (self.root / 'images' / split).mkdir(parents=True, exist_ok=True)
            (self.root / 'labels' / split).mkdir(parents=True, exist_ok=True)
            self._splits.append(split)

    def image_relpath(self, item: FormatItem) -> str:
        return f'images/{item.split}/{item.file_name}'

    def write_item(self, item: FormatItem) -> None:
        size = self.require_size(item)
        log = ItemLog(item.id)
        lines = self.convert_annotations(
            item,
            log,
            lambda ann, index: annotation_to_yolo(
                ann,
                class_index=index,
                image_size=size,
                task=self.task,
                precision=self.precision,
                kpt_count=self.kpt_count,
                log=log,
            ),
        )
        self._make(item.split)
        text = ''.join(f'{line}\n' for line in lines)
        path = self.root / 'labels' / item.split / f'{item.stem}.txt'
        path.write_text(text, encoding='utf-8', newline='\n')
        log.apply(self.report)

    def data_yaml(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.options.get('path'):
            data['path'] = self.options['path']
        for split in self._splits:
            data[yaml_key(split)] = f'images/{split}'
        if 'val' not in data and 'train' in data:
            data['val'] = data['train']
        data['task'] = self.task
        data['nc'] = len(self.class_map)
        data['names'] = dict(enumerate(self.class_map.names))
        if self.task == 'pose':
            data['kpt_shape'] = [self.kpt_count, 3]
            data['kpt_names'] = {
                i: list(c.keypoints['names']) for i, c in enumerate(self.class_map) if c.keypoints
            }
        return data

    def finish(self) -> None:
        text = yaml.safe_dump(
            self.data_yaml(), sort_keys=False, allow_unicode=True, default_flow_style=None
        )
        (self.root / 'data.yaml').write_text(text, encoding='utf-8', newline='\n')

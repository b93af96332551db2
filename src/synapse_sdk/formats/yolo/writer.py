"""YOLO writer, Ultralytics layout::

    data.yaml                 path, splits, nc, names (class-map order), task; pose: kpt_shape,
                              flip_idx, kpt_names
    images/<split>/<stem><ext>
    labels/<split>/<stem>.txt one line per object; an image without objects gets an empty file

``task=classify`` writes Ultralytics' classification layout instead: ``<split>/<class>/<stem>
<ext>`` (the original goes into the folder of the image's image-level class; no label files).
Ultralytics is single-label: an image with several image-level labels goes into the folder of
the first (in annotation order), the others are reported as skipped; an image without one is a
failed item with that reason (Ultralytics has no folder for it).

``data.yaml``: ``path`` is ``.`` (the folder of the yaml; Ultralytics 8.3 and later resolve it
so; ``-o path=/abs/dir`` writes another), splits are declared only when they have items (no
``val:`` pointing at an empty folder). Ultralytics requires ``train`` and ``val``, so the
splits are ``train``, ``val`` (or ``validation``) and ``test``, ``train`` among them; another
name is refused before the export runs (a ``foo:`` key would be ignored by Ultralytics).
When no item went to a ``val`` / ``validation`` split ``val`` points at the train images;
when none went to ``train`` (split ``category``), ``train`` points at the val (else test)
images. Pose datasets get ``flip_idx``
(which keypoint each one becomes in a mirrored image) from the configuration's ``flip_idx``,
else from ``left``/``right`` name pairs; it is left out (and reported) when the keypoint
classes disagree. ``task`` and (pose) ``kpt_names`` are written too, so imports are exact.
"""

from __future__ import annotations

import os
from typing import Any, Literal

import yaml
from pydantic import Field

from synapse_sdk.errors import ItemExportError, ParamsError
from synapse_sdk.formats.base import (
    CommonOptions,
    FormatItem,
    FormatWriter,
    ItemLog,
    is_label_only,
    write_error,
    write_file,
)
from synapse_sdk.formats.names import safe_basename
from synapse_sdk.formats.split import parse_split
from synapse_sdk.formats.yolo.convert import YoloConverter, flip_index

__all__ = ['YOLO_SPLITS', 'YoloWriter', 'yaml_key']

#: The split names a YOLO export takes: those Ultralytics reads from data.yaml.
YOLO_SPLITS = ('train', 'val', 'validation', 'test')


def yaml_key(split: str) -> str:
    """``data.yaml`` key of a split: ``validation`` is Ultralytics' ``val``."""
    return 'val' if split == 'validation' else split


class YoloOptions(CommonOptions):
    task: Literal['detect', 'segment', 'pose', 'obb', 'classify'] = Field(
        'detect',
        description='Ultralytics task: detect (boxes), segment (polygons), pose (keypoints), '
        'obb (rotated boxes) or classify (image-level labels as class folders)',
    )
    precision: int = Field(6, ge=1, le=12, description='Decimals of the normalised coordinates')
    path: str = Field(
        '.', description='The data.yaml "path" (dataset root); default "." (the yaml\'s folder)'
    )
    classification: str | None = Field(
        None,
        description='task=classify: the image classification whose value is the class (e.g. '
        'weather; its declared values are the classes). Default: the image-level labels '
        "(classification annotations), else the project's only classification",
        min_length=1,
    )


class YoloWriter(FormatWriter):
    """Options: see :class:`YoloOptions` (``task``, ``precision``, ``path``)."""

    name = 'yolo'
    Options = YoloOptions

    @classmethod
    def check_export(cls, options: dict[str, Any], save_original: bool) -> None:
        names = parse_split(options.get('split')).names
        unknown = [n for n in names if n not in YOLO_SPLITS]
        if unknown or 'train' not in names:
            problem = (
                f'split {unknown[0]!r} has no data.yaml key Ultralytics reads'
                if unknown
                else 'no "train" split'
            )
            raise ParamsError(
                'Invalid split for yolo',
                [
                    (
                        'extra_params.split',
                        f'{problem}; YOLO splits are train, val (or validation) and test, and '
                        'train is required: Ultralytics needs "train" and "val" in data.yaml '
                        '(val is the train images when no val split is given), e.g. '
                        'train=0.8,val=0.2',
                    )
                ],
            )
        if options.get('classification') is not None and options.get('task') != 'classify':
            raise ParamsError(
                'Invalid extra_params',
                [('extra_params.classification', 'only applies to task=classify')],
            )
        if options.get('task') == 'classify' and not save_original:
            raise ParamsError(
                'yolo classify needs the original images',
                [
                    (
                        'save_original_file',
                        "task=classify stores each image's label as the class folder the "
                        'image is copied into: without the originals (--no-originals) every '
                        'label would be lost; save the originals, or use another task',
                    )
                ],
            )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.task: str = self.options['task']
        self.precision: int = self.options['precision']
        self.needs_size = self.task != 'classify'

    def start(self) -> None:
        self.kpt_count = max(
            (len(c.keypoints['names']) for c in self.class_map if c.keypoints), default=0
        )
        if self.task == 'pose' and not self.kpt_count:
            raise ParamsError(
                'Invalid extra_params',
                [('extra_params.task', 'pose needs a class with keypoints in the configuration')],
            )
        self.root.mkdir(parents=True, exist_ok=True)
        self._items: dict[str, int] = {}  # split -> items written
        self._made: dict[str, str] = {}  # split -> its label folder
        if self.task == 'classify':
            self._by, self._names = self._classify_source()
            self._class_dirs = _class_dirs(self._names)
            self._chosen: dict[Any, tuple[int, list[str]] | None] = {}
        else:
            self._converter = YoloConverter(self.task, self.precision, self.kpt_count)

    # --- classify --------------------------------------------------------------------------
    def _classify_source(self) -> tuple[str | None, list[str]]:
        """``(classification name or None for image-level labels, the class names)``.

        The class list is fixed before any item (shards must agree on it): the project's
        classes for image-level labels, else the declared values of the classification."""
        configuration = (self.project or {}).get('configuration') or {}
        declared = {
            str(c['name']): c.get('values')
            for c in configuration.get('classifications') or []
            if isinstance(c, dict) and isinstance(c.get('name'), str)
        }
        name = self.options.get('classification')
        if name is None:
            labels = any(c.tool == 'classification' for c in self.class_map)
            if labels or len(declared) != 1:
                if not labels:
                    raise ParamsError(
                        'yolo classify needs a class per image',
                        [
                            (
                                'extra_params.classification',
                                'the project has no classification class (image-level label) '
                                'and not exactly one classification; name the classification '
                                'whose value is the class'
                                + (f' (one of: {", ".join(declared)})' if declared else ''),
                            )
                        ],
                    )
                return None, list(self.class_map.names)
            (name,) = declared
        if name not in declared:
            known = ', '.join(declared) or 'none'
            raise ParamsError(
                'Invalid extra_params',
                [('extra_params.classification', f'{name!r} is not a classification of the '
                  f'project (its classifications: {known})')],
            )  # fmt: skip
        values = declared[name]
        if not isinstance(values, list) or not values:
            raise ParamsError(
                'Invalid extra_params',
                [('extra_params.classification', f'the classification {name!r} declares no '
                  '"values" in the project; yolo classify needs them as its class list')],
            )  # fmt: skip
        return name, [str(v) for v in dict.fromkeys(values)]

    def _image_label(self, item: FormatItem) -> tuple[int, list[str]] | None:
        """(class index of the first image-level label, the other image-level classes)."""
        if item.id in self._chosen:
            return self._chosen[item.id]
        if self._by is not None:
            return self._classification_label(item)
        first: int | None = None
        others: list[str] = []
        for ann in item.annotations:
            if not isinstance(ann, dict) or not is_label_only(ann):
                continue
            category = ann.get('category')
            index = self.class_map.index(category) if isinstance(category, str) else None
            if index is None:
                continue
            if first is None:
                first = index
            else:
                others.append(str(ann.get('id')))
        chosen = None if first is None else (first, others)
        self._chosen = {item.id: chosen}  # only the current item is asked about twice
        return chosen

    def _classification_label(self, item: FormatItem) -> tuple[int, list[str]] | None:
        value = item.classifications.get(self._by) if self._by else None
        values = value if isinstance(value, list) else [value]
        index = self._names.index(str(values[0])) if str(values[0]) in self._names else None
        if value is None or value == [] or index is None:
            chosen = None
        else:
            chosen = (index, [str(v) for v in values[1:]])
        self._chosen = {item.id: chosen}
        return chosen

    def _no_class(self, item: FormatItem) -> ItemExportError:
        """Why ``item`` has no class folder: what is missing (the error names the item)."""
        if self._by is None:
            wanted = ', '.join(n for n, c in zip(self._names, self.class_map, strict=True)
                               if c.tool == 'classification') or 'none configured'  # fmt: skip
            why = f'no image-level label (a classification annotation of one of: {wanted})'
        else:
            value = item.classifications.get(self._by)
            allowed = ', '.join(self._names)
            why = (
                f'no {self._by!r} classification, which gives the image its class ({allowed})'
                if value is None or value == []
                else f'{self._by!r} is {value!r}, not one of its declared values ({allowed})'
            )
        return ItemExportError(
            f'yolo classify: {why}; an image without a class has no class folder',
            item_id=item.id,
            file=item.file_name,
        )

    def image_relpath(self, item: FormatItem) -> str | None:
        if self.task != 'classify':
            return f'images/{item.split}/{item.file_name}'
        chosen = self._image_label(item)
        if chosen is None:
            return None
        return f'{item.split}/{self._class_dirs[chosen[0]]}/{item.file_name}'

    def _write_classify(self, item: FormatItem) -> None:
        chosen = self._image_label(item)
        if chosen is None:
            raise self._no_class(item)
        log = ItemLog(item.id)
        first_done = False
        for ann in item.annotations:
            if not isinstance(ann, dict):
                log.skip(f'malformed annotation (a {type(ann).__name__}, not an object)')
                continue
            log.annotation_id = ann.get('id')
            index = self.known_class(ann, log)
            if index is None:
                continue
            if not is_label_only(ann):
                log.skip('object annotation: yolo classify has only image-level labels')
            elif self._by is not None:
                log.skip(f'image-level label: the class is the {self._by!r} classification')
            elif first_done:
                log.skip('yolo classify is single-label: a further image-level label skipped')
            else:
                first_done = True
                log.exported(ann['category'], str(ann.get('tool') or 'classification'))
        if self._by is not None:
            log.annotation_id = None
            log.exported(self._names[chosen[0]], 'classification')
            for _ in chosen[1]:
                log.skip(f'yolo classify is single-label: a further {self._by!r} value skipped')
        folder = self.root / item.split / self._class_dirs[chosen[0]]
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise write_error(exc, f'{item.split}/{self._class_dirs[chosen[0]]}', item) from exc
        self._items[item.split] = self._items.get(item.split, 0) + 1
        log.apply(self.report)

    # --- object tasks ------------------------------------------------------------------------
    def write_item(self, item: FormatItem) -> None:
        if self.task == 'classify':
            self._write_classify(item)
            return
        w, h = self.require_size(item)
        log = ItemLog(item.id)
        line = self._converter.line
        lines = self.convert_annotations(item, log, lambda ann, index: line(ann, index, w, h, log))
        folder = self._made.get(item.split) or self._make(item)
        data = ('\n'.join(lines) + '\n').encode() if lines else b''
        write_file(f'{folder}{item.stem}.txt', data, item)
        self._items[item.split] = self._items.get(item.split, 0) + 1
        log.apply(self.report)

    def _make(self, item: FormatItem) -> str:
        """Create the split's folders; the label folder as a string ending in a separator."""
        split = item.split
        try:
            (self.root / 'images' / split).mkdir(parents=True, exist_ok=True)
            (self.root / 'labels' / split).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise write_error(exc, f'labels/{split}', item) from exc
        folder = self._made[split] = os.path.join(self.root, 'labels', split, '')
        return folder

    # --- summary -----------------------------------------------------------------------------
    def data_yaml(self) -> dict[str, Any]:
        data: dict[str, Any] = {'path': self.options['path']}
        classify = self.task == 'classify'
        splits = [s for s in self.split_spec.names if self._items.get(s)]
        splits += sorted(s for s in self._items if s not in splits)
        keys = {yaml_key(split): split if classify else f'images/{split}' for split in splits}
        if keys and 'train' not in keys:  # e.g. split "category" with no train item
            # no report warning: a shard's finish runs on its own items, so it would warn
            # about the shard, not the export (the merged data.yaml is written again)
            keys = {'train': keys.get('val') or next(iter(keys.values())), **keys}
        data.update(keys)
        if 'val' not in data and 'train' in data:
            data['val'] = data['train']
        names = self._names if classify else self.class_map.names
        data['nc'] = len(names)
        data['names'] = dict(enumerate(names))
        data['task'] = self.task
        if classify and self._by is not None:
            data['classification'] = self._by  # read back by the importer
        if self.task == 'pose':
            data['kpt_shape'] = [self.kpt_count, 3]
            flip = self._flip_idx()
            if flip is not None:
                data['flip_idx'] = flip
            data['kpt_names'] = {
                i: list(c.keypoints['names']) for i, c in enumerate(self.class_map) if c.keypoints
            }
        return data

    def _flip_idx(self) -> list[int] | None:
        """One ``flip_idx`` for ``kpt_shape``; ``None`` (reported) when the classes disagree."""
        found: list[list[int]] = []
        for c in self.class_map:
            if not c.keypoints:
                continue
            names = c.keypoints['names']
            flip = list(c.keypoints.get('flip_idx') or flip_index(names))
            flip += list(range(len(flip), self.kpt_count))  # padding points stay themselves
            if flip not in found:
                found.append(flip)
        if len(found) == 1:
            return found[0]
        self.report.extra.setdefault('warnings', []).append(
            'yolo pose: keypoint classes mirror their points differently; flip_idx left out '
            '(Ultralytics then turns off left-right flip augmentation)'
        )
        return None

    def finish(self) -> None:
        text = yaml.safe_dump(
            self.data_yaml(), sort_keys=False, allow_unicode=True, default_flow_style=None
        )
        path = self.root / 'data.yaml'
        path.write_text(text, encoding='utf-8', newline='\n')


def _class_dirs(names: list[str]) -> list[str]:
    """A safe, unique folder name per class (case-insensitively unique)."""
    out: list[str] = []
    taken: set[str] = set()
    for i, name in enumerate(names):
        base = safe_basename(name, fallback=f'class_{i}')
        candidate, n = base, 0
        while candidate.casefold() in taken:
            n += 1
            candidate = f'{base}_{n}'
        taken.add(candidate.casefold())
        out.append(candidate)
    return out

"""Built-in export formats: one subpackage per format (``convert`` pure, ``writer`` streaming,
``reader`` for ``synapse data import``), sharing the class map, splits and geometry helpers.

Writers are listed by name without importing them; :func:`get_writer` imports on demand.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from importlib import import_module
from typing import TYPE_CHECKING, Any

from synapse_sdk.errors import ParamsError

if TYPE_CHECKING:
    from synapse_sdk.formats.base import FormatWriter
    from synapse_sdk.formats.dataset import ImportedDataset

__all__ = ['FORMATS', 'READERS', 'WRITERS', 'get_reader', 'get_writer', 'read_dataset']

# name -> 'module:Class'
FORMATS: dict[str, str] = {
    'dm': 'synapse_sdk.formats.dm.writer:DmWriter',
    'coco': 'synapse_sdk.formats.coco.writer:CocoWriter',
    'yolo': 'synapse_sdk.formats.yolo.writer:YoloWriter',
    'voc': 'synapse_sdk.formats.voc.writer:VocWriter',
    'csv': 'synapse_sdk.formats.csv.writer:CsvWriter',
    'cvat': 'synapse_sdk.formats.cvat.writer:CvatWriter',
    'labelme': 'synapse_sdk.formats.labelme.writer:LabelmeWriter',
    'parquet': 'synapse_sdk.formats.parquet.writer:ParquetWriter',
}
READERS: dict[str, str] = {
    name: f'synapse_sdk.formats.{name}.reader:read_dataset'
    for name in ('dm', 'coco', 'yolo', 'voc', 'csv', 'cvat', 'labelme', 'parquet')
}


def _load(spec: str) -> Any:
    module, _, attr = spec.partition(':')
    return getattr(import_module(module), attr)


class _Writers(MutableMapping[str, 'type[FormatWriter]']):
    """Name -> writer class. Built-ins are imported on first access; others can be registered
    (``WRITERS['mine'] = MyWriter``). Listing names imports nothing."""

    def __init__(self) -> None:
        self._loaded: dict[str, type[FormatWriter]] = {}
        self._specs: dict[str, str] = dict(FORMATS)

    def __getitem__(self, name: str) -> type[FormatWriter]:
        if name not in self._loaded:
            spec = self._specs[name]
            self._loaded[name] = _load(spec)
        return self._loaded[name]

    def __setitem__(self, name: str, cls: type[FormatWriter]) -> None:
        self._loaded[name] = cls
        self._specs[name] = f'{cls.__module__}:{cls.__qualname__}'

    def __delitem__(self, name: str) -> None:
        del self._specs[name]
        self._loaded.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)


WRITERS: MutableMapping[str, type[FormatWriter]] = _Writers()


def get_writer(name: str) -> type[FormatWriter]:
    """The writer class of a built-in format; :class:`ParamsError` names the known ones."""
    if name not in WRITERS:
        raise ParamsError(
            'Unknown format', [('format', f'{name!r}; known: {", ".join(sorted(WRITERS))}')]
        )
    return WRITERS[name]


def get_reader(name: str) -> Any:
    """``read_dataset(path, images=None) -> ImportedDataset`` of a format."""
    if name not in READERS:
        raise ParamsError(
            'Unknown format', [('format', f'{name!r}; known: {", ".join(sorted(READERS))}')]
        )
    reader: Any = _load(READERS[name])
    return reader


def read_dataset(name: str, path: Any, images: Any = None) -> ImportedDataset:
    """Shortcut: ``get_reader(name)(path, images)``."""
    dataset: ImportedDataset = get_reader(name)(path, images)
    return dataset

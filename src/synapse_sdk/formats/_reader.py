"""Small helpers shared by the format readers."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from synapse_sdk.errors import ParamsError
from synapse_sdk.formats.dataset import ImportedImage

IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.bmp', '.gif', '.tif', '.tiff', '.webp')

#: Split names as datasets spell them -> the platform's ground-truth categories.
SPLIT_ALIASES = {
    'train': 'train',
    'training': 'train',
    'val': 'validation',
    'valid': 'validation',
    'validation': 'validation',
    'test': 'test',
    'testing': 'test',
}


class LazyImages(Iterable[ImportedImage]):
    """Re-iterable: each iteration reads the dataset again, so nothing is held in memory."""

    def __init__(self, produce: Callable[[], Iterator[ImportedImage]]) -> None:
        self._produce = produce

    def __iter__(self) -> Iterator[ImportedImage]:
        return self._produce()


def canonical_split(name: str | None) -> str | None:
    """Map a dataset's split name to ``train`` / ``validation`` / ``test`` (``None`` if other)."""
    if name is None:
        return None
    return SPLIT_ALIASES.get(name.lower())


def input_error(path: Path | str, message: str) -> ParamsError:
    return ParamsError('Cannot import dataset', [(str(path), message)])


def find_image(directory: Path, stem: str) -> Path | None:
    """The image file ``<stem>.<ext>`` in ``directory`` (known extensions, any case)."""
    for ext in IMAGE_EXTS:
        for candidate in (directory / f'{stem}{ext}', directory / f'{stem}{ext.upper()}'):
            if candidate.is_file():
                return candidate
    return None

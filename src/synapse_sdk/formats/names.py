"""Safe, unique, deterministic output names."""

from __future__ import annotations

import re
import unicodedata
from pathlib import PurePosixPath, PureWindowsPath

_UNSAFE = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]')


def safe_basename(name: str, fallback: str = 'item') -> str:
    """Reduce ``name`` to a safe file basename; unicode letters stay intact.

    Directory parts (either separator) are dropped, control and reserved characters become
    ``_``, and names that are empty or only dots become ``fallback``.
    """
    name = unicodedata.normalize('NFC', str(name))
    name = PureWindowsPath(PurePosixPath(name.replace('\\', '/')).name).name
    name = _UNSAFE.sub('_', name).strip().strip('.')
    if not name or set(name) <= {'.', ' '}:
        return fallback
    return name[:200]


def split_ext(name: str) -> tuple[str, str]:
    """``'a.b.jpg'`` -> ``('a.b', '.jpg')``; a name without a dot has no extension."""
    p = PurePosixPath(name)
    suffix = p.suffix if len(p.suffix) <= 10 else ''
    stem = name[: len(name) - len(suffix)] if suffix else name
    return (stem or 'item', suffix)


class StemAllocator:
    """Hands out unique stems. The first of a name keeps it; later ones get ``_1``, ``_2`` ...

    Comparison is case-insensitive so exports stay correct on case-insensitive filesystems.
    Items must be offered in a deterministic order (the exports iterate by id) for the result to
    be stable across runs.
    """

    def __init__(self) -> None:
        self._taken: set[str] = set()

    def allocate(self, file_name: str, fallback: str = 'item') -> tuple[str, str, bool]:
        """Return ``(stem, ext, renamed)`` for ``file_name``."""
        stem, ext = split_ext(safe_basename(file_name, fallback))
        candidate, n = stem, 0
        while candidate.casefold() in self._taken:
            n += 1
            candidate = f'{stem}_{n}'
        self._taken.add(candidate.casefold())
        return candidate, ext, n > 0

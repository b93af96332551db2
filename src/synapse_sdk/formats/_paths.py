"""Where a path named inside a dataset file may lead: inside the dataset's folder, or nowhere.

Used by the cvat, labelme and parquet readers (an ``imagePath``, an ``<image name>``, an image
``path``). It mirrors the readers' shared ``resolve_inside`` helper and goes once that lands.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath, PureWindowsPath

__all__ = ['ABSOLUTE', 'NOT_FOUND', 'OUTSIDE', 'resolve_inside']

OUTSIDE = 'path outside the images folder'
ABSOLUTE = 'absolute path'
NOT_FOUND = 'file not found'


def resolve_inside(base: Path, name: str) -> tuple[Path | None, str | None]:
    """Resolve ``name`` against the folder ``base``.

    Returns ``(path, None)`` for a regular file inside ``base`` (symlinks followed, the result
    still inside), else ``(None, reason)``: :data:`ABSOLUTE`, :data:`OUTSIDE` (``..`` or a
    symlink leading out) or :data:`NOT_FOUND`.
    """
    text = name.replace('\\', '/')
    if PurePosixPath(text).is_absolute() or PureWindowsPath(name).drive:
        return None, ABSOLUTE
    root = base.resolve()
    target = Path(os.path.normpath(root / text))
    if not target.is_relative_to(root):
        return None, OUTSIDE
    try:
        real = target.resolve(strict=True)
    except (OSError, RuntimeError):
        return None, NOT_FOUND
    if not real.is_relative_to(root):
        return None, OUTSIDE
    if not real.is_file():
        return None, NOT_FOUND
    return real, None

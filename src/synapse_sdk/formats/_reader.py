"""Small helpers shared by the format readers: lazy images, splits, class lists and the one
place where a path named by a dataset is resolved (inside the dataset's folder, or refused)."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path, PureWindowsPath
from typing import Any

import orjson

from synapse_sdk.errors import ParamsError
from synapse_sdk.formats.dataset import ImportedImage, ImportReport

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

_POSIX = os.name == 'posix'
#: A Windows drive path: one letter, a colon, a separator (``C:\x``, ``c:/x``). On POSIX a
#: colon is an ordinary character, so ``a:b.jpg`` (or ``C:x.jpg``) is a plain relative name.
_DRIVE = re.compile(r'[A-Za-z]:[/\\]')

#: What a refused path is reported as (``image file: <reason>``).
OUTSIDE = 'path outside the images folder'
ABSOLUTE = 'absolute path'
NOT_FOUND = 'file not found'
INVALID = 'invalid file name (a NUL byte)'
LINK_OUTSIDE = 'a symbolic link pointing outside the dataset (refused)'


class LazyImages(Iterable[ImportedImage]):
    """Re-iterable: each iteration reads the dataset again, so nothing is held in memory.

    When a ``report`` is given it is cleared at the start of each iteration, so its counts are
    those of the last (complete) pass, never doubled by a second one.
    """

    def __init__(
        self, produce: Callable[[], Iterator[ImportedImage]], report: ImportReport | None = None
    ) -> None:
        self._produce = produce
        self._report = report

    def __iter__(self) -> Iterator[ImportedImage]:
        if self._report is not None:
            self._report.clear()
        return self._produce()


_YEAR = re.compile(r'^(.*?)[-_]?(?:19|20)\d\d$')


def canonical_split(name: str | None) -> str | None:
    """Map a dataset's split name to ``train`` / ``validation`` / ``test`` (``None`` if other).

    A trailing year is ignored (COCO's ``val2017``, ``train_2014``).
    """
    if name is None:
        return None
    key = name.strip().lower()
    if key not in SPLIT_ALIASES:
        match = _YEAR.match(key)
        key = match.group(1) if match else key
    return SPLIT_ALIASES.get(key)


def input_error(path: Path | str, message: str) -> ParamsError:
    return ParamsError('Cannot import dataset', [(str(path), message)])


def locate_image(directory: Path, stem: str) -> tuple[Path | None, str | None]:
    """``(path, None)`` for the image file ``<stem>.<ext>`` in ``directory`` (known
    extensions, any case), resolved; else ``(None, reason)``: :data:`LINK_OUTSIDE` when a
    match is a symbolic link leading out of ``directory`` (refused), else :data:`NOT_FOUND`."""
    if '/' in stem or '\\' in stem or stem in ('', '.', '..'):
        return None, NOT_FOUND
    reason = NOT_FOUND
    for ext in IMAGE_EXTS:
        for name in (f'{stem}{ext}', f'{stem}{ext.upper()}'):
            if (directory / name).is_file():
                found, why = resolve_inside(directory, name)
                if found is not None:
                    return found, None
                if why == OUTSIDE and (directory / name).is_symlink():
                    reason = LINK_OUTSIDE
    return None, reason


def is_absolute_name(name: str) -> bool:
    """Whether a path a dataset gives is absolute: a leading ``/`` or ``\\`` (UNC names too)
    or a drive (``C:\\x``, ``c:/x``; on Windows ``C:x`` too). On POSIX ``a:b.jpg`` is not."""
    if name[:1] in ('/', '\\'):
        return True
    if name[1:2] != ':':
        return False
    if _POSIX:
        return _DRIVE.match(name) is not None
    return bool(PureWindowsPath(name).drive)


def resolve_inside(
    base: Path, name: str, root: Path | None = None
) -> tuple[Path | None, str | None]:
    """Resolve ``name`` (a path a dataset file gives) against the folder ``base``.

    Returns ``(path, None)`` for a regular file inside ``base`` (symlinks followed, the result
    still inside), else ``(None, reason)``: :data:`ABSOLUTE` (a leading separator or a drive,
    ``C:\\x``; ``a:b.jpg`` is a name on POSIX), :data:`OUTSIDE` (``..`` or a
    symlink leading out), :data:`INVALID` (no file system takes a NUL byte) or
    :data:`NOT_FOUND`. The returned path is the resolved one, so the
    file copied is the file checked. ``root`` is ``base.resolve()`` when the caller has it
    (a reader asks about thousands of names in one folder).

    A name directly in the folder that is not a symlink is its own resolved path (the folder
    is resolved already): one ``lstat`` answers then, instead of resolving every component of
    the path again; a missing file needs no more either. Anything else is resolved fully.
    """
    if '\x00' in name:
        return None, INVALID
    if is_absolute_name(name):
        return None, ABSOLUTE
    text = name.replace('\\', '/')
    if root is None:
        root = base.resolve()
    root_text = str(root)
    target_text = os.path.normpath(os.path.join(root_text, text))
    if _POSIX:  # normalised absolute paths: "inside" is a prefix up to a separator
        prefix = root_text if root_text.endswith(os.sep) else root_text + os.sep
        inside = target_text == root_text or target_text.startswith(prefix)
    else:
        inside = Path(target_text).is_relative_to(root)
    if not inside:
        return None, OUTSIDE
    try:
        st = os.lstat(target_text)
    except OSError:  # missing (or a component is): what resolving strictly would say too
        return None, NOT_FOUND
    if not stat.S_ISLNK(st.st_mode) and os.path.dirname(target_text) == root_text:
        return (Path(target_text), None) if stat.S_ISREG(st.st_mode) else (None, NOT_FOUND)
    target = Path(target_text)
    try:
        real = target.resolve(strict=True)
    except (OSError, RuntimeError):
        return None, NOT_FOUND
    if not real.is_relative_to(root):
        return None, OUTSIDE
    if not real.is_file():
        return None, NOT_FOUND
    return real, None


def parse_attribute_value(text: str | None) -> Any:
    """An attribute value as text (VOC ``<value>``): ``true``/``false`` in any case (our files
    and CVAT write ``true``, Datumaro writes Python's ``True``) are booleans, JSON is parsed
    (``3``, ``[1, 2]``, our own files), every other text is kept as it is (CVAT and Datumaro
    write plain strings); a missing value stays ``None``, a blank one is ``''``."""
    if text is None:
        return None
    stripped = text.strip()
    if not stripped:
        return ''
    low = stripped.lower()
    if low in ('true', 'false'):
        return low == 'true'
    try:
        return orjson.loads(stripped)
    except orjson.JSONDecodeError:
        return text


def class_list(classes: Sequence[str] | str | Path | None) -> list[str] | None:
    """Class names given by the user: a list, ``"a,b,c"``, or a names file (one per line)."""
    if classes is None:
        return None
    if isinstance(classes, Path) or (
        isinstance(classes, str) and ',' not in classes and Path(classes).is_file()
    ):
        path = Path(classes)
        try:
            text = path.read_text(encoding='utf-8-sig')
        except OSError as exc:
            raise input_error(path, f'cannot read the class names file ({exc})') from exc
        names = [line.strip() for line in text.splitlines() if line.strip()]
    elif isinstance(classes, str):
        names = [n.strip() for n in classes.split(',') if n.strip()]
    else:
        names = [str(n).strip() for n in classes]
    if not names:
        raise input_error('classes', 'no class names given')
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise input_error('classes', f'class names repeat: {", ".join(dupes)}')
    return names


def load_project(root: Path) -> dict[str, Any] | None:
    """``project.json`` of a dm, CSV or LabelMe export (``{"title", "configuration"}``), when
    present; its classes must be objects with a ``name``."""
    path = root / 'project.json'
    if not path.is_file():
        return None
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise input_error(path, f'not a readable JSON file ({exc})') from exc
    config = data.get('configuration') if isinstance(data, dict) else None
    if not isinstance(config, dict):
        raise input_error(path, '"configuration" must be an object with a "classes" list')
    classes = config.get('classes', [])
    if not isinstance(classes, list) or not all(
        isinstance(c, dict) and isinstance(c.get('name'), str) for c in classes
    ):
        raise input_error(path, '"configuration.classes" must be a list of {"name": ...}')
    return data

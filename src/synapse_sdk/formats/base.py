"""The streaming writer interface every format implements, and the item the pipeline hands it.

Life of a writer (the export pipeline owns the loop, the files and the error policy)::

    writer = get_writer('coco')(root, class_map, options, report, project)  # options: extra_params
    writer.start()
    for item in items:                                 # in id order
        rel = writer.image_relpath(item)               # pipeline copies the original there
        writer.write_item(item)                        # ItemExportError -> item reported/skipped
    writer.finish()                                    # or writer.abort() after a failure

Counting: the writer counts annotations in the report (``count_annotations``, ``skip``,
``convert``, ``clamp``); the pipeline counts items (``count_item``, ``fail_item``). A writer's
report entries for an item are only applied once the item was written, so an item that raises
:class:`ItemExportError` leaves neither output nor counts behind.

Writes are all or nothing per item: a per-item file is removed again when its write fails
(:func:`write_file`), rows of shared files (COCO, CSV, VOC's image lists) through
:class:`AppendStream`, which truncates a file back when an item's write fails part way. So a
full disk fails the items it hits, cleanly, and a failure in :meth:`FormatWriter.finish`
raises, so the export fails and nothing is published.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from synapse_sdk.errors import ItemExportError, ParamsError
from synapse_sdk.formats.classmap import ClassMap
from synapse_sdk.formats.report import ExportReport
from synapse_sdk.formats.split import SPLIT_MODE_HELP, SplitSpec, parse_split, parse_split_mode

__all__ = [
    'AppendStream',
    'CommonOptions',
    'FormatItem',
    'FormatWriter',
    'ItemLog',
    'Unsupported',
    'is_label_only',
    'parse_options',
    'write_file',
]

T = TypeVar('T')


class Unsupported(Exception):
    """Raised by a converter: this annotation cannot be expressed; the message is the reason."""


@dataclass
class FormatItem:
    id: Any  # record id (int)
    stem: str  # unique safe stem chosen by the pipeline (StemAllocator)
    ext: str  # original file extension, e.g. '.jpg'
    split: str  # split name
    width: int | float | None
    height: int | float | None
    annotations: list[dict[str, Any]] = field(default_factory=list)  # DESIGN section 3 documents
    classifications: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)  # the export item {"id","data","files"}

    @property
    def file_name(self) -> str:
        """The unique output file name of the image (``stem + ext``)."""
        return f'{self.stem}{self.ext}'


class ItemLog:
    """Report entries of one item, collected during conversion and applied after writing."""

    def __init__(self, item_id: Any = None) -> None:
        self.item_id = item_id
        self.annotation_id: Any = None
        self._events: list[tuple[str, str, Any]] = []
        self._counts: dict[tuple[str, str], int] = {}  # (category, tool) -> exported

    def convert(self, what: str) -> None:
        self._events.append(('convert', what, self.annotation_id))

    def clamp(self) -> None:
        self._events.append(('clamp', '', self.annotation_id))

    def skip(self, reason: str, annotation_id: Any = None) -> None:
        self._events.append(('skip', reason, annotation_id or self.annotation_id))

    def exported(self, category: str, tool: str) -> None:
        key = (category, tool)
        self._counts[key] = self._counts.get(key, 0) + 1

    def apply(self, report: ExportReport) -> None:
        if self._counts:
            report.count_annotations(self._counts)
            self._counts = {}
        for kind, what, extra in self._events:
            if kind == 'convert':
                report.convert(what, self.item_id, extra)
            elif kind == 'clamp':
                report.clamp(self.item_id, extra)
            else:
                report.skip(what, self.item_id, extra)
        self._events.clear()


# --- options -----------------------------------------------------------------------------


class CommonOptions(BaseModel):
    """``extra_params`` keys every built-in format understands (the pipeline's, not a writer's).

    Each writer's ``Options`` subclasses this; unknown keys are refused (``extra='forbid'``)
    and values are not coerced (``"3"`` is not the integer 3).
    """

    model_config = ConfigDict(extra='forbid', strict=True, frozen=True)

    split: str | dict[str, Any] | None = Field(
        None,
        description='Split ratios ("train=0.8,val=0.2" or {"train": 0.8, "val": 0.2}) or '
        '"category" (the ground-truth category of each item); default: everything in train',
    )
    split_mode: str | None = Field(None, description=SPLIT_MODE_HELP)
    seed: int = Field(0, description='Seed of the split assignment (same seed, same splits)')
    on_error: Literal['skip', 'fail'] = Field(
        'skip', description='A failed item is reported and skipped (skip) or fails the run (fail)'
    )

    @field_validator('split')
    @classmethod
    def _split(cls, value: Any) -> Any:
        parse_split(value)  # raises ParamsError naming extra_params.split
        return value

    @field_validator('split_mode', mode='before')
    @classmethod
    def _split_mode(cls, value: Any) -> Any:
        return None if value is None else parse_split_mode(value)  # ParamsError names it


def _allowed(model: type[BaseModel], key: str, errors: list[dict[str, Any]]) -> str:
    """What a field accepts, for error messages: its choices or its bounds; else what
    pydantic expected (``a valid integer``, one per member of a union) and the field's
    description."""
    info = model.model_fields.get(key)
    if info is None:
        return '; '.join(str(e.get('msg')) for e in errors)
    annotation = info.annotation
    if getattr(annotation, '__origin__', None) is Literal:
        return 'allowed: ' + ', '.join(repr(a) for a in getattr(annotation, '__args__', ()))
    lo = next((m.ge for m in info.metadata if getattr(m, 'ge', None) is not None), None)
    hi = next((m.le for m in info.metadata if getattr(m, 'le', None) is not None), None)
    if lo is not None and hi is not None:
        return f'allowed: an integer from {lo} to {hi}'
    if any(e.get('type') == 'string_pattern_mismatch' for e in errors) and info.description:
        return f'allowed: {info.description}'
    wanted = dict.fromkeys(str(e.get('msg')).removeprefix('Input should be ') for e in errors)
    expected = 'expected ' + ' or '.join(wanted)
    return f'{expected}: {info.description}' if info.description else expected


def parse_options(model: type[BaseModel], options: dict[str, Any]) -> BaseModel:
    """Validate ``options`` with ``model``; :class:`ParamsError` names ``extra_params.<key>``
    and, for an unknown key, every allowed key."""
    try:
        return model.model_validate(options)
    except ValidationError as exc:
        bad: dict[str, list[dict[str, Any]]] = {}  # key -> its errors (a union gives several)
        keys = ', '.join(model.model_fields)
        for err in exc.errors():
            cause = (err.get('ctx') or {}).get('error')
            if isinstance(cause, ParamsError):
                raise cause from None
            bad.setdefault(str((err.get('loc') or ('<root>',))[0]), []).append(dict(err))
        errors = []
        for key, errs in bad.items():
            if errs[0].get('type') == 'extra_forbidden':
                message = f'unknown option; allowed keys: {keys}'
            else:
                message = f'got {errs[0].get("input")!r}; {_allowed(model, key, errs)}'
            errors.append((f'extra_params.{key}', message))
        raise ParamsError('Invalid extra_params', errors) from None


# --- the writer --------------------------------------------------------------------------


class FormatWriter(ABC):
    """Converts and streams one item at a time into ``root``. Subclasses set ``name``.

    ``options`` are the export's ``extra_params``, validated by the writer's :attr:`Options`
    model (unknown keys refused): ``self.options`` is the validated dict with defaults filled
    in, ``self.opts`` the model. ``split`` is parsed here so writers know every split up front.
    ``project`` (``{"title", "configuration"}``), when given, is the project as the platform
    stores it; writers that keep the schema beside the data (dm, csv) write it as
    ``project.json``.
    """

    name: ClassVar[str]
    Options: ClassVar[type[CommonOptions]] = CommonOptions
    needs_size: bool = True

    def __init__(
        self,
        root: Path,
        class_map: ClassMap,
        options: dict[str, Any],
        report: ExportReport,
        project: dict[str, Any] | None = None,
    ) -> None:
        self.root = Path(root)
        self.class_map = class_map
        self.opts: Any = parse_options(self.Options, dict(options or {}))
        self.options: dict[str, Any] = self.opts.model_dump()
        self.report = report
        self.project = project
        self.split_spec: SplitSpec = parse_split(self.options.get('split'))

    # --- hooks -------------------------------------------------------------------------
    @abstractmethod
    def start(self) -> None:
        """Create directories and open streaming files."""

    @abstractmethod
    def image_relpath(self, item: FormatItem) -> str | None:
        """Where the original image goes, relative to ``root`` (POSIX separators)."""

    @abstractmethod
    def write_item(self, item: FormatItem) -> None:
        """Convert and write one item, all or nothing; raise :class:`ItemExportError` if it
        cannot be written (nothing of it is left behind then)."""

    @abstractmethod
    def finish(self) -> None:
        """Close streams and write the summary files; raises if anything written is lost."""

    def abort(self) -> None:  # noqa: B027 - optional hook
        """Close anything still open after a failure. Safe to call more than once."""

    @classmethod
    def validate_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        """This format's options with defaults filled in; :class:`ParamsError` names
        ``extra_params.<key>`` and what is allowed (unknown keys are refused)."""
        return parse_options(cls.Options, dict(options or {})).model_dump()

    @classmethod  # noqa: B027 - optional hook
    def check_export(cls, options: dict[str, Any], save_original: bool) -> None:
        """Refuse (:class:`ParamsError`) valid ``options`` that this format cannot honour
        together with the export's other params, e.g. an option that needs the originals when
        they are not saved. ``options`` come from :meth:`validate_options`."""

    # --- helpers for subclasses ----------------------------------------------------------
    def write_project_json(self) -> None:
        """``project.json`` at the root (CONTRACTS #2): ``{"title", "configuration"}``, the
        project's configuration verbatim (class order, unused classes, keypoint names kept)."""
        project = self.project or {}
        configuration = project.get('configuration')
        if not isinstance(configuration, dict):
            configuration = self.class_map.configuration
        data = {'title': project.get('title'), 'configuration': configuration}
        text = orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b'\n'
        write_file_atomic(self.root / 'project.json', text)

    def require_size(self, item: FormatItem) -> tuple[int, int]:
        """``(width, height)`` as positive ints; a whole-number float (``256.0``) is accepted."""
        w, h = _pixels(item.width), _pixels(item.height)
        if w is None or h is None:
            raise ItemExportError(
                f'{self.name}: image size unknown or invalid (width={item.width!r}, '
                f'height={item.height!r}); a size is two positive whole numbers, and neither '
                'the record nor the file header gave one',
                item_id=item.id,
                file=item.file_name,
            )
        return w, h

    def known_class(self, ann: dict[str, Any], log: ItemLog) -> int | None:
        """Class index of ``ann`` or ``None`` (then the annotation is reported as skipped)."""
        category = ann.get('category')
        index = self.class_map.index(category) if isinstance(category, str) else None
        if index is None:
            log.skip(f'class {category!r} not in the project configuration')
        return index

    def convert_annotations(
        self, item: FormatItem, log: ItemLog, convert: Callable[[dict[str, Any], int], T]
    ) -> list[T]:
        """``convert(ann, class_index)`` of each annotation of ``item``, in order.

        An annotation of an unknown class, one the format cannot express (:class:`Unsupported`)
        and a malformed one (``KeyError``, ``TypeError``, ``ValueError``, ``IndexError``,
        ``OverflowError``) are reported in ``log`` as skipped and left out; every other one is
        counted as exported.
        """
        out = []
        index_of = self.class_map.index
        counts = log._counts
        for ann in item.annotations:
            if type(ann) is not dict and not isinstance(ann, dict):
                log.annotation_id = None
                log.skip(f'malformed annotation (a {type(ann).__name__}, not an object)')
                continue
            log.annotation_id = ann.get('id')
            category = ann.get('category')
            index = index_of(category) if type(category) is str else None
            if index is None:
                log.skip(f'class {category!r} not in the project configuration')
                continue
            try:
                out.append(convert(ann, index))
            except Unsupported as exc:
                log.skip(str(exc))
                continue
            except (KeyError, TypeError, ValueError, IndexError, OverflowError) as exc:
                log.skip(f'malformed {annotation_label(ann)} annotation ({type(exc).__name__})')
                continue
            tool = ann.get('tool')
            key = (str(category), tool if tool and type(tool) is str else annotation_label(ann))
            counts[key] = counts.get(key, 0) + 1
        return out


def _pixels(value: Any) -> int | None:
    """A positive whole number of pixels, or ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 < value < 1 << 31 else None
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return _pixels(int(value))
    return None


def is_label_only(ann: dict[str, Any]) -> bool:
    """An image-level label: tool ``classification``, or no geometry at all."""
    if ann.get('tool') == 'classification':
        return True
    return not any(ann.get(k) for k in ('bbox', 'points', 'mask', 'keypoints'))


def annotation_label(ann: dict[str, Any]) -> str:
    return str(ann.get('tool') or 'unknown')


# --- all-or-nothing writes -------------------------------------------------------------------


def write_error(exc: OSError, what: str, item: FormatItem | None) -> ItemExportError:
    """The item error of a failed write (a full disk), naming the file and the item."""
    reason = exc.strerror or str(exc)
    return ItemExportError(
        f'cannot write {what}: {reason}',
        item_id=None if item is None else item.id,
        file=None if item is None else item.file_name,
    )


#: Flags of a per-item file: created or truncated, closed on exec, no newline translation.
_WRITE_FLAGS = (
    os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, 'O_CLOEXEC', 0) | getattr(os, 'O_BINARY', 0)
)
#: ``os.write``, looked up here on every call (the simulated full disk of the tests swaps it).
_os_write = os.write


def write_file(path: str | os.PathLike[str], data: bytes, item: FormatItem | None = None) -> None:
    """Write a whole file, all or nothing: after a failed write (a full disk) the file is
    removed again, so no partial file is left, and :class:`ItemExportError` is raised naming
    the item (the ``OSError`` itself when no item is given: a summary file).

    One ``open``, ``write`` and ``close`` at the ``os`` level (no temporary name and rename:
    that doubled the cost of the per-item files, and the staging directory of an export that
    dies is never published; no file object either: a third of the cost of 20,000 label
    files was building and closing them).
    """
    fd = -1
    try:
        fd = os.open(path, _WRITE_FLAGS, 0o666)
        n = _os_write(fd, data)
        if n != len(data):  # a short write: the rest, until the disk refuses
            view = memoryview(data)[n:]
            while view:
                n = _os_write(fd, view)
                if not n:
                    raise OSError(errno.ENOSPC, 'No space left on device (short write)')
                view = view[n:]
        fd, opened = -1, fd
        os.close(opened)
    except OSError as exc:
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)
        if item is None:
            raise
        raise write_error(exc, os.path.basename(path), item) from exc


#: The former name.
write_file_atomic = write_file


class AppendStream:
    """An unbuffered append-only file whose per-item writes are all or nothing.

    :meth:`write` puts one item's bytes in the file; if the write fails part way (a full disk)
    the file is truncated back to where the item began and the ``OSError`` is raised, so the
    file never holds part of an item. Several streams written for one item (COCO's images and
    annotations) are rolled back together with :meth:`mark` / :meth:`rollback`.
    """

    def __init__(self, path: Path | None = None, fh: Any = None) -> None:
        self.path = path
        if fh is None:
            assert path is not None
            fh = open(path, 'wb', buffering=0)  # noqa: SIM115 - closed by close()
        self.fh = fh
        self.size = 0
        self.broken = False  # a rollback failed: the file may hold part of an item

    def mark(self) -> int:
        return self.size

    def rollback(self, mark: int) -> None:
        """Forget everything written after ``mark`` (truncates the file)."""
        if self.size != mark:
            self.fh.seek(mark)
            self.fh.truncate(mark)
            self.size = mark

    def write(self, data: bytes) -> None:
        if self.broken:
            raise OSError(5, 'an earlier write could not be rolled back')
        mark = self.size
        try:
            view = memoryview(data)
            while view:
                n = self.fh.write(view)
                if not n:
                    raise OSError(28, 'No space left on device (short write)')
                self.size += n
                view = view[n:]
        except OSError:
            self.size = max(self.size, mark)
            try:
                self.rollback(mark)
            except OSError:
                self.broken = True
            raise

    @property
    def closed(self) -> bool:
        return bool(self.fh.closed)

    def close(self) -> None:
        if not self.fh.closed:
            self.fh.close()

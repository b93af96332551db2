"""The streaming writer interface every format implements, and the item the pipeline hands it.

Life of a writer (the export pipeline owns the loop, the files and the error policy)::

    writer = get_writer('coco')(root, class_map, options, report)   # options: extra_params
    writer.start()
    for item in items:                                 # in id order
        rel = writer.image_relpath(item)               # pipeline copies the original there
        writer.write_item(item)                        # ItemExportError -> item reported/skipped
    writer.finish()                                    # or writer.abort() after a failure

Counting: the writer counts annotations in the report (``count_annotation``, ``skip``,
``convert``, ``clamp``); the pipeline counts items (``count_item``, ``fail_item``). A writer's
report entries for an item are only applied once the item was written, so an item that raises
:class:`ItemExportError` leaves neither output nor counts behind.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from synapse_sdk.errors import ItemExportError, ParamsError
from synapse_sdk.formats.classmap import ClassMap
from synapse_sdk.formats.report import ExportReport
from synapse_sdk.formats.split import SplitSpec, parse_split

__all__ = ['FormatItem', 'FormatWriter', 'ItemLog', 'Unsupported']

T = TypeVar('T')


class Unsupported(Exception):
    """Raised by a converter: this annotation cannot be expressed; the message is the reason."""


@dataclass
class FormatItem:
    id: Any  # record id (int)
    stem: str  # unique safe stem chosen by the pipeline (StemAllocator)
    ext: str  # original file extension, e.g. '.jpg'
    split: str  # split name
    width: int | None
    height: int | None
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

    def convert(self, what: str) -> None:
        self._events.append(('convert', what, self.annotation_id))

    def clamp(self) -> None:
        self._events.append(('clamp', '', self.annotation_id))

    def skip(self, reason: str, annotation_id: Any = None) -> None:
        self._events.append(('skip', reason, annotation_id or self.annotation_id))

    def exported(self, category: str, tool: str) -> None:
        self._events.append(('count', category, tool))

    def apply(self, report: ExportReport) -> None:
        for kind, what, extra in self._events:
            if kind == 'count':
                report.count_annotation(what, extra)
            elif kind == 'convert':
                report.convert(what, self.item_id, extra)
            elif kind == 'clamp':
                report.clamp(self.item_id, extra)
            else:
                report.skip(what, self.item_id, extra)
        self._events.clear()


class FormatWriter(ABC):
    """Converts and streams one item at a time into ``root``. Subclasses set ``name``.

    ``options`` are the export's ``extra_params`` after :meth:`validate_options`; keys a writer
    does not know are left alone (they belong to the pipeline). ``options['split']`` is parsed
    here so writers know every split up front (COCO writes a file per split, YOLO lists them in
    ``data.yaml``) even when a partial export has no item in some split.
    """

    name: ClassVar[str]
    needs_size: ClassVar[bool] = True

    def __init__(
        self, root: Path, class_map: ClassMap, options: dict[str, Any], report: ExportReport
    ) -> None:
        self.root = Path(root)
        self.class_map = class_map
        self.options = self.validate_options(options or {})
        self.report = report
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
        """Convert and stream one item; raise :class:`ItemExportError` if it cannot be written."""

    @abstractmethod
    def finish(self) -> None:
        """Close streams and write the summary files."""

    def abort(self) -> None:  # noqa: B027 - optional hook
        """Close anything still open after a failure. Safe to call more than once."""

    @classmethod
    def validate_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        """Check this format's keys of ``options`` and return them with defaults filled in."""
        out = dict(options)
        parse_split(out.get('split'))
        return out

    # --- helpers for subclasses ----------------------------------------------------------
    def require_size(self, item: FormatItem) -> tuple[int, int]:
        w, h = item.width, item.height
        if not isinstance(w, int) or not isinstance(h, int) or w <= 0 or h <= 0:
            raise ItemExportError(
                f'{self.name}: image size unknown (width={w!r}, height={h!r}); '
                'neither the record nor the file header gave it',
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
        and a malformed one (``KeyError``, ``TypeError``, ``ValueError``, ``IndexError``) are
        reported in ``log`` as skipped and left out; every other one is counted as exported.
        """
        out = []
        for ann in item.annotations:
            log.annotation_id = ann.get('id')
            index = self.known_class(ann, log)
            if index is None:
                continue
            try:
                out.append(convert(ann, index))
            except Unsupported as exc:
                log.skip(str(exc))
                continue
            except (KeyError, TypeError, ValueError, IndexError) as exc:
                log.skip(f'malformed {annotation_label(ann)} annotation ({type(exc).__name__})')
                continue
            log.exported(ann['category'], annotation_label(ann))
        return out


def option_int(
    options: dict[str, Any], key: str, default: int, allowed: str, lo: int, hi: int
) -> int:
    """Read an int option in ``[lo, hi]`` or raise :class:`ParamsError` naming the key."""
    value = options.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ParamsError(
            'Invalid extra_params', [(f'extra_params.{key}', f'got {value!r}; allowed: {allowed}')]
        )
    return value


def option_choice(options: dict[str, Any], key: str, default: Any, choices: tuple[Any, ...]) -> Any:
    value = options.get(key, default)
    if value is None:
        return default
    if value not in choices or isinstance(value, bool):
        allowed = ', '.join(repr(c) for c in choices)
        raise ParamsError(
            'Invalid extra_params', [(f'extra_params.{key}', f'got {value!r}; allowed: {allowed}')]
        )
    return value


def annotation_label(ann: dict[str, Any]) -> str:
    return str(ann.get('tool') or 'unknown')

"""What travels through the item pipeline, and the two seams it offers: ``Sink`` and ``Journal``.

An :class:`ItemContext` is made for each export item (id, unique output stem, split, the
converted data) and handed explicitly to every stage; template hooks that predate it still find
it as ``exporter.current``. A :class:`BrokenItem` stands for a record that could not become an
export item at all (the handler raised on it); it fails alone, with its id.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from synapse_sdk.plugins.actions.export.models import ExportStatus

__all__ = ['BrokenItem', 'ItemContext', 'Journal', 'Sink', 'item_file_name']

#: ``ItemContext.logged`` bits: which file-log rows the item's own hooks already wrote.
LOGGED_DATA = 1
LOGGED_ORIGINAL = 2


@dataclass(slots=True, eq=False)
class ItemContext:
    """One export item on its way through the pipeline.

    ``data_status`` / ``original_status`` are what the sink reported; ``None`` for the original
    means none was due (not requested, or the format has no place for it) or, when the item
    failed, that it was never attempted. ``STAND_BY`` means a download runs in the background;
    its outcome reaches the recorder when it ends.
    """

    id: Any
    index: int
    stem: str
    ext: str
    files: dict[str, Any]
    source: dict[str, Any]
    split: str | None = None
    data: Any = None
    data_status: ExportStatus | None = None
    original_status: ExportStatus | None = None
    error: str | None = None
    original_error: str | None = None
    logged: int = 0  # LOGGED_* bits
    recorded: bool = False  # the recorder counted the item (a background original may follow)
    background: bool = False  # its original is downloading in the background

    @property
    def file_name(self) -> str:
        """The item's original file name (what error lists and file logs show)."""
        return str(self.files.get('file_name_original') or f'{self.stem}{self.ext}')


def item_file_name(item: dict[str, Any]) -> str:
    """The name an item's output is named after: its original file's, else its data unit's."""
    files = item.get('files')
    name = files.get('file_name_original') if isinstance(files, dict) else None
    if not name:
        unit = item.get('data_unit')
        name = (unit.get('name') if isinstance(unit, dict) else None) or str(item.get('id'))
    return str(name)


#: The name template exporters used before the pipeline had a per-item context.
ItemState = ItemContext


class BrokenItem:
    """A record the target handler could not turn into an export item (it raised)."""

    __slots__ = ('file', 'id', 'reason')

    def __init__(self, item_id: Any, file: str | None, reason: str) -> None:
        self.id = item_id
        self.file = file
        self.reason = reason

    def __repr__(self) -> str:
        return f'BrokenItem(id={self.id!r}, reason={self.reason!r})'


class Sink(Protocol):
    """Where converted items go. The pipeline calls ``open`` once, ``write`` once per item, then
    ``close`` (or ``abort`` after a failure).

    ``write`` returns the status of the item's data file (raising fails the item with the
    error's message) and sets ``item.original_status`` when it handled the original file
    synchronously; a background download reports through the recorder when it ends. A sink
    never counts anything itself: the recorder does, once per item.
    """

    def open(self, root: Path) -> None: ...

    def write(self, item: ItemContext) -> ExportStatus: ...

    def close(self) -> None:
        """Every item is written: finish files, wait for background work."""

    def abort(self) -> None:
        """The run failed: release what is open. Safe to call more than once."""


class Journal(Protocol):
    """Hears of each item once its outcome is final (data written or failed, original settled).

    The hook a resume journal uses: ``item_done`` runs in the thread that settled the item
    (the pipeline's, or a download worker's for a background original), after the counts.
    """

    def item_done(self, item: ItemContext) -> None: ...

"""The one place an item's outcome is recorded, and the result of a run over some items.

:class:`OutcomeRecorder` turns what the sink reported for an item into every count the export
keeps: the ``data_file`` / ``original_file`` metrics, the report's exported and failed items,
the error lists (``error_file_list.json``), the per-file log rows, the error policy's verdict
and the journal's ``item_done``. Nothing else counts items.

:class:`PartResult` is what one run of the pipeline over a subset of items produced. It is
plain data (``to_dict`` / ``from_dict``) and parts add up (``a + b``, :meth:`PartResult.combine`)
in shard order, so a driver running shards elsewhere can merge their counts exactly.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from synapse_sdk.errors import ItemExportError
from synapse_sdk.formats.report import MAX_LISTED, ExportReport
from synapse_sdk.plugins.actions.export.item import (
    LOGGED_DATA,
    LOGGED_ORIGINAL,
    BrokenItem,
    ItemContext,
    Journal,
)
from synapse_sdk.plugins.actions.export.models import ExportStatus

if TYPE_CHECKING:
    from synapse_sdk.plugins.actions.export.run import ExporterRunAdapter

__all__ = ['OutcomeRecorder', 'PartResult', 'error_entry', 'merge_counts']

SUCCESS = ExportStatus.SUCCESS
FAILED = ExportStatus.FAILED
STAND_BY = ExportStatus.STAND_BY


def error_entry(entry: Any, item_id: Any = None, file: str | None = None) -> dict[str, Any]:
    """An error-list entry as ``{"id", "file", "reason"}``.

    Accepts what template exporters have appended over time: a dict (missing keys filled in),
    the legacy ``[file, reason]`` pair, or a bare reason string.
    """
    if isinstance(entry, dict):
        out = dict(entry)
        out.setdefault('id', item_id)
        out.setdefault('file', file)
        out['reason'] = str(out.get('reason') or out.get('error') or 'unknown error')
        return out
    if isinstance(entry, list | tuple):
        if len(entry) >= 2:
            return {'id': item_id, 'file': str(entry[0]), 'reason': str(entry[1])}
        if len(entry) == 1:
            return {'id': item_id, 'file': file, 'reason': str(entry[0])}
    return {'id': item_id, 'file': file, 'reason': str(entry)}


def error_sort_key(entry: dict[str, Any]) -> tuple[str, int, int, str]:
    """Order by kind, then by id as a number (ids that are not numbers after those)."""
    raw = entry.get('id')
    number: int | None = None
    if isinstance(raw, int) and not isinstance(raw, bool):
        number = raw
    elif isinstance(raw, str) and raw.strip().lstrip('-').isdigit():
        number = int(raw)
    kind = str(entry.get('kind', ''))
    if number is None:
        return (kind, 1, 0, str(raw))
    return (kind, 0, number, '')


class OutcomeRecorder:
    """Counts each item once, when the pipeline (or a finished download) says how it went.

    ``policy_fails`` (``on_error=fail`` or ``strict``): the first failed item or original sets
    :attr:`fatal`, which the pipeline raises; the failure is counted and listed first.
    """

    def __init__(
        self,
        *,
        report: ExportReport,
        run: ExporterRunAdapter,
        data_errors: list[Any],
        original_errors: list[Any],
        save_original: bool,
        expected: int,
        policy_fails: bool = False,
        journal: Journal | None = None,
    ) -> None:
        self.report = report
        self.run = run
        self.data_errors = data_errors
        self.original_errors = original_errors
        self.save_original = save_original
        self.expected = expected
        self.policy_fails = policy_fails
        self.journal = journal
        self.items = 0
        self.data_success = 0
        self.data_failed = 0
        self.original_success = 0
        self.original_failed = 0
        self.in_flight = 0
        self.first_id: Any = None
        self.last_id: Any = None
        self.fatal: ItemExportError | None = None
        self._lock = threading.Lock()
        self._mark_data = len(data_errors)
        self._mark_original = len(original_errors)

    # -- recording ---------------------------------------------------------------------------
    def item(self, item: ItemContext) -> None:
        """Record ``item`` after its sink call (or its failure)."""
        item_id = item.id
        self.items += 1
        if self.first_id is None:
            self.first_id = item_id
        self.last_id = item_id
        listed = None
        if len(self.data_errors) > self._mark_data:
            listed = self._adopt(self.data_errors, self._mark_data, item)
            self._mark_data = len(self.data_errors)
        if item.data_status is SUCCESS:
            ok = True
            self.data_success += 1
            self.report.count_item(item.split)
            if not item.logged & LOGGED_DATA:
                self.run.log_row('data_file', item_id, item.file_name, SUCCESS, '')
        else:
            ok = False
            self._item_failed(item, listed)
        if not self.save_original:
            item.recorded = True
            if self.journal is not None:
                self.journal.item_done(item)
            return
        listed_original = None
        if len(self.original_errors) > self._mark_original:
            listed_original = self._adopt(self.original_errors, self._mark_original, item)
        done = True
        log: tuple[ExportStatus, str] | None = None
        with self._lock:
            item.recorded = True
            status = item.original_status
            if status is STAND_BY:
                self.in_flight += 1
                done = False
            elif status is None:
                if not ok:  # never attempted because the item failed
                    self.original_failed += 1
            else:
                reason = item.original_error or listed_original or ''
                log = self._settle_original(item, status, reason, listed_original is None)
            self._mark_original = len(self.original_errors)
        if log is not None:
            self._log_original(item, *log)
        if done and self.journal is not None:
            self.journal.item_done(item)

    def _item_failed(self, item: ItemContext, listed: str | None) -> None:
        item.data_status = FAILED
        reason = item.error or listed or 'the data file could not be saved'
        item.error = reason
        self.data_failed += 1
        self.report.fail_item(item.id, item.file_name, reason)
        if listed is None:
            self.data_errors.append({'id': item.id, 'file': item.file_name, 'reason': reason})
        self._mark_data = len(self.data_errors)
        if not item.logged & LOGGED_DATA:
            self.run.log_row('data_file', item.id, item.file_name, FAILED, reason)
        self._fail(item.id, item.file_name, reason)

    def original(self, item: ItemContext, status: ExportStatus, reason: str = '') -> None:
        """A background original of ``item`` ended (download worker thread)."""
        with self._lock:
            if not item.recorded:  # ended before the item was recorded: item() counts it
                item.original_status = status
                item.original_error = reason or None
                return
            if item.original_status is not STAND_BY:
                return  # already settled: an outcome is counted once
            self.in_flight -= 1
            item.original_status = status
            log = self._settle_original(item, status, reason, True)
        self._log_original(item, *log)
        if self.journal is not None:
            self.journal.item_done(item)

    def broken(self, broken: BrokenItem, index: int) -> None:
        """Record a record that never became an item: its data failed, its original too."""
        self._seen(broken.id)
        reason = broken.reason
        self.data_failed += 1
        self.report.fail_item(broken.id, broken.file, reason)
        self.data_errors.append({'id': broken.id, 'file': broken.file, 'reason': reason})
        self._mark_data = len(self.data_errors)
        self.run.log_row('data_file', broken.id, broken.file, FAILED, reason)
        if self.save_original:
            with self._lock:
                self.original_failed += 1
        self._fail(broken.id, broken.file, reason)
        if self.journal is not None:
            item = ItemContext(broken.id, index, '', '', {}, {}, data_status=FAILED, error=reason)
            item.recorded = True
            self.journal.item_done(item)

    # -- reading -----------------------------------------------------------------------------
    def metrics(self) -> tuple[dict[str, int], dict[str, int]]:
        """``(data_file, original_file)`` metrics; ``stand_by`` is what is still to come."""
        with self._lock:
            remaining = max(self.expected - self.items, 0)
            data = {'stand_by': remaining, 'success': self.data_success, 'failed': self.data_failed}
            original = {
                'stand_by': remaining + self.in_flight if self.save_original else 0,
                'success': self.original_success,
                'failed': self.original_failed,
            }
        return data, original

    def finish(self) -> None:
        """Every item was iterated: nothing more is expected than what was seen."""
        self.expected = self.items

    # -- internals ---------------------------------------------------------------------------
    def _seen(self, item_id: Any) -> None:  # broken records (items inline this)
        self.items += 1
        if self.first_id is None:
            self.first_id = item_id
        self.last_id = item_id

    def _adopt(self, errors: list[Any], start: int, item: ItemContext) -> str | None:
        """Normalise the entries hooks appended since ``start``; the reason of one for ``item``."""
        if len(errors) <= start:
            return None
        found: str | None = None
        for i in range(start, len(errors)):
            entry = errors[i]
            if not isinstance(entry, dict) or 'reason' not in entry or 'id' not in entry:
                entry = errors[i] = error_entry(entry, item.id, item.file_name)
            if found is None and entry.get('id') == item.id:
                found = str(entry['reason'])
        return found

    def _settle_original(
        self, item: ItemContext, status: ExportStatus, reason: str, list_it: bool
    ) -> tuple[ExportStatus, str]:
        """Count a final original status (under the lock); returns the row to log."""
        if status is SUCCESS:
            self.original_success += 1
            return SUCCESS, ''
        self.original_failed += 1
        reason = reason or 'the original file could not be saved'
        item.original_error = reason
        if list_it:
            self.original_errors.append({'id': item.id, 'file': item.file_name, 'reason': reason})
        if self.policy_fails and self.fatal is None:
            self.fatal = ItemExportError(
                f'item {item.id} ({item.file_name}): original file: {reason}',
                item_id=item.id,
                file=item.file_name,
            )
        return FAILED, reason

    def _log_original(self, item: ItemContext, status: ExportStatus, reason: str) -> None:
        if not item.logged & LOGGED_ORIGINAL:
            self.run.log_row('original_file', item.id, item.file_name, status, reason)

    def _fail(self, item_id: Any, file: str | None, reason: str) -> None:
        if self.policy_fails and self.fatal is None:
            self.fatal = ItemExportError(f'item {item_id} ({file}): {reason}', item_id, file)


# -- parts ---------------------------------------------------------------------------------------
def merge_counts(a: Any, b: Any) -> Any:
    """Add two report-like values: numbers add, dicts merge key by key, lists concatenate
    (capped at the report's listing limit); anything else keeps ``a``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a + b
    if isinstance(a, dict) and isinstance(b, dict):
        out = dict(a)
        for key, value in b.items():
            out[key] = merge_counts(out[key], value) if key in out else value
        return dict(sorted(out.items())) if all(isinstance(k, str) for k in out) else out
    if isinstance(a, list) and isinstance(b, list):
        return (a + b)[:MAX_LISTED]
    return a


@dataclass
class PartResult:
    """The counts of one pipeline run over a contiguous subset of the items (a shard).

    ``report`` is the :class:`~synapse_sdk.formats.report.ExportReport` of the part (without
    params), ``data_errors`` / ``original_errors`` its error-list entries, ``first_id`` /
    ``last_id`` the ids it began and ended with. Parts are added in shard order.
    """

    items: int = 0
    exported: int = 0
    failed: int = 0
    data_files: dict[str, int] = field(
        default_factory=lambda: {'stand_by': 0, 'success': 0, 'failed': 0}
    )
    original_files: dict[str, int] = field(
        default_factory=lambda: {'stand_by': 0, 'success': 0, 'failed': 0}
    )
    report: dict[str, Any] = field(default_factory=dict)
    data_errors: list[dict[str, Any]] = field(default_factory=list)
    original_errors: list[dict[str, Any]] = field(default_factory=list)
    first_id: Any = None
    last_id: Any = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (what a worker sends back to the driver)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PartResult:
        return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})

    def __add__(self, other: PartResult) -> PartResult:
        if not isinstance(other, PartResult):
            return NotImplemented
        return PartResult(
            items=self.items + other.items,
            exported=self.exported + other.exported,
            failed=self.failed + other.failed,
            data_files=merge_counts(self.data_files, other.data_files),
            original_files=merge_counts(self.original_files, other.original_files),
            report=merge_counts(self.report, other.report),
            data_errors=self.data_errors + other.data_errors,
            original_errors=self.original_errors + other.original_errors,
            first_id=self.first_id if self.first_id is not None else other.first_id,
            last_id=other.last_id if other.last_id is not None else self.last_id,
        )

    @classmethod
    def combine(cls, parts: list[PartResult]) -> PartResult:
        """The sum of ``parts`` in order (an empty list gives an empty part)."""
        total = cls()
        for part in parts:
            total = total + part
        return total

    @property
    def failed_originals(self) -> int:
        """Originals that could not be saved for their own reason (listed with one)."""
        return len(self.original_errors)

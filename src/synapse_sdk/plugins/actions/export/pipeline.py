"""The item pipeline: every export item takes one path, and its outcome is recorded once.

::

    ItemSource        records -> export items (a record the handler chokes on fails alone)
      begin()         ItemContext: id, unique stem, the source item
      convert         exporter.before_convert -> convert_data -> after_convert
      sink.write()    one call: the item's files are written (template hooks or a format writer)
      recorder.item() the one place outcomes are counted, listed, logged and journalled

:meth:`ItemPipeline.run` takes any iterable of items and a directory and returns a
:class:`~.outcome.PartResult`: a shard is the same pipeline over an id range, written into its
own part directory, and parts add up in order. ``BaseExporter.export`` runs it once over every
item into the export root, then :meth:`BaseExporter.complete` writes the reports.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synapse_sdk.errors import ExportError, ItemExportError
from synapse_sdk.formats.names import StemAllocator
from synapse_sdk.plugins.actions.export.collector import relax_collector
from synapse_sdk.plugins.actions.export.item import (
    BrokenItem,
    ItemContext,
    Journal,
    Sink,
    item_file_name,
)
from synapse_sdk.plugins.actions.export.models import ExportStatus
from synapse_sdk.plugins.actions.export.outcome import OutcomeRecorder, PartResult

if TYPE_CHECKING:
    from synapse_sdk.plugins.actions.export.exporter import BaseExporter

__all__ = ['ItemPipeline', 'ItemSource', 'media_kind', 'plan_stems', 'refuse_media']

DATASET_CONVERSION = 'dataset_conversion'
FAILED = ExportStatus.FAILED

Progress = Callable[[int, int], None]


def describe(exc: BaseException) -> str:
    """An error as one line: SDK errors by their message, others with their type."""
    if isinstance(exc, ItemExportError):
        return str(exc)
    return f'{type(exc).__name__}: {exc}'


class ItemSource:
    """Export items made from records by a handler's ``get_export_item``, one record at a time.

    A handler generator that raises on a record is finished for good, which used to end the
    whole export. Here the failing record becomes a :class:`BrokenItem` (its id and the error)
    and a fresh generator continues with the next record, so one bad record fails alone. An
    error of the record source itself (a failed page) is not a record's fault and propagates.

    ``refuse(record)`` may return a reason to refuse a record without converting it (e.g. a
    media kind the plugin does not declare); it then fails as a ``BrokenItem`` too.
    """

    def __init__(
        self,
        records: Iterable[Any],
        to_items: Callable[[Iterable[Any]], Iterable[Any]],
        refuse: Callable[[Any], str | None] | None = None,
    ) -> None:
        self._records = iter(records)
        self._to_items = to_items
        self._refuse = refuse
        self._pulled = 0
        self._last: Any = None
        self._source_error: BaseException | None = None
        self._refused: list[BrokenItem] = []

    def _tap(self) -> Iterator[Any]:
        while True:
            try:
                record = next(self._records)
            except StopIteration:
                return
            except BaseException as exc:
                self._source_error = exc
                raise
            if self._refuse is not None:
                reason = self._refuse(record)
                if reason is not None:
                    item_id, file = record_label(record)
                    self._refused.append(BrokenItem(item_id, file, reason))
                    continue
            self._pulled += 1
            self._last = record
            yield record

    def __iter__(self) -> Iterator[Any]:
        while True:
            pulled = self._pulled
            items = iter(self._to_items(self._tap()))
            try:
                for item in items:
                    if self._refused:
                        yield from self._drain()
                    yield item
            except Exception as exc:
                if self._source_error is not None or self._pulled == pulled:
                    raise  # not one record's fault: nothing was pulled, or the source failed
                item_id, file = record_label(self._last)
                yield from self._drain()
                yield BrokenItem(item_id, file, f'the record could not be read: {describe(exc)}')
                continue
            yield from self._drain()
            return

    def _drain(self) -> Iterator[BrokenItem]:
        refused, self._refused = self._refused, []
        yield from refused


def record_label(record: Any) -> tuple[Any, str | None]:
    """``(id, file name)`` of a raw record, as far as it can be read."""
    if not isinstance(record, dict):
        return None, None
    unit = record.get('data_unit')
    name = unit.get('name') if isinstance(unit, dict) else None
    return record.get('id'), str(name) if name is not None else None


_KIND = re.compile(r'_\d+$')


def media_kind(record: Any) -> str | None:
    """The kind of a record's primary media (``image_1`` -> ``image``), when it says."""
    unit = record.get('data_unit') if isinstance(record, dict) else None
    files = unit.get('files') if isinstance(unit, dict) else None
    if not isinstance(files, dict) or not files:
        return None
    if len(files) == 1:  # the common case: no order to work out
        return _kind_of(str(next(iter(files))))
    keys = sorted(files)
    key = next((k for k in keys if isinstance(files[k], dict) and files[k].get('is_primary')), None)
    return _kind_of(str(key if key is not None else keys[0]))


@functools.lru_cache(maxsize=256)
def _kind_of(key: str) -> str:
    """``image_1`` -> ``image`` (a run meets a handful of keys, over and over)."""
    return _KIND.sub('', key)


def refuse_media(allowed: Iterable[str]) -> Callable[[Any], str | None] | None:
    """A ``refuse`` for :class:`ItemSource`: records whose media kind is not in ``allowed``."""
    kinds = tuple(str(k) for k in allowed)
    if not kinds:
        return None
    listed = ', '.join(kinds)

    def refuse(record: Any) -> str | None:
        kind = media_kind(record)
        if kind is None or kind in kinds:
            return None
        return f'its media is {kind!r}; this plugin exports annotation_types: {listed}'

    return refuse


def plan_stems(names: Iterable[tuple[Any, str]]) -> dict[Any, tuple[str, str, bool]]:
    """Unique output stems for ``(item id, file name)`` pairs given in export (id) order.

    What a shard driver computes once over the whole selection (names only), so shards that
    run apart name their files exactly as one process would: pass the plan to each shard's
    :class:`ItemPipeline` (``stems=``). Values are ``(stem, ext, renamed)``.
    """
    allocator = StemAllocator()
    plan: dict[Any, tuple[str, str, bool]] = {}
    for item_id, name in names:
        plan[item_id] = allocator.allocate(str(name), fallback=str(item_id))
    return plan


class ItemPipeline:
    """Runs items of one exporter through its sink; see the module docstring.

    ``expected`` is how many items the run expects (for progress and ``stand_by``);
    ``journal`` hears of each settled item; ``on_progress(done, expected)`` is called at most
    about a thousand times per run, and once at the end; ``stems`` (see :func:`plan_stems`)
    names the items instead of the exporter's own allocator; ``on_open()`` runs once the sink
    is open, before the first item (a shard sets up its writer there).
    """

    def __init__(
        self,
        exporter: BaseExporter,
        *,
        expected: int | None = None,
        journal: Journal | None = None,
        on_progress: Progress | None = None,
        stems: Mapping[Any, tuple[str, str, bool]] | None = None,
        on_open: Callable[[], None] | None = None,
    ) -> None:
        self.exporter = exporter
        self.on_open = on_open
        self.expected = int(exporter.params.get('count') or 0) if expected is None else expected
        self.journal = journal
        self.on_progress = on_progress
        self.stems = stems

    def run(self, items: Iterable[Any], part_dir: Path) -> PartResult:
        """Export ``items`` into ``part_dir``; return the part's counts.

        Raises the first failure when the error policy says so (``on_error=fail``, ``strict``),
        after aborting the sink; nothing is left half-open.
        """
        ex = self.exporter
        part_dir = Path(part_dir)
        part_dir.mkdir(parents=True, exist_ok=True)
        strict = ex.strict
        recorder = OutcomeRecorder(
            report=ex.report,
            run=ex.run,
            data_errors=ex.errors_json_file_list,
            original_errors=ex.errors_original_file_list,
            save_original=ex.save_original,
            expected=self.expected,
            policy_fails=strict or ex.on_error == 'fail',
            journal=self.journal,
        )
        ex.recorder = recorder
        sink: Sink = ex.create_sink()
        total = self.expected
        run = ex.run
        report = ex.report
        on_progress = self.on_progress
        # Reported about a thousand (progress) and a hundred (metrics) times per run; an unknown
        # total (0) reports every 100 / 1000 items.
        progress_step = max(1, total // 1000) if total else 100
        metrics_step = max(1, total // 100) if total else 1000
        next_progress = 1
        next_metrics = metrics_step
        index = 0
        run.set_progress(0, total, DATASET_CONVERSION)
        restore_collector = relax_collector()  # fewer collector passes over live items
        try:
            sink.open(part_dir)
            if self.on_open is not None:
                self.on_open()
            for index, raw in enumerate(items, start=1):
                if type(raw) is BrokenItem:
                    recorder.broken(raw, index)
                else:
                    item = self._item(raw, index, sink)
                    recorder.item(item)
                    ex.current = None
                    if strict and (report.clamped or report.skipped):
                        raise ExportError(strict_message(report, item))
                if recorder.fatal is not None:  # the item's own exception is its cause
                    raise recorder.fatal from self.exporter.first_error
                if index >= next_progress:
                    next_progress = index + progress_step
                    run.set_progress(index, max(total, index), DATASET_CONVERSION)
                    if on_progress is not None:
                        on_progress(index, max(total, index))
                if index >= next_metrics:
                    next_metrics = index + metrics_step
                    ex.log_metrics()
            sink.close()
            if recorder.fatal is not None:  # a background original failed at the end
                raise recorder.fatal
        except BaseException:
            ex.current = None
            sink.abort()
            raise
        finally:
            restore_collector()
            ex.run.flush()
        recorder.finish()
        run.set_progress(index, index, DATASET_CONVERSION)
        if on_progress is not None:
            on_progress(index, index)
        ex.log_metrics()
        return ex.part_result()

    def _item(self, raw: Any, index: int, sink: Sink) -> ItemContext:
        """Begin, convert and write one item; any error fails the item (not the run)."""
        ex = self.exporter
        try:
            if self.stems is None:
                item = ex.begin_item(raw, index)
            else:
                stem, ext, renamed = self.stems[raw.get('id')]
                item = ex.begin_item(raw, index, (stem, ext))
                if renamed:
                    ex.report.rename(item_file_name(raw), f'{stem}{ext}')
        except Exception as exc:
            item_id = raw.get('id') if isinstance(raw, dict) else None
            item = ItemContext(item_id, index, str(item_id), '', {}, {})
            item.data_status = FAILED
            item.error = f'not an export item: {describe(exc)}'
            return item
        ex.current = item
        try:
            item.data = ex.after_convert(ex.convert_data(ex.before_convert(raw)))
            item.data_status = sink.write(item)
        except Exception as exc:
            item.data_status = FAILED
            item.error = describe(exc)
            ex.first_error = ex.first_error or exc  # the CLI points at its line
        return item


def strict_message(report: Any, item: ItemContext) -> str:
    """Why a ``strict`` export stops at ``item``: what was skipped or clamped."""
    parts = [f'{n} annotation(s) skipped: {reason}' for reason, n in sorted(report.skipped.items())]
    if report.clamped:
        parts.append(f'{report.clamped} annotation(s) clamped to the image')
    where = f'item {item.id} ({item.file_name})'
    return f'strict: {where}: {"; ".join(parts)}; nothing was published'

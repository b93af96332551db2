"""``BaseExporter``: template exporters whose item loop the engine owns.

A plugin overrides a few template methods (``convert_data`` most often); the engine runs every
item through one pipeline (:mod:`.pipeline`): convert, one sink call, one recorded outcome. It
reports progress and metrics, isolates failing items, downloads original files in parallel and
writes ``error_file_list.json`` and ``export_report.json``.

Default layout under the export directory::

    json/<stem>.json            the converted data of each item (compact UTF-8 JSON)
    origin_files/<stem><ext>    the original file, when ``save_original_file``
    error_file_list.json        every item or file that failed: kind, id, file, reason
    export_report.json          counts, failures, renamed files and the params used
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterable
from concurrent.futures import CancelledError, Future
from pathlib import Path
from typing import Any

import orjson

from synapse_sdk.errors import ExportError
from synapse_sdk.formats.names import StemAllocator
from synapse_sdk.formats.report import ExportReport
from synapse_sdk.plugins.actions.export.item import (
    LOGGED_DATA,
    LOGGED_ORIGINAL,
    ItemContext,
    ItemState,
    Sink,
    item_file_name,
)
from synapse_sdk.plugins.actions.export.models import ExportStatus, MetricsRecord
from synapse_sdk.plugins.actions.export.outcome import (
    OutcomeRecorder,
    PartResult,
    error_entry,
    error_sort_key,
)
from synapse_sdk.plugins.actions.export.pipeline import ItemPipeline
from synapse_sdk.plugins.actions.export.run import ExporterRunAdapter
from synapse_sdk.plugins.actions.export.sinks import JSON_KEY, ORIGIN_KEY, TemplateSink, as_status
from synapse_sdk.plugins.context import RuntimeContext
from synapse_sdk.storage import Downloader, DownloadError, sanitize_url
from synapse_sdk.storage.download import policy_for

__all__ = ['BaseExporter', 'ItemContext', 'ItemState', 'dump_json']

#: Warning lines the result lists at most.
MAX_WARNINGS = 20


def dump_json(path: Path, value: Any) -> None:
    """Write ``value`` as compact UTF-8 JSON, deterministically (sorted keys)."""
    path.write_bytes(orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str))


def dump_json_indented(path: Path, value: Any) -> None:
    """Write ``value`` as indented UTF-8 JSON with sorted keys (reports people read)."""
    option = orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS
    path.write_bytes(orjson.dumps(value, option=option, default=str) + b'\n')


def _records_original(hook: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a ``save_original_file`` so the status it returns is the current item's outcome.

    Whoever calls the hook (the engine, or an overridden ``process_file_saving``), what it
    returns is counted once by the recorder. A download scheduled by ``download_original``
    reports on its own when it ends, so the hook's return value is ignored then.
    """

    @functools.wraps(hook)
    def save_original_file(self: BaseExporter, *args: Any, **kwargs: Any) -> Any:
        result = hook(self, *args, **kwargs)
        item = self.current
        if item is not None and not item.background:
            item.original_status = as_status(result, f'{type(self).__name__}.save_original_file')
        return result

    save_original_file._records_status = True  # type: ignore[attr-defined]
    return save_original_file


class BaseExporter:
    """Base class of template exporters (see the module docstring for the layout).

    ``params`` are the export's params (``name``, ``save_original_file``, ``extra_params``,
    ``strict``, ...) plus ``count`` (items to export) and ``project`` (the project record,
    when known).

    The item being exported is handed to the engine's stages explicitly; template hooks whose
    signatures predate that (``save_original_file``, ``save_as_json``) read it from
    :attr:`current` (id, stem, ext, files, source, split).
    """

    #: Directory names of the default layout.
    json_dir = 'json'
    origin_dir = 'origin_files'

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        hook = cls.__dict__.get('save_original_file')
        if callable(hook) and not getattr(hook, '_records_status', False):
            cls.save_original_file = _records_original(hook)  # type: ignore[method-assign]

    def __init__(
        self,
        ctx: RuntimeContext,
        export_items: Iterable[Any],
        path_root: Path | str,
        **params: Any,
    ) -> None:
        self.ctx = ctx
        self.export_items = export_items
        self.path_root = Path(path_root)
        self.params = params
        self.run = ExporterRunAdapter(ctx.logger)  # Legacy compatibility
        self.run.on_row = self._row_logged
        self.report = ExportReport()
        self.current: ItemContext | None = None
        self.errors_json_file_list: list[Any] = []
        self.errors_original_file_list: list[Any] = []
        #: What ``setup_output_directories`` returned, by role.
        self.output_paths: dict[str, Path] = {}
        #: Records the outcome of each item of the running pipeline.
        self.recorder: OutcomeRecorder | None = None
        self._stems = StemAllocator()
        self._downloader: Downloader | None = None
        self._made_dirs: set[Path] = set()
        #: The first exception an item's conversion raised here (the cause of "every item
        #: failed", so the error shows the plugin's file and line).
        self.first_error: BaseException | None = None

    # -- params --------------------------------------------------------------------------------
    @property
    def save_original(self) -> bool:
        return bool(self.params.get('save_original_file', True))

    @property
    def on_error(self) -> str:
        return str((self.params.get('extra_params') or {}).get('on_error', 'skip'))

    @property
    def strict(self) -> bool:
        """Any skipped or clamped annotation, failed item or failed original fails the run."""
        return bool(self.params.get('strict'))

    # -- template methods (override these) -----------------------------------------------
    @classmethod
    def check_params(cls, params: dict[str, Any], project: dict[str, Any] | None) -> None:
        """Refuse bad params (``extra_params`` options most often) with ``ParamsError``.

        Called before anything is created or fetched; ``project`` is the project record the
        filter names, when there is one.
        """

    def before_convert(self, data: Any) -> Any:
        """Pre-process an export item before :meth:`convert_data`."""
        return data

    def convert_data(self, data: Any) -> Any:
        """Transform an export item ``{"id", "data", "files"}`` into what is saved."""
        return data

    def after_convert(self, data: Any) -> Any:
        """Post-process the converted data."""
        return data

    def setup_output_directories(
        self, unique_export_path: Path, save_original_file_flag: bool
    ) -> dict[str, Path]:
        """Create the output directories once; return them by role.

        The default ``process_file_saving`` needs ``json_output_path`` (and
        ``origin_files_output_path`` when originals are saved); an exporter that overrides
        ``process_file_saving`` may return keys of its own (see :attr:`output_paths`).
        """
        paths = {JSON_KEY: unique_export_path / self.json_dir}
        if save_original_file_flag:
            paths[ORIGIN_KEY] = unique_export_path / self.origin_dir
        for path in paths.values():
            path.mkdir(parents=True, exist_ok=True)
        return paths

    @_records_original
    def save_original_file(
        self, result: Any, base_path: Path, error_file_list: list[Any]
    ) -> ExportStatus:
        """Save the current item's original file into ``base_path``; return its status.

        The default downloads it in the background and returns ``STAND_BY``; the download's
        outcome is counted when it ends. An override may copy synchronously and return
        ``SUCCESS`` or ``FAILED`` (listing the reason in ``error_file_list``).
        """
        item = self._require_current()
        url = item.files.get('url') or item.files.get('path')
        if not url:
            error_file_list.append(
                {'id': item.id, 'file': item.file_name, 'reason': 'the item has no original file'}
            )
            return ExportStatus.FAILED
        self.download_original(str(url), base_path / f'{item.stem}{item.ext}', error_file_list)
        return ExportStatus.STAND_BY

    def save_as_json(
        self, result: Any, base_path: Path, error_file_list: list[Any]
    ) -> ExportStatus:
        """Write ``result`` to ``base_path/<stem>.json``; return its status."""
        item = self._require_current()
        path = os.path.join(base_path, item.stem + '.json')
        try:
            data = orjson.dumps(result, option=orjson.OPT_SORT_KEYS, default=str)
            with open(path, 'wb') as fh:
                fh.write(data)
        except (TypeError, OSError) as exc:
            if isinstance(exc, OSError):  # no partial file stays behind
                with contextlib.suppress(OSError):
                    os.unlink(path)
            error_file_list.append(
                {'id': item.id, 'file': item.file_name, 'reason': f'could not write JSON: {exc}'}
            )
            return ExportStatus.FAILED
        return ExportStatus.SUCCESS

    def process_file_saving(
        self,
        final_data: Any,
        unique_export_path: Path,
        save_original_file_flag: bool,
        errors_json_file_list: list[Any],
        errors_original_file_list: list[Any],
        original_file_metrics_record: MetricsRecord,
        data_file_metrics_record: MetricsRecord,
        current_index: int,
    ) -> bool:
        """Save one item's files (legacy hook). Return False when its data was not saved.

        The engine counts the outcome; the metrics records handed in are scratch records of
        this item (counting on them is read as the item's outcome, never double counted).
        """
        if save_original_file_flag:
            self.save_original_file(
                final_data, self._output_path(ORIGIN_KEY), errors_original_file_list
            )
        status = self.save_as_json(final_data, self._output_path(JSON_KEY), errors_json_file_list)
        return as_status(status, 'save_as_json') is ExportStatus.SUCCESS

    def additional_file_saving(self, unique_export_path: Path) -> None:
        """Write extra files once every item is saved (metadata, indexes, ...)."""

    # -- helpers for subclasses --------------------------------------------------------------
    def download_original(
        self,
        url: str,
        dest: Path,
        error_file_list: list[Any] | None = None,
        *,
        item: ItemContext | None = None,
    ) -> Future[Path]:
        """Download ``url`` to ``dest`` in the background; its outcome is ``item``'s original
        (default: the current item's).

        A failure is listed in ``errors_original_file_list`` with the downloader's reason.
        """
        item = self._require_current() if item is None else item
        recorder = self.recorder
        if recorder is None:
            raise RuntimeError('download_original is only available while items are exported')
        if self._downloader is None:
            self._downloader = Downloader(
                max_workers=int(self.params.get('download_workers', 8)),
                policy=policy_for(self.ctx.client),  # originals only from the backend's media
            )
        parent = dest.parent
        if parent not in self._made_dirs:
            parent.mkdir(parents=True, exist_ok=True)
            self._made_dirs.add(parent)
        item.background = True
        item.original_status = ExportStatus.STAND_BY
        future = self._downloader.submit(
            url, dest, size=item.files.get('size'), checksum=item.files.get('checksum')
        )

        def done(fut: Future[Path], item: ItemContext = item) -> None:
            exc: BaseException | None
            try:
                exc = fut.exception()
            except CancelledError:
                exc = CancelledError('download cancelled')
            if exc is None:
                recorder.original(item, ExportStatus.SUCCESS)
            else:
                detail = exc.reason if isinstance(exc, DownloadError) else exc
                reason = f'download of {sanitize_url(url)} failed: {detail}'
                recorder.original(item, ExportStatus.FAILED, reason)

        future.add_done_callback(done)
        return future

    def count_original(self, item: ItemContext, ok: bool) -> None:
        """Say how ``item``'s original ended (for originals saved outside the hooks)."""
        status = ExportStatus.SUCCESS if ok else ExportStatus.FAILED
        if self.recorder is not None and item.recorded:
            self.recorder.original(item, status)
        else:
            item.original_status = status

    def count_data(self, ok: bool) -> None:
        """Say how the current item's data file ended (legacy ``process_file_saving``)."""
        if self.current is not None:
            self.current.data_status = ExportStatus.SUCCESS if ok else ExportStatus.FAILED

    def wait_for_downloads(self, cancel: bool = False) -> None:
        """Wait for (or, with ``cancel``, stop) the background downloads."""
        if self._downloader is not None:
            # Forgotten only once closed: a close cut short by a signal must be waited for again
            # by the rollback, or download threads write into a staging dir being removed.
            self._downloader.close(cancel=cancel)
            self._downloader = None

    def allocate_stem(self, item: dict[str, Any]) -> tuple[str, str]:
        """The unique output ``(stem, ext)`` of an item, from its original file name."""
        name = item_file_name(item)
        stem, ext, renamed = self._stems.allocate(name, fallback=str(item.get('id')))
        if renamed:
            self.report.rename(name, f'{stem}{ext}')
        return stem, ext

    # -- the engine --------------------------------------------------------------------------
    def create_sink(self) -> Sink:
        """The sink items are written to: the template hooks (format exporters: a writer)."""
        return TemplateSink(self)

    def begin_item(
        self, export_item: dict[str, Any], index: int, stem: tuple[str, str] | None = None
    ) -> ItemContext:
        """The context of one export item: its id and unique output name (``stem``: planned
        ahead by a shard driver, see :func:`~.pipeline.plan_stems`)."""
        name, ext = self.allocate_stem(export_item) if stem is None else stem
        files = export_item.get('files')
        return ItemContext(
            export_item.get('id'), index, name, ext, files if isinstance(files, dict) else {},
            export_item,
        )  # fmt: skip

    def export(self, on_progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
        """Run every item through the pipeline, then :meth:`complete`. Returns the summary;
        raises ``ExportError`` when the export fails."""
        expected = int(self.params.get('count') or 0)
        self.report.params = {k: v for k, v in self.params.items() if k != 'project'}
        pipeline = ItemPipeline(self, expected=expected, on_progress=on_progress)
        part = pipeline.run(self.export_items, self.path_root)
        return self.complete([part], expected)

    def complete(self, parts: list[PartResult], expected: int | None = None) -> dict[str, Any]:
        """Finish an export made of ``parts`` (in order): extra files, reports, the verdict."""
        part = PartResult.combine(parts)
        expected = part.items if expected is None else expected
        self.additional_file_saving(self.path_root)
        self.write_reports(part, expected)
        if part.items and part.failed == part.items:
            reasons = '; '.join(f'item {e["id"]}: {e["reason"]}' for e in part.data_errors[:3])
            raise ExportError(
                f'Every item failed ({part.items}), e.g. {reasons}'
            ) from self.first_error
        if self.strict:
            problems = strict_problems(part)
            if problems:
                raise ExportError(f'strict: {"; ".join(problems)}; nothing was published')
        return self.summary(part, expected)

    def summary(self, part: PartResult, expected: int) -> dict[str, Any]:
        """The export's figures as the action's result reports them."""
        report = part.report
        return {
            'exported_count': part.exported,
            'failed_count': part.failed,
            'total_count': part.items,
            'expected_count': expected,
            'original_file_metrics': dict(part.original_files),
            'data_file_metrics': dict(part.data_files),
            'failed_original_count': part.failed_originals,
            'skipped': dict(report.get('skipped_reasons') or {}),
            'converted': dict(report.get('converted_reasons') or {}),
            'clamped': int((report.get('annotations') or {}).get('clamped') or 0),
            'warnings': warnings(part, expected, self.save_original),
            'errors': sorted_errors(part),
        }

    def log_metrics(self) -> None:
        """Report the ``data_file`` (and ``original_file``) metrics now."""
        if self.recorder is None:
            return
        data, original = self.recorder.metrics()
        self.run.log_metrics(data, 'data_file')
        if self.save_original:
            self.run.log_metrics(original, 'original_file')

    def part_result(self) -> PartResult:
        """The counts of the pipeline run that just ended, as a :class:`PartResult`."""
        recorder = self.recorder
        if recorder is None:
            return PartResult()
        data, original = recorder.metrics()
        self.report.items_total = recorder.items
        report = self.report.to_dict()
        report.pop('params', None)
        return PartResult(
            items=recorder.items,
            exported=self.report.items_exported,
            failed=self.report.items_failed,
            data_files=data,
            original_files=original,
            report=report,
            data_errors=[error_entry(e) for e in self.errors_json_file_list],
            original_errors=[error_entry(e) for e in self.errors_original_file_list],
            first_id=recorder.first_id,
            last_id=recorder.last_id,
        )

    def write_reports(self, part: PartResult | None = None, expected: int | None = None) -> None:
        """Write ``error_file_list.json`` (ordered by kind, then id as a number) and
        ``export_report.json`` at the export root, indented."""
        part = self.part_result() if part is None else part
        dump_json_indented(self.path_root / 'error_file_list.json', sorted_errors(part))
        report = dict(part.report)
        report['params'] = self.report.params
        report['original_files'] = dict(part.original_files)
        report['data_files'] = dict(part.data_files)
        report['failed_original_count'] = part.failed_originals
        report['expected_total'] = part.items if expected is None else expected
        dump_json_indented(self.path_root / 'export_report.json', report)

    # -- internals -----------------------------------------------------------------------------
    def _require_current(self) -> ItemContext:
        if self.current is None:
            raise RuntimeError('No item is being exported')
        return self.current

    def _output_path(self, key: str) -> Path:
        try:
            return self.output_paths[key]
        except KeyError:
            raise ExportError(
                f'{type(self).__name__}.setup_output_directories returned no {key!r}'
            ) from None

    def _row_logged(self, kind: str, item_id: Any) -> None:
        item = self.current
        if item is not None and item.id == item_id:
            item.logged |= LOGGED_DATA if kind == 'data_file' else LOGGED_ORIGINAL


def sorted_errors(part: PartResult) -> list[dict[str, Any]]:
    """Every error entry with its kind, ordered by kind, then id as a number."""
    errors = [{'kind': 'data_file', **e} for e in part.data_errors]
    errors += [{'kind': 'original_file', **e} for e in part.original_errors]
    errors.sort(key=error_sort_key)
    return errors


def _n(count: int, noun: str) -> str:
    return f'{count} {noun}' if count == 1 else f'{count} {noun}s'


def strict_problems(part: PartResult) -> list[str]:
    """What makes a ``strict`` export fail: skipped or clamped annotations, failed items or
    originals."""
    report = part.report
    problems = [
        f'{_n(n, "annotation")} skipped: {reason}'
        for reason, n in (report.get('skipped_reasons') or {}).items()
    ]
    clamped = int((report.get('annotations') or {}).get('clamped') or 0)
    if clamped:
        problems.append(f'{_n(clamped, "annotation")} clamped to the image')
    if part.failed:
        problems.append(f'{_n(part.failed, "item")} failed')
    originals = int(part.original_files.get('failed') or 0)
    if originals and not part.failed:
        problems.append(f'{_n(originals, "original file")} could not be saved')
    return problems


def warnings(part: PartResult, expected: int, save_original: bool) -> list[str]:
    """Short human lines about everything that did not go as asked."""
    report = part.report
    lines = [
        f'{_n(n, "annotation")} skipped: {reason}'
        for reason, n in (report.get('skipped_reasons') or {}).items()
    ]
    lines += [
        f'{_n(n, "annotation")} converted: {what}'
        for what, n in (report.get('converted_reasons') or {}).items()
    ]
    clamped = int((report.get('annotations') or {}).get('clamped') or 0)
    if clamped:
        lines.append(f'{_n(clamped, "annotation")} clamped to the image bounds')
    # What a writer warned about (report.extra['warnings']); once, though every shard says it.
    lines += dict.fromkeys(str(w) for w in report.get('warnings') or ())
    if part.failed:
        lines.append(f'{_n(part.failed, "item")} failed (see error_file_list.json)')
    if save_original and part.failed_originals:
        lines.append(
            f'{_n(part.failed_originals, "original file")} could not be saved '
            '(see error_file_list.json)'
        )
    if expected != part.items:
        change = part.items - expected
        moved = 'added to' if change > 0 else 'removed from'
        lines.append(
            f'{_n(abs(change), "record")} {moved} the selection during the export: '
            f'{expected} expected, {part.items} exported or failed'
        )
    if len(lines) > MAX_WARNINGS:
        lines = [*lines[: MAX_WARNINGS - 1], f'... and {len(lines) - MAX_WARNINGS + 1} more']
    return lines

"""``BaseExporter``: template exporters whose item loop the engine owns.

A plugin overrides a few template methods (``convert_data`` most often); the engine runs the
loop over export items, reports progress and metrics, isolates failing items, downloads
original files in parallel and writes ``error_file_list.json`` and ``export_report.json``.

Default layout under the export directory::

    json/<stem>.json            the converted data of each item (compact UTF-8 JSON)
    origin_files/<stem><ext>    the original file, when ``save_original_file``
    error_file_list.json        every item or file that failed: id, file, reason
    export_report.json          counts, failures, renamed files and the params used
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from synapse_sdk.errors import ExportError, ItemExportError
from synapse_sdk.formats.names import StemAllocator
from synapse_sdk.formats.report import ExportReport
from synapse_sdk.plugins.actions.export.models import ExportStatus, MetricsRecord
from synapse_sdk.plugins.actions.export.run import ExporterRunAdapter
from synapse_sdk.plugins.context import RuntimeContext
from synapse_sdk.storage import Downloader, DownloadError, sanitize_url
from synapse_sdk.storage.download import policy_for

DATASET_CONVERSION = 'dataset_conversion'


@dataclass
class ItemState:
    """The item being exported: its id, source files and the unique output stem."""

    id: Any
    stem: str
    ext: str
    files: dict[str, Any]
    source: dict[str, Any] = field(default_factory=dict)
    split: str | None = None
    original_handled: bool = False  # its original was fetched, scheduled or found missing

    @property
    def file_name(self) -> str:
        return str(self.files.get('file_name_original') or f'{self.stem}{self.ext}')


def dump_json(path: Path, value: Any) -> None:
    """Write ``value`` as compact UTF-8 JSON, deterministically (sorted keys)."""
    path.write_bytes(orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str))


class BaseExporter:
    """Base class of template exporters (see the module docstring for the layout).

    ``params`` are the export's params (``name``, ``save_original_file``, ``extra_params``,
    ...) plus ``count`` (items to export) and ``project`` (the project record, when known).
    """

    #: Directory names of the default layout.
    json_dir = 'json'
    origin_dir = 'origin_files'

    def __init__(
        self,
        ctx: RuntimeContext,
        export_items: Iterable[dict[str, Any]],
        path_root: Path | str,
        **params: Any,
    ) -> None:
        self.ctx = ctx
        self.export_items = export_items
        self.path_root = Path(path_root)
        self.params = params
        self.run = ExporterRunAdapter(ctx.logger)  # Legacy compatibility
        self.report = ExportReport()
        self.current: ItemState | None = None
        self.errors_json_file_list: list[dict[str, Any]] = []
        self.errors_original_file_list: list[dict[str, Any]] = []
        self._stems = StemAllocator()
        self._lock = threading.Lock()
        self._downloader: Downloader | None = None
        self._in_flight = threading.BoundedSemaphore(64)
        self._original_metrics = MetricsRecord()
        self._data_metrics = MetricsRecord()
        self._output_paths: dict[str, Path] = {}
        self._failed_before = 0
        self._first_error: BaseException | None = None  # the cause shown when every item fails

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
        """Create the output directories; return them by role."""
        paths = {'json_output_path': unique_export_path / self.json_dir}
        if save_original_file_flag:
            paths['origin_files_output_path'] = unique_export_path / self.origin_dir
        for path in paths.values():
            path.mkdir(parents=True, exist_ok=True)
        return paths

    def save_original_file(
        self, result: Any, base_path: Path, error_file_list: list[dict[str, Any]]
    ) -> ExportStatus:
        """Schedule the download of the current item's original file into ``base_path``.

        Returns ``STAND_BY``: the download runs in the background; its outcome is counted in
        the ``original_file`` metrics and, on failure, in ``error_file_list``.
        """
        item = self._require_current()
        url = item.files.get('url') or item.files.get('path')
        if not url:
            self._record_error(error_file_list, item, 'the item has no original file url')
            self.count_original(item, ok=False)
            return ExportStatus.FAILED
        self.download_original(str(url), base_path / f'{item.stem}{item.ext}', error_file_list)
        return ExportStatus.STAND_BY

    def save_as_json(
        self, result: Any, base_path: Path, error_file_list: list[dict[str, Any]]
    ) -> ExportStatus:
        """Write ``result`` to ``base_path/<stem>.json``."""
        item = self._require_current()
        try:
            dump_json(base_path / f'{item.stem}.json', result)
        except (TypeError, OSError) as exc:
            self._record_error(error_file_list, item, f'could not write JSON: {exc}')
            return ExportStatus.FAILED
        return ExportStatus.SUCCESS

    def process_file_saving(
        self,
        final_data: Any,
        unique_export_path: Path,
        save_original_file_flag: bool,
        errors_json_file_list: list[dict[str, Any]],
        errors_original_file_list: list[dict[str, Any]],
        original_file_metrics_record: MetricsRecord,
        data_file_metrics_record: MetricsRecord,
        current_index: int,
    ) -> bool:
        """Save one item's files. Return False when the item's data could not be saved."""
        item = self._require_current()
        if save_original_file_flag:
            self.save_original_file(
                final_data,
                self._output_paths['origin_files_output_path'],
                errors_original_file_list,
            )
        status = self.save_as_json(
            final_data, self._output_paths['json_output_path'], errors_json_file_list
        )
        self.run.export_log_data_file(item.id, item.file_name, status)
        self.count_data(ok=status == ExportStatus.SUCCESS)
        return status == ExportStatus.SUCCESS

    def additional_file_saving(self, unique_export_path: Path) -> None:
        """Write extra files once every item is saved (metadata, indexes, ...)."""

    # -- helpers for subclasses --------------------------------------------------------------
    def download_original(
        self, url: str, dest: Path, error_file_list: list[dict[str, Any]] | None = None
    ) -> Future[Path]:
        """Download ``url`` to ``dest`` in the background, bounded, with metrics and logs."""
        item = self._require_current()
        errors = self.errors_original_file_list if error_file_list is None else error_file_list
        if self._downloader is None:
            self._downloader = Downloader(
                max_workers=int(self.params.get('download_workers', 8)),
                policy=policy_for(self.ctx.client),  # originals only from the backend's media
            )
        dest.parent.mkdir(parents=True, exist_ok=True)
        self._in_flight.acquire()
        future = self._downloader.submit(
            url, dest, size=item.files.get('size'), checksum=item.files.get('checksum')
        )
        item.original_handled = True

        def done(fut: Future[Path], item: ItemState = item) -> None:
            self._in_flight.release()
            exc: BaseException | None
            try:
                exc = fut.exception()
            except CancelledError:
                exc = CancelledError('download cancelled')
            self.count_original(item, ok=exc is None)
            if exc is None:
                self.run.export_log_original_file(item.id, item.file_name, ExportStatus.SUCCESS)
            else:
                detail = exc.reason if isinstance(exc, DownloadError) else exc
                reason = f'download of {sanitize_url(url)} failed: {detail}'
                self._record_error(errors, item, reason)
                self.run.export_log_original_file(
                    item.id, item.file_name, ExportStatus.FAILED, reason
                )

        future.add_done_callback(done)
        return future

    def count_original(self, item: ItemState, ok: bool) -> None:
        """Move one original file out of ``stand_by`` into ``success`` or ``failed``."""
        item.original_handled = True
        with self._lock:
            self._original_metrics.stand_by -= 1
            if ok:
                self._original_metrics.success += 1
            else:
                self._original_metrics.failed += 1

    def count_data(self, ok: bool) -> None:
        """Move one data file out of ``stand_by`` into ``success`` or ``failed``."""
        with self._lock:
            self._data_metrics.stand_by -= 1
            if ok:
                self._data_metrics.success += 1
            else:
                self._data_metrics.failed += 1

    def wait_for_downloads(self) -> None:
        if self._downloader is not None:
            self._downloader.close()
            self._downloader = None

    def allocate_stem(self, item: dict[str, Any]) -> tuple[str, str]:
        """The unique output ``(stem, ext)`` of an item, from its original file name."""
        files = item.get('files') or {}
        unit = item.get('data_unit') or {}
        name = files.get('file_name_original') or unit.get('name') or str(item.get('id'))
        stem, ext, renamed = self._stems.allocate(str(name), fallback=str(item.get('id')))
        if renamed:
            self.report.rename(str(name), f'{stem}{ext}')
        return stem, ext

    def _require_current(self) -> ItemState:
        if self.current is None:
            raise RuntimeError('No item is being exported')
        return self.current

    def _record_error(self, errors: list[dict[str, Any]], item: ItemState, reason: str) -> None:
        with self._lock:
            errors.append({'id': item.id, 'file': item.file_name, 'reason': reason})

    # -- the engine --------------------------------------------------------------------------
    @property
    def on_error(self) -> str:
        return str((self.params.get('extra_params') or {}).get('on_error', 'skip'))

    def export(self, on_progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
        """Run the item loop. Returns a summary; raises ``ExportError`` when the export fails."""
        total = int(self.params.get('count') or 0)
        save_original = bool(self.params.get('save_original_file', True))
        self.report.items_total = total
        self.report.params = {k: v for k, v in self.params.items() if k not in ('project',)}
        self._data_metrics = MetricsRecord(stand_by=total)
        self._original_metrics = MetricsRecord(stand_by=total if save_original else 0)
        self.path_root.mkdir(parents=True, exist_ok=True)
        self._output_paths = self.setup_output_directories(self.path_root, save_original)
        self.run.set_progress(0, total, DATASET_CONVERSION)
        interval = max(1, total // 100)
        index = 0
        try:
            for index, export_item in enumerate(self.export_items, start=1):
                self._export_one(index, export_item, save_original)
                self.run.set_progress(index, total, DATASET_CONVERSION)
                if on_progress is not None:
                    on_progress(index, total)
                if index % interval == 0:
                    self._log_metrics()
            self.wait_for_downloads()
            self.current = None
            self.additional_file_saving(self.path_root)
        finally:
            self.wait_for_downloads()
            self.run.flush()
        self.report.items_total = max(total, index)
        self._log_metrics()
        self.write_reports()
        if index and self.report.items_failed == index:
            reasons = '; '.join(
                f'item {e["id"]}: {e["reason"]}' for e in self.errors_json_file_list[:3]
            )
            raise ExportError(f'Every item failed ({index}), e.g. {reasons}') from self._first_error
        return {
            'exported_count': self.report.items_exported,
            'failed_count': self.report.items_failed,
            'total_count': index,
            'original_file_metrics': self._original_metrics.to_dict(),
            'data_file_metrics': self._data_metrics.to_dict(),
        }

    def _export_one(self, index: int, export_item: dict[str, Any], save_original: bool) -> None:
        stem, ext = self.allocate_stem(export_item)
        self.current = ItemState(
            id=export_item.get('id'),
            stem=stem,
            ext=ext,
            files=dict(export_item.get('files') or {}),
            source=export_item,
        )
        pending = self._data_metrics.stand_by
        try:
            self._save_one(index, export_item, save_original)
        finally:
            # Whatever the item's own code did not count, the engine counts here, so the
            # metrics always add up (a failed item's data and unattempted original: failed).
            failed = self.report.items_failed > self._failed_before
            if self._data_metrics.stand_by == pending:
                self.count_data(ok=not failed)
            if failed and save_original and not self.current.original_handled:
                self.count_original(self.current, ok=False)
            self._failed_before = self.report.items_failed

    def _save_one(self, index: int, export_item: dict[str, Any], save_original: bool) -> None:
        assert self.current is not None
        try:
            data = self.after_convert(self.convert_data(self.before_convert(export_item)))
            saved = self.process_file_saving(
                data,
                self.path_root,
                save_original,
                self.errors_json_file_list,
                self.errors_original_file_list,
                self._original_metrics,
                self._data_metrics,
                index,
            )
        except Exception as exc:
            reason = f'{type(exc).__name__}: {exc}'
            self._first_error = self._first_error or exc
            self._fail_item(reason)
            if self.on_error == 'fail':
                raise ItemExportError(
                    reason, item_id=self.current.id, file=self.current.file_name
                ) from exc
            return
        if saved:
            self.report.count_item(self.current.split)
        else:
            self._fail_item('the data file could not be saved')
            if self.on_error == 'fail':
                raise ItemExportError(
                    'the data file could not be saved',
                    item_id=self.current.id,
                    file=self.current.file_name,
                )

    def _fail_item(self, reason: str) -> None:
        item = self._require_current()
        self.report.fail_item(item.id, item.file_name, reason)
        known = {e['id'] for e in self.errors_json_file_list[-1:]}
        if item.id not in known:
            self._record_error(self.errors_json_file_list, item, reason)

    def _log_metrics(self) -> None:
        with self._lock:
            data, original = self._data_metrics.to_dict(), self._original_metrics.to_dict()
        self.run.log_metrics(data, 'data_file')
        if self.params.get('save_original_file', True):
            self.run.log_metrics(original, 'original_file')

    def write_reports(self) -> None:
        """Write ``error_file_list.json`` and ``export_report.json`` at the export root."""
        errors = [{'kind': 'data_file', **e} for e in self.errors_json_file_list] + [
            {'kind': 'original_file', **e} for e in self.errors_original_file_list
        ]
        errors.sort(key=lambda e: (str(e['kind']), str(e['id'])))
        dump_json(self.path_root / 'error_file_list.json', errors)
        report = self.report.to_dict()
        report['original_files'] = self._original_metrics.to_dict()
        report['data_files'] = self._data_metrics.to_dict()
        dump_json(self.path_root / 'export_report.json', report)

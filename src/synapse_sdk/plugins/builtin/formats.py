"""The built-in format exporters: COCO, YOLO, Pascal VOC, CSV and DM JSON.

Each is an ordinary template exporter on the public API (what a plugin author could write): it
drives a streaming :class:`~synapse_sdk.formats.base.FormatWriter`, places original images
where the format wants them, and lets the engine own the loop, progress and error policy.

``extra_params`` understood here (besides each format's own options): ``split`` (ratios or
``"category"``), ``seed`` (split seed, default 0) and ``on_error`` (``skip`` | ``fail``).
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Any, ClassVar

from synapse_sdk.errors import ExportError, ItemExportError, ParamsError
from synapse_sdk.formats import get_writer
from synapse_sdk.formats.base import FormatItem, FormatWriter
from synapse_sdk.formats.classmap import ClassMap
from synapse_sdk.formats.images import image_size
from synapse_sdk.plugins.actions.export import BaseExporter, ExportAction, MetricsRecord
from synapse_sdk.plugins.actions.export.models import ExportStatus


class FormatExporter(BaseExporter):
    """Exports items through the format writer named by ``format_name``."""

    format_name: ClassVar[str] = ''

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.writer: FormatWriter | None = None
        self._seed = 0

    @classmethod
    def check_params(cls, params: dict[str, Any], project: dict[str, Any] | None) -> None:
        """The project must have a class list; the format's options must be valid."""
        if not (project or {}).get('configuration', {}).get('classes'):
            raise ParamsError(
                f'{cls.format_name} export needs the project class list',
                [('filter', 'must name a project (or ground-truth version) with classes')],
            )
        options = dict(params.get('extra_params') or {})
        get_writer(cls.format_name).validate_options(options)
        seed = options.get('seed', 0)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ParamsError('Invalid extra_params', [('extra_params.seed', 'must be an integer')])

    def setup_output_directories(
        self, unique_export_path: Path, save_original_file_flag: bool
    ) -> dict[str, Path]:
        project = self.params.get('project') or {}
        configuration = project.get('configuration') if isinstance(project, dict) else None
        if not configuration:
            raise ExportError(f'{self.format_name}: the project configuration is missing')
        options = dict(self.params.get('extra_params') or {})
        self._seed = int(options.get('seed', 0))
        writer_cls = get_writer(self.format_name)
        self.writer = writer_cls(
            unique_export_path, ClassMap.from_configuration(configuration), options, self.report
        )
        self.writer.start()
        return {}

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
        assert self.writer is not None
        state = self._require_current()
        source = final_data if isinstance(final_data, dict) else state.source
        unit = source.get('data_unit') or {}
        data = source.get('data') or {}
        # A split planned for the whole selection (keyed by data unit) wins over the writer's.
        state.split = source.get('split') or self.writer.split_spec.assign(
            state.id, source.get('category'), self._seed
        )
        item = FormatItem(
            id=state.id,
            stem=state.stem,
            ext=state.ext,
            split=state.split,
            width=unit.get('width'),
            height=unit.get('height'),
            annotations=list(data.get('annotations') or []),
            classifications=dict(data.get('classifications') or {}),
            source=source,
        )
        rel = self.writer.image_relpath(item)
        url = state.files.get('url') or state.files.get('path')
        dest = unique_export_path / rel if rel and save_original_file_flag else None
        fetched = False  # the original was already fetched, to read its size
        if self.writer.needs_size and not (item.width and item.height):
            item.width, item.height = self._size_from_header(url, dest)
            fetched, dest = dest is not None and dest.exists(), None
        try:
            self.writer.write_item(item)
        except BaseException:
            if fetched and rel:
                (unique_export_path / rel).unlink(missing_ok=True)
            raise
        if fetched:
            self.count_original(state, ok=True)
            self.run.export_log_original_file(state.id, state.file_name, ExportStatus.SUCCESS)
        if dest is not None and url:
            self.download_original(str(url), dest, errors_original_file_list)
        elif save_original_file_flag and rel and not url:
            self._record_error(errors_original_file_list, state, 'the item has no original file')
            self.count_original(state, ok=False)
        self.run.export_log_data_file(state.id, state.file_name, ExportStatus.SUCCESS)
        self.count_data(ok=True)
        return True

    def _size_from_header(self, url: Any, dest: Path | None) -> tuple[int | None, int | None]:
        """Image size from the original file's header (downloaded to ``dest`` or a temp)."""
        state = self._require_current()
        if not url:
            return None, None
        from synapse_sdk.storage import Downloader
        from synapse_sdk.storage.download import policy_for

        with Downloader(max_workers=1, policy=policy_for(self.ctx.client)) as downloader:
            if dest is not None:
                try:
                    downloader.download(
                        str(url),
                        dest,
                        size=state.files.get('size'),
                        checksum=state.files.get('checksum'),
                    )
                except Exception as exc:
                    raise ItemExportError(
                        f'image size unknown and the original could not be read: {exc}',
                        item_id=state.id,
                        file=state.file_name,
                    ) from exc
                size = image_size(dest)
            else:
                with tempfile.TemporaryDirectory() as tmp:
                    path = Path(tmp) / f'probe{state.ext}'
                    downloader.download(str(url), path)
                    size = image_size(path)
        return size if size else (None, None)

    def additional_file_saving(self, unique_export_path: Path) -> None:
        assert self.writer is not None
        self.writer.finish()
        if not self.params.get('save_original_file', True):
            remove_empty_image_dirs(unique_export_path)

    def export(self, on_progress: Any = None) -> dict[str, Any]:
        try:
            return super().export(on_progress=on_progress)
        except BaseException:
            if self.writer is not None:
                self.writer.abort()
            raise


#: Folders the writers make for original images (``images/<split>``, ``JPEGImages``).
IMAGE_DIRS = ('images', 'JPEGImages')


def remove_empty_image_dirs(root: Path) -> None:
    """An export without originals keeps no empty image folders (only empty ones go)."""
    for name in IMAGE_DIRS:
        top = root / name
        if not top.is_dir():
            continue
        below = sorted((p for p in top.rglob('*') if p.is_dir()), key=lambda p: -len(p.parts))
        for directory in [*below, top]:
            with contextlib.suppress(OSError):  # not empty: an image is there
                directory.rmdir()


def _exporter(fmt: str) -> type[FormatExporter]:
    return type(f'{fmt.capitalize()}Exporter', (FormatExporter,), {'format_name': fmt})


class _FormatExportAction(ExportAction):
    exporter: ClassVar[type[FormatExporter]]

    @property
    def entrypoint(self) -> type[BaseExporter]:
        return self.exporter


def _action(exporter: type[FormatExporter]) -> type[ExportAction]:
    """The export action of a built-in format (what config.yaml's entrypoint names)."""
    name = exporter.__name__.replace('Exporter', 'ExportAction')
    attrs = {'action_name': 'export', 'exporter': exporter, '__module__': __name__}
    return type(name, (_FormatExportAction,), attrs)


CocoExporter = _exporter('coco')
YoloExporter = _exporter('yolo')
VocExporter = _exporter('voc')
CsvExporter = _exporter('csv')
DmExporter = _exporter('dm')

CocoExportAction = _action(CocoExporter)
YoloExportAction = _action(YoloExporter)
VocExportAction = _action(VocExporter)
CsvExportAction = _action(CsvExporter)
DmExportAction = _action(DmExporter)

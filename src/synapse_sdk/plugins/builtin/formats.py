"""The built-in format exporters: COCO, YOLO, Pascal VOC, CSV, DM JSON, CVAT, LabelMe and
Parquet.

Each is a template exporter on the public API whose sink is a streaming
:class:`~synapse_sdk.formats.base.FormatWriter`, driven directly through its own life
(``start`` / ``image_relpath`` / ``write_item`` / ``finish`` or ``abort``): the engine owns the
loop, the error policy and the counting; the writer converts and writes one item; originals go
where ``image_relpath`` says. A plugin may subclass an exporter here (``convert_data`` to adjust
records, ``additional_file_saving`` for extra files) and keep the writer.

``extra_params`` understood here (besides each format's own options): ``split`` (ratios or
``"category"``), ``seed`` (split seed, default 0) and ``on_error`` (``skip`` | ``fail``). An
item that already carries a ``split`` (planned over the whole selection) keeps it.
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
from synapse_sdk.plugins.actions.export import BaseExporter, ExportAction
from synapse_sdk.plugins.actions.export.item import ItemContext, Sink
from synapse_sdk.plugins.actions.export.models import ExportStatus

SUCCESS = ExportStatus.SUCCESS


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


class WriterSink:
    """Writes each item with a format writer (the ``Sink`` of :class:`FormatExporter`)."""

    def __init__(self, exporter: FormatExporter) -> None:
        self.exporter = exporter
        self.writer: FormatWriter | None = None
        self.root = Path('.')
        self.save_original = exporter.save_original
        self.seed = 0
        self._made: set[Path] = set()

    def open(self, root: Path) -> None:
        ex = self.exporter
        project = ex.params.get('project') or {}
        configuration = project.get('configuration') if isinstance(project, dict) else None
        if not configuration:
            raise ExportError(f'{ex.format_name}: the project configuration is missing')
        options = dict(ex.params.get('extra_params') or {})
        self.seed = int(options.get('seed', 0))
        self.root = root
        writer_cls = get_writer(ex.format_name)
        self.writer = writer_cls(
            root,
            ClassMap.from_configuration(configuration),
            options,
            ex.report,
            project=project if isinstance(project, dict) else None,
        )
        ex.writer = self.writer
        self.writer.start()

    def write(self, item: ItemContext) -> ExportStatus:
        writer = self.writer
        assert writer is not None
        source = item.data if isinstance(item.data, dict) else item.source
        unit = source.get('data_unit')
        if not isinstance(unit, dict):
            unit = {}
        data = source.get('data')
        if isinstance(data, dict):
            annotations = data.get('annotations')
            classifications = data.get('classifications')
        elif data is None:
            annotations = classifications = None
        else:
            raise ItemExportError(f'"data" must be an object, got {_kind(data)}')
        if not isinstance(annotations, list):
            if annotations is not None:
                raise ItemExportError(
                    f'"data.annotations" must be a list, got {_kind(annotations)}'
                )
            annotations = []
        if not isinstance(classifications, dict):
            if classifications is not None:
                raise ItemExportError(
                    f'"data.classifications" must be an object, got {_kind(classifications)}'
                )
            classifications = {}
        split = source.get('split')
        if not split or not isinstance(split, str):
            split = writer.split_spec.assign(item.id, source.get('category'), self.seed)
        item.split = split
        width, height = unit.get('width'), unit.get('height')
        if type(width) is float and width.is_integer():  # 256.0, as some backends send sizes
            width = int(width)
        if type(height) is float and height.is_integer():
            height = int(height)
        fitem = FormatItem(
            item.id, item.stem, item.ext, split, width, height, annotations, classifications,
            source,
        )  # fmt: skip
        save_original = self.save_original
        if not (save_original or (writer.needs_size and not (width and height))):
            writer.write_item(fitem)  # the common case when originals are not wanted
            return SUCCESS
        rel = writer.image_relpath(fitem)
        files = item.files
        url = files.get('url') or files.get('path')
        dest = self.root / rel if rel and save_original else None
        fetched = False  # the original was fetched already, to read its size
        if writer.needs_size and not (width and height):
            fitem.width, fitem.height = self._size_from_header(item, url, dest)
            fetched, dest = dest is not None and dest.exists(), None
        try:
            writer.write_item(fitem)
        except BaseException:
            if fetched and rel:
                (self.root / rel).unlink(missing_ok=True)
            raise
        if fetched:
            item.original_status = SUCCESS
        elif dest is not None and url:
            self.exporter.download_original(str(url), dest, item=item)
        elif save_original and rel and not url:
            item.original_status = ExportStatus.FAILED
            item.original_error = 'the item has no original file'
        return SUCCESS

    def _size_from_header(
        self, item: ItemContext, url: Any, dest: Path | None
    ) -> tuple[int | None, int | None]:
        """Image size from the original file's header (downloaded to ``dest`` or a temp)."""
        if not url:
            return None, None
        from synapse_sdk.formats.images import image_size  # Pillow: only to read a header
        from synapse_sdk.storage import Downloader
        from synapse_sdk.storage.download import policy_for

        policy = policy_for(self.exporter.ctx.client)  # originals only from the backend's media
        with Downloader(max_workers=1, policy=policy) as downloader:
            if dest is not None:
                try:
                    downloader.download(
                        str(url),
                        dest,
                        size=item.files.get('size'),
                        checksum=item.files.get('checksum'),
                    )
                except Exception as exc:
                    raise ItemExportError(
                        f'image size unknown and the original could not be read: {exc}',
                        item_id=item.id,
                        file=item.file_name,
                    ) from exc
                size = image_size(dest)
            else:
                with tempfile.TemporaryDirectory() as tmp:
                    path = Path(tmp) / f'probe{item.ext}'
                    downloader.download(str(url), path)
                    size = image_size(path)
        return size if size else (None, None)

    def close(self) -> None:
        self.exporter.wait_for_downloads()
        if self.writer is not None:
            self.writer.finish()
        if not self.save_original:
            remove_empty_image_dirs(self.root)

    def abort(self) -> None:
        self.exporter.wait_for_downloads(cancel=True)
        if self.writer is not None:
            self.writer.abort()


def _kind(value: Any) -> str:
    names: dict[type, str] = {dict: 'an object', list: 'a list', str: 'a string'}
    return names.get(type(value), type(value).__name__)


class FormatExporter(BaseExporter):
    """Exports items through the format writer named by ``format_name``."""

    format_name: ClassVar[str] = ''

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.writer: FormatWriter | None = None

    @classmethod
    def check_params(cls, params: dict[str, Any], project: dict[str, Any] | None) -> None:
        """The project must have a class list; the format's options must be valid."""
        if not (project or {}).get('configuration', {}).get('classes'):
            raise ParamsError(
                f'{cls.format_name} export needs the project class list',
                [('filter', 'must name a project (or ground-truth version) with classes')],
            )
        options = dict(params.get('extra_params') or {})
        writer = get_writer(cls.format_name)
        writer.check_export(
            writer.validate_options(options), params.get('save_original_file', True)
        )
        seed = options.get('seed', 0)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ParamsError('Invalid extra_params', [('extra_params.seed', 'must be an integer')])

    def create_sink(self) -> Sink:
        return WriterSink(self)


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
CvatExporter = _exporter('cvat')
LabelmeExporter = _exporter('labelme')
ParquetExporter = _exporter('parquet')

CocoExportAction = _action(CocoExporter)
YoloExportAction = _action(YoloExporter)
VocExportAction = _action(VocExporter)
CsvExportAction = _action(CsvExporter)
DmExportAction = _action(DmExporter)
CvatExportAction = _action(CvatExporter)
LabelmeExportAction = _action(LabelmeExporter)
ParquetExportAction = _action(ParquetExporter)

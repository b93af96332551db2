"""Parquet writer in the Hugging Face ``datasets`` object-detection layout::

    data/<split>-00000-of-0000N.parquet   shards of each split with items (export order)
    README.md                             dataset card: YAML front matter (features, splits
                                          with their sizes, data files) and the class list

Columns and features are those of :mod:`.convert`; the ``datasets`` features are stored in
each file's schema metadata (``huggingface``), so ``datasets.load_dataset("parquet", ...)``
gives named classes, and in the card.

Memory stays flat: rows are converted one item at a time and spooled, in batches of
``row_group_size``, to an Arrow IPC stream in an anonymous temporary file (one per split).
The originals the pipeline saves under ``images/<split>/`` are not read until
:meth:`ParquetWriter.finish`, which runs after every original is in place: it streams each
spool, embeds each image's bytes (``image.bytes``; null when no original was saved, the row
then keeps its ``image.path`` only), writes row groups of ``row_group_size`` rows with
pyarrow's ``ParquetWriter``, and removes the staged originals. A split is sharded so that no
shard holds much more than ``max_shard_mb`` of data.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from pathlib import Path
from typing import IO, Any

import orjson
import yaml
from pydantic import Field

from synapse_sdk.errors import ItemExportError
from synapse_sdk.formats.base import CommonOptions, FormatItem, FormatWriter, ItemLog
from synapse_sdk.formats.parquet.convert import (
    OBJECT_FIELDS,
    annotation_to_object,
    features,
    features_yaml,
)

__all__ = ['ParquetWriter']


def _pa() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as exc:  # pragma: no cover - the extra is part of the test install
        from synapse_sdk.errors import ParamsError

        raise ParamsError(
            'The parquet format needs pyarrow',
            [('format', 'install the extra: pip install "synapse-sdk[parquet]"')],
        ) from exc
    return pyarrow


def _schemas(class_names: list[str]) -> tuple[Any, Any]:
    """``(spool schema, final schema)``; the final one carries the ``datasets`` features."""
    pa = _pa()
    objects = pa.struct(
        [
            ('id', pa.list_(pa.int64())),
            ('area', pa.list_(pa.float64())),
            ('bbox', pa.list_(pa.list_(pa.float64(), 4))),
            ('category', pa.list_(pa.int64())),
            ('iscrowd', pa.list_(pa.bool_())),
            ('segmentation', pa.list_(pa.list_(pa.list_(pa.float64())))),
            ('rle', pa.list_(pa.string())),
            ('attributes', pa.list_(pa.string())),
        ]
    )
    columns = [
        ('image_id', pa.int64()),
        ('width', pa.int32()),
        ('height', pa.int32()),
        ('objects', objects),
        ('classifications', pa.string()),
    ]
    spool = pa.schema([('staged', pa.string()), ('file_name', pa.string()), *columns])
    image = pa.struct([('bytes', pa.binary()), ('path', pa.string())])
    info = {'info': {'features': features(class_names)}}
    final = pa.schema(
        [('image', image), *columns], metadata={'huggingface': orjson.dumps(info).decode()}
    )
    return spool, final


class ParquetOptions(CommonOptions):
    """Options of the ``parquet`` format."""

    row_group_size: int = Field(
        100, ge=1, le=100_000, description='Rows per Parquet row group (datasets uses 100)'
    )
    max_shard_mb: float = Field(
        500, gt=0, le=100_000, description='Shard a split when its data passes this size (MiB)'
    )
    compression: str = Field(
        'snappy',
        description='Parquet compression: snappy, zstd, gzip, lz4, brotli or none',
        pattern='^(snappy|zstd|gzip|lz4|brotli|none)$',
    )


class _Spool:
    """Rows of one split: batched into an Arrow IPC stream in an anonymous temporary file."""

    def __init__(self, root: Path, schema: Any, batch: int) -> None:
        pa = _pa()
        self.schema = schema
        self.batch = batch
        self.file: IO[bytes] = tempfile.TemporaryFile(dir=root, prefix='.parquet-spool-')  # noqa: SIM115
        self.sink = pa.PythonFile(self.file, mode='w')
        self.writer = pa.ipc.new_stream(self.sink, schema)
        self.rows: list[dict[str, Any]] = []
        self.count = 0
        self.ended = False

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        self.count += 1
        if len(self.rows) >= self.batch:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            pa = _pa()
            self.writer.write_batch(pa.RecordBatch.from_pylist(self.rows, schema=self.schema))
            self.rows = []

    def end(self) -> None:
        """No more rows: flush and close the stream (once)."""
        if not self.ended:
            self.flush()
            self.writer.close()
            self.ended = True

    def batches(self) -> Any:
        """The spooled rows, batch by batch (readable any number of times after :meth:`end`)."""
        pa = _pa()
        self.file.seek(0)
        return pa.ipc.open_stream(pa.PythonFile(self.file, mode='r'))

    def close(self) -> None:
        if not self.file.closed:
            self.file.close()


class ParquetWriter(FormatWriter):
    """Options: ``row_group_size`` (default 100), ``max_shard_mb`` (default 500),
    ``compression`` (default snappy)."""

    name = 'parquet'
    Options = ParquetOptions

    def start(self) -> None:
        _pa()
        self._spool_schema, self._schema = _schemas(self.class_map.names)
        self._spools: dict[str, _Spool] = {}
        self._next_id = 1
        self._image_ids: set[int] = set()
        (self.root / 'data').mkdir(parents=True, exist_ok=True)
        for split in self.split_spec.names:
            self._spool(split)

    def _spool(self, split: str) -> _Spool:
        spool = self._spools.get(split)
        if spool is None:
            size = self.options['row_group_size']
            spool = self._spools[split] = _Spool(self.root, self._spool_schema, size)
        return spool

    def image_relpath(self, item: FormatItem) -> str:
        # Staged: embedded into the rows by finish(), then removed.
        return f'images/{item.split}/{item.file_name}'

    def write_item(self, item: FormatItem) -> None:
        width, height = self.require_size(item)
        if isinstance(item.id, bool) or not isinstance(item.id, int):
            raise ItemExportError(f'parquet image ids must be integers, got {item.id!r}', item.id)
        if item.id in self._image_ids:
            raise ItemExportError(f'image id {item.id} appears twice', item.id, item.file_name)
        log = ItemLog(item.id)
        objects = self.convert_annotations(
            item,
            log,
            lambda ann, index: annotation_to_object(
                ann, category=index, image_size=(width, height), log=log
            ),
        )
        columns: dict[str, list[Any]] = {key: [] for key in OBJECT_FIELDS}
        for n, obj in enumerate(objects):
            obj['id'] = self._next_id + n
            for key in OBJECT_FIELDS:
                columns[key].append(obj[key])
        try:
            classifications = (
                orjson.dumps(item.classifications, option=orjson.OPT_SORT_KEYS).decode()
                if item.classifications
                else None
            )
        except TypeError as exc:
            raise ItemExportError(f'classifications not serialisable: {exc}', item.id) from exc
        row = {
            'staged': self.image_relpath(item),
            'file_name': item.file_name,
            'image_id': item.id,
            'width': width,
            'height': height,
            'objects': columns,
            'classifications': classifications,
        }
        self._spool(item.split).add(row)
        self._next_id += len(objects)
        self._image_ids.add(item.id)
        log.apply(self.report)

    # --- finish: embed the images, write the shards and the card ------------------------

    def finish(self) -> None:
        splits = []
        for split, spool in self._spools.items():
            spool.end()
            if spool.count:  # a split with no items is not declared (no empty shard)
                splits.append(self._write_split(split, spool))
            spool.close()
        shutil.rmtree(self.root / 'images', ignore_errors=True)
        self._card(splits)

    def _write_split(self, split: str, spool: _Spool) -> dict[str, Any]:
        """Write the shards of one split from its spool; its entry of the card's splits."""
        pq = _pa().parquet
        # Shard count from what the shards will hold: the staged images plus the rows.
        total = spool.file.seek(0, 2)
        for batch in spool.batches():
            for staged in batch.column('staged').to_pylist():
                path = self.root / staged
                total += path.stat().st_size if path.is_file() else 0
        shards = max(1, math.ceil(total / (self.options['max_shard_mb'] * (1 << 20))))
        shards = min(shards, max(spool.count, 1))
        per_shard = max(1, math.ceil(spool.count / shards))
        paths = [
            self.root / 'data' / f'{split}-{i:05d}-of-{shards:05d}.parquet' for i in range(shards)
        ]
        group = self.options['row_group_size']
        written = 0
        rows: list[dict[str, Any]] = []
        writer = pq.ParquetWriter(str(paths[0]), self._schema, compression=self._compression)
        try:
            for batch in spool.batches():
                for row in batch.to_pylist():
                    shard = min(written // per_shard, shards - 1)
                    if shard != min(max(written - 1, 0) // per_shard, shards - 1):
                        self._write_rows(writer, rows)
                        writer.close()
                        writer = pq.ParquetWriter(
                            str(paths[shard]), self._schema, compression=self._compression
                        )
                    rows.append(self._row(row))
                    written += 1
                    if len(rows) >= group:
                        self._write_rows(writer, rows)
            self._write_rows(writer, rows)
        finally:
            writer.close()
        num_bytes = sum(p.stat().st_size for p in paths)
        return {'name': split, 'num_bytes': num_bytes, 'num_examples': spool.count}

    @property
    def _compression(self) -> str:
        value = self.options['compression']
        return 'NONE' if value == 'none' else value

    def _row(self, row: dict[str, Any]) -> dict[str, Any]:
        """A spooled row with its image embedded; the staged original is removed."""
        path = self.root / row.pop('staged')
        name = row.pop('file_name')
        data = path.read_bytes() if path.is_file() else None
        if data is not None:
            path.unlink()
        return {'image': {'bytes': data, 'path': name}, **row}

    def _write_rows(self, writer: Any, rows: list[dict[str, Any]]) -> None:
        if rows:
            table = _pa().Table.from_pylist(rows, schema=self._schema)
            writer.write_table(table, row_group_size=self.options['row_group_size'])
            rows.clear()

    def _card(self, splits: list[dict[str, Any]]) -> None:
        feats = features(self.class_map.names)
        front = {
            'dataset_info': {'features': features_yaml(feats), 'splits': splits},
            'configs': [
                {
                    'config_name': 'default',
                    'data_files': [
                        {'split': s['name'], 'path': f'data/{s["name"]}-*'} for s in splits
                    ],
                }
            ],
            'task_categories': ['object-detection'],
        }
        project = getattr(self, 'project', None) or {}
        title = project.get('title') or 'Exported dataset'
        classes = '\n'.join(f'| {i} | {name} |' for i, name in enumerate(self.class_map.names))
        sizes = '\n'.join(f'| {s["name"]} | {s["num_examples"]} |' for s in splits)
        text = (
            '---\n'
            + yaml.safe_dump(front, sort_keys=False, allow_unicode=True)
            + '---\n\n'
            + f'# {title}\n\n'
            + 'Object detection data exported by synapse-sdk in the Hugging Face `datasets` '
            'layout. Load it with `datasets.load_dataset("parquet", data_dir="data")` or '
            '`datasets.load_dataset("<this folder>")`.\n\n'
            + '`objects.bbox` is `[x, y, width, height]` in pixels (COCO); `objects.category` '
            'indexes the classes below; `objects.segmentation` holds polygons '
            '`[x1, y1, x2, y2, ...]`; `objects.rle` a mask as COCO compressed RLE counts over '
            'the whole image (size `[height, width]`).\n\n'
            + '## Classes\n\n| id | name |\n| --- | --- |\n'
            + classes
            + '\n\n## Splits\n\n| split | images |\n| --- | --- |\n'
            + sizes
            + '\n'
        )
        (self.root / 'README.md').write_text(text, encoding='utf-8', newline='\n')

    def abort(self) -> None:
        for spool in getattr(self, '_spools', {}).values():
            spool.close()

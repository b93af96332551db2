"""Sharded exports: one ``ExportAction`` run cut into key ranges that run on many workers.

The driver runs the action's workflow with the same step names and result as a single-process
run; what changes is where the items go through the pipeline::

    initialize        checks, the selection plan (samples, splits), the staging directory
                      (``--resume``: the interrupted run's, see journal.py)
    fetch_results     shards: contiguous ranges of the plan's sorted keys (``id`` / ``pgh_id``);
                      names: one light listing of (key, file name) allocated in export order,
                      so each shard names its files exactly as one process would
    prepare           the journal manifest; the driver's exporter (reports, extra files)
    convert_and_save  every shard on the backend: its own client (same settings), only its
                      range fetched (``<key>__gte`` / ``<key>__lte``), the item pipeline into
                      its part directory; failed shards retried; then the parts merged in shard
                      order (merge.py), ``additional_file_saving`` and the reports once
    finalize          publish, atomically, as a single-process run does

A record the handler cannot turn into an item takes no name in a single-process run; a shard
that meets one reports it, and the names are planned again without it (the affected shards,
rarely any, run again), so even then the files are named as one process names them.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import shutil
import tempfile
import time
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import orjson

from synapse_sdk.errors import ExportError, FilterError, ParamsError
from synapse_sdk.formats.names import StemAllocator
from synapse_sdk.plugins.actions.export.export_action import (
    MAX_RESULT_ERRORS,
    ExportState,
    FinalizeStep,
    InitializeStep,
    _state,
)
from synapse_sdk.plugins.actions.export.item import item_file_name
from synapse_sdk.plugins.actions.export.journal import Journal, PartListing, find_resumable
from synapse_sdk.plugins.actions.export.merge import MergeContext, Part, merger_for
from synapse_sdk.plugins.actions.export.outcome import PartResult
from synapse_sdk.plugins.actions.export.pipeline import ItemPipeline, ItemSource, refuse_media
from synapse_sdk.plugins.actions.export.selection import SelectionPlan
from synapse_sdk.plugins.steps import BaseStep, StepRegistry, StepResult

if TYPE_CHECKING:
    from synapse_sdk.plugins.actions.export.context import ExportContext
    from synapse_sdk.plugins.actions.export.export_action import ExportAction
    from synapse_sdk.plugins.executors.backends import Backend
    from synapse_sdk.plugins.executors.tasks import ActionRef, ClientSpec

__all__ = [
    'MIN_SHARD_ITEMS',
    'SHARDS_PER_WORKER',
    'NamePlan',
    'Shard',
    'ShardRun',
    'StemSequence',
    'cut_shards',
    'not_shardable',
    'register_sharded_steps',
    'run_shard',
]

#: Shards per worker by default: small enough to balance the load and retry cheaply.
SHARDS_PER_WORKER = 4
#: Below this many items per shard the fixed cost of a shard outweighs the parallelism.
MIN_SHARD_ITEMS = 1000
#: How many times the names are planned again for records that turned out unreadable.
MAX_RENAME_ROUNDS = 3
DATASET_CONVERSION = 'dataset_conversion'


# -- shards --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Shard:
    """Samples ``start:end`` of the plan (sorted keys), keys ``lo`` to ``hi`` inclusive."""

    index: int
    start: int
    end: int
    lo: int
    hi: int

    @property
    def expected(self) -> int:
        return self.end - self.start

    def describe(self, key: str = 'id') -> str:
        return f'shard {self.index} ({key}s {self.lo}..{self.hi}, {self.expected} items)'

    def to_json(self) -> list[int]:
        return [self.index, self.start, self.end, self.lo, self.hi]

    @classmethod
    def from_json(cls, data: list[int]) -> Shard:
        return cls(*[int(v) for v in data])


def shard_size(count: int, workers: int, size: int | None = None) -> int:
    """Items per shard: ``size`` when given, else about :data:`SHARDS_PER_WORKER` shards per
    worker of at least :data:`MIN_SHARD_ITEMS` items."""
    if size is not None and size > 0:
        return int(size)
    shards = max(1, min(workers * SHARDS_PER_WORKER, count // MIN_SHARD_ITEMS))
    return max(1, math.ceil(count / shards))


def cut_shards(keys: np.ndarray, size: int) -> list[Shard]:
    """Contiguous ranges of the sorted ``keys``, ``size`` samples each (the last one less)."""
    n = len(keys)
    size = max(1, int(size))
    return [
        Shard(i, start, min(start + size, n), int(keys[start]), int(keys[min(start + size, n) - 1]))
        for i, start in enumerate(range(0, n, size))
    ]


# -- names -----------------------------------------------------------------------------------------
#: One planned name: ``(record key, item id, stem, ext, renamed)``.
StemEntry = tuple[int, Any, str, str, bool]
#: One row of the names listing: ``(record key, item id, file name, annotations)``; the last is
#: how many annotations the record's document lists (``None``: not known).
NameRow = tuple[int, Any, str, int | None]
_NAME_FIELDS = ('id', 'file_name', 'unit_name')


def _name_rows(
    client: Any, handler: Any, filters: dict[str, Any], plan: SelectionPlan, counts: bool
) -> Iterator[NameRow]:
    """The name rows of every sample, in key order: a light listing of file names, or the
    full records from a backend that does not list them (``counts``: with the annotation
    counts, where the merge uses them)."""
    rows = _light_name_rows(client, handler.list_target, filters, plan.key, counts)
    if rows is not None:  # NamePlan leaves out the records that are not samples
        yield from rows
        return
    key = plan.key
    records, _ = handler.fetch(client, filters)
    for record in records:
        if plan.keeps(record.get(key)):
            data = record.get('data')
            listed = data.get('annotations') if isinstance(data, dict) else None
            yield (int(record[key]), record.get('id'),
                   item_file_name(handler.to_export_item(record)),
                   len(listed) if isinstance(listed, list) else None)  # fmt: skip


def _light_name_rows(
    client: Any, target: str | None, filters: dict[str, Any], key: str, counts: bool
) -> Iterator[NameRow] | None:
    """The name rows of every record, from a light listing (with the annotation counts where
    the backend lists them); ``None`` when it lists no file names (no light listings, or
    whole records for them)."""
    light = getattr(client, 'iter_fields', None)
    if light is None or target is None:
        return None
    tries = ((key, *_NAME_FIELDS, 'annotations'),) if counts else ()
    for fields in (*tries, (key, *_NAME_FIELDS)):
        try:
            rows = light(target, filters, list(fields))
            first = next(rows, None)
        except FilterError:
            continue  # a backend without the annotation counts: the names alone
        if first is None:
            return iter(())
        if 'file_name' not in first and 'data_unit' in first:
            return None  # a backend that answers light listings with whole records
        return _named(_chain(first, rows), key)
    return None


def _named(rows: Iterator[dict[str, Any]], key: str) -> Iterator[NameRow]:
    for row in rows:
        item_id = row.get('id')
        name = row.get('file_name') or row.get('unit_name') or str(item_id)
        count = row.get('annotations')
        yield int(row[key]), item_id, str(name), count if type(count) is int else None


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest


# -- names listed ahead, by a worker, while the driver plans ----------------------------------
#: At most this many rows are listed ahead (they come back to the driver in one message).
AHEAD_ROWS = 250_000
#: Rows listed and named between two looks at the driver's sign that it has planned.
AHEAD_CHUNK = 1_000
#: The backend key of that task (shard tasks are keyed by their index).
NAMES_KEY = 'names'


@dataclass
class NamesPayload:
    """The light listing a worker runs ahead: the first rows of the selection, until the
    file ``planned`` exists (the driver makes it once it needs the names)."""

    client: ClientSpec
    target: str
    filters: dict[str, Any]
    key: str
    planned: str
    cap: int = AHEAD_ROWS
    chunk: int = AHEAD_CHUNK
    counts: bool = False  # with the annotation counts (see _light_name_rows)


@dataclass
class ListedAhead:
    """What a worker listed and named ahead, in columns (a message of plain lists and bytes
    is sent and read several times faster than one of 100,000 tuples)."""

    keys: list[int] = field(default_factory=list)
    ids: list[Any] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    counts: list[int | None] = field(default_factory=list)
    stems: list[str] = field(default_factory=list)
    exts: list[str] = field(default_factory=list)
    renamed: bytearray = field(default_factory=bytearray)
    allocator: StemAllocator = field(default_factory=StemAllocator)
    complete: bool = False

    @property
    def rows(self) -> list[NameRow]:
        return list(zip(self.keys, self.ids, self.names, self.counts, strict=True))

    @property
    def entries(self) -> list[StemEntry]:
        renamed = map(bool, self.renamed)
        return list(zip(self.keys, self.ids, self.stems, self.exts, renamed, strict=True))


def list_names(payload: NamesPayload, emit: Any) -> ListedAhead | None:
    """The name rows of the selection's first rows, in key order, and the names one process
    gives them if every row is a sample (the driver checks that against its plan): as many as
    this worker gets through while the driver plans, in chunks of ``payload.chunk``, at most
    ``payload.cap``. ``None`` when the backend lists no file names."""
    client = payload.client.build()
    try:
        named = _light_name_rows(client, payload.target, payload.filters, payload.key,
                                 payload.counts)  # fmt: skip
        if named is None:
            return None
        out = ListedAhead()
        allocate = out.allocator.allocate
        while not out.complete:
            want = min(payload.chunk, payload.cap - len(out.keys))
            chunk = list(itertools.islice(named, want))
            for key, item_id, name, count in chunk:
                stem, ext, renamed = allocate(name, fallback=str(item_id))
                out.keys.append(key)
                out.ids.append(item_id)
                out.names.append(name)
                out.counts.append(count)
                out.stems.append(stem)
                out.exts.append(ext)
                out.renamed.append(renamed)
            out.complete = len(chunk) < want
            if len(out.keys) >= payload.cap or os.path.exists(payload.planned):
                break
    finally:
        client.close()
    return out


class NamePlan:
    """Every sample's output name, allocated in export (key) order as one process does, and
    handed out shard by shard: shard ``k``'s names need only the rows up to its range, so the
    first shards start while the names of the later ones are still being planned.

    ``rows`` are :data:`NameRow` in key order; ``exclude`` are keys of records that take no
    name (the handler could not read them); ``named`` are the first samples' names, their
    annotation counts, and the allocator after them (listed ahead by a worker). Each shard's
    samples' annotation counts are summed as well (:meth:`annotations_before`).
    """

    BATCH = 5000

    def __init__(
        self,
        rows: Iterator[NameRow],
        plan: SelectionPlan,
        shards: list[Shard],
        exclude: frozenset[int] = frozenset(),
        named: tuple[list[StemEntry], list[int | None], StemAllocator] | None = None,
    ) -> None:
        self._rows = rows
        self._keys = plan.keys
        self._ends = np.array([s.end for s in shards], dtype=np.int64)
        self._lists: list[list[StemEntry]] = [[] for _ in shards]
        self._annotations = [0] * len(shards)  # what each shard's samples list
        self._uncounted = [False] * len(shards)  # a sample of the shard did not say
        self._complete = 0  # shards before this one have all their names
        self._exclude = exclude
        self._allocator = StemAllocator()
        if named is not None:  # the first samples, named already (and the allocator after them)
            entries, listed, self._allocator = named
            for shard in shards:
                self._lists[shard.index] = entries[shard.start : shard.end]
                counts = listed[shard.start : shard.end]
                self._uncounted[shard.index] = None in counts
                self._annotations[shard.index] = sum(c for c in counts if c is not None)
            self._complete = int(np.searchsorted(self._ends, len(entries), side='right'))

    def shard(self, index: int) -> list[StemEntry]:
        """The names of shard ``index``, in its order."""
        while self._complete <= index:
            self._pull()
        return self._lists[index]

    def annotations_before(self, index: int) -> int | None:
        """How many annotations the samples of the shards before ``index`` list (``None``:
        not known of every one): where a shard's COCO annotation ids start, if every listed
        annotation is exported (the merge renumbers them otherwise)."""
        self.shard(index)
        if any(self._uncounted[:index]):
            return None
        return sum(self._annotations[:index])

    def all(self) -> list[list[StemEntry]]:
        """Every shard's names."""
        if self._lists:
            self.shard(len(self._lists) - 1)
        return self._lists

    def _pull(self) -> None:
        batch = list(itertools.islice(self._rows, self.BATCH))
        if not batch:
            self._complete = len(self._lists)
            return
        keys = np.fromiter((row[0] for row in batch), dtype=np.int64, count=len(batch))
        positions = np.searchsorted(self._keys, keys)
        inside = positions < len(self._keys)
        kept = inside & (self._keys[np.minimum(positions, len(self._keys) - 1)] == keys)
        shards = np.searchsorted(self._ends, positions, side='right')
        allocate = self._allocator.allocate
        lists, exclude, annotations = self._lists, self._exclude, self._annotations
        for row, keep, shard in zip(batch, kept.tolist(), shards.tolist(), strict=True):
            if not keep:
                continue
            key, item_id, name, count = row
            if key in exclude:
                continue
            stem, ext, renamed = allocate(name, fallback=str(item_id))
            lists[shard].append((key, item_id, stem, ext, renamed))
            if count is None:
                self._uncounted[shard] = True
            else:
                annotations[shard] += count
        # Rows come in key order: every shard before the last row's is complete.
        self._complete = max(self._complete, min(int(shards[-1]), len(lists)))


def stems_digest(entries: list[StemEntry]) -> str:
    """A digest of a shard's planned names (what a journalled part was named with)."""
    data = orjson.dumps([[k, i, s, e] for k, i, s, e, _ in entries], default=str)
    return hashlib.blake2b(data, digest_size=16).hexdigest()


class StemSequence(Mapping[Any, tuple[str, str, bool]]):
    """A shard's planned names, handed out in order (``ItemPipeline(stems=...)``).

    Looking up an item id takes the next planned entry with that id; entries passed over
    belong to records that never became items (unreadable or refused), and are reported by
    :meth:`skipped` so the driver can plan the names again without them.
    """

    def __init__(self, entries: list[StemEntry]) -> None:
        self._entries = entries
        self._pos = 0
        self._skipped: list[int] = []

    def __getitem__(self, item_id: Any) -> tuple[str, str, bool]:
        entries = self._entries
        for i in range(self._pos, len(entries)):
            if entries[i][1] == item_id:
                self._skipped.extend(e[0] for e in entries[self._pos : i])
                self._pos = i + 1
                _, _, stem, ext, renamed = entries[i]
                return stem, ext, renamed
        raise KeyError(item_id)

    def __iter__(self) -> Iterator[Any]:
        return (e[1] for e in self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def skipped(self) -> list[int]:
        """Keys of planned records that never became items (so far, and all at the end)."""
        return [*self._skipped, *(e[0] for e in self._entries[self._pos :])]


# -- the shard task (runs in a worker) ---------------------------------------------------------
@dataclass
class PlanSlice:
    """The selection plan of one shard's samples, as plain data."""

    key: str
    keys: bytes
    splits: bytes | None
    split_names: tuple[str, ...]
    policy: str

    @classmethod
    def of(cls, plan: SelectionPlan, shard: Shard) -> PlanSlice:
        keys = plan.keys[shard.start : shard.end]
        splits = None if plan.splits is None else plan.splits[shard.start : shard.end]
        return cls(
            plan.key,
            np.ascontiguousarray(keys, dtype=np.int64).tobytes(),
            None if splits is None else np.ascontiguousarray(splits, dtype=np.int8).tobytes(),
            tuple(plan.split_names),
            str(plan.sample_policy),
        )

    def build(self) -> SelectionPlan:
        keys = np.frombuffer(self.keys, dtype=np.int64)
        splits = None if self.splits is None else np.frombuffer(self.splits, dtype=np.int8)
        return SelectionPlan(
            key=self.key,
            keys=keys,
            splits=splits,
            split_names=self.split_names,
            records=len(keys),
            data_units=len(keys),
            sample_policy=self.policy,  # type: ignore[arg-type]
        )


@dataclass
class ShardPayload:
    """Everything a worker needs to run one shard (no secrets: see ``tasks.ClientSpec``)."""

    action: ActionRef
    params: dict[str, Any]
    client: ClientSpec
    env: dict[str, Any]
    staging: str
    shard: Shard
    filters: dict[str, Any]
    project: dict[str, Any] | None
    count: int
    plan: PlanSlice
    stems: list[StemEntry]
    attempt: int = 1
    annotations_before: int | None = None  # what the samples of the earlier shards list
    events: bool = True
    fault: str | None = field(default=None, repr=False)


def run_shard(payload: ShardPayload, emit: Any) -> dict[str, Any]:
    """Run one shard into its part directory; return (and journal) its record."""
    from synapse_sdk.plugins.context import RuntimeContext
    from synapse_sdk.plugins.executors.events import forwarding_logger

    shard = payload.shard
    journal = Journal(Path(payload.staging))
    if not journal.staging.is_dir():
        raise ExportError(
            f'the staging directory {payload.staging} is not visible to this worker '
            f'({os.uname().nodename}); sharded exports need the storage on a filesystem every '
            'worker shares'
        )
    _maybe_fault(payload)
    part_dir = journal.part_dir(shard.index)
    journal.forget(shard.index)
    part_dir.mkdir(parents=True)
    logger = forwarding_logger(emit, payload.events)
    client = payload.client.build()
    try:
        ctx = RuntimeContext(logger=logger, client=client, env=dict(payload.env))
        action_cls = payload.action.load()
        action = cast('ExportAction', action_cls(action_cls.validate_params(payload.params), ctx))
        handler = action.target_handler
        plan = payload.plan.build()
        handler.selection = plan
        filters = {
            **payload.filters,
            f'{plan.key}__gte': shard.lo,
            f'{plan.key}__lte': shard.hi,
        }
        records, _ = action.get_filtered_results(filters)
        items = ItemSource(records, handler.get_export_item, refuse_media(action.annotation_types))
        params = dict(payload.params)
        params.update(count=payload.count, project=payload.project, filter=payload.filters)
        exporter = action.entrypoint(ctx, items, part_dir, **params)
        merger = merger_for(type(exporter))
        assert merger is not None  # exporter_not_shardable: no shard runs without one
        stems = StemSequence(payload.stems)
        pipeline = ItemPipeline(
            exporter,
            expected=shard.expected,
            stems=stems,
            on_open=lambda: merger.begin(exporter, payload.annotations_before),
        )
        part = pipeline.run(items, part_dir)
        state = merger.state(exporter)
        skipped = stems.skipped()
        gone = set(skipped)
        # Per-item files go into the export now, by every worker at once (listed as they go);
        # a retried shard writes the same bytes, so what an earlier attempt moved is kept.
        listed = PartListing(part_dir)
        merger.move_items(part_dir, journal.staging, listed)
        listing = listed.to_dict()
        record = {
            'index': shard.index,
            'shard': shard.to_json(),
            'attempt': payload.attempt,
            'part': part.to_dict(),
            'state': state,
            'skipped': skipped,
            'stems': stems_digest([e for e in payload.stems if e[0] not in gone]),
            **listing,
        }
        journal.record_done(shard.index, record)
        # The driver gets the record without its listing (100,000 entries in a large export):
        # it reads the journal's copy on the rare occasions it needs the files.
        return {k: v for k, v in record.items() if k not in _LISTING}
    finally:
        logger.finish()
        client.close()


#: Keys of a shard's journal record that stay in the journal (see ``journal.PartListing``).
_LISTING = ('files', 'dirs')


def _maybe_fault(payload: ShardPayload) -> None:
    """Test seam: ``SYNAPSE_SHARD_FAULT=<shard>:<attempts>:<how>`` fails that shard's first
    ``attempts`` attempts (``how``: ``raise`` an OSError, ``exit`` the worker process, ``hang``
    for ten minutes, as a stuck backend would)."""
    spec = payload.fault
    if not spec:
        return
    index, attempts, how = [*spec.split(':'), 'raise'][:3]
    if int(index) != payload.shard.index or payload.attempt > int(attempts):
        return
    if how == 'exit':
        os._exit(17)
    if how == 'hang':
        import time

        time.sleep(600)
    raise OSError(f'injected fault in shard {index}, attempt {payload.attempt}')


# -- the driver ----------------------------------------------------------------------------------
@dataclass
class ShardRun:
    """How one sharded run goes: the backend, options, and what the steps hand each other."""

    backend: Backend
    action_ref: ActionRef
    client: ClientSpec
    resume: bool = False
    shard_size: int | None = None
    attempts: int = 3
    fault: str | None = None
    # filled in by the steps
    journal: Journal | None = None
    shards: list[Shard] = field(default_factory=list)
    names: NamePlan | None = None
    records: dict[int, dict[str, Any]] = field(default_factory=dict)
    resumed: list[int] = field(default_factory=list)
    fingerprint: str = ''
    keep_staging: bool = False
    names_ahead: bool = False  # a worker lists the names while the driver plans
    names_planned: str = ''  # the file that tells it the driver has planned
    counts: bool = False  # the names listing counts annotations (the merger uses them)
    timings: dict[str, float] = field(default_factory=dict)


def not_shardable(action_cls: type) -> str | None:
    """Why ``action_cls`` cannot run sharded (``None``: it can)."""
    from synapse_sdk.plugins.actions.export.export_action import ExportAction

    if not (isinstance(action_cls, type) and issubclass(action_cls, ExportAction)):
        return f'{action_cls.__name__} is not an ExportAction'
    for method in ('setup_steps', 'get_filtered_results', 'run', 'create_context'):
        if getattr(action_cls, method) is not getattr(ExportAction, method) and not (
            method == 'setup_steps' and _is_format_action(action_cls)
        ):
            return f'{action_cls.__name__} overrides {method}()'
    return None


def _is_format_action(action_cls: type) -> bool:
    from synapse_sdk.plugins.builtin.formats import _FormatExportAction

    return issubclass(action_cls, _FormatExportAction) and (
        action_cls.setup_steps is _FormatExportAction.setup_steps
    )


def exporter_not_shardable(exporter_cls: type) -> str | None:
    """Why items of ``exporter_cls`` cannot be exported in shards (``None``: they can)."""
    from synapse_sdk.plugins.actions.export.exporter import BaseExporter

    if not (isinstance(exporter_cls, type) and issubclass(exporter_cls, BaseExporter)):
        return f'its entrypoint {exporter_cls!r} is not a BaseExporter subclass'
    if getattr(exporter_cls, 'shardable', True) is False:
        return f'{exporter_cls.__name__} sets shardable = False'
    for method in ('allocate_stem', 'begin_item', 'export', 'complete', 'create_sink'):
        if getattr(exporter_cls, method) is not getattr(BaseExporter, method) and not (
            method == 'create_sink' and getattr(exporter_cls, 'format_name', None)
        ):
            return f'{exporter_cls.__name__} overrides {method}()'
    if merger_for(exporter_cls) is None:
        fmt = getattr(exporter_cls, 'format_name', '?')
        return f'the {fmt} writer has no part merger'
    return None


def _run(action: ExportAction) -> ShardRun:
    run = getattr(action, '_shard_run', None)
    assert isinstance(run, ShardRun), 'a sharded step of an action not set up for shards'
    return run


class ShardedInitializeStep(InitializeStep):
    """``initialize``, adopting the interrupted run's staging directory with ``--resume``."""

    def create_staging(self, state: ExportState, params: dict[str, Any]) -> Path:
        assert state.location is not None
        rel, name = params.get('path') or '', params['name']
        if _run(self.action).resume:
            final = _final(state.location, rel, name)
            staging = find_resumable(state.location, rel, name, final)
            if staging is not None:
                self.action.log_message(f'Resuming the interrupted export of {final}')
                return staging
            self.action.log_message(
                f'Nothing to resume for {final}: no interrupted run of it; exporting from the '
                'start',
                'warning',
            )
        return super().create_staging(state, params)

    def before_plan(self, state: ExportState) -> None:
        """Hand the light listing of the file names to an idle worker: it runs while this
        process plans the selection (see :func:`list_names`)."""
        from synapse_sdk.plugins.executors.tasks import TaskCall

        run = _run(self.action)
        entrypoint = self.action.entrypoint
        merger = merger_for(entrypoint) if isinstance(entrypoint, type) else None
        run.counts = merger is not None and merger.counts_annotations
        handler = state.handler
        if not run.backend.eager or handler is None or handler.list_target is None:
            return
        signs = tempfile.mkdtemp(prefix='synapse-names-')
        weakref.finalize(run, shutil.rmtree, signs, True)  # also if the plan fails
        run.names_planned = os.path.join(signs, 'planned')
        payload = NamesPayload(run.client, handler.list_target, dict(state.filters), handler.key,
                               run.names_planned, AHEAD_ROWS, AHEAD_CHUNK, run.counts)  # fmt: skip
        run.backend.submit(NAMES_KEY, TaskCall(f'{__name__}:list_names', payload))
        run.names_ahead = True

    def after_plan(self, state: ExportState) -> None:
        """The worker naming rows ahead stops after its chunk and sends them: they travel
        while this process creates the staging directory and cuts the shards."""
        run = _run(self.action)
        if run.names_ahead:
            Path(run.names_planned).touch()

    def rollback(self, context: ExportContext, result: StepResult) -> None:
        if not _run(self.action).keep_staging:
            super().rollback(context, result)


def _listed_ahead(run: ShardRun) -> ListedAhead | None:
    """The outcome of the names listed ahead (``None``: none, or it failed, and the driver
    lists them itself: a real error then shows up there, with its own message)."""
    if not run.names_ahead:
        return None
    run.names_ahead = False
    # after_plan made the sign already; made here too, an initialize step that does not call
    # after_plan still gets the names (the worker stops at its next chunk)
    Path(run.names_planned).touch()
    backend = run.backend
    try:
        while not backend.idle():
            for done in backend.poll(0.5, lambda key, batch: None):
                if done.key == NAMES_KEY:
                    return cast('ListedAhead | None', done.result) if done.ok else None
        return None
    finally:
        shutil.rmtree(os.path.dirname(run.names_planned), ignore_errors=True)


def _final(location: Any, rel: str, name: str) -> str:
    return str(location.url(f'{rel}/{name}' if rel else name))


class PlanShardsStep(BaseStep['ExportContext']):
    """``fetch_results``: the shards and every item's name; on ``--resume``, which shards of
    the interrupted run can be kept."""

    name = 'fetch_results'
    progress_weight = 0.05

    def __init__(self, action: ExportAction) -> None:
        self.action = action

    def execute(self, context: ExportContext) -> StepResult:
        state = _state(context)
        run = _run(self.action)
        handler = state.handler
        plan = handler.selection if handler is not None else None
        assert plan is not None and state.staging is not None and state.location is not None
        context.total_count = plan.count
        context.log_message(f'{context.total_count} {context.params["target"]} record(s) to export')
        journal = run.journal = Journal(state.staging)
        fingerprint = self._fingerprint(run, context.params, plan)
        manifest = journal.read_manifest()
        size = shard_size(plan.count, run.backend.slots, run.shard_size)
        run.shards = cut_shards(plan.keys, size)
        if manifest is not None and manifest.get('fingerprint') == fingerprint:
            run.shards = [Shard.from_json(s) for s in manifest.get('shards') or []]
        elif manifest is not None or run.resume:
            if manifest is not None:
                context.log_message(
                    'The params or the selection changed since the interrupted run; its work '
                    'is discarded and the export starts over',
                    'warning',
                )
            journal.clear()
        run.fingerprint = fingerprint
        run.names = self._names(context, run, state, plan)  # planned as the shards start
        if manifest is not None and manifest.get('fingerprint') == fingerprint:
            self._keep_done(run, context)
        journal.write_manifest(
            {
                'final': _final(state.location, context.params.get('path') or '',
                                context.params['name']),
                'fingerprint': fingerprint,
                'key': plan.key,
                'shards': [s.to_json() for s in run.shards],
            }
        )  # fmt: skip
        return StepResult(data={'total_count': plan.count, 'shards': len(run.shards)})

    @staticmethod
    def _names(
        context: ExportContext, run: ShardRun, state: ExportState, plan: SelectionPlan
    ) -> NamePlan:
        """The names of the samples: those a worker listed (and named) while the driver
        planned, then the rest of the listing, read as the shards need them."""
        handler = state.handler
        assert handler is not None
        ahead = _listed_ahead(run)
        if ahead is None:
            rows = _name_rows(context.client, handler, state.filters, plan, run.counts)
            return NamePlan(rows, plan, run.shards)
        keys = np.array(ahead.keys, dtype=np.int64)
        rest: Iterator[NameRow] = iter(())
        if not ahead.complete and len(keys):  # listed when the shards need them, not now
            after = {**state.filters, f'{plan.key}__gte': int(keys[-1]) + 1}
            rest = _name_rows(context.client, handler, after, plan, run.counts)
        if len(keys) <= len(plan.keys) and np.array_equal(keys, plan.keys[: len(keys)]):
            # Every row listed is a sample, in order: named exactly as the plan would name them.
            named = (ahead.entries, ahead.counts, ahead.allocator)
            return NamePlan(rest, plan, run.shards, named=named)
        return NamePlan(itertools.chain(ahead.rows, rest), plan, run.shards)

    @staticmethod
    def _fingerprint(run: ShardRun, params: dict[str, Any], plan: SelectionPlan) -> str:
        digest = hashlib.blake2b(digest_size=20)
        digest.update(orjson.dumps([run.action_ref.module, run.action_ref.qualname]))
        digest.update(orjson.dumps(params, option=orjson.OPT_SORT_KEYS, default=str))
        digest.update(plan.key.encode())
        digest.update(np.ascontiguousarray(plan.keys, dtype=np.int64).tobytes())
        if plan.splits is not None:
            digest.update(np.ascontiguousarray(plan.splits, dtype=np.int8).tobytes())
            digest.update(orjson.dumps(list(plan.split_names)))
        return digest.hexdigest()

    @staticmethod
    def _keep_done(run: ShardRun, context: ExportContext) -> None:
        """Keep each recorded shard whose part is intact and was named as now planned."""
        journal = run.journal
        assert journal is not None and run.names is not None
        kept = []
        keep: dict[str, set[str]] = {'files': set(), 'dirs': set()}
        for shard in run.shards:
            record = journal.done_record(shard.index)
            if (
                record is not None
                and record.get('shard') == shard.to_json()
                and record.get('stems') == stems_digest(run.names.shard(shard.index))
                and journal.verify(shard.index, record)
            ):
                run.records[shard.index] = record
                kept.append(shard.index)
                keep['files'].update(record.get('files') or ())
                keep['dirs'].update(record.get('dirs') or ())
            else:
                journal.forget(shard.index)
        journal.clear_outputs(keep)  # what the other shards (or a merge) left half done
        for index in kept:  # files a crash left unmoved, and empty directories
            for rel in run.records[index].get('dirs') or ():
                (journal.staging / rel).mkdir(parents=True, exist_ok=True)
        run.resumed = kept
        done = sum(run.shards[i].expected for i in kept)
        context.log_message(
            f'Resuming: {len(kept)} of {len(run.shards)} shard(s) already done ({done} items); '
            f'exporting the other {len(run.shards) - len(kept)}'
        )


class PrepareShardsStep(BaseStep['ExportContext']):
    """``prepare``: the driver's exporter, which writes the extra files and the reports."""

    name = 'prepare'
    progress_weight = 0.0

    def __init__(self, action: ExportAction) -> None:
        self.action = action

    def execute(self, context: ExportContext) -> StepResult:
        state = _state(context)
        assert state.handler is not None and state.staging is not None
        params = dict(context.params)
        params.update(count=context.total_count, project=state.project, filter=state.filters)
        exporter = self.action.entrypoint(context.runtime_ctx, [], state.staging, **params)
        exporter.report.params = {k: v for k, v in params.items() if k != 'project'}
        state.exporter = exporter
        return StepResult()


class RunShardsStep(BaseStep['ExportContext']):
    """``convert_and_save``: every shard on the backend, then the merge and the reports."""

    name = 'convert_and_save'
    progress_weight = 0.85

    def __init__(self, action: ExportAction) -> None:
        self.action = action

    def execute(self, context: ExportContext) -> StepResult:
        from synapse_sdk.plugins.executors.events import RunReporter, wants_events

        state = _state(context)
        run = _run(self.action)
        assert state.exporter is not None and state.staging is not None
        assert state.handler is not None and state.handler.selection is not None
        plan = state.handler.selection
        logger = context.runtime_ctx.logger
        total = context.total_count
        reporter = RunReporter(
            logger,
            summed=[DATASET_CONVERSION],
            totals={DATASET_CONVERSION: total},
            summed_metrics=['data_file', 'original_file'],
        )
        events = wants_events(logger)
        for index in run.records:
            reporter.feed(index, _done_batch(run.shards[index].expected))
        logger.set_progress(0, total, DATASET_CONVERSION)

        def on_events(key: int, batch: Any) -> None:
            reporter.feed(key, batch)
            context.set_progress(reporter.done(DATASET_CONVERSION), max(total, 1))

        merging = _Merging(run, state)
        try:
            summary = self._shards_and_merge(context, run, state, plan, merging, reporter, events,
                                             on_events)  # fmt: skip
        except BaseException:
            merging.session.abort()
            raise
        state.summary = summary
        context.exported_count = summary['exported_count']
        for error in summary['errors'][:MAX_RESULT_ERRORS]:
            what = 'Item' if error['kind'] == 'data_file' else 'Original file of item'
            context.errors.append(f'{what} {error["id"]} ({error["file"]}): {error["reason"]}')
        return StepResult(data={k: v for k, v in summary.items() if k != 'errors'})

    def _shards_and_merge(
        self,
        context: ExportContext,
        run: ShardRun,
        state: ExportState,
        plan: SelectionPlan,
        merging: _Merging,
        reporter: Any,
        events: bool,
        on_events: Any,
    ) -> dict[str, Any]:
        assert state.handler is not None
        total = context.total_count
        logger = context.runtime_ctx.logger
        exclude: set[int] = set()
        started = time.perf_counter()
        merging.advance()  # parts a resumed run kept
        for _round in range(MAX_RENAME_ROUNDS + 1):
            todo = [s for s in run.shards if s.index not in run.records]
            for shard in todo:
                reporter.waiting[shard.index] = shard.expected
            self._run_shards(context, run, plan, todo, on_events, reporter, events, merging)
            skipped = {k for r in run.records.values() for k in r.get('skipped') or ()}
            if skipped <= exclude:
                break
            exclude |= skipped
            assert run.names is not None
            rows = _name_rows(context.client, state.handler, state.filters, plan, run.counts)
            names = NamePlan(rows, plan, run.shards, frozenset(exclude))
            before, after = run.names.all(), names.all()
            changed = [i for i in range(len(after)) if _renamed(before[i], after[i])]
            run.names = names
            for index in changed:  # named differently once the unreadable records take no name
                self._unmerge(run, index)
                reporter.restart(index)
            if not changed:
                break
            merging.restart()
            context.log_message(
                f'{len(skipped)} record(s) could not be read and take no file name; '
                f'shard(s) {", ".join(map(str, changed))} run again with the names one process '
                'gives'
            )
        else:  # pragma: no cover - the names converge after one round
            raise ExportError('the file names of the shards did not settle')
        logger.set_progress(total, total, DATASET_CONVERSION)
        run.timings['shards'] = time.perf_counter() - started
        started = time.perf_counter()
        merging.advance()
        merging.session.finish()
        assert run.journal is not None
        run.journal.remove()
        run.timings['merge'] = time.perf_counter() - started
        started = time.perf_counter()
        exporter = state.exporter
        assert exporter is not None
        results = [PartResult.from_dict(run.records[i]['part']) for i in sorted(run.records)]
        _once(results, 'warnings')
        extra = PartResult(report={'selection': plan.summary()})
        summary = exporter.complete([extra, *results], total)
        run.timings['reports'] = time.perf_counter() - started
        t = run.timings
        context.log_message(
            f'{len(run.shards)} shard(s) on {run.backend.slots} {run.backend.name} worker(s): '
            f'shards {t["shards"]:.2f} s, then merging the parts {t["merge"]:.2f} s, extra files '
            f'and reports {t["reports"]:.2f} s',
            'debug',
        )
        return summary

    @staticmethod
    def _unmerge(run: ShardRun, index: int) -> None:
        """Take shard ``index``'s files back out of the export (it runs again)."""
        journal = run.journal
        assert journal is not None
        run.records.pop(index, None)
        record = journal.done_record(index) or {}
        others = {rel for i in run.records for rel in (journal.done_record(i) or {}).get('files')
                  or ()}  # fmt: skip
        for rel in record.get('files') or ():
            if rel not in others:  # a file every part writes alike stays for the others
                (journal.staging / rel).unlink(missing_ok=True)
        journal.forget(index)

    def _run_shards(
        self,
        context: ExportContext,
        run: ShardRun,
        plan: SelectionPlan,
        todo: list[Shard],
        on_events: Any,
        reporter: Any,
        events: bool,
        merging: _Merging,
    ) -> None:
        from synapse_sdk.plugins.executors.scheduler import TaskFailed, run_tasks
        from synapse_sdk.plugins.executors.tasks import TaskCall

        if not todo:
            return
        state = _state(context)
        assert state.staging is not None and run.names is not None
        names = run.names
        by_index = {s.index: s for s in todo}

        def payload(shard: Shard, attempt: int) -> TaskCall:
            return TaskCall(
                'synapse_sdk.plugins.actions.export.shards:run_shard',
                ShardPayload(
                    action=run.action_ref,
                    params=dict(context.params),
                    client=run.client,
                    env=dict(context.runtime_ctx.env),
                    staging=str(state.staging),
                    shard=shard,
                    filters=dict(state.filters),
                    project=state.project,
                    count=context.total_count,
                    plan=PlanSlice.of(plan, shard),
                    stems=names.shard(shard.index),
                    annotations_before=names.annotations_before(shard.index),
                    attempt=attempt,
                    events=events,
                    fault=run.fault,
                ),
            )

        def before_attempt(index: int, attempt: int) -> TaskCall:
            return payload(by_index[index], attempt)

        def on_done(index: int, record: Any) -> None:
            run.records[index] = record
            merging.done(index)  # merged now, while the other shards still run

        def on_retry(index: int, failure: Any, attempt: int) -> None:
            shard = by_index[index]
            context.log_message(
                f'{shard.describe(plan.key)} failed (attempt {attempt}): {failure.message}; '
                'running it again',
                'warning',
            )
            reporter.restart(index, shard.expected)

        tasks: dict[int, TaskCall | None] = {s.index: None for s in todo}  # built as they start
        try:
            run_tasks(
                run.backend,
                tasks,
                on_events=on_events,
                attempts=run.attempts,
                describe=lambda i: by_index[i].describe(plan.key),
                before_attempt=before_attempt,
                on_done=on_done,
                on_retry=on_retry,
            )
        except TaskFailed as exc:
            cause = exc.failure.exception
            if exc.attempts <= 1 and isinstance(cause, ExportError | ParamsError):
                raise cause from None  # the item or policy error one process would raise
            run.keep_staging = not (exc.attempts <= 1)
            if run.keep_staging:
                context.log_message(
                    f'Finished shards are kept in {state.staging}: run the same export with '
                    '--resume to continue',
                    'warning',
                )
            raise


class _Merging:
    """Merges parts as they finish: a part's per-item files move into the export at once (any
    order); its index files go to the merge session once every part before it is in."""

    def __init__(self, run: ShardRun, state: ExportState) -> None:
        from synapse_sdk.plugins.builtin.formats import WriterSink

        exporter = state.exporter
        assert exporter is not None and state.staging is not None and run.journal is not None
        merger = merger_for(type(exporter))
        assert merger is not None

        def open_writer(root: Path) -> Any:
            sink = WriterSink(exporter)  # type: ignore[arg-type]
            sink.open(root)
            return sink.writer

        self.run = run
        self.merger = merger
        self.journal = run.journal
        self.context = MergeContext(make_writer=open_writer)
        self.session = merger.session(self.journal.staging, self.context)
        self.next = 0

    def done(self, index: int) -> None:
        self.merger.move_items(self.journal.part_dir(index), self.journal.staging)
        self.advance()

    def advance(self) -> None:
        """Add the finished parts that come next in shard order."""
        records = self.run.records
        while self.next < len(self.run.shards) and self.next in records:
            index = self.next
            part = Part(index, self.journal.part_dir(index), records[index].get('state') or {})
            self.merger.move_items(part.root, self.journal.staging)
            self.session.add(part)
            self.next += 1

    def restart(self) -> None:
        """Parts changed after they were added: merge them all again."""
        self.session.abort()
        self.session = self.merger.session(self.journal.staging, self.context)
        self.next = 0


def _once(parts: list[PartResult], key: str) -> None:
    """Report lines a writer adds once per run (when it finishes), kept once, not per part."""
    seen: set[str] = set()
    for part in parts:
        lines = part.report.get(key)
        if isinstance(lines, list):
            kept = []
            for line in lines:
                if str(line) not in seen:
                    seen.add(str(line))
                    kept.append(line)
            part.report[key] = kept


def _renamed(old: list[StemEntry], new: list[StemEntry]) -> bool:
    """Whether a record keeps another name in ``new`` (records only in ``old`` took none)."""
    if old == new:
        return False
    named = {entry[0]: entry[2:] for entry in new}
    return any(named.get(entry[0], entry[2:]) != entry[2:] for entry in old)


def _done_batch(items: int) -> dict[str, Any]:
    return {'progress': {DATASET_CONVERSION: [items, items]}}


def register_sharded_steps(action: ExportAction, registry: StepRegistry[Any]) -> None:
    """The sharded workflow of ``action`` (see the module docstring)."""
    registry.register(ShardedInitializeStep(action))
    registry.register(PlanShardsStep(action))
    registry.register(PrepareShardsStep(action))
    registry.register(RunShardsStep(action))
    registry.register(FinalizeStep())

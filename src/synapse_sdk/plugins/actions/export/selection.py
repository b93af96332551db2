"""What an export selects: one sample per data unit, and the split of each, planned up front.

An export's filter can match several records of one image: an assignment the reviewer rejected
and the re-annotation that replaced it, tasks re-opened, one image in two ground-truth versions.
Exported as they come, the image appears twice (``x.jpg``, ``x_1.jpg``) and may land in train
*and* val. So before the item loop, the target handler reads the selection's ids in a light pass
(ids, data unit ids, statuses, timestamps: a few ints per record) and builds a
:class:`SelectionPlan`:

- ``sample_policy`` picks which record of a data unit is exported (:data:`SAMPLE_POLICY_HELP`);
- the split of every data unit is planned from the whole selection (exact counts need it), see
  :func:`synapse_sdk.formats.split.plan_splits`, and attached to each export item as ``split``.

:func:`build_plan` is a pure function of the rows and the params: computed once by a driver, it
gives every shard of an export the same samples and splits (:meth:`SelectionPlan.count_between`
gives a shard's share). Memory is a few numpy ints per record.
"""

from __future__ import annotations

import functools
from array import array
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from synapse_sdk.formats.split import SplitMode, SplitSpec, plan_splits

__all__ = [
    'SAMPLE_POLICIES',
    'SAMPLE_POLICY_HELP',
    'SamplePolicy',
    'SelectionPlan',
    'SelectionRows',
    'build_plan',
    'dominant_class',
    'select_samples',
    'status_rank',
]

SamplePolicy = Literal['latest_approved', 'latest', 'all']
SAMPLE_POLICIES: tuple[SamplePolicy, ...] = ('latest_approved', 'latest', 'all')
#: The description of the ``sample_policy`` param.
SAMPLE_POLICY_HELP = (
    'Which record of a data unit is exported when the filter matches several (re-annotated '
    'images): "latest_approved" (default) the latest approved assignment, else the latest one '
    'not rejected, else the latest; "latest" the latest whatever its status; "all" every '
    'record as its own sample (x.jpg, x_1.jpg), reported in the warnings. Tasks and '
    'ground-truth events have no review: there latest_approved is latest. Whatever the policy, '
    'splits are per data unit, so an image never lands in two splits'
)

IntArray = npt.NDArray[np.int64]

# latest_approved ranks a data unit's records by review status first, then time, then id.
_APPROVED, _OPEN, _REJECTED = 2, 1, 0


_RANKS = {'approved': _APPROVED, 'rejected': _REJECTED}


def status_rank(status: Any) -> int:
    """How a review status ranks under ``latest_approved``: approved > open > rejected."""
    if status == 'approved':
        return _APPROVED
    if status == 'rejected':
        return _REJECTED
    return _OPEN


def _micros(value: Any) -> int:
    """A record's ``created`` as microseconds since the epoch (0 when absent or unreadable)."""
    if type(value) is str:
        return _text_micros(value)
    if isinstance(value, datetime):
        return _moment_micros(value)
    if isinstance(value, str):
        return _text_micros(str(value))
    return 0


@functools.lru_cache(maxsize=4096)
def _text_micros(value: str) -> int:
    """:func:`_micros` of a timestamp's text. Cached: records made together share their
    ``created`` (the store keeps whole seconds), and parsing one cost a third of planning."""
    if not value:
        return 0
    try:
        moment = datetime.fromisoformat(value.replace('Z', '+00:00'))
    except ValueError:
        return 0
    return _moment_micros(moment)


def _moment_micros(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1_000_000)


def dominant_class(annotations: Iterable[Any], class_order: Mapping[str, int]) -> str | None:
    """The class with the most annotations; ties go to the class listed first in the project
    (then by name). ``None`` when there is no annotation with a class."""
    counts: Counter[str] = Counter()
    for ann in annotations:
        category = ann.get('category') if isinstance(ann, dict) else None
        if isinstance(category, str):
            counts[category] += 1
    if not counts:
        return None
    unlisted = len(class_order)
    return min(counts, key=lambda c: (-counts[c], class_order.get(c, unlisted), c))


@dataclass
class SelectionRows:
    """The columns of a selection's light pass, kept as compact arrays (8 bytes a value)."""

    keys: array[int] = field(default_factory=lambda: array('q'))  # id / pgh_id
    units: array[int] = field(default_factory=lambda: array('q'))  # data unit ids
    ranks: array[int] = field(default_factory=lambda: array('b'))  # status_rank
    times: array[int] = field(default_factory=lambda: array('q'))  # created, microseconds
    classes: array[int] = field(default_factory=lambda: array('l'))  # dominant class ids
    class_names: dict[str, int] = field(default_factory=dict)

    def add(
        self,
        key: int,
        unit: Any,
        status: Any = None,
        created: Any = None,
        cls: str | None = None,
    ) -> None:
        """One record. A record without a data unit is a sample of its own."""
        if type(unit) is dict:
            unit = unit.get('id')
        key = int(key)
        self.keys.append(key)
        self.units.append(int(unit) if isinstance(unit, int) else -1 - key)
        self.ranks.append(_RANKS.get(status, _OPEN) if isinstance(status, str) else _OPEN)
        self.times.append(_micros(created))
        self.classes.append(
            -1 if cls is None else self.class_names.setdefault(cls, len(self.class_names))
        )

    def __len__(self) -> int:
        return len(self.keys)

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, Any]], key: str = 'id') -> SelectionRows:
        """Rows of full (or light) records: ``key``, ``data_unit``, ``status``, ``created``."""
        rows = cls()
        for record in records:
            rows.add(record[key], record.get('data_unit'), record.get('status'),
                     record.get('created'))  # fmt: skip
        return rows


@dataclass(frozen=True, eq=False)
class SelectionPlan:
    """The samples of an export (record keys, sorted) and the split of each.

    ``key`` is the record field the keys are (``id``, or ``pgh_id`` for ground-truth events).
    ``splits`` indexes ``split_names`` per sample, or is ``None`` when the export asked for no
    ratio split (then formats split as before: everything in train, or by ``category``).
    """

    key: str
    keys: IntArray
    splits: npt.NDArray[np.int8] | None
    split_names: tuple[str, ...]
    records: int
    data_units: int
    sample_policy: SamplePolicy
    superseded: int = 0  # records not exported: another record of their data unit won
    fallback: int = 0  # data units whose winning assignment is not approved
    split_mode: SplitMode | None = None
    split_counts: dict[str, int] = field(default_factory=dict)  # data units per split
    warnings: tuple[str, ...] = ()
    # Lookup state of ``_index`` (not part of the plan's value).
    _seq: memoryview | None = field(default=None, init=False, repr=False, compare=False)
    _cursor: list[int] = field(default_factory=lambda: [0], init=False, repr=False, compare=False)
    _names: memoryview | None = field(default=None, init=False, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        """Picklable (a plan may be shipped to shard workers): without the lookup caches."""
        state = dict(self.__dict__)
        state.update(_seq=None, _names=None, _cursor=[0])
        return state

    @property
    def count(self) -> int:
        """How many samples the export writes."""
        return len(self.keys)

    def _index(self, key: Any) -> int | None:
        """The position of ``key`` in :attr:`keys`, or ``None``.

        Records are asked about in key order (``keeps`` then ``split_of`` for each), so the
        position of the last answer is kept and the next key is looked for there and just
        after it; any other key is found by bisection. The cursor is only a hint (every
        answer is checked against the keys), so a plan shared by threads stays correct.
        """
        if type(key) is not int:
            if isinstance(key, bool) or not isinstance(key, int | np.integer):
                return None
            key = int(key)
        seq = self._seq
        if seq is None:
            seq = self.keys.data  # a memoryview: indexing gives plain ints, no numpy scalars
            object.__setattr__(self, '_seq', seq)
        n = len(seq)
        i = self._cursor[0]
        if i < n:
            found = seq[i]
            if found == key:
                return i
            if found < key:
                i += 1
                if i == n:
                    return None
                found = seq[i]
                if found == key:
                    self._cursor[0] = i
                    return i
                if found > key:
                    return None  # between two samples: not one
        i = bisect_left(seq, key)
        if i < n and seq[i] == key:
            self._cursor[0] = i
            return i
        return None

    def keeps(self, key: Any) -> bool:
        """Whether the record with this key is one of the samples."""
        return self._index(key) is not None

    def split_of(self, key: Any) -> str | None:
        """The planned split of the sample with this key (``None``: no plan for it)."""
        if self.splits is None:
            return None
        i = self._index(key)
        if i is None:
            return None
        names = self._names
        if names is None:  # the split name of every sample, as a sequence of small ints
            names = self.splits.data
            object.__setattr__(self, '_names', names)
        return self.split_names[names[i]]

    def count_between(self, low: int | None = None, high: int | None = None) -> int:
        """Samples with ``low <= key < high``: a shard's total when shards are key ranges."""
        lo = 0 if low is None else int(np.searchsorted(self.keys, low, 'left'))
        hi = len(self.keys) if high is None else int(np.searchsorted(self.keys, high, 'left'))
        return max(0, hi - lo)

    def select(self, records: Iterable[Mapping[str, Any]]) -> Iterator[Any]:
        """The records that are samples, lazily, in their order."""
        for record in records:
            if self.keeps(record.get(self.key)):
                yield record

    def summary(self) -> dict[str, Any]:
        """What was selected, for the run's result and ``export_report.json``."""
        out: dict[str, Any] = {
            'records': self.records,
            'samples': self.count,
            'data_units': self.data_units,
            'sample_policy': self.sample_policy,
            'superseded_records': self.superseded,
        }
        if self.fallback:
            out['units_without_approved'] = self.fallback
        if self.splits is not None:
            out['split_mode'] = self.split_mode
            out['split_data_units'] = dict(self.split_counts)
        if self.warnings:
            out['warnings'] = list(self.warnings)
        return out


def build_plan(
    rows: SelectionRows,
    *,
    key: str = 'id',
    policy: SamplePolicy = 'latest_approved',
    spec: SplitSpec | None = None,
    seed: int = 0,
    mode: SplitMode = 'exact',
    reviewed: bool = False,
    noun: str = 'record',
) -> SelectionPlan:
    """Pick the samples of ``rows`` by ``policy`` and plan the split of each data unit.

    A pure function: the same rows (in any order) and params give the same plan. ``reviewed``
    says the records have review statuses (assignments); ``spec`` ratio splits are planned per
    data unit with ``mode`` and ``seed`` (``None`` or a ``category`` spec: no split plan).
    """
    keys = np.frombuffer(rows.keys, dtype=np.int64) if len(rows) else np.empty(0, np.int64)
    units = np.frombuffer(rows.units, dtype=np.int64) if len(rows) else np.empty(0, np.int64)
    times = np.frombuffer(rows.times, dtype=np.int64) if len(rows) else np.empty(0, np.int64)
    ranks = np.asarray(rows.ranks, dtype=np.int8)
    classes = np.asarray(rows.classes, dtype=np.int64)
    n = len(keys)
    by_status = ranks if policy == 'latest_approved' else np.zeros(n, np.int8)
    # Each unit's records in ascending (status rank, time, key): the last one wins.
    order = np.lexsort((keys, times, by_status, units))
    ordered_units = units[order]
    last = np.r_[ordered_units[1:] != ordered_units[:-1], True] if n else np.zeros(0, bool)
    winners = order[last]  # one per data unit, ascending by unit id
    winner_units = units[winners]
    kept = np.arange(n) if policy == 'all' else winners
    kept = kept[np.argsort(keys[kept], kind='stable')]
    warnings: list[str] = []
    if policy == 'all':
        _, per_unit = np.unique(units, return_counts=True)
        shared = int(np.count_nonzero(per_unit > 1))
        if shared:
            extra = int(per_unit[per_unit > 1].sum())
            warnings.append(
                f'sample_policy all: {shared} data unit(s) exported as {extra} samples (one '
                f"per {noun}); each data unit's samples share one split"
            )
    fallback = 0
    if reviewed and policy == 'latest_approved':
        fallback = int(np.count_nonzero(ranks[winners] != _APPROVED))
    split_names: tuple[str, ...] = ()
    splits = None
    split_counts: dict[str, int] = {}
    if spec is not None and not spec.by_category:
        split_names = spec.names
        unit_classes = classes[winners] if mode == 'stratified' else None
        unit_splits = plan_splits(winner_units, spec, seed, mode, unit_classes)
        splits = unit_splits[np.searchsorted(winner_units, units[kept])]
        tally = np.bincount(unit_splits, minlength=len(split_names))
        split_counts = {name: int(c) for name, c in zip(split_names, tally, strict=True)}
    return SelectionPlan(
        key=key,
        keys=np.ascontiguousarray(keys[kept]),
        splits=splits,
        split_names=split_names,
        records=n,
        data_units=len(winners),
        sample_policy=policy,
        superseded=n - len(kept),
        fallback=fallback,
        split_mode=mode if splits is not None else None,
        split_counts=split_counts,
        warnings=tuple(warnings),
    )


def select_samples(
    records: Sequence[Mapping[str, Any]],
    key: str = 'id',
    policy: SamplePolicy = 'latest_approved',
    reviewed: bool = True,
) -> list[Mapping[str, Any]]:
    """The records an export writes for ``records`` under ``policy``, in their order.

    For tests and tools that hold full records (``selected_records`` of the test kit).
    """
    plan = build_plan(
        SelectionRows.from_records(records, key), key=key, policy=policy, reviewed=reviewed
    )
    return list(plan.select(records))

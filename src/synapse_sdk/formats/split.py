"""Splits: ratios or the ground-truth event's category, planned per data unit.

``extra_params.split`` accepts:

- ``None`` / absent: every item goes to :data:`DEFAULT_SPLIT` (``'train'``);
- a mapping ``{"train": 0.8, "val": 0.2}`` or the string ``"train=0.8,val=0.2"``: positive
  ratios, normalised to sum to 1;
- ``"category"``: ground-truth events go to their own ``category`` (``train`` / ``validation``
  / ``test``), names kept as they are.

``extra_params.split_mode`` says how ratios become splits (:data:`SPLIT_MODE_HELP`):

- ``exact`` (default): exact counts by largest remainder (80/20 of 50 data units is 40/10), a
  seeded shuffle of the data units deciding which; the same units and seed give the same splits.
- ``stratified``: exact counts as above, and each class spread over the splits in proportion.
  A data unit's class is its *dominant* class: the class with the most annotations, ties going
  to the class listed first in the project configuration; units without annotations form a
  class of their own.
- ``sticky``: each data unit's split comes from a hash of ``(seed, data unit id)`` alone, so it
  keeps its split as the dataset grows; counts are then only approximately the ratios.

Splits are keyed by data unit, never by record: every sample of an image lands in one split.
:func:`plan_splits` is a pure function of the data unit ids (and classes), the ratios, the mode
and the seed, so a driver can compute it once and every shard of an export agrees with it.
The hash is blake2b, not Python's salted ``hash()``.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from synapse_sdk.errors import ItemExportError, ParamsError

__all__ = [
    'CATEGORY_SPLITS',
    'DEFAULT_SPLIT',
    'SPLIT_MODES',
    'SPLIT_MODE_HELP',
    'SplitMode',
    'SplitSpec',
    'exact_counts',
    'parse_split',
    'parse_split_mode',
    'plan_splits',
    'stratified_counts',
    'unit_hash',
]

DEFAULT_SPLIT = 'train'
CATEGORY_SPLITS = ('train', 'validation', 'test')
SplitMode = Literal['exact', 'stratified', 'sticky']
SPLIT_MODES: tuple[SplitMode, ...] = ('exact', 'stratified', 'sticky')
#: The description of ``extra_params.split_mode`` (for options models and ``--help``).
SPLIT_MODE_HELP = (
    'How split ratios are applied, per data unit: "exact" (default) gives exact counts by '
    'largest remainder, seeded by "seed"; "stratified" gives exact counts with each class '
    "(a unit's dominant class: most annotations, ties to the first class in the project) "
    'getting its share of each split rounded down or up (largest remainder); "sticky" keeps '
    "each unit's split as the dataset grows (a hash of seed and data unit id), so counts only "
    'approximate the ratios'
)
_NAME = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$')
_ALLOWED = 'a mapping like {"train": 0.8, "val": 0.2}, a string "train=0.8,val=0.2", or "category"'


@dataclass(frozen=True)
class SplitSpec:
    """How items are split. ``ratios`` are normalised; empty when ``by_category``."""

    ratios: tuple[tuple[str, float], ...] = ((DEFAULT_SPLIT, 1.0),)
    by_category: bool = False

    @property
    def names(self) -> tuple[str, ...]:
        """Every split this spec can produce, in a stable order."""
        if self.by_category:
            return CATEGORY_SPLITS
        return tuple(name for name, _ in self.ratios)

    def assign(self, item_id: Any, category: str | None = None, seed: int = 0) -> str:
        """The split of one item. Stable: depends only on ``seed`` and ``item_id``."""
        if self.by_category:
            if not isinstance(category, str) or not _NAME.match(category):
                raise ItemExportError(
                    f'split "category" needs a ground-truth category, got {category!r}',
                    item_id=item_id,
                )
            return category
        if len(self.ratios) == 1:
            return self.ratios[0][0]
        u = unit_hash(seed, item_id) / 2**64
        acc = 0.0
        for name, ratio in self.ratios:
            acc += ratio
            if u < acc:
                return name
        return self.ratios[-1][0]


def unit_hash(seed: int, key: Any) -> int:
    """A stable 64-bit hash of ``(seed, key)``: the same on every machine and Python run."""
    digest = hashlib.blake2b(f'{seed}:{key}'.encode(), digest_size=8).digest()
    return int.from_bytes(digest, 'big')


def _bad(message: str) -> ParamsError:
    return ParamsError('Invalid split', [('extra_params.split', f'{message}; expected {_ALLOWED}')])


def parse_split(value: Any) -> SplitSpec:
    """Parse ``extra_params.split``; raises :class:`ParamsError` naming what is wrong."""
    if value is None or value == '' or value == {}:
        return SplitSpec()
    if isinstance(value, SplitSpec):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text == 'category':
            return SplitSpec(ratios=(), by_category=True)
        pairs: dict[str, Any] = {}
        for part in text.split(','):
            if '=' not in part:
                raise _bad(f'{part.strip()!r} is not name=ratio')
            name, _, ratio = part.partition('=')
            name = name.strip()
            if name in pairs:
                raise _bad(f'split {name!r} is given twice')
            try:
                pairs[name] = float(ratio)
            except ValueError:
                raise _bad(f'ratio {ratio.strip()!r} of {name!r} is not a number') from None
        value = pairs
    if not isinstance(value, Mapping):
        raise _bad(f'got {type(value).__name__}')
    ratios = []
    for name, ratio in value.items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise _bad(f'split name {name!r} must be letters, digits, "_", "-" or "."')
        if isinstance(ratio, bool) or not isinstance(ratio, int | float):
            raise _bad(f'ratio of {name!r} must be a number, got {ratio!r}')
        if not ratio > 0 or ratio == float('inf'):
            raise _bad(f'ratio of {name!r} must be positive and finite, got {ratio!r}')
        ratios.append((name, float(ratio)))
    if not ratios:
        raise _bad('no splits given')
    total = sum(r for _, r in ratios)
    return SplitSpec(ratios=tuple((n, r / total) for n, r in ratios))


def parse_split_mode(value: Any) -> SplitMode:
    """Parse ``extra_params.split_mode``; :class:`ParamsError` names it and what is allowed."""
    if value is None:
        return 'exact'
    for mode in SPLIT_MODES:
        if value == mode:
            return mode
    raise ParamsError(
        'Invalid split mode',
        [('extra_params.split_mode', f'got {value!r}; allowed: {", ".join(SPLIT_MODES)}')],
    )


def exact_counts(n: int, ratios: Sequence[float]) -> list[int]:
    """Split ``n`` by ``ratios`` (summing to 1) into whole counts by largest remainder.

    The counts sum to ``n`` and each is its quota rounded down or up: 0.8/0.2 of 50 is 40/10,
    0.7/0.2/0.1 of 47 is 33/9/5. Equal remainders go to the earlier split.
    """
    quotas = [n * r for r in ratios]
    # A quota like 0.29 * 100 = 28.999999999999996 is 29: floats must not move an item.
    counts = [math.floor(q + 1e-9) for q in quotas]
    remainders = [max(0.0, q - c) for q, c in zip(quotas, counts, strict=True)]
    order = sorted(range(len(ratios)), key=lambda j: (-round(remainders[j], 9), j))
    for j in order[: n - sum(counts)]:
        counts[j] += 1
    return counts


IntArray = npt.NDArray[np.int64]


def plan_splits(
    units: IntArray,
    spec: SplitSpec,
    seed: int = 0,
    mode: SplitMode = 'exact',
    classes: IntArray | None = None,
) -> npt.NDArray[np.int8]:
    """The split of each data unit, as an index into ``spec.names``.

    ``units`` are distinct data unit ids; ``classes`` (``stratified`` only) their dominant
    class ids, ``-1`` for none. A pure function of its arguments: the order of ``units`` does
    not change any unit's split.
    """
    if spec.by_category:
        raise ValueError('plan_splits plans ratio splits; "category" splits come from records')
    n = len(units)
    out = np.zeros(n, dtype=np.int8)
    if n == 0 or len(spec.ratios) == 1:
        return out
    index = {name: j for j, name in enumerate(spec.names)}
    if mode == 'sticky':
        for i, unit in enumerate(units.tolist()):
            out[i] = index[spec.assign(unit, seed=seed)]
        return out
    hashes = np.fromiter((unit_hash(seed, u) for u in units.tolist()), np.uint64, n)
    ratios = [r for _, r in spec.ratios]
    if mode == 'stratified':
        if classes is None:
            raise ValueError('stratified splits need the classes of the units')
        # Units grouped by class, each class in (hash, id) order; the class's count of each
        # split is taken from that order in runs: its first count[0] units to split 0, ...
        order = np.lexsort((units, hashes, classes))
        sorted_classes = classes[order]
        starts = np.flatnonzero(np.r_[True, sorted_classes[1:] != sorted_classes[:-1]])
        sizes = np.diff(np.r_[starts, n]).tolist()
        class_ids = sorted_classes[starts].tolist()
        ties = [unit_hash(seed, f'class:{c}') for c in class_ids]
        counts = stratified_counts(sizes, ratios, ties)
        out[order] = np.repeat(
            np.tile(np.arange(len(ratios), dtype=np.int8), len(sizes)),
            np.asarray(counts, dtype=np.int64).ravel(),
        )
        return out
    order = np.lexsort((units, hashes))
    start = 0
    for j, count in enumerate(exact_counts(n, ratios)):
        out[order[start : start + count]] = j
        start += count
    return out


_Cost = tuple[int, Fraction]


def stratified_counts(
    sizes: Sequence[int], ratios: Sequence[float], ties: Sequence[int] | None = None
) -> list[list[int]]:
    """How many units of each class go to each split: ``counts[k][j]`` for class ``k``.

    The split totals are exactly ``exact_counts(sum(sizes), ratios)`` and each class's counts
    sum to its size. Within that, every class gets its *largest-remainder share*: each count
    is the class's quota ``size * ratio`` rounded down or up (equal to it when whole), and
    among all such roundings the rounded-up quotas are those with the largest total remainder.

    With two or three splits such a rounding always exists. (The fractional quotas satisfy
    both sums; the totals a rounding can reach form an integral polytope around them, and with
    at most three splits every integral point of the rounding box is a vertex of the simplex
    the fractional totals lie inside, so it is reached.) With four or more splits a rare mix
    of class sizes can rule it out (5 splits weighted 2,2,2,3,3 and classes of 4 and 6 units);
    then as few counts as possible go one step further from their quota, never a split total.

    It is a minimum-cost flow: start from each class's own largest-remainder rounding (the
    best each class can get) and move single units between splits along cheapest paths until
    the split totals are met; a path's cost is first the counts it pushes out of their
    rounding range, then the change in squared distance to the quotas. ``ties`` (one int per
    class; the seeded class hash in :func:`plan_splits`) decides between equally good moves.
    """
    n_splits = len(ratios)
    quotas = [[size * r for r in _fractions(ratios)] for size in sizes]
    counts = [_largest_remainder(size, row) for size, row in zip(sizes, quotas, strict=True)]
    totals = exact_counts(sum(sizes), ratios)
    surplus = [sum(row[j] for row in counts) - totals[j] for j in range(n_splits)]
    if not any(surplus):
        return counts
    order = list(ties) if ties is not None else list(range(len(sizes)))

    def cost(k: int, j: int, count: int) -> _Cost:
        quota = quotas[k][j]
        low, high = math.floor(quota), math.ceil(quota)
        return max(0, low - count) + max(0, count - high), (count - quota) ** 2

    def move(k: int, j: int, i: int) -> _Cost:
        """The change in cost when one unit of class ``k`` goes from split ``j`` to ``i``."""
        a, b = counts[k][j], counts[k][i]
        out_j, in_i = cost(k, j, a - 1), cost(k, i, b + 1)
        was_j, was_i = cost(k, j, a), cost(k, i, b)
        return out_j[0] - was_j[0] + in_i[0] - was_i[0], out_j[1] - was_j[1] + in_i[1] - was_i[1]

    # The cheapest move of each split pair: a heap of (cost, tie, class, version) per pair,
    # stale entries (of a class moved since) dropped when they reach the top.
    pairs = [(j, i) for j in range(n_splits) for i in range(n_splits) if i != j]
    heaps: dict[tuple[int, int], list[tuple[_Cost, int, int, int]]] = {p: [] for p in pairs}
    version = [0] * len(sizes)

    def push(k: int) -> None:
        for j, i in pairs:
            if counts[k][j] > 0:
                heapq.heappush(heaps[j, i], (move(k, j, i), order[k], k, version[k]))

    def cheapest(j: int, i: int) -> tuple[_Cost, int] | None:
        heap = heaps[j, i]
        while heap and heap[0][3] != version[heap[0][2]]:
            heapq.heappop(heap)
        return (heap[0][0], heap[0][2]) if heap else None

    for k in range(len(sizes)):
        push(k)
    while any(s > 0 for s in surplus):
        # Bellman-Ford over the splits from every split with too many units. Costs can be
        # negative, cycles cannot (the counts are always the cheapest for their totals).
        dist: list[_Cost | None] = [(0, Fraction(0)) if s > 0 else None for s in surplus]
        pred: list[tuple[int, int] | None] = [None] * n_splits
        for _ in range(n_splits):
            changed = False
            for j, i in pairs:
                here, edge = dist[j], cheapest(j, i)
                if here is None or edge is None:
                    continue
                there, old = (here[0] + edge[0][0], here[1] + edge[0][1]), dist[i]
                if old is None or there < old:
                    dist[i], pred[i], changed = there, (j, edge[1]), True
            if not changed:
                break
        reached = [j for j in range(n_splits) if surplus[j] < 0 and dist[j] is not None]
        target = min(reached, key=lambda j: (dist[j], j))
        path: list[tuple[int, int, int]] = []
        node = target
        while (step := pred[node]) is not None:
            if len(path) == n_splits:
                raise RuntimeError('stratified split: a cycle in the cheapest paths')
            path.append((step[1], step[0], node))
            node = step[0]
        for k, j, i in path:
            counts[k][j] -= 1
            counts[k][i] += 1
        for k in {k for k, _, _ in path}:
            version[k] += 1
            push(k)
        surplus[node] -= 1
        surplus[target] += 1
    return counts


def _fractions(ratios: Sequence[float]) -> list[Fraction]:
    """Ratios as exact fractions (``0.29`` is 29/100, ``2/7`` is 2/7) for exact quotas."""
    return [Fraction(r).limit_denominator(10**9) for r in ratios]


def _largest_remainder(size: int, quotas: Sequence[Fraction]) -> list[int]:
    """``quotas`` (summing to ``size``) rounded by largest remainder, ties to the earlier."""
    counts = [math.floor(q) for q in quotas]
    by_remainder = sorted(range(len(quotas)), key=lambda j: (counts[j] - quotas[j], j))
    for j in by_remainder[: size - sum(counts)]:
        counts[j] += 1
    return counts

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
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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
    'spread over the splits in proportion; "sticky" keeps each unit\'s split as the dataset '
    'grows (a hash of seed and data unit id), so counts only approximate the ratios'
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
    if mode == 'stratified':
        if classes is None:
            raise ValueError('stratified splits need the classes of the units')
        # Rank units within their class by hash; a unit's key is its quantile in the class,
        # so taking the sorted keys in contiguous runs gives every class its share of a split.
        by_class = np.lexsort((units, hashes, classes))
        sorted_classes = classes[by_class]
        starts = np.flatnonzero(np.r_[True, sorted_classes[1:] != sorted_classes[:-1]])
        sizes = np.diff(np.r_[starts, n])
        rank = np.arange(n) - np.repeat(starts, sizes)
        quantile = np.empty(n, dtype=np.float64)
        quantile[by_class] = (rank + 0.5) / np.repeat(sizes, sizes)
        order = np.lexsort((units, hashes, quantile))
    else:
        order = np.lexsort((units, hashes))
    start = 0
    for j, count in enumerate(exact_counts(n, [r for _, r in spec.ratios])):
        out[order[start : start + count]] = j
        start += count
    return out

"""Split assignment: ratios (stable per item id and seed) or the ground-truth event's category.

``extra_params.split`` accepts:

- ``None`` / absent: every item goes to :data:`DEFAULT_SPLIT` (``'train'``);
- a mapping ``{"train": 0.8, "val": 0.2}`` or the string ``"train=0.8,val=0.2"``: positive
  ratios, normalised to sum to 1;
- ``"category"``: ground-truth events go to their own ``category`` (``train`` / ``validation``
  / ``test``), names kept as they are.

A ratio assignment depends only on ``(seed, item id)`` (a blake2b hash, not Python's salted
``hash()``), so re-exporting after new data was added keeps every old item in its split.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from synapse_sdk.errors import ItemExportError, ParamsError

__all__ = ['CATEGORY_SPLITS', 'DEFAULT_SPLIT', 'SplitSpec', 'parse_split']

DEFAULT_SPLIT = 'train'
CATEGORY_SPLITS = ('train', 'validation', 'test')
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
        digest = hashlib.blake2b(f'{seed}:{item_id}'.encode(), digest_size=8).digest()
        u = int.from_bytes(digest, 'big') / 2**64
        acc = 0.0
        for name, ratio in self.ratios:
            acc += ratio
            if u < acc:
                return name
        return self.ratios[-1][0]


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

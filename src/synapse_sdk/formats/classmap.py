"""The one class map of an export, taken from the project configuration in configured order.

Every format numbers classes by this map (COCO ``category_id = index + category_id_start``,
YOLO ``names[index]``), so the order is the same in every split and every partial export. A label
that is not in the configuration is reported by the writers, never appended.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from synapse_sdk.errors import ParamsError

__all__ = ['ClassInfo', 'ClassMap']


@dataclass(frozen=True)
class ClassInfo:
    name: str
    tool: str | None = None
    attributes: tuple[dict[str, Any], ...] = ()
    keypoints: dict[str, Any] | None = field(default=None, compare=False)


class ClassMap:
    """Classes in configured order. Indices are 0-based; formats add their own offset."""

    def __init__(self, classes: list[ClassInfo]) -> None:
        self._classes = list(classes)
        self._index: dict[str, int] = {}
        for i, c in enumerate(self._classes):
            if c.name in self._index:
                raise ParamsError(
                    'Invalid project configuration',
                    [('classes', f'class {c.name!r} is configured more than once')],
                )
            self._index[c.name] = i

    @classmethod
    def from_configuration(cls, configuration: Mapping[str, Any] | None) -> ClassMap:
        """Build from ``{"classes": [{"name", "tool", "attributes"}], "keypoints": {...}}``.

        Classes may also be given as plain strings. Keypoint definitions are
        ``{class: {"names": [...], "skeleton": [[i, j], ...]}}`` with 0-based skeleton indices.
        """
        configuration = configuration or {}
        raw = configuration.get('classes') or []
        if not isinstance(raw, list):
            raise ParamsError(
                'Invalid project configuration', [('classes', 'must be a list of classes')]
            )
        kp_conf = configuration.get('keypoints') or {}
        classes = []
        for i, entry in enumerate(raw):
            if isinstance(entry, str):
                entry = {'name': entry}
            if not isinstance(entry, Mapping) or not isinstance(entry.get('name'), str):
                raise ParamsError(
                    'Invalid project configuration',
                    [(f'classes[{i}]', 'each class needs a string "name"')],
                )
            name = entry['name']
            kp = kp_conf.get(name) if isinstance(kp_conf, Mapping) else None
            if kp is not None:
                kp = {
                    'names': [str(n) for n in kp.get('names', [])],
                    'skeleton': [[int(a), int(b)] for a, b in kp.get('skeleton', [])],
                }
            classes.append(
                ClassInfo(
                    name=name,
                    tool=entry.get('tool'),
                    attributes=tuple(entry.get('attributes') or ()),
                    keypoints=kp,
                )
            )
        return cls(classes)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self._classes]

    def index(self, name: str) -> int | None:
        """0-based position of ``name`` in the configuration, ``None`` when not configured."""
        return self._index.get(name)

    def tool(self, name: str) -> str | None:
        i = self._index.get(name)
        return None if i is None else self._classes[i].tool

    def keypoints(self, name: str) -> dict[str, Any] | None:
        """``{"names": [...], "skeleton": [[i, j], ...]}`` (0-based) or ``None``."""
        i = self._index.get(name)
        return None if i is None else self._classes[i].keypoints

    def __len__(self) -> int:
        return len(self._classes)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __iter__(self) -> Iterator[ClassInfo]:
        return iter(self._classes)

    def to_configuration(self) -> dict[str, Any]:
        """The configuration this map was built from (normalised)."""
        classes = [
            {'name': c.name, 'tool': c.tool, 'attributes': list(c.attributes)}
            for c in self._classes
        ]
        kps = {c.name: c.keypoints for c in self._classes if c.keypoints is not None}
        return {'classes': classes, 'keypoints': kps}

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
    source_id: int | None = None  # the category id of the dataset it was imported from (COCO)


class ClassMap:
    """Classes in configured order. Indices are 0-based; formats add their own offset."""

    def __init__(
        self, classes: list[ClassInfo], configuration: Mapping[str, Any] | None = None
    ) -> None:
        self._classes = list(classes)
        #: The configuration as given (verbatim), for writers that keep the project schema.
        self.configuration: dict[str, Any] = (
            dict(configuration) if configuration is not None else self.to_configuration()
        )
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
        ``{class: {"names": [...], "skeleton": [[i, j], ...], "flip_idx": [...]}}`` with
        0-based skeleton indices (``flip_idx`` optional: the index each point becomes when the
        image is mirrored). A class's ``source_id`` (int) is kept for COCO round trips.
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
                kp = _keypoint_schema(name, kp)
            source_id = entry.get('source_id')
            classes.append(
                ClassInfo(
                    name=name,
                    tool=entry.get('tool'),
                    attributes=tuple(entry.get('attributes') or ()),
                    keypoints=kp,
                    source_id=source_id if type(source_id) is int else None,
                )
            )
        return cls(classes, configuration)

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
        classes = []
        for c in self._classes:
            entry: dict[str, Any] = {
                'name': c.name,
                'tool': c.tool,
                'attributes': list(c.attributes),
            }
            if c.source_id is not None:
                entry['source_id'] = c.source_id
            classes.append(entry)
        kps = {c.name: c.keypoints for c in self._classes if c.keypoints is not None}
        return {'classes': classes, 'keypoints': kps}


def _keypoint_schema(name: str, kp: Any) -> dict[str, Any]:
    """``{"names", "skeleton"[, "flip_idx"]}`` of one class, checked."""
    where = f'keypoints.{name}'
    if not isinstance(kp, Mapping):
        raise ParamsError('Invalid project configuration', [(where, 'must be an object')])
    try:
        names = [str(n) for n in kp.get('names') or []]
        skeleton = [[int(a), int(b)] for a, b in kp.get('skeleton') or []]
    except (TypeError, ValueError) as exc:
        raise ParamsError(
            'Invalid project configuration', [(where, f'names or skeleton malformed ({exc})')]
        ) from None
    out: dict[str, Any] = {'names': names, 'skeleton': skeleton}
    flip = kp.get('flip_idx')
    if flip is not None:
        n = len(names)
        if (
            not isinstance(flip, list)
            or len(flip) != n
            or sorted(i for i in flip if type(i) is int) != list(range(n))
        ):
            raise ParamsError(
                'Invalid project configuration',
                [(f'{where}.flip_idx', f'must be a permutation of 0..{n - 1}, got {flip!r}')],
            )
        out['flip_idx'] = list(flip)
    return out

"""Pydantic options of the cvat, labelme and parquet writers (CONTRACTS #6).

``CommonOptions`` holds the ``extra_params`` keys the pipeline owns (``split``, ``seed``,
``on_error``); each writer's ``Options`` subclasses it, so an unknown key is refused with the
list of allowed ones. :func:`parse_options` turns pydantic's errors into :class:`ParamsError`
naming ``extra_params.<key>``.

This mirrors the shared options model of ``formats.base``; once that lands, these writers take
it from there and this module goes.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from synapse_sdk.errors import ParamsError
from synapse_sdk.formats.split import parse_split

__all__ = ['CommonOptions', 'parse_options']


class CommonOptions(BaseModel):
    """``extra_params`` keys every built-in format understands (the pipeline's, not a writer's)."""

    model_config = ConfigDict(extra='forbid', strict=True, frozen=True)

    split: str | dict[str, Any] | None = Field(
        None,
        description='Split ratios ("train=0.8,val=0.2" or {"train": 0.8, "val": 0.2}) or '
        '"category" (the ground-truth category of each item); default: everything in train',
    )
    seed: int = Field(0, description='Seed of the split assignment (same seed, same splits)')
    on_error: Literal['skip', 'fail'] = Field(
        'skip', description='A failed item is reported and skipped (skip) or fails the run (fail)'
    )

    @field_validator('split')
    @classmethod
    def _split(cls, value: Any) -> Any:
        parse_split(value)  # raises ParamsError naming extra_params.split
        return value


def _allowed(model: type[BaseModel], key: str) -> str:
    info = model.model_fields.get(key)
    if info is None:
        return ''
    annotation = info.annotation
    if getattr(annotation, '__origin__', None) is Literal:
        return ', '.join(repr(a) for a in getattr(annotation, '__args__', ()))
    lo = next((m.ge for m in info.metadata if getattr(m, 'ge', None) is not None), None)
    hi = next((m.le for m in info.metadata if getattr(m, 'le', None) is not None), None)
    if lo is not None and hi is not None:
        return f'an integer from {lo} to {hi}'
    return info.description or ''


def parse_options(model: type[BaseModel], options: dict[str, Any]) -> dict[str, Any]:
    """``options`` validated by ``model``, defaults filled in; :class:`ParamsError` names
    ``extra_params.<key>`` and, for an unknown key, every allowed key."""
    try:
        return model.model_validate(dict(options or {})).model_dump()
    except ValidationError as exc:
        errors = []
        keys = ', '.join(model.model_fields)
        for err in exc.errors():
            key = str((err.get('loc') or ('<root>',))[0])
            if err.get('type') == 'extra_forbidden':
                errors.append((f'extra_params.{key}', f'unknown option; allowed keys: {keys}'))
                continue
            cause = (err.get('ctx') or {}).get('error')
            if isinstance(cause, ParamsError):
                raise cause from None
            allowed = _allowed(model, key)
            got = err.get('input')
            message = f'got {got!r}; allowed: {allowed}' if allowed else str(err.get('msg'))
            errors.append((f'extra_params.{key}', message))
        raise ParamsError('Invalid extra_params', errors) from None

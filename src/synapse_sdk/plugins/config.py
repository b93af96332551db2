"""``config.yaml``: a plugin's name, code, version, category and actions."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from synapse_sdk.errors import PluginError
from synapse_sdk.plugins.enums import AnnotationType, PluginCategory, RunMethod

_ENTRYPOINT = re.compile(r'^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+$')


class ActionConfig(BaseModel):
    """One action of a plugin: ``entrypoint`` is ``package.module.Class``."""

    model_config = ConfigDict(extra='allow')

    entrypoint: str
    method: RunMethod = RunMethod.JOB
    annotation_types: list[AnnotationType] = Field(default_factory=list)
    description: str | None = None

    @field_validator('entrypoint')
    @classmethod
    def _entrypoint(cls, value: str) -> str:
        if not _ENTRYPOINT.match(value):
            raise ValueError(
                f'must look like "module.Class" (e.g. plugin.export.MyAction), got {value!r}'
            )
        return value


class PluginConfig(BaseModel):
    """The parsed ``config.yaml`` of a plugin."""

    model_config = ConfigDict(extra='allow')

    name: str = Field(..., min_length=1)
    code: str = Field(..., pattern=r'^[A-Za-z0-9_\-]+$')
    version: str = Field(..., min_length=1)
    category: PluginCategory
    description: str | None = None
    actions: dict[str, ActionConfig] = Field(..., min_length=1)

    @field_validator('version', mode='before')
    @classmethod
    def _version(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int | float) else value


def load_config(path: Path) -> PluginConfig:
    """Read and validate ``config.yaml``; errors name the file and every bad field."""
    try:
        raw = yaml.safe_load(path.read_text(encoding='utf-8'))
    except FileNotFoundError:
        raise PluginError(f'No config.yaml in {path.parent}') from None
    except yaml.YAMLError as exc:
        raise PluginError(f'{path} is not valid YAML: {exc}') from exc
    if not isinstance(raw, dict):
        raise PluginError(f'{path} must be a mapping of name, code, version, category, actions')
    try:
        return PluginConfig.model_validate(raw)
    except ValidationError as exc:
        problems = '; '.join(
            f'{".".join(str(p) for p in err["loc"]) or "<root>"}: {err["msg"]}'
            for err in exc.errors()
        )
        raise PluginError(f'{path} is invalid: {problems}') from exc

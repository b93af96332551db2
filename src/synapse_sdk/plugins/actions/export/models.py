"""Params, statuses and metrics of template-based exports."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from synapse_sdk.plugins.actions.export.selection import SAMPLE_POLICY_HELP, SamplePolicy
from synapse_sdk.storage import validate_name, validate_rel_path


class ExportStatus(StrEnum):
    """Status of one exported file."""

    SUCCESS = 'success'
    FAILED = 'failed'
    STAND_BY = 'stand_by'


@dataclass
class MetricsRecord:
    """Counts of files waiting, written and failed in one category."""

    stand_by: int = 0
    success: int = 0
    failed: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class ExportParams(BaseModel):
    """Params of ``ExportAction`` (what ``synapse plugin run ... export --params`` takes)."""

    model_config = ConfigDict(extra='forbid')

    name: str = Field(..., description='Export name; the output directory is <path>/<name>')
    description: str | None = Field(None, description='Free text kept in the export report')
    storage: int = Field(..., description='Storage id the export is written to')
    save_original_file: bool = Field(True, description='Also save the original media files')
    path: str = Field('exports', description='Directory inside the storage, relative to its root')
    target: str = Field(..., description='What to export: assignment, ground_truth or task')
    filter: dict[str, Any] = Field(
        default_factory=dict, description='Filters for the target, e.g. {"project": 1}'
    )
    extra_params: dict[str, Any] = Field(
        default_factory=dict,
        description='Exporter options, e.g. {"split": "train=0.8,val=0.2", "on_error": "skip"}',
    )
    strict: bool = Field(
        False,
        description='Fail the run, publishing nothing, when any annotation is skipped or any '
        'item or original file fails',
    )
    allow_empty: bool = Field(
        False,
        description='Publish an empty dataset when the filter selects nothing (by default an '
        'empty selection is refused before anything is created, naming the filter)',
    )
    sample_policy: SamplePolicy = Field('latest_approved', description=SAMPLE_POLICY_HELP)

    @field_validator('name')
    @classmethod
    def _name(cls, value: str) -> str:
        return validate_name(value, 'name')

    @field_validator('path')
    @classmethod
    def _path(cls, value: str) -> str:
        return validate_rel_path(value, 'path')

    @field_validator('target')
    @classmethod
    def _target(cls, value: str) -> str:
        from synapse_sdk.plugins.actions.export.handlers import TargetHandlerFactory

        known = TargetHandlerFactory.targets()
        if value not in known:
            raise ValueError(f'unknown target {value!r}; allowed: {", ".join(known)}')
        return value

    @field_validator('extra_params')
    @classmethod
    def _on_error(cls, value: dict[str, Any]) -> dict[str, Any]:
        policy = value.get('on_error', 'skip')
        if policy not in ('skip', 'fail'):
            raise ValueError(f'on_error must be "skip" or "fail", got {policy!r}')
        return value

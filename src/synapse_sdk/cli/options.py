"""A format's options (a pydantic model) as command-line flags and as help.

Each format writer exposes ``Options``, a pydantic v2 model whose fields are the format's
``extra_params`` keys with a description each. :func:`describe_model` reads such a model into
:class:`OptionDoc` rows (name, type, default, allowed values, description);
:func:`typer_parameters` turns the rows into typer options, so ``synapse export yolo --help``
lists ``--task [detect|segment|pose|obb]`` with its default, and a boolean field is a
``--flag/--no-flag`` pair rather than an option taking a value.
"""

from __future__ import annotations

import enum
import inspect
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import typer
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

__all__ = ['OptionDoc', 'describe_model', 'format_options_model', 'typer_parameters']

#: Prefix of the Python parameter names generated for format options.
PARAM_PREFIX = 'format_option__'


@dataclass
class OptionDoc:
    """One option of a format: how it is spelled, typed, defaulted and described."""

    key: str  # the extra_params key, e.g. 'category_id_start'
    kind: str  # 'bool' | 'int' | 'float' | 'str' | 'choice' | 'json'
    description: str = ''
    default: Any = None
    has_default: bool = True
    choices: tuple[Any, ...] = ()
    minimum: float | None = None
    maximum: float | None = None

    @property
    def flag(self) -> str:
        return '--' + self.key.replace('_', '-')

    @property
    def type_name(self) -> str:
        return {
            'bool': 'flag',
            'int': 'integer',
            'float': 'number',
            'str': 'text',
            'choice': 'one of',
            'json': 'JSON',
        }[self.kind]

    @property
    def allowed(self) -> str:
        """Allowed values in words: ``detect, segment``, ``0 to 6``, ``>= 0`` or ``''``."""
        if self.choices:
            return ', '.join(str(c) for c in self.choices)
        lo, hi = self.minimum, self.maximum
        if lo is not None and hi is not None:
            return f'{_num(lo)} to {_num(hi)}'
        if lo is not None:
            return f'>= {_num(lo)}'
        if hi is not None:
            return f'<= {_num(hi)}'
        return ''

    @property
    def default_text(self) -> str:
        if not self.has_default:
            return 'required'
        if self.default is None:
            return 'none'
        if isinstance(self.default, bool):
            return 'on' if self.default else 'off'
        if isinstance(self.default, enum.Enum):
            return str(self.default.value)
        return str(self.default)


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _strip_optional(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _strip_optional(args[0])
    if origin is Annotated:
        return _strip_optional(typing.get_args(annotation)[0])
    return annotation


def _bounds(metadata: list[Any]) -> tuple[float | None, float | None]:
    """Numeric bounds from pydantic's constraint metadata (``Field(ge=0, le=6)`` ...)."""
    lo = hi = None
    for item in metadata:
        for attr in ('ge', 'gt', 'le', 'lt'):
            value = getattr(item, attr, None)
            if not isinstance(value, int | float) or isinstance(value, bool):
                continue
            step = 1 if isinstance(value, int) else 0  # gt=0 on an int field means >= 1
            if attr == 'ge':
                lo = float(value)
            elif attr == 'gt':
                lo = float(value + step)
            elif attr == 'le':
                hi = float(value)
            else:
                hi = float(value - step)
    return lo, hi


def describe_model(model: type[BaseModel]) -> list[OptionDoc]:
    """The options of ``model``, in field order."""
    docs = []
    for key, info in model.model_fields.items():
        annotation = _strip_optional(info.annotation)
        origin = typing.get_origin(annotation)
        choices: tuple[Any, ...] = ()
        if origin is Literal:
            kind, choices = 'choice', typing.get_args(annotation)
        elif isinstance(annotation, type) and issubclass(annotation, enum.Enum):
            kind, choices = 'choice', tuple(m.value for m in annotation)
        elif annotation is bool:
            kind = 'bool'
        elif annotation is int:
            kind = 'int'
        elif annotation is float:
            kind = 'float'
        elif annotation is str:
            kind = 'str'
        else:
            kind = 'json'
        lo, hi = _bounds(list(info.metadata)) if kind in ('int', 'float') else (None, None)
        if info.default is not PydanticUndefined:
            default, has_default = info.default, True
        elif info.default_factory is not None:
            default, has_default = info.default_factory(), True  # type: ignore[call-arg]
        else:
            default, has_default = None, False
        docs.append(
            OptionDoc(
                key=key,
                kind=kind,
                description=(info.description or '').strip(),
                default=default,
                has_default=has_default,
                choices=choices,
                minimum=lo,
                maximum=hi,
            )
        )
    return docs


def format_options_model(fmt: str) -> type[BaseModel] | None:
    """The ``Options`` model of a built-in format's writer, when it has one."""
    from synapse_sdk.formats import WRITERS

    if fmt not in WRITERS:
        return None
    model = getattr(WRITERS[fmt], 'Options', None)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return model
    return None


def typer_parameters(
    docs: list[OptionDoc], taken: set[str], panel: str
) -> tuple[list[inspect.Parameter], dict[str, OptionDoc]]:
    """Keyword-only parameters (typer options) for ``docs``, skipping flags in ``taken``.

    Returns the parameters and, by parameter name, the option each one sets. Options default to
    ``None`` (not given: the model's default applies); the model's default is what help shows.
    JSON-typed options get no flag (they are set with ``-o key=JSON``).
    """
    params: list[inspect.Parameter] = []
    by_name: dict[str, OptionDoc] = {}
    for doc in docs:
        if doc.kind == 'json' or doc.flag in taken:
            continue
        name = f'{PARAM_PREFIX}{doc.key}'
        help_text = doc.description or doc.key.replace('_', ' ')
        help_text += f' (default: {doc.default_text})' if doc.has_default else ' (required)'
        shown = False
        annotation: Any
        if doc.kind == 'bool':
            negative = '--no-' + doc.key.replace('_', '-')
            option = typer.Option(
                f'{doc.flag}/{negative}', help=help_text, show_default=shown, rich_help_panel=panel
            )
            annotation = Annotated[bool | None, option]
        elif doc.kind == 'choice':
            members = {str(c): str(c) for c in doc.choices}
            choice_enum = enum.Enum(f'{doc.key}_choice', members, type=str)  # type: ignore[misc]
            option = typer.Option(
                doc.flag, help=help_text, show_default=shown, rich_help_panel=panel
            )
            annotation = Annotated[choice_enum | None, option]
        else:
            py_type = {'int': int, 'float': float, 'str': str}[doc.kind]
            bounds: dict[str, Any] = {}
            if doc.minimum is not None:
                bounds['min'] = py_type(doc.minimum)
            if doc.maximum is not None:
                bounds['max'] = py_type(doc.maximum)
            option = typer.Option(
                doc.flag,
                metavar=doc.type_name.upper(),
                help=help_text,
                show_default=shown,
                rich_help_panel=panel,
                **bounds,
            )
            annotation = Annotated[py_type | None, option]
        params.append(
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation
            )
        )
        by_name[name] = doc
    return params, by_name


def collect_values(kwargs: dict[str, Any], by_name: dict[str, OptionDoc]) -> dict[str, Any]:
    """Pop the generated options out of ``kwargs``: ``{key: value}`` of those given."""
    values: dict[str, Any] = {}
    for name, doc in by_name.items():
        value = kwargs.pop(name, None)
        if value is None:
            continue
        if isinstance(value, enum.Enum):
            value = next((c for c in doc.choices if str(c) == value.value), value.value)
        values[doc.key] = value
    return values


def options_table(docs: list[OptionDoc]) -> list[tuple[str, str, str, str, str]]:
    """``(option, type, default, allowed, description)`` rows, for help and documentation."""
    rows = []
    for doc in docs:
        spelled = doc.flag if doc.kind != 'json' else f'-o {doc.key}=JSON'
        if doc.kind == 'bool':
            spelled = f'{doc.flag} / --no-{doc.key.replace("_", "-")}'
        rows.append((spelled, doc.type_name, doc.default_text, doc.allowed, doc.description))
    return rows
